"""paths: data-dir resolution and atomic outputs (complete or absent)."""
import os
import stat

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


def test_atomic_dir_refuses_non_empty_unless_overwrite(tmp_path):
    final = tmp_path / "out"
    final.mkdir()
    (final / "old.txt").write_text("old")
    with pytest.raises(TinyLocError, match="exists and is not empty"):
        with paths.atomic_dir(final) as tmp:
            (tmp / "new.txt").write_text("new")
    assert (final / "old.txt").exists()
    with paths.atomic_dir(final, overwrite=True) as tmp:
        (tmp / "new.txt").write_text("new")
    assert sorted(p.name for p in final.iterdir()) == ["new.txt"]


def test_atomic_write_json_and_npz_round_trip(tmp_path):
    import numpy as np

    paths.atomic_write_json(tmp_path / "a" / "x.json", {"v": np.float32(1.5), "n": np.int64(3)})
    assert (tmp_path / "a" / "x.json").read_text().strip().startswith("{")
    paths.atomic_save_npz(tmp_path / "y.npz", x=np.arange(3))
    assert np.load(tmp_path / "y.npz")["x"].tolist() == [0, 1, 2]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a", "y.npz"]
