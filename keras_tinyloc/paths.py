"""Where data lives and how files are written so that a crash never leaves half a file.

Data directory: ``--data-dir`` if given, else ``$KERAS_TINYLOC_DATA``, else ``data/raw/``.
Cache directory (processed arrays, simulated houses, built TFLM libraries): ``$KERAS_TINYLOC_CACHE``, else the
platform's user cache folder (``platformdirs``: ``~/.cache/keras_tinyloc`` on Linux, honouring ``$XDG_CACHE_HOME``),
never the current directory — so a fresh checkout reuses what an earlier one computed. Every entry is keyed by the
content it was made from (file hashes, versions), so a stale entry is never read.
"""
from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Iterator

import numpy as np

from keras_tinyloc.errors import TinyLocError

REPO_ROOT = Path(__file__).resolve().parent.parent


def data_dir(explicit: str | os.PathLike | None = None) -> Path:
    """Resolve the raw-data directory (argument > $KERAS_TINYLOC_DATA > data/raw)."""
    if explicit:
        return Path(explicit)
    env = os.environ.get("KERAS_TINYLOC_DATA")
    if env:
        return Path(env)
    return Path.cwd() / "data" / "raw"


def user_cache_dir() -> Path:
    """Resolve the cache directory ($KERAS_TINYLOC_CACHE > the platform's user cache folder for keras_tinyloc)."""
    env = os.environ.get("KERAS_TINYLOC_CACHE")
    if env:
        return Path(env)
    import platformdirs

    return Path(platformdirs.user_cache_dir("keras_tinyloc", appauthor=False))


def shared_data_dir() -> Path | None:
    """The workplace's ``../shared/data`` beside the project root, if present."""
    for base in (REPO_ROOT.parent / "shared" / "data", Path.cwd().parent / "shared" / "data"):
        if base.is_dir():
            return base
    return None


@contextlib.contextmanager
def atomic_dir(final: str | os.PathLike, overwrite: bool = False) -> Iterator[Path]:
    """Yield a temporary directory beside ``final``; rename it to ``final`` on success.

    On any exception the temporary directory is removed, so ``final`` is either complete
    or absent. With ``overwrite`` an existing ``final`` is replaced only after success.
    """
    final = Path(final)
    parent = final.parent
    try:
        parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{final.name}.tmp-", dir=parent))
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o777 & ~umask)  # mkdtemp makes 0700; the result should look like any mkdir
    except OSError as exc:
        raise TinyLocError(f"{parent}: cannot write output directory ({exc.strerror})") from None
    try:
        yield tmp
        if final.exists():
            if not overwrite and any(final.iterdir()):
                raise TinyLocError(f"{final}: exists and is not empty (use --overwrite)")
            shutil.rmtree(final)
        os.replace(tmp, final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    """Write ``data`` to ``path`` through a temporary file + rename."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.tmp-", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: str | os.PathLike, obj) -> None:
    atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=False, default=_json_default) + "\n")


def atomic_save_npz(path: str | os.PathLike, **arrays: np.ndarray) -> None:
    """Save arrays as an uncompressed .npz atomically."""
    import io

    buf = io.BytesIO()
    np.savez(buf, **arrays)
    atomic_write_bytes(path, buf.getvalue())


def _json_default(obj):
    if isinstance(obj, (np.integer,)):
        return int(obj)
    if isinstance(obj, (np.floating,)):
        return float(obj)
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")
