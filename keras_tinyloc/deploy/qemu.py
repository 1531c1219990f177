"""Run Cortex-M4F firmware on QEMU's ``mps2-an386`` board: one-shot semihosting runs with exact instruction counts,
and a board with a serial port (a pseudo-terminal) whose memory can be read back.

Why QEMU and a plugin: no hardware here, and QEMU models no cycles (with ``-icount`` SysTick advances about once per
40 instructions), so what can be measured exactly is the number of executed instructions. :func:`plugin` builds
``tflm_app/tools/insn_count.c`` (a ~100-line TCG plugin, API v1 of QEMU 7.2) with gcc once and caches it
(:func:`keras_tinyloc.deploy.tflm_kit.cached_artifact`). The firmware calls two marker functions
(``tinyloc_insn_begin``/``tinyloc_insn_end``); the plugin adds 1 to a counter before every executed guest
instruction (an inline op in the translated code) and reads the counter when each marker's first instruction runs,
so each begin/end pair gives the exact count of instructions executed between the two calls (plus the marker's own
constant cost, which the firmware's first, empty pair measures).

* :func:`run` — ``qemu-system-arm -M mps2-an386 -semihosting-config ...,arg=...``: the firmware reads its command
  line (SYS_GET_CMDLINE) and host files over semihosting; returns exit status, console text, instruction counts.
  A crash (a fault: ``tflm_app/boards/mps2_an386/startup.c`` exits with status 3) or a hang (timeout) is a result,
  not an exception: callers probing for a minimal arena run every size in its own emulator.
* :class:`SerialBoard` — QEMU with UART0 on a pseudo-terminal (``-serial pty``: the path to open with pyserial, as a
  real board's port) and the human monitor on a Unix socket (``pmemsave``: read guest RAM, e.g. the painted stack).
"""
from __future__ import annotations

import dataclasses
import hashlib
import os
import re
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

from keras_tinyloc.deploy import tflm_kit
from keras_tinyloc.errors import TinyLocError

QEMU = "qemu-system-arm"
MACHINE = "mps2-an386"
PLUGIN_SOURCE = tflm_kit.APP_DIR / "tools" / "insn_count.c"
PLUGIN_NAME = "libinsn_count.so"
FAULT_EXIT = 3  # startup.c: a fault handler stops QEMU with this status


def missing_tools() -> list[str]:
    """Tools :func:`run` and :func:`plugin` need that are not on PATH."""
    return [t for t in (QEMU, "gcc") if shutil.which(t) is None]


def plugin() -> Path:
    """The instruction-counting plugin (built with gcc once per source/compiler, cached)."""
    if shutil.which("gcc") is None:
        raise TinyLocError(f"gcc not found: the QEMU instruction-count plugin needs it ({tflm_kit.PACKAGES_HINT})")
    version = subprocess.run(["gcc", "--version"], capture_output=True, text=True).stdout
    key = hashlib.sha256(PLUGIN_SOURCE.read_bytes() + version.encode()).hexdigest()[:20]

    def build(tmp: Path) -> dict:
        res = subprocess.run(["gcc", "-shared", "-fPIC", "-O2", "-fvisibility=hidden", "-Wall", "-Wextra", "-Werror",
                              str(PLUGIN_SOURCE), "-o", str(tmp / PLUGIN_NAME)], capture_output=True, text=True)
        if res.returncode != 0:
            raise TinyLocError(f"building {PLUGIN_SOURCE.name} failed: {res.stderr.strip()[-400:]}")
        return {"source": PLUGIN_SOURCE.name, "compiler": version.splitlines()[0] if version else "gcc"}

    return tflm_kit.cached_artifact(tflm_kit.cache_root() / f"qemu-plugin-{key}", PLUGIN_NAME, build)


def symbol_address(elf: Path, name: str) -> int:
    """Address of a global symbol of ``elf`` (arm-none-eabi-nm); TinyLocError if absent."""
    out = subprocess.run(["arm-none-eabi-nm", str(elf)], capture_output=True, text=True, check=True).stdout
    for line in out.splitlines():
        parts = line.split()
        if len(parts) == 3 and parts[2] == name:
            return int(parts[0], 16)
    raise TinyLocError(f"{elf}: no symbol {name}")


@dataclasses.dataclass
class RunResult:
    """One emulator run: ``returncode`` (the firmware's exit status; None = timed out), console ``stdout``,
    ``counts`` (one per begin/end marker pair, in order; empty unless counted), wall ``seconds``."""

    returncode: int | None
    stdout: str
    counts: list[int]
    seconds: float

    @property
    def crashed(self) -> bool:
        return self.returncode == FAULT_EXIT and "fault " in self.stdout

    @property
    def timed_out(self) -> bool:
        return self.returncode is None


def _base(elf: Path) -> list[str]:
    if shutil.which(QEMU) is None:
        raise TinyLocError(f"{QEMU} not found (apt-get install qemu-system-arm)")
    return [QEMU, "-M", MACHINE, "-kernel", str(elf)]


def run(elf: Path, args: list[str], count: bool = False, timeout: float = 60.0) -> RunResult:
    """Run ``elf`` with semihosting command line ``args`` (no commas allowed); count instructions if ``count``."""
    if any("," in a or " " in a for a in args):
        raise TinyLocError(f"semihosting arguments may not contain commas or spaces: {args}")
    cmd = [*_base(elf), "-nographic", "-monitor", "none",
           "-semihosting-config", "enable=on,target=native," + ",".join(f"arg={a}" for a in ["fw", *args])]
    log = None
    if count:
        begin, end = symbol_address(elf, "tinyloc_insn_begin"), symbol_address(elf, "tinyloc_insn_end")
        fd, log = tempfile.mkstemp(prefix="tinyloc-insn-", suffix=".log")
        os.close(fd)
        cmd += ["-plugin", f"{plugin()},begin={begin:#x},end={end:#x}", "-d", "plugin", "-D", log]
    t0 = time.monotonic()
    try:
        # stderr too: QEMU writes the semihosting console (SYS_WRITE0, e.g. startup.c's fault report) there
        proc = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=timeout,
                              stdin=subprocess.DEVNULL)
        rc, out = proc.returncode, proc.stdout
    except subprocess.TimeoutExpired as exc:
        rc = None
        out = exc.stdout.decode(errors="replace") if isinstance(exc.stdout, bytes) else (exc.stdout or "")
    counts: list[int] = []
    if log:
        text = Path(log).read_text(errors="replace")
        os.unlink(log)
        counts = [int(v) for v in re.findall(r"^insn_count (\d+)$", text, re.M)]
    return RunResult(rc, out, counts, round(time.monotonic() - t0, 3))


class SerialBoard:
    """``elf`` running on QEMU with UART0 on a pseudo-terminal; use as a context manager.

    ``port``: the pty path (open it with pyserial, e.g. :class:`keras_tinyloc.deploy.replay.BoardLink`).
    :meth:`read_memory` copies guest physical memory through the monitor (``pmemsave``). ``paused``: the guest
    waits for :meth:`resume` (to see its boot lines; otherwise send ``reset``, which the sketches answer).
    """

    def __init__(self, elf: Path, timeout: float = 10.0, paused: bool = False):
        self._dir = Path(tempfile.mkdtemp(prefix="tinyloc-qemu-"))
        self._sock_path = self._dir / "monitor.sock"
        cmd = [*_base(elf), "-display", "none", "-serial", "pty", "-semihosting-config", "enable=on,target=native",
               "-monitor", f"unix:{self._sock_path},server=on,wait=off", *(["-S"] if paused else [])]
        self._log = self._dir / "qemu.log"  # a file, not a pipe: QEMU never blocks on a full pipe
        with open(self._log, "w") as log:
            self._proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT)
        self.port = ""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            m = re.search(r"redirected to (/dev/pts/\d+)", self._log.read_text(errors="replace"))
            if m:
                self.port = m.group(1)
                break
            if self._proc.poll() is not None:
                break
            time.sleep(0.02)
        if not self.port:
            self.close()
            raise TinyLocError(f"{QEMU} did not open a serial pty for {elf.name}")
        self._mon: socket.socket | None = None

    def _monitor(self, command: str, timeout: float = 10.0) -> str:
        if self._mon is None:
            deadline = time.monotonic() + timeout
            while True:
                try:
                    self._mon = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                    self._mon.connect(str(self._sock_path))
                    break
                except OSError:
                    self._mon = None
                    if time.monotonic() > deadline:
                        raise TinyLocError(f"{QEMU}: monitor socket did not answer") from None
                    time.sleep(0.05)
            self._read_prompt(timeout)
        self._mon.sendall(command.encode() + b"\n")
        return self._read_prompt(timeout)

    def _read_prompt(self, timeout: float) -> str:
        assert self._mon is not None
        self._mon.settimeout(timeout)
        buf = b""
        while not buf.endswith(b"(qemu) "):
            chunk = self._mon.recv(4096)
            if not chunk:
                raise TinyLocError(f"{QEMU}: monitor closed")
            buf += chunk
        return buf.decode(errors="replace")

    def resume(self, settle_s: float = 1.5) -> None:
        """Start a board made with ``paused=True``, after the port has been opened: QEMU notices an opened pty only
        on its next poll (about once a second) and drops what the guest prints before, so wait ``settle_s`` first —
        then the boot lines (e.g. TFLM's messages during setup) reach the port."""
        time.sleep(settle_s)
        self._monitor("cont")

    def read_memory(self, address: int, size: int) -> bytes:
        """``size`` bytes of guest physical memory from ``address``."""
        dump = self._dir / f"mem-{address:x}-{size}.bin"
        self._monitor(f'pmemsave {address:#x} {size} "{dump}"')
        data = dump.read_bytes()
        if len(data) != size:
            raise TinyLocError(f"{QEMU}: pmemsave returned {len(data)} of {size} bytes")
        return data

    def close(self) -> None:
        if self._mon is not None:
            try:
                self._mon.close()
            except OSError:
                pass
            self._mon = None
        if self._proc.poll() is None:
            self._proc.kill()
        self._proc.wait()
        shutil.rmtree(self._dir, ignore_errors=True)

    def __enter__(self) -> "SerialBoard":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
