"""``python -m keras_tinyloc data ...``: help, info (JSON and table), download failure, simulate wiring, exit codes."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import types
from pathlib import Path

import pytest

from keras_tinyloc import paths
from keras_tinyloc.data import cli, uji

ROOT = Path(__file__).resolve().parents[2]
SHARED = paths.shared_data_dir() or Path("/nonexistent")


def run(*args: str, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "keras_tinyloc", "data", *args],
        capture_output=True, text=True, cwd=ROOT, env={**os.environ, **env}, timeout=120,
    )


@pytest.mark.parametrize("argv", [[], ["info"], ["import"], ["download"], ["simulate"]])
def test_help_for_every_action(argv, capsys):
    with pytest.raises(SystemExit) as exit_:
        cli.main([*argv, "--help"])
    assert exit_.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith("usage: python -m keras_tinyloc data")
    for word in {"": ["info", "import", "download", "simulate"],
                 "info": ["--dataset", "--json", "--data-dir", "--rate-hz", "--window-s", "--hop-s", "--fill-dbm",
                          "--no-window"],
                 "import": ["SRC", "--format", "sphere", "inhome", "uji", "--out", "--house", "--overwrite"],
                 "download": ["uji", "--dest"], "simulate": ["--house", "--out", "--seed", "--scale"]}[
                     argv[0] if argv else ""]:
        assert word in out


@pytest.mark.skipif(not (SHARED / "ujiindoorloc" / "UJIIndoorLoc.zip").is_file(), reason="no shared UJIIndoorLoc")
def test_info_json_on_uji_subprocess():
    res = run("info", "--dataset", "uji", "--json")
    assert res.returncode == 0, res.stderr
    info = json.loads(res.stdout)
    assert info["n_train"] + info["n_val"] == 19937 and info["n_test"] == 1111
    assert info["n_classes"] == 13 and len(info["class_names"]) == 13 and info["input_shape"] == [1, 520]


@pytest.mark.skipif(not (SHARED / "sphere_challenge").is_dir(), reason="no shared SPHERE copy")
def test_info_table_on_sphere(capsys):
    assert cli.main(["info", "--dataset", "sphere"]) == 0
    out = capsys.readouterr().out
    assert "(20, 4)" in out
    rooms = json.loads((SHARED / "sphere_challenge" / "public_data" / "rooms.json").read_text())
    lines = out.splitlines()
    body = lines[lines.index(next(ln for ln in lines if ln.startswith("class "))) + 1:]
    assert [ln.split()[0] for ln in body] == rooms


def test_bad_data_dir_exits_2_with_one_line(tmp_path):
    res = run("info", "--dataset", "uji", "--data-dir", str(tmp_path))
    assert res.returncode == 2
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and str(tmp_path) in lines[0]
    assert res.stdout == ""


def test_download_without_internet(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(uji, "UCI_URL", "http://127.0.0.1:9/ujiindoorloc.zip")
    assert cli.main(["download", "uji", "--dest", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "download failed" in err[0] and "127.0.0.1:9" in err[0]


def test_simulate_calls_the_simulator(tmp_path, monkeypatch, capsys):
    calls = []
    fake = types.ModuleType("keras_tinyloc.data.simulate")
    fake.simulate_house = lambda letter, out_dir, seed=0, scale=1.0, overwrite=False: calls.append(
        (letter, out_dir, seed, scale, overwrite))
    monkeypatch.setitem(sys.modules, "keras_tinyloc.data.simulate", fake)
    import keras_tinyloc.data as pkg

    monkeypatch.setattr(pkg, "simulate", fake, raising=False)
    out = str(tmp_path / "houseB")
    assert cli.main(["simulate", "--house", "b", "--out", out, "--seed", "3", "--scale", "0.5"]) == 0
    assert calls == [("B", out, 3, 0.5, False)]
    assert cli.main(["simulate", "--house", "s", "--out", out, "--overwrite"]) == 0
    assert calls[-1] == ("S", out, 0, 1.0, True)
    assert cli.main(["simulate", "--house", "A", "--out", out, "--scale", "0"]) == 2
    assert "--scale 0.0" in capsys.readouterr().err
    assert len(calls) == 2


def test_unknown_dataset_or_missing_path_is_one_line(capsys):
    assert cli.main(["info", "--dataset", "nope"]) == 2
    assert capsys.readouterr().err == ("error: unknown dataset 'nope' (choose from uji, uji-zones, house-a, house-b, "
                                       "house-c, house-d, sphere, or give the path of a recordings file or folder)\n")
    assert cli.main(["info", "--dataset", "my/recordings.csv"]) == 2
    assert capsys.readouterr().err == "error: my/recordings.csv: no such recordings file or folder\n"
