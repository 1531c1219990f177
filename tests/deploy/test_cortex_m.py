"""The device core on a Cortex-M4: arm-none-eabi-g++ -mcpu=cortex-m4 -mthumb -Os, run on QEMU mps2-an386.

The same harness as tests/deploy/test_device.py (tflm_app/core/tests/harness.cpp) is cross-compiled with newlib and a
minimal startup/linker script (tflm_app/core/tests/cortex_m/) and run under ``qemu-system-arm -semihosting``; its
output must equal the Python pipeline's windows (byte for byte), Viterbi labels, quantization and error codes.
The core's flash and static RAM are measured with arm-none-eabi-size.

Toolchain (Debian): gcc-arm-none-eabi libnewlib-arm-none-eabi libstdc++-arm-none-eabi-newlib qemu-system-arm
(.ci/run installs them). Skipped only when a tool is missing and $CI is not set; under CI a missing tool fails.
"""
from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from keras_tinyloc.deploy import device
from keras_tinyloc.deploy.quantize import quantize

ROOT = Path(__file__).resolve().parents[2]
_spec = importlib.util.spec_from_file_location("harness_data", ROOT / "tflm_app/core/tests/harness_data.py")
hd = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(hd)

CM = ROOT / "tflm_app/core/tests/cortex_m"
TOOLS = ("arm-none-eabi-g++", "arm-none-eabi-gcc", "arm-none-eabi-size", "qemu-system-arm")
CPU = ["-mcpu=cortex-m4", "-mthumb", "-mfloat-abi=hard", "-mfpu=fpv4-sp-d16"]
CXX = ["-std=c++11", "-Os", "-ffunction-sections", "-fdata-sections", "-fno-exceptions", "-fno-rtti"]


@pytest.fixture(scope="module")
def tools():
    missing = [t for t in TOOLS if shutil.which(t) is None]
    if missing:
        msg = f"missing {', '.join(missing)} (apt-get install gcc-arm-none-eabi libnewlib-arm-none-eabi " \
              "libstdc++-arm-none-eabi-newlib qemu-system-arm)"
        if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
            pytest.fail(f"CI: {msg}")
        pytest.skip(msg)


def run(cmd, **kw):
    res = subprocess.run([str(c) for c in cmd], capture_output=True, text=True, timeout=60, **kw)
    assert res.returncode == 0, f"{' '.join(map(str, cmd))}\n{res.stdout}\n{res.stderr}"
    return res.stdout


def build_elf(d: Path) -> Path:
    core = ROOT / "tflm_app/core"
    inc = [f"-I{core}", f"-I{d}"]
    run(["arm-none-eabi-g++", *CPU, *CXX, "-Wall", "-Wextra", "-Werror", *inc, "-c", core / "tinyloc_core.cpp",
         "-o", d / "core.o"])
    run(["arm-none-eabi-g++", *CPU, *CXX, *inc, "-c", core / "tests/harness.cpp", "-o", d / "harness.o"])
    run(["arm-none-eabi-gcc", *CPU, "-Os", "-c", CM / "startup.c", "-o", d / "startup.o"])
    elf = d / "harness.elf"
    run(["arm-none-eabi-g++", *CPU, "--specs=rdimon.specs", "-nostartfiles", "-T", CM / "mps2_an386.ld",
         "-Wl,--gc-sections", d / "startup.o", d / "harness.o", d / "core.o", "-o", elf])
    return elf


def size(path: Path) -> dict[str, int]:
    text, data, bss = run(["arm-none-eabi-size", path]).splitlines()[1].split()[:3]
    return {"text": int(text), "data": int(data), "bss": int(bss)}


def test_core_on_cortex_m4_qemu_matches_python(tmp_path, tools):
    rng = np.random.default_rng(10)
    st = hd.make_settings(rng, n_features=5, n_classes=4)
    t, ap, rssi = hd.corrupt(rng, *hd.make_readings(rng, st.n_features, n=900), st.n_features)
    cases = rng.integers(-128, 128, (60, st.window, st.n_classes)).astype(np.int8)
    cases[:5] = cases[:5, :, :1]
    qc = hd.quant_cases()
    q, o = (st.input_scale, st.input_zero_point), (st.output_scale, st.output_zero_point)
    models = [hd.model_info([1, st.window, st.n_features], [1, st.window, st.n_classes], in_q=q, out_q=o, n_ops=2),
              hd.model_info([1, st.window, st.n_features], [1, st.window, st.n_classes], in_q=q, out_q=o, n_ops=1)]
    hd.write_harness(tmp_path, st, t, ap, rssi, cases=cases, quant=qc, models=models)
    elf = build_elf(tmp_path)
    res = subprocess.run(["qemu-system-arm", "-M", "mps2-an386", "-nographic", "-semihosting", "-monitor", "none",
                          "-kernel", str(elf)], capture_output=True, text=True, timeout=60)
    assert res.returncode == 0, res.stdout[-2000:] + res.stderr
    out = hd.parse_output(res.stdout, st)

    want, errors = hd.python_windows(st, t, ap, rssi)
    assert out["errors"] == errors and len(errors) == 5
    assert out["end"] == (len(want), len(errors)) and len(want) > 50
    np.testing.assert_array_equal(out["windows"], want)
    np.testing.assert_array_equal(np.array(out["labels"]), hd.viterbi_reference(st, cases))
    np.testing.assert_array_equal(np.array(out["labels"]), device.decode(st, cases))
    assert out["quant"] == [int(quantize(np.float32(x), s, z)) for x, s, z in qc]
    assert out["status"] == [0, 7]


def test_core_flash_and_static_ram(tmp_path, tools, capsys):
    """Flash/static RAM of the core for Cortex-M4 (-Os): the object alone, and linked into a program using it."""
    core = ROOT / "tflm_app/core"
    run(["arm-none-eabi-g++", *CPU, *CXX, f"-I{core}", "-c", core / "tinyloc_core.cpp", "-o", tmp_path / "core.o"])
    obj = size(tmp_path / "core.o")
    # The core keeps no state of its own: everything lives in the caller's workspace.
    assert obj["data"] == 0 and obj["bss"] == 0, obj
    assert 500 < obj["text"] < 8192, obj
    # Linked cost: a program calling every core entry point minus the same program with the calls left out.
    rng = np.random.default_rng(0)
    st = hd.make_settings(rng, n_features=8, n_classes=6)
    hd.write_harness(tmp_path, st, [], [], [])
    prog = tmp_path / "probe.cpp"
    prog.write_text(
        '#include "model_settings.h"\n'
        "unsigned char w[4096]; unsigned char dw[4096]; int8_t in[20 * 8]; uint8_t lab[20]; volatile int sink;\n"
        "int main() {\n  sink = w[sink] + dw[sink] + in[sink] + lab[sink];  // same buffers in both builds\n#ifdef USE_CORE\n  tinyloc::Stream s; s.Init(model_settings::kSettings, w, sizeof w);\n"
        "  int64_t t; int a, r; if (tinyloc::ParseLine(\"1,2,-3\", &t, &a, &r) == 0) s.AddReading(t, a, r);\n"
        "  s.Finish(); while (s.NextWindow(in)) sink = tinyloc::Decode(model_settings::kSettings, (const int8_t*)in,"
        " lab, dw, sizeof dw);\n  sink = tinyloc::CheckModel(model_settings::kSettings, tinyloc::ModelInfo());\n"
        "#endif\n  return sink;\n}\n")
    sizes = {}
    for use in (False, True):
        elf = tmp_path / f"probe{int(use)}.elf"
        run(["arm-none-eabi-g++", *CPU, *CXX, *(["-DUSE_CORE"] if use else []), f"-I{core}", f"-I{tmp_path}",
             "--specs=nosys.specs", "-Wl,--gc-sections", prog, tmp_path / "core.o", "-o", elf])
        sizes[use] = size(elf)
    linked = {k: sizes[True][k] - sizes[False][k] for k in ("text", "data", "bss")}
    stream_bytes = 8 + st.n_features * 4 + st.window * st.n_features + 3 * st.n_features
    with capsys.disabled():
        print(f"\n[cortex-m4 -Os] tinyloc_core.o: text {obj['text']} B, data {obj['data']} B, bss {obj['bss']} B; "
              f"linked into a program (incl. libgcc soft-double and the settings arrays, T={st.window} F={st.n_features} "
              f"C={st.n_classes}): +{linked['text']} B flash, +{linked['data'] + linked['bss']} B static RAM; "
              f"workspaces: stream {stream_bytes} B + decode {8 + 16 * st.n_classes + st.window * st.n_classes} B")
    assert obj["text"] // 2 < linked["text"] < 32768, linked


def test_core_cost_on_cortex_m4(tmp_path, tools, capsys):
    """Instructions (not cycles: QEMU has no cycle model) for the core's work per 200 ms step (F readings +
    finishing the step) and per Decode, with T=20, F=11, C=5: SysTick under `-icount shift=0` advances with
    executed instructions; a 200000-instruction loop calibrates ticks to instructions."""
    st = hd.make_settings(np.random.default_rng(0), window=20, n_features=11, n_classes=5)
    hd.write_harness(tmp_path, st, [], [], [])
    core = ROOT / "tflm_app/core"
    inc = [f"-I{core}", f"-I{tmp_path}"]
    run(["arm-none-eabi-g++", *CPU, *CXX, *inc, "-c", core / "tinyloc_core.cpp", "-o", tmp_path / "core.o"])
    run(["arm-none-eabi-g++", *CPU, *CXX, *inc, "-c", CM / "cost_probe.cpp", "-o", tmp_path / "probe.o"])
    run(["arm-none-eabi-gcc", *CPU, "-Os", "-c", CM / "startup.c", "-o", tmp_path / "startup.o"])
    elf = tmp_path / "probe.elf"
    run(["arm-none-eabi-g++", *CPU, "--specs=rdimon.specs", "-nostartfiles", "-T", CM / "mps2_an386.ld",
         "-Wl,--gc-sections", tmp_path / "startup.o", tmp_path / "probe.o", tmp_path / "core.o", "-o", elf])
    res = subprocess.run(["qemu-system-arm", "-M", "mps2-an386", "-nographic", "-semihosting", "-monitor", "none",
                          "-icount", "shift=0", "-kernel", str(elf)], capture_output=True, text=True, timeout=60)
    parts = res.stdout.split()
    assert res.returncode == 0 and parts[:1] == ["COST"], res.stdout + res.stderr
    cost = dict(zip(parts[1::2], map(int, parts[2::2])))
    assert cost["windows"] == (200 - 1 - 20) // 10 + 1  # the last step stays open (no Finish)
    per_tick = 200_000 / cost["cal"]  # instructions per SysTick tick, from the calibration loop
    step, decode, quant = (round(cost[k] * per_tick / n) for k, n in (("stream", 200), ("decode", 10), ("quant", 1000)))
    assert cost["cal"] > 100 and 11 * quant < step and decode > 1000, cost
    with capsys.disabled():
        print(f"\n[cortex-m4 -Os, QEMU -icount shift=0, instructions via SysTick calibrated on a known loop] "
              f"per 200 ms step with 11 readings: ~{step}; per ScaleQuantize: ~{quant}; "
              f"per Decode (T=20, C=5, soft double): ~{decode} (SysTick: {cost['cal']} ticks per 200000 instructions)")
