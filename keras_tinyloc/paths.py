"""Where data lives, and how outputs are written so that nothing is half-written, replaced silently or lost.

Data directory: ``--data-dir`` if given, else ``$KERAS_TINYLOC_DATA``, else ``data/raw/``.
Cache directory (processed arrays, simulated houses, built TFLM libraries): ``$KERAS_TINYLOC_CACHE``, else the
platform's user cache folder (``platformdirs``: ``~/.cache/keras_tinyloc`` on Linux, honouring ``$XDG_CACHE_HOME``),
never the current directory — so a fresh checkout reuses what an earlier one computed. Every entry is keyed by the
content it was made from (file hashes, versions), so a stale entry is never read.

Outputs (one guard for every command; docs/reliability.md):

* :func:`check_output` validates an output folder before any work starts — not empty (an unset shell variable),
  not a file, writable, not the current directory, the home folder or the checkout (or a folder holding one of
  them); :func:`claimed_output` also locks it for the command's duration (``fcntl.flock`` on ``.NAME.lock`` beside
  it, gone with the process even after SIGKILL) so that two commands never write one folder.
* :func:`atomic_dir` writes into a hidden ``.NAME.tmp-*`` folder and renames it into place (complete or absent),
  recording what it wrote in ``NAME/.keras_tinyloc.json``. ``--overwrite`` replaces a folder only when everything
  in it was written by keras_tinyloc (listed in that record, or a nested output folder with its own record): a
  user's own file is never deleted. Temporary folders left by a killed command are removed by the next command
  that claims the same output (it holds the lock, so no live writer owns them).
* ``atomic_write_*`` write files through a temporary file + rename, with the usual permissions (0644 under umask 022).
"""
from __future__ import annotations

import contextlib
import errno
import fcntl
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


MANIFEST = ".keras_tinyloc.json"  # in every output folder: what keras_tinyloc wrote there
_CLAIMS: dict[Path, int] = {}  # output folder (resolved) -> file descriptor of its held lock


def _protected() -> list[tuple[Path, str]]:
    return [(Path.cwd().resolve(), "the current directory"), (Path.home().resolve(), "your home folder"),
            (REPO_ROOT, "the keras_tinyloc checkout")]


def check_output_path(out, flag: str = "--out") -> Path:
    """The checks of :func:`claim_output` that need no lock: a usable, writable folder path. Returns ``Path(out)``."""
    text = "" if out is None else os.fspath(out)
    if not str(text).strip():
        raise TinyLocError(f"{flag} {str(text)!r}: an empty path (an unset shell variable?); name the folder to write")
    path = Path(text)
    res = path.resolve()
    for place, what in _protected():
        if res == place or res in place.parents:
            held = "is" if res == place else "holds"
            raise TinyLocError(f"{flag} {path}: {held} {what}; refusing to write there (name a new folder)")
    if path.exists() and not path.is_dir():
        raise TinyLocError(f"{flag} {path}: exists and is not a folder")
    probe = res
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    if not probe.is_dir() or not os.access(probe, os.W_OK | os.X_OK):
        raise TinyLocError(f"{flag} {path}: cannot write there ({probe} is not a writable folder)")
    return path


def foreign_entries(folder: Path) -> list[str]:
    """Names in ``folder`` that keras_tinyloc did not write (not in its :data:`MANIFEST`, not a nested output)."""
    folder = Path(folder)
    try:
        record = json.loads((folder / MANIFEST).read_text())
        ours = set(record["files"]) if isinstance(record, dict) and isinstance(record.get("files"), list) else set()
    except (OSError, ValueError, KeyError, TypeError):
        ours = set()
    foreign = []
    for entry in folder.iterdir():
        name = entry.name
        if name == MANIFEST or name in ours or (name.startswith(".") and (".tmp-" in name or name.endswith(".lock"))):
            continue
        if entry.is_dir() and not entry.is_symlink() and (entry / MANIFEST).is_file() and not foreign_entries(entry):
            continue  # a nested output of another command, e.g. RUN_DIR/tflite-int8
        foreign.append(name + ("/" if entry.is_dir() else ""))
    return sorted(foreign)


def record_output(folder, *names: str) -> None:
    """Add ``names`` (entries of ``folder`` that a command wrote outside :func:`atomic_dir`, e.g. a resumable
    command's summary files) to ``folder``'s :data:`MANIFEST`, so ``--overwrite``/``--fresh`` may replace them."""
    folder = Path(folder)
    try:
        record = json.loads((folder / MANIFEST).read_text())
        files = set(record["files"]) if isinstance(record, dict) and isinstance(record.get("files"), list) else set()
    except (OSError, ValueError, KeyError, TypeError):
        files = set()
    atomic_write_json(folder / MANIFEST, {"tool": "keras_tinyloc", "files": sorted(files | set(names))})


def check_replaceable(path: Path, overwrite: bool, flag: str = "--out") -> None:
    """Refuse a non-empty ``path`` unless ``overwrite`` and everything in it was written by keras_tinyloc."""
    if not path.is_dir() or not any(path.iterdir()):
        return
    if not overwrite:
        raise TinyLocError(f"{flag} {path}: exists and is not empty (use --overwrite to replace an earlier output)")
    foreign = foreign_entries(path)
    if foreign:
        shown = ", ".join(foreign[:5]) + (f" and {len(foreign) - 5} more" if len(foreign) > 5 else "")
        raise TinyLocError(f"{flag} {path}: --overwrite would delete what keras_tinyloc did not write there "
                           f"({shown}); move it away or choose another folder")


def _lock(res: Path, flag: str, shown: Path) -> int:
    lock = res.parent / f".{res.name}.lock"
    res.parent.mkdir(parents=True, exist_ok=True)
    while True:
        fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            os.close(fd)
            if exc.errno in (errno.EAGAIN, errno.EACCES):
                raise TinyLocError(f"{flag} {shown}: another keras_tinyloc command is writing it; wait for it to "
                                   f"finish or choose another folder") from None
            raise
        try:  # the holder we waited for may have unlinked the file: lock the file that is there now
            if os.fstat(fd).st_ino == os.stat(lock).st_ino:
                return fd
        except FileNotFoundError:
            pass
        os.close(fd)


def claim_output(out, overwrite: bool = False, flag: str = "--out", resumable: bool = False) -> Path:
    """Validate output folder ``out`` before any work and lock it until :func:`release_output` or process exit.

    Raises :class:`TinyLocError` (one line naming ``flag`` and the folder) for an empty path, a file, an unwritable
    place, the current/home/checkout folder, a non-empty folder without ``overwrite``, a folder holding files that
    keras_tinyloc did not write, or a folder another command is writing. Removes the ``.NAME.tmp-*`` folders a
    killed earlier command left beside it. Calling it again in the same process for the same folder is a no-op
    besides the checks. ``resumable``: the command adds to an existing folder of its own (a sweep) and checks its
    contents itself; only the path checks and the lock apply. Returns ``Path(out)``.
    """
    path = check_output_path(out, flag)
    res = path.resolve()
    new = res not in _CLAIMS
    if new:
        try:
            _CLAIMS[res] = _lock(res, flag, path)
        except OSError as exc:
            raise TinyLocError(f"{flag} {path}: cannot lock it ({exc.strerror})") from None
        for stale in (*res.parent.glob(f".{res.name}.tmp-*"), *res.parent.glob(f".{res.name}.old-*")):
            shutil.rmtree(stale, ignore_errors=True)
    try:
        if not resumable:
            check_replaceable(path, overwrite, flag)
    except TinyLocError:
        if new:
            release_output(path)
        raise
    return path


def check_output(out, overwrite: bool = False, flag: str = "--out") -> Path:
    """The checks of :func:`claim_output` without taking the lock: for validating options before any work."""
    path = check_output_path(out, flag)
    check_replaceable(path, overwrite, flag)
    return path


@contextlib.contextmanager
def claimed_output(out, overwrite: bool = False, flag: str = "--out", resumable: bool = False) -> Iterator[Path]:
    """:func:`claim_output` for the duration of a ``with`` block (released at its end, unless held before)."""
    held_before = str(out).strip() != "" and Path(out).resolve() in _CLAIMS
    path = claim_output(out, overwrite, flag, resumable)
    try:
        yield path
    finally:
        if not held_before:
            release_output(path)


def release_output(out) -> None:
    """Release the lock :func:`claim_output` took (no-op when not held by this process)."""
    res = Path(out).resolve()
    fd = _CLAIMS.pop(res, None)
    if fd is not None:
        with contextlib.suppress(OSError):
            os.unlink(res.parent / f".{res.name}.lock")
        os.close(fd)


@contextlib.contextmanager
def atomic_dir(final: str | os.PathLike, overwrite: bool = False, flag: str = "--out") -> Iterator[Path]:
    """Yield a temporary folder beside ``final``; move it into place as ``final`` on success.

    ``final`` is claimed first (:func:`claim_output`: validated and locked) unless this process holds it already;
    the claim is released when the block ends. On any exception the temporary folder is removed, so ``final`` is
    either complete or absent. On success the names written are recorded in ``final/.keras_tinyloc.json``; with
    ``overwrite`` an existing ``final`` is replaced (only if keras_tinyloc wrote all of it; checked again now).
    """
    final = Path(final)
    held_before = final.resolve() in _CLAIMS if str(final).strip() else False
    claim_output(final, overwrite=overwrite, flag=flag)
    parent = final.parent
    try:
        try:
            tmp = Path(tempfile.mkdtemp(prefix=f".{final.name}.tmp-", dir=parent))
            os.chmod(tmp, 0o777 & ~_umask())  # mkdtemp makes 0700; the result should look like any mkdir
        except OSError as exc:
            raise TinyLocError(f"{flag} {final}: cannot write output folder ({exc.strerror})") from None
        try:
            yield tmp
            names = sorted(p.name for p in tmp.iterdir() if p.name != MANIFEST)
            atomic_write_json(tmp / MANIFEST, {"tool": "keras_tinyloc", "files": names})
            check_replaceable(final, overwrite, flag)
            old = None
            if final.exists():
                old = Path(tempfile.mkdtemp(prefix=f".{final.name}.old-", dir=parent))
                os.replace(final, old / "x")
            os.replace(tmp, final)
            if old is not None:
                shutil.rmtree(old, ignore_errors=True)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
    finally:
        if not held_before:
            release_output(final)


def _umask() -> int:
    umask = os.umask(0)
    os.umask(umask)
    return umask


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    """Write ``data`` to ``path`` through a temporary file + rename (mode 0666 minus the umask, like ``open``)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.tmp-", dir=path.parent)
    try:
        os.fchmod(fd, 0o666 & ~_umask())
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


# ----------------------------------------------------------------------------------------------- portable paths
CACHE_MARK = "<user cache>"  # how portable() writes the user cache folder


def portable(path: str | os.PathLike) -> str:
    """A path as committed results and reports record it — never an absolute path of this machine when avoidable:
    relative to the checkout when inside it (``runs/beyond/uji/x``), ``<user cache>/...`` inside
    :func:`user_cache_dir`, else unchanged (e.g. a test's temporary folder). :func:`from_portable` reverses it."""
    p = Path(path).absolute()
    for base, mark in ((REPO_ROOT, None), (user_cache_dir(), CACHE_MARK)):
        try:
            rel = p.resolve().relative_to(Path(base).resolve())
        except (ValueError, OSError):
            continue
        return rel.as_posix() if mark is None else f"{mark}/{rel.as_posix()}"
    return str(path)


def from_portable(text: str | os.PathLike) -> Path:
    """The folder a :func:`portable` path names: relative = inside the checkout, ``<user cache>/`` = the cache."""
    text = str(text)
    if text == CACHE_MARK or text.startswith(CACHE_MARK + "/"):
        return user_cache_dir() / text[len(CACHE_MARK) + 1:]
    p = Path(text)
    return p if p.is_absolute() else REPO_ROOT / p
