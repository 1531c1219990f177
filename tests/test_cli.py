"""The package CLI: --help lists every command without importing TensorFlow; each command has its own --help."""
import subprocess
import sys

import pytest

from keras_tinyloc.cli import COMMANDS, main


def test_top_level_help_lists_commands_and_stays_light():
    code = ("import sys; from keras_tinyloc.cli import main; rc = main(['--help']); "
            "assert 'tensorflow' not in sys.modules; sys.exit(rc)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    for name in COMMANDS:
        assert name in out.stdout


def test_unknown_command_exits_2(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["bogus"])
    assert exc.value.code == 2
    assert "invalid choice" in capsys.readouterr().err


@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_every_command_has_its_own_help(name):
    out = subprocess.run([sys.executable, "-m", "keras_tinyloc", name, "--help"], capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == 0, out.stderr[-500:]
    assert "usage:" in out.stdout and "--help" in out.stdout


def test_no_arguments_prints_help_and_exits_2(capsys):
    assert main([]) == 2
    assert "commands:" in capsys.readouterr().out


# ------------------------------------------------------------------ every command: bad input -> one line, exit 2, nothing written
SEED_MSG = "error: --seed -1: must be an integer from 0 to 4294967295"
EMPTY_OUT_MSG = "error: --out '': an empty path (an unset shell variable?); name the folder to write"
TRAIN = ["--dataset", "house-a", "--model", "mlp", "--hidden", "4", "--layers", "1"]


def _commands(run):
    """(command, arguments before the option under test) for every command that writes an output folder."""
    return {"train": [*TRAIN], "distill": ["--teacher", str(run), *TRAIN], "qat": [str(run)],
            "convert": [str(run)], "sweep": ["--profile", "quick"], "demo": [],
            "beyond": ["uji", "--hidden", "4"], "data": ["simulate", "--house", "A"]}


@pytest.fixture
def workdir(tmp_path, monkeypatch):
    """A current directory holding a user's file, which no command may touch."""
    work = tmp_path / "work"
    work.mkdir()
    (work / "precious.txt").write_text("the user's data")
    monkeypatch.chdir(work)
    return work


def _run(capsys, argv):
    rc = main(argv)
    err = capsys.readouterr().err.strip().splitlines()
    return rc, err


@pytest.mark.parametrize("command", sorted(_commands("RUN")))
def test_an_empty_out_never_touches_the_current_directory(command, workdir, capsys):
    """``--out ''`` is what an unset shell variable gives; with --overwrite it once emptied the current directory."""
    args = _commands(workdir / "no_run")[command]
    extra = [] if command in ("sweep", "demo", "beyond", "data") else ["--overwrite"]
    rc, err = _run(capsys, [command, *args, "--out", "", *extra])
    assert (rc, err) == (2, [EMPTY_OUT_MSG])
    assert sorted(p.name for p in workdir.iterdir()) == ["precious.txt"]


def test_export_sketch_with_an_empty_out_never_touches_the_current_directory(workdir, capsys):
    rc, err = _run(capsys, ["export-sketch", str(workdir / "some_convert_dir"), "--out", "", "--overwrite"])
    assert (rc, err) == (2, [EMPTY_OUT_MSG])
    assert sorted(p.name for p in workdir.iterdir()) == ["precious.txt"]


@pytest.mark.parametrize("command", sorted(_commands("RUN")))
def test_a_negative_seed_is_one_line(command, workdir, capsys):
    args = _commands(workdir / "no_run")[command]
    rc, err = _run(capsys, [command, *args, "--out", str(workdir.parent / "o"), "--seed", "-1"])
    assert (rc, err) == (2, [SEED_MSG])
    assert not (workdir.parent / "o").exists()


def test_an_out_that_is_a_file_or_inside_one_is_one_line(workdir, capsys):
    target = workdir / "precious.txt"
    rc, err = _run(capsys, ["train", *TRAIN, "--out", str(target)])
    assert (rc, err) == (2, [f"error: --out {target}: exists and is not a folder"])
    rc, err = _run(capsys, ["export-sketch", str(workdir), "--out", str(target / "sk")])
    assert rc == 2 and len(err) == 1 and err[0].startswith("error: ")
    assert target.read_text() == "the user's data"


def test_sizes_and_counts_out_of_range_are_one_line(workdir, capsys):
    rc, err = _run(capsys, ["train", *TRAIN[:-4], "--hidden", "100000", "--layers", "1", "--out", "o"])
    assert (rc, err) == (2, ["error: --hidden 100000: must be an integer from 1 to 2048"])
    rc, err = _run(capsys, ["convert", str(workdir), "--n-calibration", "0"])
    assert (rc, err) == (2, ["error: --n-calibration 0: must be an integer from 1 to 100000"])
    rc, err = _run(capsys, ["qat", str(workdir), "--out", "q", "--n-calibration", "0"])
    assert (rc, err) == (2, ["error: --n-calibration 0: must be a positive integer"])
    assert sorted(p.name for p in workdir.iterdir()) == ["precious.txt"]


def test_every_option_of_every_command_has_help_text():
    """A newcomer reads --help, not the source: no option without a sentence (sub-commands included)."""
    import argparse
    import importlib

    missing = []

    def walk(parser, where):
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                for sub, sub_parser in action.choices.items():
                    walk(sub_parser, f"{where} {sub}")
            elif not action.help:
                missing.append(f"{where} {action.option_strings or action.dest}")

    for name, (module, _) in COMMANDS.items():
        walk(importlib.import_module(module).build_parser(), name)
    assert missing == []
