"""tflm_kit: finding the kit ($TFLM_DIR is checked, never silently replaced), the cache key (content, not location;
every input changes it), the cache entry (complete or absent, built once under concurrency), the cached libraries."""
from __future__ import annotations

import json
import multiprocessing
import shutil
import time
from pathlib import Path

import pytest

from keras_tinyloc.deploy import tflm_kit
from keras_tinyloc.errors import TinyLocError


def require_kit() -> Path:
    kit = tflm_kit.find_kit()
    if kit is None:
        pytest.skip(tflm_kit.kit_missing_reason())
    return kit


def test_tflm_dir_must_be_a_kit(tmp_path, monkeypatch):
    monkeypatch.setenv("TFLM_DIR", str(tmp_path))
    with pytest.raises(TinyLocError, match=r"\$TFLM_DIR=.*not a TFLM kit \(no manifests/host-files.txt"):
        tflm_kit.find_kit()
    assert "not a TFLM kit" in tflm_kit.kit_missing_reason()
    with pytest.raises(TinyLocError, match="not a TFLM kit"):
        tflm_kit.library("host")
    with pytest.raises(TinyLocError, match="TFLM target 'm7'"):
        tflm_kit.check_target("m7")


def _copy_listed(kit: Path, dest: Path, target: str) -> None:
    for rel in tflm_kit.manifest(kit, target) + [f"manifests/{target}-files.txt"]:
        (dest / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(kit / rel, dest / rel)


def test_key_depends_on_content_not_location(tmp_path):
    if shutil.which("g++") is None:
        pytest.skip("no g++")
    kit = require_kit()
    copy = tmp_path / "elsewhere" / "kit"
    _copy_listed(kit, copy, "host")
    key = tflm_kit.library_key(kit, "host")
    assert tflm_kit.library_key(copy, "host") == key  # another folder, same files: same library
    assert tflm_kit.library_key(copy, "host", opt="-O2") != key
    assert tflm_kit.library_key(copy, "host", defs=("-DTF_LITE_STRIP_ERROR_STRINGS",)) != key
    listed = next(r for r in tflm_kit.manifest(copy, "host") if r.endswith(".cc"))
    (copy / listed).write_bytes((copy / listed).read_bytes() + b"\n// changed\n")
    assert tflm_kit.library_key(copy, "host") != key
    (copy / listed).unlink()
    with pytest.raises(TinyLocError, match="listed in manifests/host-files.txt but unreadable"):
        tflm_kit.library_key(copy, "host")


def _slow_build(entry: str, counter: str) -> str:
    def build(tmp: Path) -> dict:
        with open(counter, "a") as fh:
            fh.write("built\n")
        time.sleep(0.5)
        (tmp / "product.bin").write_bytes(b"x" * 10)
        return {"ok": True}

    return str(tflm_kit.cached_artifact(Path(entry), "product.bin", build))


def test_cached_artifact_is_atomic_and_built_once(tmp_path):
    entry = tmp_path / "cache" / "thing-abc"

    def failing(tmp: Path) -> dict:
        (tmp / "product.bin").write_bytes(b"half")
        raise RuntimeError("compiler died")

    with pytest.raises(RuntimeError, match="compiler died"):
        tflm_kit.cached_artifact(entry, "product.bin", failing)
    assert not entry.exists() and not list(entry.parent.glob(".thing-abc.tmp-*"))  # nothing half-built left
    counter = tmp_path / "count.txt"
    ctx = multiprocessing.get_context("fork")
    with ctx.Pool(3) as pool:
        paths = pool.starmap(_slow_build, [(str(entry), str(counter))] * 3)
    assert set(paths) == {str(entry / "product.bin")}
    assert counter.read_text() == "built\n"  # one build; the others waited on the lock and reused it
    assert json.loads((entry / "build.json").read_text()) == {"ok": True}
    assert _slow_build(str(entry), str(counter)) == str(entry / "product.bin") and counter.read_text() == "built\n"


def test_cached_libraries(m4_lib, host_lib):
    for lib, target in ((m4_lib, "m4"), (host_lib, "host")):
        assert lib.target == target and lib.path.is_file() and lib.path.stat().st_size > 500_000
        info = json.loads((lib.dir / "build.json").read_text())
        assert info["key"] == lib.key == tflm_kit.library_key(lib.kit, target) and info["opt"] == "-Os"
        assert lib.dir.parent == tflm_kit.cache_root() and lib.dir.name == f"{target}-{lib.key[:20]}"
        assert not (lib.dir / "obj").exists()  # only the archive is kept
        # asked again: the same entry, no rebuild
        t0 = time.monotonic()
        assert tflm_kit.library(target).dir == lib.dir and time.monotonic() - t0 < 10
