"""export_c: the generated model_data.cc/.h and model_settings.h compile (g++ -Wall -Wextra -Werror) and hold
exactly the bytes, float32 values, names and ops given; resolver_calls and the settings checks."""
from __future__ import annotations

import dataclasses
import json
import os
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from keras_tinyloc.deploy import export_c
from keras_tinyloc.errors import TinyLocError

CORE = Path(__file__).resolve().parents[2] / "tflm_app" / "core"
needs_gxx = pytest.mark.skipif(  # under CI (.ci/run installs g++) a missing compiler must fail
    shutil.which("g++") is None and os.environ.get("CI", "").lower() not in ("1", "true", "yes"), reason="no g++")


def settings(**kw) -> export_c.DeviceSettings:
    rng = np.random.default_rng(0)
    base = dict(
        model_name='house "a" ?', window=4, n_features=3, n_classes=3,
        class_names=["kitchen", 'living "room"', "bäd??room"], feature_names=["ap\\0", "ap1", "ap2"],
        scale_low=[-100.0, -91.3, -80.0], scale_high=[-40.0, -30.1, -80.0], fill_dbm=-120.0,
        input_scale=1 / 255, input_zero_point=-128, output_scale=0.1234567, output_zero_point=5,
        transitions=rng.normal(0, 1, (3, 3)).tolist(), start=[0.1, 1e-8, -3.0], end=[1e20, 0.0, -0.5],
        arena_bytes=5000, arena_margin_bytes=256, ops=["FULLY_CONNECTED", "reshape", "FULLY_CONNECTED", "LOGISTIC"],
    )
    base.update(kw)
    return export_c.DeviceSettings(**base)


def compile_run(tmp_path: Path, main: str, extra: list[str] = ()) -> str:
    (tmp_path / "main.cpp").write_text(main)
    exe = tmp_path / "prog"
    cmd = ["g++", "-std=c++11", "-Wall", "-Wextra", "-Werror", "-pedantic", f"-I{CORE}", f"-I{tmp_path}",
           str(tmp_path / "main.cpp"), str(CORE / "tinyloc_core.cpp"), *extra, "-o", str(exe)]
    res = subprocess.run(cmd, capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
    return subprocess.run([str(exe)], capture_output=True, check=True).stdout.decode("utf-8")


def test_resolver_calls_dedup_and_unknown():
    assert export_c.resolver_calls(["FULLY_CONNECTED", "RESHAPE", "FULLY_CONNECTED", "batch_matmul"]) == [
        "AddFullyConnected", "AddReshape", "AddBatchMatMul"]
    assert export_c.RESOLVER_METHODS["DEPTHWISE_CONV_2D"] == "AddDepthwiseConv2D"
    with pytest.raises(TinyLocError, match="'FANCY_OP'"):
        export_c.resolver_calls(["ADD", "FANCY_OP"])
    with pytest.raises(TinyLocError, match="'GELU': this TFLM has no GELU kernel"):
        export_c.resolver_calls(["ADD", "GELU"])


def test_every_resolver_method_exists_in_the_kits_tflm():
    """Each method named in RESOLVER_METHODS is declared by the kit's MicroMutableOpResolver (GELU is not)."""
    import re

    from keras_tinyloc.deploy import tflm_kit

    kit = tflm_kit.find_kit()
    if kit is None:
        pytest.skip(tflm_kit.kit_missing_reason())
    header = (kit / "tensorflow/lite/micro/micro_mutable_op_resolver.h").read_text()
    declared = set(re.findall(r"TfLiteStatus (Add\w+)\(", header))
    assert set(export_c.RESOLVER_METHODS.values()) <= declared
    assert "AddGelu" not in declared and set(export_c.NO_TFLM_KERNEL) == {"GELU"}


def test_op_codes_are_the_kits_builtin_operator_values():
    """kOpCodes (the sketch's boot check compares them with the flatbuffer's op codes) = the kit's
    tflite::BuiltinOperator enum, for every op the resolver table knows; an unknown name is refused."""
    import re

    from keras_tinyloc.deploy import tflm_kit

    kit = tflm_kit.find_kit()
    if kit is None:
        pytest.skip(tflm_kit.kit_missing_reason())
    schema = (kit / "tensorflow/lite/schema/schema_generated.h").read_text()
    enum = {k: int(v) for k, v in re.findall(r"^\s+BuiltinOperator_(\w+) = (-?\d+),?$", schema, re.M)}
    names = sorted(export_c.RESOLVER_METHODS)
    assert export_c.builtin_op_codes(names) == [enum[n] for n in names]
    assert export_c.builtin_op_codes(["fully_connected", "MUL"]) == [9, 18]
    with pytest.raises(TinyLocError, match="'FANCY_OP': not a TFLite builtin operator"):
        export_c.builtin_op_codes(["FANCY_OP"])


@pytest.mark.skipif(shutil.which("arm-none-eabi-g++") is None and os.environ.get("CI", "").lower() not in
                    ("1", "true", "yes"), reason="no arm-none-eabi-g++")
@needs_gxx
def test_arena_is_the_m4_figure_on_32_bit_and_the_host_figure_on_64_bit(tmp_path):
    export_c.write_model_settings(tmp_path, settings(arena_device_bytes=4100))
    text = (tmp_path / "model_settings.h").read_text()
    assert "Cortex-M4 (CMSIS-NN kernels, QEMU\n// mps2-an386): 4100 bytes; on a 64-bit host: 5000 bytes" in text
    src = tmp_path / "arena.cpp"
    for cxx, want in (("g++", 5000 + 256), ("arm-none-eabi-g++", 4100 + 256)):
        src.write_text('#include "model_settings.h"\n'
                       f"static_assert(model_settings::kTensorArenaSize == {want}, \"arena\");\nint main() {{ return 0; }}\n")
        res = subprocess.run([cxx, "-std=c++11", "-fsyntax-only", "-Wall", "-Werror", f"-I{CORE}", f"-I{tmp_path}",
                              str(src)], capture_output=True, text=True)
        assert res.returncode == 0, (cxx, res.stderr)


@pytest.mark.parametrize("change, match", [
    (dict(class_names=["a", "b"]), "class_names has 2 entries, expected 3"),
    (dict(scale_low=[0.0]), "scale_low has 1 entries"),
    (dict(transitions=[[0, 0, 0], [0, 0], [0, 0, 0]]), "transitions row 1"),
    (dict(input_zero_point=128), "input_zero_point = 128"),
    (dict(output_scale=0.0), "output_scale"),
    (dict(window=0), "window = 0"),
    (dict(ops=["WHILE", "NOPE"]), "'NOPE'"),
])
def test_validate_names_the_bad_field(change, match):
    with pytest.raises(TinyLocError, match=match):
        settings(**change).validate()


@needs_gxx
def test_model_data_bytes_alignment_and_length(tmp_path):
    data = bytes(np.random.default_rng(1).integers(0, 256, 1001, dtype=np.uint8))
    cc, h = export_c.write_model_data(tmp_path, data, symbol="g_model")
    assert (cc.name, h.name) == ("model_data.cc", "model_data.h")
    out = compile_run(tmp_path, '#include <stdint.h>\n#include <stdio.h>\n#include "model_data.h"\n'
                      "int main() { uint32_t h = 0; for (unsigned i = 0; i < g_model_len; ++i) h = h * 31u + g_model[i];\n"
                      '  printf("%u %u %u\\n", g_model_len, h, (unsigned)((uintptr_t)g_model % 16)); return 0; }\n',
                      [str(cc)])
    want = 0
    for b in data:
        want = (want * 31 + b) % 2**32
    assert out.split() == [str(len(data)), str(want), "0"]
    with pytest.raises(TinyLocError, match="too short"):
        export_c.write_model_data(tmp_path, b"abc")


@needs_gxx
def test_model_settings_values_names_ops_exact(tmp_path):
    s = settings()
    path = export_c.write_model_settings(tmp_path, s)
    text = path.read_text()
    assert "kTensorArenaSize = 5256;" in text and "5000 bytes measured" in text and "margin of 256 bytes" in text
    main = r'''#include <stdio.h>
#include <string.h>
#include <stdint.h>
#include "model_settings.h"
using namespace model_settings;
struct Fake {  // stands in for tflite::MicroMutableOpResolver: records the calls
  char log[256]; Fake() { log[0] = 0; }
  int Add(const char* n) { strcat(log, n); strcat(log, " "); return 0; }
  int AddFullyConnected() { return Add("AddFullyConnected"); }
  int AddReshape() { return Add("AddReshape"); }
  int AddLogistic() { return Add("AddLogistic"); }
};
static void bits(const char* tag, const float* v, int n) {
  printf("%s", tag); for (int i = 0; i < n; ++i) { uint32_t u; memcpy(&u, &v[i], 4); printf(" %08x", u); } printf("\n");
}
int main() {
  Fake f; int added = AddModelOps(f);
  printf("ops %d %d %s\n", added, kNumOps, f.log);
  printf("shape %d %d %d %d %d %d\n", kWindow, kNumFeatures, kNumClasses, kHop, kStepMs, kFfillSteps);
  bits("low", kScaleLow, kNumFeatures); bits("high", kScaleHigh, kNumFeatures);
  bits("trans", kTransitions, kNumClasses * kNumClasses); bits("start", kStart, kNumClasses); bits("end", kEnd, kNumClasses);
  float q[3] = {kInputScale, kOutputScale, kFillDbm}; bits("q", q, 3);
  printf("zp %d %d\n", kInputZeroPoint, kOutputZeroPoint);
  for (int i = 0; i < kNumClasses; ++i) printf("class %s\n", kClassNames[i]);
  printf("name %s\nfeat %s\n", kModelName, kFeatureNames[0]);
  printf("check %d %d\n", tinyloc::CheckSettings(kSettings), kSettings.n_ops);
  printf("codes"); for (int i = 0; i < kNumOps; ++i) printf(" %s=%d", kOpNames[i], kOpCodes[i]); printf("\n");
  return 0;
}
'''
    out = compile_run(tmp_path, main).splitlines()

    def hexes(values):
        return " ".join(f"{v:08x}" for v in np.asarray(values, np.float32).reshape(-1).view(np.uint32))

    assert out[0] == "ops 3 3 AddFullyConnected AddReshape AddLogistic "
    assert out[1] == "shape 4 3 3 10 200 5"
    assert out[2] == "low " + hexes(s.scale_low) and out[3] == "high " + hexes(s.scale_high)
    assert out[4] == "trans " + hexes(s.transitions)
    assert out[5] == "start " + hexes(s.start) and out[6] == "end " + hexes(s.end)
    assert out[7] == "q " + hexes([s.input_scale, s.output_scale, s.fill_dbm])
    assert out[8] == "zp -128 5"
    assert out[9:12] == [f"class {n}" for n in s.class_names]
    assert out[12:14] == ['name house "a" ?', "feat ap\\0"]
    assert out[14] == "check 0 3"
    assert out[15] == "codes FULLY_CONNECTED=9 RESHAPE=22 LOGISTIC=14"  # tensorflow/lite/schema/schema.fbs


def test_device_settings_json_round_trip_and_errors(tmp_path):
    s = settings()
    export_c.write_model_settings(tmp_path, s)
    assert export_c.read_device_settings(tmp_path) == s
    raw = json.loads((tmp_path / "device_settings.json").read_text())
    del raw["output_scale"]
    (tmp_path / "bad.json").write_text(json.dumps(raw))
    with pytest.raises(TinyLocError, match=r"bad.json: missing field\(s\) output_scale"):
        export_c.read_device_settings(tmp_path / "bad.json")
    (tmp_path / "broken.json").write_text("{")
    with pytest.raises(TinyLocError, match="broken.json: cannot read"):
        export_c.read_device_settings(tmp_path / "broken.json")
    raw = dataclasses.asdict(s) | {"n_classes": 2}
    (tmp_path / "inconsistent.json").write_text(json.dumps(raw))
    with pytest.raises(TinyLocError, match="inconsistent.json: .*class_names has 3 entries, expected 2"):
        export_c.read_device_settings(tmp_path / "inconsistent.json")
