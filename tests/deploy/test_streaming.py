"""Streaming Mamba (keras_tinyloc.deploy.streaming, tflm_app/core/tinyloc_online.*), each checked against an independent
computation: float64 rounding,
the float step model, and the Python decoder for the C++ twin (g++ host build and Cortex-M4 on QEMU)."""
from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from keras_tinyloc.deploy import streaming as S
from keras_tinyloc.errors import TinyLocError
from keras_tinyloc.models import mamba_step as MS, online_crf as OC

from helpers import mamba_windows

ROOT = Path(__file__).resolve().parents[2]
CORE = ROOT / "tflm_app/core"
T, F, C = 12, 5, 4


def _crf(rng, c=C):
    return (rng.normal(0, 1, (c, c)).astype(np.float32), rng.normal(0, 1, c).astype(np.float32),
            rng.normal(0, 1, c).astype(np.float32))


def test_requantize_matches_exact_rounding():
    rng = np.random.default_rng(0)
    q = np.arange(-128, 128, dtype=np.int8)
    for _ in range(20):
        src = (float(np.float32(rng.uniform(0.001, 0.05))), int(rng.integers(-20, 20)))
        dst = (float(np.float32(rng.uniform(0.001, 0.05))), int(rng.integers(-20, 20)))
        got = S.requantize(q, src, dst).astype(int)
        exact = np.clip(np.round((q.astype(np.float64) - src[1]) * src[0] / dst[0]) + dst[1], -128, 127)
        assert np.max(np.abs(got - exact)) <= 1 and np.mean(got == exact) > 0.97
    same = (0.02, 3)
    np.testing.assert_array_equal(S.requantize(q, same, same), q)


@pytest.fixture(scope="module")
def int8_step(calibrated_mamba):
    em, x = calibrated_mamba
    step = MS.build_step_model(em)
    buf, io = S.convert_step_model(step, x, n_windows=32, n_calibration=200)
    return em, step, buf, io


def test_int8_step_model_in_tflm(int8_step):
    from keras_tinyloc.deploy import tflite_inspect, tflm
    from keras_tinyloc.deploy.quantize import dequantize

    em, step, buf, io = int8_step
    info = tflite_inspect.inspect_tflite(buf)
    assert tflite_inspect.float_ops(info) == []
    assert sorted(io["inputs"]) == ["conv_0", "ssm_0", "x_t"]
    assert sorted(io["outputs"]) == ["conv_0", "emissions", "ssm_0"]
    assert "WHILE" not in info.op_types and len(info.ops) < 70
    arena = tflm.minimal_arena(buf)
    assert arena.arena_bytes < 24 * 1024  # no time axis: the arena does not grow with T
    x = mamba_windows(10, seed=9)
    tf_q = S.Int8Stepper(buf, io, "tflm", arena.arena_bytes).run_windows(x)
    lite_q = S.Int8Stepper(buf, io, "litert").run_windows(x)
    assert np.mean(tf_q == lite_q) > 0.95 and np.max(np.abs(tf_q.astype(int) - lite_q)) <= 2
    st = S.Int8Stepper(buf, io, "tflm", arena.arena_bytes)
    e_q = dequantize(tf_q, *st.emission_q())
    want = np.asarray(em.predict(x, verbose=0))
    scale = st.emission_q()[0]
    err = np.abs(e_q - want)
    assert err.mean() < 4 * scale and np.abs(want).max() > 20 * scale, (err.mean(), scale)


def _write_harness(d: Path, trans, start, end, lag, em_q, scale, zp, rq_cases):
    def arr(v, fmt):
        return ", ".join(fmt(a) for a in np.ravel(v))

    f32 = lambda v: f"{float(np.float32(v))!r}f".replace("inf", "INFINITY")  # noqa: E731
    n_steps = len(em_q)
    lines = [
        '#include <stdio.h>\n#include "tinyloc_online.h"',
        f"static const float kTrans[] = {{{arr(trans, f32)}}};",
        f"static const float kStart[] = {{{arr(start, f32)}}};",
        f"static const float kEnd[] = {{{arr(end, f32)}}};",
        f"static const signed char kEm[] = {{{arr(em_q, str)}}};",
        f"static const signed char kRq[] = {{{arr(np.arange(-128, 128), str)}}};",
        "struct Rq { float ss; int zs; float sd; int zd; };",
        "static const Rq kRqCases[] = {" + ", ".join(f"{{{f32(a)}, {b}, {f32(c)}, {d}}}" for a, b, c, d in rq_cases) + "};",
        f"static unsigned char work[tinyloc::OnlineViterbiWorkspaceBytesFor({C}, {lag})];",
        "int main() {",
        "  tinyloc::OnlineViterbi v;",
        f"  if (!v.Init({C}, kTrans, kStart, kEnd, {lag}, work, sizeof work)) {{ printf(\"init failed\\n\"); return 1; }}",
        f"  for (int t = 0; t < {n_steps}; ++t) {{",
        "    int32_t s; int lab;",
        f"    if (v.PushInt8(kEm + t * {C}, {f32(scale)}, {zp}, &s, &lab)) printf(\"L %ld %d\\n\", (long)s, lab);",
        "  }",
        "  uint8_t tail[64]; int n = v.Flush(tail);",
        "  printf(\"F\"); for (int i = 0; i < n; ++i) printf(\" %d\", tail[i]); printf(\"\\n\");",
        "  for (unsigned k = 0; k < sizeof kRqCases / sizeof kRqCases[0]; ++k) {",
        "    int8_t out[256]; const Rq& r = kRqCases[k];",
        "    tinyloc::Requantize((const int8_t*)kRq, out, 256, r.ss, r.zs, r.sd, r.zd);",
        "    printf(\"R\"); for (int i = 0; i < 256; ++i) printf(\" %d\", out[i]); printf(\"\\n\");",
        "  }",
        "  printf(\"END\\n\");",
        "  return 0;",
        "}",
    ]
    (d / "online_harness.cpp").write_text("\n".join(lines) + "\n")


def _cases(seed=0, lag=3, steps=60):
    from keras_tinyloc.deploy.quantize import dequantize

    rng = np.random.default_rng(seed)
    trans, start, end = _crf(rng)
    em_q = rng.integers(-128, 128, (steps, C)).astype(np.int8)
    em_q[20:25] = em_q[20:25, :1]  # equal scores: ties
    scale, zp = float(np.float32(0.0371)), -7
    rq = [(float(np.float32(rng.uniform(0.001, 0.05))), int(rng.integers(-30, 30)),
           float(np.float32(rng.uniform(0.001, 0.05))), int(rng.integers(-30, 30))) for _ in range(12)]
    dec = OC.OnlineViterbi(trans, start, end, lag=lag)
    e = dequantize(em_q, scale, zp)
    want_l = [r for r in (dec.push(v) for v in e) if r is not None]
    want_f = [int(v) for v in OC.flush_tail(dec, steps)[-(lag + 1):]]
    want_r = [S.requantize(np.arange(-128, 128).astype(np.int8), (a, b), (c, d)).astype(int).tolist()
              for a, b, c, d in rq]
    return (trans, start, end, lag, em_q, scale, zp, rq), (want_l, want_f, want_r)


def _parse(stdout):
    lines = stdout.strip().splitlines()
    assert lines[-1] == "END", stdout[-500:]
    labels = [(int(a), int(b)) for _, a, b in (ln.split() for ln in lines if ln.startswith("L "))]
    flush = [int(v) for v in next(ln for ln in lines if ln.startswith("F")).split()[1:]]
    rq = [[int(v) for v in ln.split()[1:]] for ln in lines if ln.startswith("R")]
    return labels, flush, rq


@pytest.mark.skipif(shutil.which("g++") is None and os.environ.get("CI", "").lower() not in ("1", "true", "yes"),
                    reason="g++ not installed")
@pytest.mark.parametrize("lag", [0, 5])
def test_cpp_online_decoder_matches_python(tmp_path, lag):
    args, (want_l, want_f, want_r) = _cases(seed=lag, lag=lag)
    _write_harness(tmp_path, *args)
    exe = tmp_path / "online"
    cmd = ["g++", "-std=c++11", "-Wall", "-Wextra", "-Werror", "-pedantic", "-O2", f"-I{CORE}",
           str(CORE / "tinyloc_online.cpp"), str(tmp_path / "online_harness.cpp"), "-o", str(exe)]
    res = subprocess.run(cmd, capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
    out = subprocess.run([str(exe)], capture_output=True, text=True, timeout=30)
    assert out.returncode == 0, out.stdout + out.stderr
    labels, flush, rq = _parse(out.stdout)
    assert labels == want_l and len(labels) == 60 - lag
    assert flush == want_f
    assert rq == want_r


CM = CORE / "tests/cortex_m"
ARM = ("arm-none-eabi-g++", "arm-none-eabi-gcc", "qemu-system-arm")


@pytest.mark.skipif(any(shutil.which(t) is None for t in ARM), reason="arm-none-eabi / qemu-system-arm not installed")
def test_cpp_online_decoder_on_cortex_m4_qemu(tmp_path):
    args, (want_l, want_f, want_r) = _cases(seed=11, lag=5)
    _write_harness(tmp_path, *args)
    cpu = ["-mcpu=cortex-m4", "-mthumb", "-mfloat-abi=hard", "-mfpu=fpv4-sp-d16"]
    cxx = ["-std=c++11", "-Os", "-ffunction-sections", "-fdata-sections", "-fno-exceptions", "-fno-rtti"]

    def run(cmd):
        res = subprocess.run([str(c) for c in cmd], capture_output=True, text=True, timeout=60)
        assert res.returncode == 0, res.stderr
        return res

    run(["arm-none-eabi-g++", *cpu, *cxx, "-Wall", "-Wextra", "-Werror", f"-I{CORE}", "-c",
         CORE / "tinyloc_online.cpp", "-o", tmp_path / "online.o"])
    run(["arm-none-eabi-g++", *cpu, *cxx, f"-I{CORE}", "-c", tmp_path / "online_harness.cpp", "-o", tmp_path / "h.o"])
    run(["arm-none-eabi-gcc", *cpu, "-Os", "-c", CM / "startup.c", "-o", tmp_path / "startup.o"])
    elf = tmp_path / "online.elf"
    run(["arm-none-eabi-g++", *cpu, "--specs=rdimon.specs", "-nostartfiles", "-T", CM / "mps2_an386.ld",
         "-Wl,--gc-sections", tmp_path / "startup.o", tmp_path / "h.o", tmp_path / "online.o", "-o", elf])
    out = run(["qemu-system-arm", "-M", "mps2-an386", "-nographic", "-semihosting", "-monitor", "none", "-kernel", elf])
    labels, flush, rq = _parse(out.stdout)
    assert labels == want_l and flush == want_f and rq == want_r


@pytest.mark.skipif(shutil.which("g++") is None, reason="g++ not installed")
def test_export_step_model_headers_compile_and_match_io(int8_step, tmp_path):
    from types import SimpleNamespace

    from keras_tinyloc.deploy import export_stream

    em, step, buf, io = int8_step
    rng = np.random.default_rng(2)
    trans, start, end = _crf(rng)
    ds = SimpleNamespace(n_features=F, n_classes=C, class_names=[f"r{i}" for i in range(C)],
                         feature_names=[f"ap{i}" for i in range(F)],
                         scaling=SimpleNamespace(low=np.full(F, -100.0), high=np.full(F, -40.0)), fill_value=-120.0)
    paths = export_stream.export_step_model(tmp_path, buf, io, step, ds,
                                            {"transitions": trans, "start": start, "end": end}, arena_bytes=9000, lag=4)
    assert {p.name for p in paths} >= {"model_data.h", "model_settings.h", "step_settings.h"}
    prog = tmp_path / "probe.cpp"
    prog.write_text(
        '#include <stdio.h>\n#include "model_settings.h"\n#include "step_settings.h"\n'
        "int main() {\n  using namespace step_settings;\n"
        '  printf("%d %d %d %d %d %d %d\\n", kLag, kNumInputs, kNumOutputs, kXInput, kEmissionsOutput, kNumStates,'
        " model_settings::kWindow * 100 + model_settings::kHop);\n"
        '  for (int s = 0; s < kNumStates; ++s) printf("%d %d %d %.9g %d %.9g %d\\n", kStateInput[s], kStateOutput[s],'
        " kStateSize[s], (double)kStateInScale[s], kStateInZeroPoint[s], (double)kStateOutScale[s], kStateOutZeroPoint[s]);\n"
        '  printf("%.9g %d %.9g %d\\n", (double)model_settings::kInputScale, model_settings::kInputZeroPoint,'
        " (double)model_settings::kOutputScale, model_settings::kOutputZeroPoint);\n  return 0;\n}\n")
    exe = tmp_path / "probe"
    res = subprocess.run(["g++", "-std=c++11", "-Wall", "-Wextra", "-Werror", f"-I{CORE}", f"-I{tmp_path}", str(prog),
                          "-o", str(exe)], capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
    lines = subprocess.run([str(exe)], capture_output=True, text=True, timeout=10).stdout.splitlines()
    head = [int(v) for v in lines[0].split()]
    ins, outs = io["inputs"], io["outputs"]
    assert head == [4, 3, 3, ins.index("x_t"), outs.index("emissions"), 2, 101]
    sizes = {t.name: int(np.prod(t.shape)) for t in step.inputs[1:]}
    for line, name in zip(lines[1:3], [n for n in ins if n != "x_t"]):
        v = line.split()
        i, o = ins.index(name), outs.index(name)
        assert [int(v[0]), int(v[1]), int(v[2])] == [i, o, sizes[name]]
        assert float(v[3]) == pytest.approx(io["input_q"][i][0], rel=1e-7) and int(v[4]) == io["input_q"][i][1]
        assert float(v[5]) == pytest.approx(io["output_q"][o][0], rel=1e-7) and int(v[6]) == io["output_q"][o][1]
    q = lines[3].split()
    assert float(q[0]) == pytest.approx(io["input_q"][ins.index("x_t")][0], rel=1e-7)
    assert float(q[2]) == pytest.approx(io["output_q"][outs.index("emissions")][0], rel=1e-7)
    with pytest.raises(TinyLocError):
        export_stream.step_settings_source({**io, "inputs": ["x_t"]}, sizes, 4)
    with pytest.raises(TinyLocError, match=r"^lag=4097: must be an integer in 0..4096$"):  # the core would say E4
        export_stream.step_settings_source(io, sizes, 4097)


# The streaming sketch itself (tflm_app_stream.ino) runs against real TFLM with a real step model, on the host and
# on the emulated Cortex-M4: tests/deploy/test_sketch.py::test_stream_sketch_with_a_real_step_model.
