"""TensorFlow Lite Micro from an offline source kit: find the kit, build its library once per configuration, cache it.

Why this module exists: TFLM's C++ sources are in no package registry (the ``tflite_micro`` wheel holds a compiled
host interpreter only), and building the library takes minutes (~4 min host, ~4.5 min Cortex-M4F at ``-j2``). So the
library is built from a source kit once per configuration and cached **outside the clone**, keyed by content: a fresh
clone (CI) on the same machine reuses it.

* Kit: ``$TFLM_DIR`` if set (it must be a kit: an error otherwise, no silent fallback), else
  ``<repo>/../shared/third_party/tflite-micro-kit`` when present. A kit is tflite-micro at a pinned commit plus the
  third-party code it pins, with ``manifests/<target>-files.txt`` listing each target's files
  (``tflm_app/README.md``, "TFLM kit", says how to make one from a tflite-micro checkout).
* Build: ``make -C tflm_app -f tflm_lib.mk lib`` (``tflm_app/tflm_lib.mk``: TFLM's own flags for the target, ``OPT``
  for every file, optional extra defines; ``tflm_app/Makefile`` includes it for the firmware). ``TARGETS``: ``host``
  (g++, reference kernels) and ``m4`` (arm-none-eabi-g++, Cortex-M4F hard float, CMSIS-NN kernels).
* Cache: ``paths.user_cache_dir()/tflm/<target>-<key>/libtensorflow-microlite.a`` (+ ``build.json``). The key is a
  SHA-256 over ``tflm_app/tflm_lib.mk``, the target, ``OPT``, the extra defines, the compiler's ``--version`` and every
  file the target's manifest lists (relative path + bytes) — never a path of this machine. The library is built in a
  temporary folder beside the entry and renamed into place when complete (no half-built entry); an exclusive lock
  per entry makes a second process building the same entry wait for the first and reuse its result.
  :func:`cached_artifact` does the same for other small builds (the QEMU plugin of :mod:`keras_tinyloc.deploy.qemu`).
"""
from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Callable, Iterator

from keras_tinyloc.errors import TinyLocError
from keras_tinyloc.paths import REPO_ROOT, user_cache_dir

APP_DIR = REPO_ROOT / "tflm_app"
MAKEFILE = APP_DIR / "Makefile"
LIB_MAKEFILE = APP_DIR / "tflm_lib.mk"  # the library's rules and flags: part of the cache key
KIT_ENV = "TFLM_DIR"
DEFAULT_KIT = REPO_ROOT.parent / "shared" / "third_party" / "tflite-micro-kit"
LIB_NAME = "libtensorflow-microlite.a"
DEFAULT_OPT = "-Os"

# target -> (what it is, the tools its builds need)
TARGETS: dict[str, tuple[str, tuple[str, ...]]] = {
    "host": ("host (x86-64 g++, TFLM reference kernels)", ("make", "g++", "gcc", "ar")),
    "m4": ("Cortex-M4F (arm-none-eabi-g++, hard float, CMSIS-NN kernels)",
           ("make", "arm-none-eabi-g++", "arm-none-eabi-gcc", "arm-none-eabi-ar")),
}
PACKAGES_HINT = "apt-get install make g++ gcc-arm-none-eabi libnewlib-arm-none-eabi libstdc++-arm-none-eabi-newlib"


# ----------------------------------------------------------------------------------------------- the kit
def find_kit() -> Path | None:
    """The kit folder (``$TFLM_DIR``, else the shared kit beside the repository), or None when there is none.

    Raises TinyLocError when ``$TFLM_DIR`` is set but is not a kit (a wrong setting is an error, not a fallback).
    """
    env = os.environ.get(KIT_ENV)
    if env:
        kit = Path(env).expanduser()
        if not all((kit / "manifests" / f"{t}-files.txt").is_file() for t in TARGETS):
            raise TinyLocError(f"${KIT_ENV}={env}: not a TFLM kit (no manifests/host-files.txt and "
                               "manifests/m4-files.txt; see tflm_app/README.md, 'TFLM kit')")
        return kit.resolve()
    if all((DEFAULT_KIT / "manifests" / f"{t}-files.txt").is_file() for t in TARGETS):
        return DEFAULT_KIT.resolve()
    return None


def kit_missing_reason() -> str | None:
    """None if a kit is found; else one line saying why not and how to get one (for skips and errors)."""
    try:
        if find_kit() is not None:
            return None
    except TinyLocError as exc:
        return str(exc)
    return (f"no TFLM source kit: set ${KIT_ENV}, or place it at ../shared/third_party/tflite-micro-kit beside the "
            "repository (tflm_app/README.md, 'TFLM kit', says how to make one from tflite-micro)")


def require_kit() -> Path:
    """The kit, or TinyLocError with :func:`kit_missing_reason`."""
    kit = find_kit()
    if kit is None:
        raise TinyLocError(kit_missing_reason())
    return kit


def missing_tools(target: str) -> list[str]:
    """The build tools of ``target`` that are not on PATH."""
    check_target(target)
    return [t for t in TARGETS[target][1] if shutil.which(t) is None]


def check_target(target: str) -> None:
    if target not in TARGETS:
        raise TinyLocError(f"TFLM target {target!r}: choose from {', '.join(TARGETS)}")


def manifest(kit: Path, target: str) -> list[str]:
    """The files of ``target`` in the kit (relative paths, as listed)."""
    path = kit / "manifests" / f"{target}-files.txt"
    try:
        return [ln.strip() for ln in path.read_text().splitlines() if ln.strip()]
    except OSError as exc:
        raise TinyLocError(f"{path}: cannot read the kit's manifest ({exc.strerror})") from None


def compiler_version(target: str) -> str:
    """``<compiler> --version`` output (part of the cache key: another compiler builds another library)."""
    cxx = "g++" if target == "host" else "arm-none-eabi-g++"
    try:
        return subprocess.run([cxx, "--version"], capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        raise TinyLocError(f"{cxx} not found: the {target} TFLM library needs it ({PACKAGES_HINT})") from None


# ----------------------------------------------------------------------------------------------- cache key
def library_key(kit: Path, target: str, opt: str = DEFAULT_OPT, defs: tuple[str, ...] = ()) -> str:
    """SHA-256 (hex) over what the build reads: tflm_lib.mk, target, flags, compiler version, the manifest's files."""
    check_target(target)
    h = hashlib.sha256()

    def add(label: str, data: bytes) -> None:
        h.update(f"{label}\0{len(data)}\0".encode())
        h.update(data)

    add("makefile", LIB_MAKEFILE.read_bytes())
    add("target", target.encode())
    add("opt", opt.encode())
    add("defs", "\0".join(defs).encode())
    add("compiler", compiler_version(target).encode())
    for rel in sorted(manifest(kit, target)):
        try:
            add(f"file:{rel}", (kit / rel).read_bytes())
        except OSError as exc:
            raise TinyLocError(f"{kit / rel}: listed in manifests/{target}-files.txt but unreadable "
                               f"({exc.strerror})") from None
    return h.hexdigest()


# ----------------------------------------------------------------------------------------------- cached builds
def cache_root() -> Path:
    return user_cache_dir() / "tflm"


@contextlib.contextmanager
def _entry_lock(entry: Path) -> Iterator[None]:
    """An exclusive lock on ``<entry>.lock`` (blocks while another process builds the same entry)."""
    entry.parent.mkdir(parents=True, exist_ok=True)
    with open(entry.parent / f"{entry.name}.lock", "a+") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def cached_artifact(entry: Path, product: str, build: Callable[[Path], dict]) -> Path:
    """``entry/product``, built by ``build(tmp_dir)`` into a temporary folder and renamed to ``entry`` if absent.

    ``build`` returns a dict written to ``entry/build.json``. Concurrent callers for the same entry: one builds, the
    others wait on the entry's lock and reuse it. A failed build leaves no entry; the temporary folders of a builder
    that was killed are removed by the next one.
    """
    if (entry / product).is_file():
        return entry / product
    with _entry_lock(entry):
        if (entry / product).is_file():  # built by another process while we waited
            return entry / product
        for stale in entry.parent.glob(f".{entry.name}.tmp-*"):  # a killed builder's leftovers (we hold the lock)
            shutil.rmtree(stale, ignore_errors=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{entry.name}.tmp-", dir=entry.parent))
        try:
            info = build(tmp)
            if not (tmp / product).is_file():
                raise TinyLocError(f"build of {entry.name}: {product} was not produced")
            (tmp / "build.json").write_text(json.dumps(info, indent=2) + "\n")
            os.chmod(tmp, 0o755)  # mkdtemp makes 0700; a cache entry is read by whoever builds firmware
            if entry.exists():  # a stale entry without the product (e.g. removed by hand): replace it
                shutil.rmtree(entry)
            os.replace(tmp, entry)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
    return entry / product


@dataclasses.dataclass(frozen=True)
class Library:
    """A built TFLM library: ``path`` = ``dir/libtensorflow-microlite.a``; ``key`` its cache key."""

    target: str
    dir: Path
    key: str
    opt: str
    defs: tuple[str, ...]
    kit: Path

    @property
    def path(self) -> Path:
        return self.dir / LIB_NAME


def library(target: str, opt: str = DEFAULT_OPT, defs: tuple[str, ...] | list[str] = (), kit: Path | None = None,
            jobs: int | None = None, log: Callable[[str], None] | None = None) -> Library:
    """The TFLM library for ``target`` with these flags, from the cache or built now (printing progress).

    Raises TinyLocError if there is no kit, a build tool is missing, or the build fails (with make's last lines).
    """
    check_target(target)
    kit = Path(kit) if kit is not None else require_kit()
    defs = tuple(defs)
    missing = missing_tools(target)
    if missing:
        raise TinyLocError(f"building the {target} TFLM library needs {', '.join(missing)} ({PACKAGES_HINT})")
    key = library_key(kit, target, opt, defs)
    entry = cache_root() / f"{target}-{key[:20]}"
    say = log or (lambda msg: print(msg, file=sys.stderr, flush=True))

    def build(tmp: Path) -> dict:
        n_src = sum(1 for f in manifest(kit, target) if f.endswith((".cc", ".c")))
        say(f"tflm: building the {TARGETS[target][0]} library ({n_src} sources, {opt} {' '.join(defs)}".rstrip()
            + f"; a few minutes, once) into {entry}")
        t0 = time.monotonic()
        _run_make(["lib", f"TARGET={target}", f"TFLM_DIR={kit}", f"BUILD={tmp}", f"OPT={opt}",
                   f"TFLM_DEFS={' '.join(defs)}"], jobs, n_src, say, target)
        shutil.rmtree(tmp / "obj", ignore_errors=True)
        seconds = round(time.monotonic() - t0, 1)
        say(f"tflm: {target} library built in {seconds} s")
        return {"target": target, "opt": opt, "defs": list(defs), "key": key, "seconds": seconds,
                "compiler": compiler_version(target).splitlines()[0], "sources": n_src}

    cached_artifact(entry, LIB_NAME, build)
    return Library(target, entry, key, opt, defs, kit)


def _run_make(args: list[str], jobs: int | None, n_src: int, say: Callable[[str], None], target: str) -> None:
    cmd = ["make", "--no-print-directory", "-C", str(APP_DIR), "-f", LIB_MAKEFILE.name,
           f"-j{jobs or os.cpu_count() or 1}", *args]
    t0, last, done, tail = time.monotonic(), time.monotonic(), 0, []
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    assert proc.stdout is not None
    for line in proc.stdout:
        tail = (tail + [line.rstrip()])[-20:]
        if line.startswith(("  CXX ", "  CC  ")):
            done += 1
            if time.monotonic() - last > 30:
                last = time.monotonic()
                say(f"tflm: {target} {done}/{n_src} sources ({time.monotonic() - t0:.0f} s)")
    if proc.wait() != 0:
        raise TinyLocError(f"building the {target} TFLM library failed (make exit {proc.returncode}): "
                           + " | ".join(ln for ln in tail if ln)[-600:])
