"""paths: data-dir resolution, the output guard (validated, locked, never deleting a user's file) and atomic outputs
(complete or absent)."""
import json
import os
import stat
import subprocess
import sys

import pytest

from keras_tinyloc import paths
from keras_tinyloc.errors import TinyLocError


def test_data_dir_precedence(monkeypatch, tmp_path):
    monkeypatch.setenv("KERAS_TINYLOC_DATA", str(tmp_path / "env"))
    assert paths.data_dir(tmp_path / "arg") == tmp_path / "arg"
    assert paths.data_dir(None) == tmp_path / "env"
    monkeypatch.delenv("KERAS_TINYLOC_DATA")
    monkeypatch.chdir(tmp_path)
    assert paths.data_dir(None) == tmp_path / "data" / "raw"


def test_user_cache_dir_is_outside_the_working_directory(monkeypatch, tmp_path):
    monkeypatch.setenv("KERAS_TINYLOC_CACHE", str(tmp_path / "c"))
    assert paths.user_cache_dir() == tmp_path / "c"
    monkeypatch.delenv("KERAS_TINYLOC_CACHE")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    monkeypatch.chdir(tmp_path)
    if os.name == "posix" and not os.uname().sysname == "Darwin":
        assert paths.user_cache_dir() == tmp_path / "xdg" / "keras_tinyloc"


def test_atomic_dir_is_complete_or_absent(tmp_path):
    final = tmp_path / "out"
    with pytest.raises(RuntimeError):
        with paths.atomic_dir(final) as tmp:
            (tmp / "half.txt").write_text("x")
            raise RuntimeError("crash")
    assert not final.exists() and list(tmp_path.iterdir()) == []
    with paths.atomic_dir(final) as tmp:
        (tmp / "a.txt").write_text("done")
    assert (final / "a.txt").read_text() == "done"
    mode = stat.S_IMODE(os.stat(final).st_mode)
    umask = os.umask(0)
    os.umask(umask)
    assert mode == 0o777 & ~umask


def test_atomic_dir_replaces_only_what_keras_tinyloc_wrote(tmp_path):
    final = tmp_path / "out"
    with paths.atomic_dir(final) as tmp:
        (tmp / "a.txt").write_text("first")
        (tmp / "sub").mkdir()
    assert json.loads((final / paths.MANIFEST).read_text()) == {"tool": "keras_tinyloc", "files": ["a.txt", "sub"]}
    with pytest.raises(TinyLocError, match="exists and is not empty"):
        with paths.atomic_dir(final) as tmp:
            (tmp / "b.txt").write_text("second")
    with paths.atomic_dir(final / "nested") as tmp:  # another command's output inside it is keras_tinyloc's too
        (tmp / "n.txt").write_text("n")
    with paths.atomic_dir(final, overwrite=True) as tmp:
        (tmp / "b.txt").write_text("second")
    assert sorted(p.name for p in final.iterdir()) == [paths.MANIFEST, "b.txt"]
    (final / "notes.txt").write_text("the user's own file")
    msg = (f"--out {final}: --overwrite would delete what keras_tinyloc did not write there (notes.txt); "
           f"move it away or choose another folder")
    with pytest.raises(TinyLocError) as exc:
        with paths.atomic_dir(final, overwrite=True) as tmp:
            (tmp / "c.txt").write_text("third")
    assert str(exc.value) == msg
    assert (final / "notes.txt").read_text() == "the user's own file" and (final / "b.txt").exists()
    legacy = tmp_path / "legacy"  # a folder without a record: nothing in it is known to be ours
    legacy.mkdir()
    (legacy / "model.keras").write_text("x")
    with pytest.raises(TinyLocError, match=r"would delete .*\(model.keras\)"):
        paths.claim_output(legacy, overwrite=True)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["legacy", "out"]  # no temporary or lock files left


@pytest.mark.parametrize("bad, why", [("", "an empty path (an unset shell variable?); name the folder to write"),
                                      (" ", "an empty path (an unset shell variable?); name the folder to write"),
                                      (".", "is the current directory; refusing to write there (name a new folder)"),
                                      ("..", "holds the current directory; refusing to write there (name a new "
                                             "folder)")])
def test_claim_output_refuses_the_current_directory_and_empty_paths(bad, why, tmp_path, monkeypatch):
    (tmp_path / "work").mkdir()
    monkeypatch.chdir(tmp_path / "work")
    (tmp_path / "work" / "keep.txt").write_text("x")
    with pytest.raises(TinyLocError) as exc:
        paths.claim_output(bad, overwrite=True)
    assert str(exc.value) == f"--out {bad!r}: {why}" if not bad.strip() else str(exc.value) == f"--out {bad}: {why}"
    assert (tmp_path / "work" / "keep.txt").exists()


def test_claim_output_refuses_files_home_checkout_and_unwritable_places(tmp_path, monkeypatch):
    f = tmp_path / "file"
    f.write_text("x")
    with pytest.raises(TinyLocError, match=f"^--sketch {f}: exists and is not a folder$"):
        paths.claim_output(f, flag="--sketch")
    monkeypatch.chdir(tmp_path)
    with pytest.raises(TinyLocError, match="is the keras_tinyloc checkout"):
        paths.claim_output(paths.REPO_ROOT)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    (tmp_path / "home").mkdir()
    with pytest.raises(TinyLocError, match="is your home folder"):
        paths.claim_output(tmp_path / "home")
    monkeypatch.setattr(os, "access", lambda p, mode: False)  # root may write anywhere: simulate a read-only folder
    with pytest.raises(TinyLocError, match=f"^--out {tmp_path}/ro/x: cannot write there \\({tmp_path} is not a "
                                           f"writable folder\\)$"):
        paths.claim_output(tmp_path / "ro" / "x")


def test_a_claimed_output_is_locked_against_other_processes(tmp_path):
    out = tmp_path / "out"
    code = ("import sys, time; from keras_tinyloc import paths; paths.claim_output(sys.argv[1]); "
            "print('claimed', flush=True); time.sleep(30)")
    holder = subprocess.Popen([sys.executable, "-c", code, str(out)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "claimed"
        with pytest.raises(TinyLocError, match="another keras_tinyloc command is writing it"):
            paths.claim_output(out)
    finally:
        holder.kill()
        holder.wait()
    assert paths.claim_output(out) == out  # the lock died with its process
    paths.release_output(out)


def test_a_killed_writer_leaves_nothing_behind_after_the_next_claim(tmp_path):
    out = tmp_path / "out"
    code = ("import os, sys; from keras_tinyloc import paths\n"
            "with paths.atomic_dir(sys.argv[1]) as tmp:\n"
            "    (tmp / 'half').write_text('x'); os.kill(os.getpid(), 9)")
    subprocess.run([sys.executable, "-c", code, str(out)])
    left = sorted(p.name for p in tmp_path.iterdir())
    assert left[0].startswith(".out.lock") or left[0].startswith(".out.tmp-")  # what the kill left
    with paths.atomic_dir(out) as tmp:
        (tmp / "whole").write_text("y")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]


def test_files_are_written_with_the_usual_permissions(tmp_path):
    paths.atomic_write_text(tmp_path / "a.txt", "x")
    assert stat.S_IMODE(os.stat(tmp_path / "a.txt").st_mode) == 0o666 & ~paths._umask()


def test_atomic_write_json_and_npz_round_trip(tmp_path):
    import numpy as np

    paths.atomic_write_json(tmp_path / "a" / "x.json", {"v": np.float32(1.5), "n": np.int64(3)})
    assert (tmp_path / "a" / "x.json").read_text().strip().startswith("{")
    paths.atomic_save_npz(tmp_path / "y.npz", x=np.arange(3))
    assert np.load(tmp_path / "y.npz")["x"].tolist() == [0, 1, 2]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a", "y.npz"]


def test_portable_paths_are_relative_to_the_checkout_or_the_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("KERAS_TINYLOC_CACHE", str(tmp_path / "cache"))
    run = paths.REPO_ROOT / "runs" / "beyond" / "uji" / "row"
    assert paths.portable(run) == "runs/beyond/uji/row" and paths.from_portable("runs/beyond/uji/row") == run
    cached = tmp_path / "cache" / "qat" / "house-a"
    assert paths.portable(cached) == "<user cache>/qat/house-a" and paths.from_portable(paths.portable(cached)) == cached
    assert paths.portable(tmp_path / "elsewhere") == str(tmp_path / "elsewhere")  # outside both: unchanged


def test_committed_results_reports_and_notebooks_hold_no_absolute_paths():
    import re

    machine = re.compile(r"(?<![\w.])(/work/|/root/|/home/|/tmp/|/Users/|/private/var/|[A-Z]:\\Users)")
    # results, reports and notebooks (instructions in a README may name a scratch folder such as /tmp/tree)
    files = [*paths.REPO_ROOT.glob("docs/results/**/*.json"), *paths.REPO_ROOT.glob("docs/results/**/*.md"),
             *paths.REPO_ROOT.glob("docs/results/**/*.csv"), *paths.REPO_ROOT.glob("notebooks/*.ipynb")]
    assert len(files) > 20
    found = [f"{f.relative_to(paths.REPO_ROOT)}:{n}: {m.group(0)}" for f in files
             for n, line in enumerate(f.read_text(errors="replace").splitlines(), 1) for m in [machine.search(line)] if m]
    assert found == []
