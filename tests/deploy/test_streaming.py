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


# --------------------------------------------------------------------------- the streaming sketch, on a stand-in TFLM
_STAND_IN = r"""// TEST DOUBLE for tflm_app_stream.ino (not TFLM): a fake int8 *step model* with inputs {state (F), x_t (F)}
// and outputs {state' (F), emissions (C)}:  state'[i] = clamp(((x[i] + s[i]) >> 1) + 3),
// emissions[c] = clamp(x[c % F] - s[c % F] + c). tests/deploy/test_streaming.py computes the same in Python.
#pragma once
#include <stddef.h>
#include <stdint.h>
#include "model_settings.h"
typedef enum { kTfLiteOk = 0, kTfLiteError = 1 } TfLiteStatus;
typedef enum { kTfLiteFloat32 = 1, kTfLiteInt8 = 9 } TfLiteType;
struct TfLiteQuantizationParams { float scale; int32_t zero_point; };
union TfLitePtrUnion { int8_t* int8; float* f; };
struct TfLiteTensor { TfLiteType type; TfLitePtrUnion data; size_t bytes; TfLiteQuantizationParams params; };
#define TFLITE_SCHEMA_VERSION 3
namespace tflite {
struct Model { unsigned version() const { return TFLITE_SCHEMA_VERSION; } };
inline const Model* GetModel(const void*) { static Model m; return &m; }
template <unsigned int N> class MicroMutableOpResolver {
 public:
  TfLiteStatus AddFullyConnected() { return kTfLiteOk; }
  TfLiteStatus AddMul() { return kTfLiteOk; }
};
static inline int8_t Clamp(int v) { return (int8_t)(v < -128 ? -128 : v > 127 ? 127 : v); }
class MicroInterpreter {
 public:
  template <unsigned int N>
  MicroInterpreter(const Model*, const MicroMutableOpResolver<N>&, uint8_t*, size_t) {}
  TfLiteStatus AllocateTensors() {
    const int f = model_settings::kNumFeatures, c = model_settings::kNumClasses;
    t_[0] = {kTfLiteInt8, {buf_}, (size_t)f, {STATE_IN_SCALE, STATE_IN_ZP}};
    t_[1] = {kTfLiteInt8, {buf_ + 64}, (size_t)f, {model_settings::kInputScale, model_settings::kInputZeroPoint}};
    t_[2] = {kTfLiteInt8, {buf_ + 128}, (size_t)f, {STATE_OUT_SCALE, STATE_OUT_ZP}};
    t_[3] = {kTfLiteInt8, {buf_ + 192}, (size_t)c, {model_settings::kOutputScale, model_settings::kOutputZeroPoint}};
    return kTfLiteOk;
  }
  size_t inputs_size() const { return 2; }
  size_t outputs_size() const { return 2; }
  TfLiteTensor* input(int i) { return &t_[i]; }
  TfLiteTensor* output(int i) { return &t_[2 + i]; }
  TfLiteStatus Invoke() {
    const int f = model_settings::kNumFeatures, c = model_settings::kNumClasses;
    const int8_t* s = t_[0].data.int8; const int8_t* x = t_[1].data.int8;
    for (int i = 0; i < f; ++i) t_[2].data.int8[i] = Clamp(((x[i] + s[i]) >> 1) + 3);
    for (int k = 0; k < c; ++k) t_[3].data.int8[k] = Clamp(x[k % f] - s[k % f] + k);
    return kTfLiteOk;
  }
  size_t arena_used_bytes() const { return 1234; }
 private:
  int8_t buf_[256];
  TfLiteTensor t_[4];
};
}  // namespace tflite
"""


@pytest.mark.skipif(shutil.which("g++") is None, reason="g++ not installed")
@pytest.mark.parametrize("stagger", [0, 8])
def test_stream_sketch_on_stand_in_tflm(tmp_path, stagger):
    from keras_tinyloc.deploy import device, export_c, export_stream
    from keras_tinyloc.deploy.quantize import dequantize

    f, c, lag = 3, 4, 2
    rng = np.random.default_rng(8)
    trans, start, end = _crf(rng, c)
    st = export_c.DeviceSettings(
        model_name="stream_test", window=1, hop=1, n_features=f, n_classes=c, class_names=[f"r{i}" for i in range(c)],
        feature_names=["a", "b", "c"], scale_low=[-100.0] * f, scale_high=[-40.0] * f, fill_dbm=-120.0,
        input_scale=float(np.float32(1 / 255)), input_zero_point=-128, output_scale=float(np.float32(0.07)),
        output_zero_point=2, transitions=trans.tolist(), start=start.tolist(), end=end.tolist(), arena_bytes=2000,
        arena_margin_bytes=0, ops=["FULLY_CONNECTED", "MUL"])
    q_in, q_out = (float(np.float32(0.05)), 0), (float(np.float32(0.1)), 3)
    io = {"inputs": ["ssm_0", "x_t"], "outputs": ["ssm_0", "emissions"], "input_q": [q_in, (st.input_scale, -128)],
          "output_q": [q_out, (st.output_scale, 2)]}
    sk = tmp_path / "sketch"
    (sk / "tensorflow/lite/micro").mkdir(parents=True)
    (sk / "tensorflow/lite/schema").mkdir(parents=True)
    export_c.write_model_settings(sk, st)
    export_c.write_model_data(sk, bytes(64))
    export_stream.write_step_settings(sk, io, {"ssm_0": f}, lag)
    stub = _STAND_IN.replace("STATE_IN_SCALE", f"{q_in[0]!r}f").replace("STATE_IN_ZP", str(q_in[1]))
    stub = stub.replace("STATE_OUT_SCALE", f"{q_out[0]!r}f").replace("STATE_OUT_ZP", str(q_out[1]))
    (sk / "stand_in.h").write_text(stub)
    for name in ("micro/micro_interpreter.h", "micro/micro_mutable_op_resolver.h", "schema/schema_generated.h"):
        (sk / "tensorflow/lite" / name).write_text('#include "stand_in.h"\n')
    (sk / "TensorFlowLite.h").write_text("")
    shutil.copy(ROOT / "tflm_app/arduino/tflm_app_stream/tflm_app_stream.ino", sk / "sketch.cpp")
    stub_dir = CORE / "tests/stub_tflm"
    exe = tmp_path / "sketch_exe"
    cmd = ["g++", "-std=c++17", "-Wall", "-Wextra", "-Werror", "-O1", f"-DTINYLOC_STAGGER={stagger}", f"-I{sk}", f"-I{CORE}", f"-I{stub_dir}",
           "-include", "Arduino.h", str(sk / "sketch.cpp"), str(sk / "model_data.cc"), str(CORE / "tinyloc_core.cpp"),
           str(CORE / "tinyloc_online.cpp"), str(stub_dir / "arduino_main.cpp"), "-o", str(exe)]
    res = subprocess.run(cmd, capture_output=True, text=True)
    assert res.returncode == 0, res.stderr[-3000:]

    t = np.sort(rng.integers(0, 20_000, 300))
    ap, rssi = rng.integers(0, f, 300), rng.integers(-100, -30, 300)
    session = "reset\n" + "".join(f"{a},{b},{r}\n" for a, b, r in zip(t, ap, rssi)) + "end\n"
    out = subprocess.run([str(exe)], input=session, capture_output=True, text=True, timeout=30).stdout.splitlines()
    out = [ln.rstrip("\r") for ln in out]
    assert out[0].startswith(f"ready stream_test stream F={f} C={c} lag={lag} stagger={stagger}"), out[:3]

    # Python twin: device pre-processing with window 1, the fake step model, requantize, fixed-lag Viterbi
    x, _ = device.input_windows(st, t, ap, rssi)
    def fake_step(row, s):
        s_new = np.clip(((row + s) >> 1) + 3, -128, 127)
        em = np.clip(row[np.arange(c) % f] - s[np.arange(c) % f] + np.arange(c), -128, 127)
        return em, S.requantize(s_new.astype(np.int8), q_out, q_in).astype(np.int64)

    sets = [np.zeros(f, np.int64), np.zeros(f, np.int64)]
    dec = OC.OnlineViterbi(trans, start, end, lag=lag)
    want = []
    for t, row in enumerate(x[:, 0, :].astype(np.int64)):
        if stagger:  # two sets reset every `stagger` steps, half a period apart; the one with >= half the context
            half, ems = stagger // 2, [None, None]
            for k, off in enumerate((0, half)):
                if t >= off:
                    if (t - off) % stagger == 0:
                        sets[k] = np.zeros(f, np.int64)
                    ems[k], sets[k] = fake_step(row, sets[k])
            em = ems[0] if (t < half or t % stagger >= half) else ems[1]
        else:
            em, sets[0] = fake_step(row, sets[0])
        r = dec.push(dequantize(em.astype(np.int8), st.output_scale, st.output_zero_point))
        if r is not None:
            want.append(f"room {r[0]} {r[1]} r{r[1]}")
    tail = OC.flush_tail(dec, len(x))
    want += [f"room {i} {tail[i]} r{tail[i]}" for i in range(len(x) - lag, len(x))]  # not yet printed
    got = [ln for ln in out if ln.startswith("room ")]
    assert got == want and len(got) == len(x) > 50
    assert out[-1] == f"done 300 {len(x)} 0"
