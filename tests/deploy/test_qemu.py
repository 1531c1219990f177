"""qemu: exact instruction counts (the TCG plugin against loops of known length), exit statuses and faults, and a
board whose UART is a pseudo-terminal and whose RAM can be read back. Small bare-metal programs built here with the
shared mps2-an386 startup and linker script; no TFLM needed."""
from __future__ import annotations

import time
from pathlib import Path

import pytest

from keras_tinyloc.deploy import qemu

ROOT = Path(__file__).resolve().parents[2]
BOARD = ROOT / "tflm_app/boards/mps2_an386"
CPU = ["-mcpu=cortex-m4", "-mthumb", "-mfloat-abi=hard", "-mfpu=fpv4-sp-d16"]

PROGRAM = r"""
#include <stdint.h>
int tinyloc_semihost(int op, void* arg);
__attribute__((noipa, used)) void tinyloc_insn_begin(void) { __asm__ volatile("nop"); }
__attribute__((noipa, used)) void tinyloc_insn_end(void) { __asm__ volatile("nop\n nop"); }
volatile uint32_t g_known[4] = {0x11223344u, 0xA5A5A5A5u, 0u, 0xCAFEF00Du};
int tinyloc_uart_read_byte(void);
void tinyloc_uart_write(const char* s, unsigned n);
int tinyloc_board_init(void);

static void Loop(void) {  /* exactly 1 + 2 * N instructions: movs, then N x (subs, bne) */
  __asm__ volatile("movw r3, #N_ITER\n1: subs r3, #1\n bne 1b" ::: "r3", "cc");
}

int main(void) {
  tinyloc_insn_begin();
  tinyloc_insn_end();
  tinyloc_insn_begin();
  Loop();
  tinyloc_insn_end();
  tinyloc_insn_begin();
  Loop();
  Loop();
  tinyloc_insn_end();
#if defined(MODE_FAULT)
  return *(volatile int*)0xFFFFFFF0u;  /* a bus fault */
#elif defined(MODE_ECHO)
  tinyloc_board_init();
  g_known[2] = 0x0BADBEEFu;
  for (;;) {
    int c = tinyloc_uart_read_byte();
    if (c >= 0) { char b = (char)(c >= 'a' && c <= 'z' ? c - 32 : c); tinyloc_uart_write(&b, 1); }
  }
#else
  tinyloc_semihost(0x04, (void*)"hello\n");  /* SYS_WRITE0 */
  return 7;
#endif
}
"""


def build(tmp_path: Path, mode: str, n_iter: int = 1000) -> Path:
    import subprocess

    src = tmp_path / f"prog_{mode}.c"
    src.write_text(PROGRAM.replace("N_ITER", str(n_iter)))
    elf = tmp_path / f"prog_{mode}.elf"
    srcs = [src, BOARD / "startup.c"] + ([BOARD / "board_uart.c"] if mode == "ECHO" else [])
    cmd = ["arm-none-eabi-gcc", *CPU, "-Os", "-std=c11", f"-DMODE_{mode}", "-DTINYLOC_SEMIHOSTING",
           "--specs=nano.specs", "--specs=nosys.specs", "-nostartfiles", "-T", str(BOARD / "mps2_an386.ld"),
           "-Wl,--gc-sections", *map(str, srcs), "-o", str(elf)]
    res = subprocess.run(cmd, capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
    return elf


def test_instruction_counts_are_exact(tmp_path, arm_tools):
    n = 1000
    r = qemu.run(build(tmp_path, "PLAIN", n), [], count=True)
    assert r.returncode == 7 and "hello" in r.stdout
    empty, one, two = r.counts
    assert one - empty == 1 + 2 * n  # Loop is inlined (static, -Os): nothing but the loop between the markers
    assert two - one == one - empty  # two loops: twice as many
    # a longer loop: the count grows by exactly 2 per iteration
    r2 = qemu.run(build(tmp_path, "PLAIN", 3 * n), [], count=True)
    assert r2.counts[1] - r2.counts[0] == 1 + 2 * 3 * n
    uncounted = qemu.run(build(tmp_path, "PLAIN", n), [])
    assert uncounted.returncode == 7 and uncounted.counts == []


def test_a_fault_is_a_recognised_exit_not_a_hang(tmp_path, arm_tools):
    r = qemu.run(build(tmp_path, "FAULT"), [], timeout=20)
    assert r.crashed and r.returncode == qemu.FAULT_EXIT and not r.timed_out
    assert "fault " in r.stdout and "pc=" in r.stdout
    with pytest.raises(Exception, match="commas or spaces"):
        qemu.run(build(tmp_path, "PLAIN"), ["a,b"])


def test_serial_board_echoes_over_a_pty_and_memory_reads_back(tmp_path, arm_tools):
    serial = pytest.importorskip("serial")
    elf = build(tmp_path, "ECHO")
    with qemu.SerialBoard(elf) as board:
        assert board.port.startswith("/dev/pts/")
        port = serial.Serial(board.port, 115200, timeout=0.2)
        try:
            port.write(b"hello board\n")
            got, deadline = b"", time.monotonic() + 10
            while not got.endswith(b"\n") and time.monotonic() < deadline:
                got += port.read(64)
        finally:
            port.close()
        assert got == b"HELLO BOARD\n"
        addr = qemu.symbol_address(elf, "g_known")
        words = board.read_memory(addr, 16)
        assert [int.from_bytes(words[i:i + 4], "little") for i in range(0, 16, 4)] == [
            0x11223344, 0xA5A5A5A5, 0x0BADBEEF, 0xCAFEF00D]
        # the painted stack: untouched words below the deepest frame still hold the paint
        lo, hi = qemu.symbol_address(elf, "_stack_limit"), qemu.symbol_address(elf, "_stack_top")
        stack = board.read_memory(lo, hi - lo)
        assert stack[:4] == b"\xc5\xc5\xc5\xc5" and stack[-4:] != b"\xc5\xc5\xc5\xc5"
