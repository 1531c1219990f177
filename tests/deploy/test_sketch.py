"""export-sketch: the assembled folder has the sketch, model files and core; its non-TFLM parts compile
(host g++ -Werror, and `make -C SKETCH/stm32 core` with arm-none-eabi-g++ for Cortex-M4)."""
from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

import numpy as np

from keras_tinyloc.deploy import export_c, sketch
from keras_tinyloc.errors import TinyLocError

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def convert_dir(tmp_path):
    d = tmp_path / "tflite-int8"
    d.mkdir()
    s = export_c.DeviceSettings(
        model_name="house_a", window=20, n_features=3, n_classes=2, class_names=["hall", "kitchen"],
        feature_names=["a", "b", "c"], scale_low=[-100.0] * 3, scale_high=[-40.0] * 3, fill_dbm=-120.0,
        input_scale=1 / 255, input_zero_point=-128, output_scale=0.05, output_zero_point=0,
        transitions=[[0.5, -0.5], [-0.5, 0.5]], start=[0.0, 0.0], end=[0.0, 0.0], arena_bytes=3000,
        arena_margin_bytes=256, ops=["FULLY_CONNECTED", "RESHAPE"])
    export_c.write_model_data(d, bytes(range(256)) * 3)
    export_c.write_model_settings(d, s)
    (d / "model.tflite").write_bytes(b"x")
    return d


def test_export_layout_and_contents(convert_dir, tmp_path):
    out = sketch.export_sketch(convert_dir, tmp_path / "my_sketch")
    files = sorted(str(p.relative_to(out)) for p in out.rglob("*") if p.is_file())
    assert files == sorted([
        "my_sketch.ino", "README.md", "model_data.cpp", "model_data.h", "model_settings.h", "tinyloc_core.h",
        "tinyloc_core.cpp", "tinyloc_app.h", "tinyloc_app.cpp", "stm32/main.cc", "stm32/Makefile"])
    assert (out / "my_sketch.ino").read_bytes() == (ROOT / "tflm_app/arduino/tflm_app/tflm_app.ino").read_bytes()
    assert (out / "model_data.cpp").read_bytes() == (convert_dir / "model_data.cc").read_bytes()
    assert (out / "tinyloc_core.cpp").read_bytes() == (ROOT / "tflm_app/core/tinyloc_core.cpp").read_bytes()
    # the sketch uses exactly the settings' resolver and arena
    ino = (out / "my_sketch.ino").read_text()
    assert "MicroMutableOpResolver<model_settings::kNumOps>" in ino and "kTensorArenaSize]" in ino
    assert "AddModelOps(g_resolver)" in ino and "BLE SCAN" in ino


def test_export_refuses_bad_input(convert_dir, tmp_path):
    with pytest.raises(TinyLocError, match="model_settings.h: missing"):
        (convert_dir / "model_settings.h").rename(tmp_path / "moved.h")
        sketch.export_sketch(convert_dir, tmp_path / "s1")
    (tmp_path / "moved.h").rename(convert_dir / "model_settings.h")
    with pytest.raises(TinyLocError, match="not a valid Arduino sketch name"):
        sketch.export_sketch(convert_dir, tmp_path / "my-sketch")
    sketch.export_sketch(convert_dir, tmp_path / "s2")
    with pytest.raises(TinyLocError, match="exists and is not empty"):
        sketch.export_sketch(convert_dir, tmp_path / "s2")
    sketch.export_sketch(convert_dir, tmp_path / "s2", overwrite=True)
    assert not (tmp_path / "s1").exists()


def test_cli(convert_dir, tmp_path, capsys):
    assert sketch.main([str(convert_dir), "--out", str(tmp_path / "cli_sketch")]) == 0
    assert (tmp_path / "cli_sketch" / "cli_sketch.ino").is_file()
    assert sketch.main([str(tmp_path / "nowhere"), "--out", str(tmp_path / "x")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "model_data.cc: missing" in err and err.count("\n") == 1


@pytest.mark.skipif(shutil.which("g++") is None and os.environ.get("CI", "").lower() not in ("1", "true", "yes"),
                    reason="g++ not installed")
def test_exported_non_tflm_parts_compile_and_run_on_host(convert_dir, tmp_path):
    out = sketch.export_sketch(convert_dir, tmp_path / "host_sketch")
    (tmp_path / "main.cpp").write_text(
        '#include <stdio.h>\n#include "model_data.h"\n#include "model_settings.h"\n#include "tinyloc_app.h"\n'
        "alignas(8) unsigned char w[tinyloc::AppWorkspaceBytesFor(model_settings::kWindow, "
        "model_settings::kNumFeatures, model_settings::kNumClasses)];\n"
        "static bool M(void*, const int8_t*, int8_t* o) { for (int i = 0; i < 40; ++i) o[i] = (i % 2) ? 100 : 0;"
        " return true; }\n"
        'static void P(void*, const char* l) { printf("%s\\n", l); }\n'
        "int main() { tinyloc::App a; if (a.Init(model_settings::kSettings, model_settings::kModelName, w, sizeof w,"
        " M, P, 0)) return 1;\n"
        '  const char* in = "reset\\n0,0,-50\\n3999,1,-60\\nend\\n"; while (*in) a.PutChar(*in++);\n'
        '  printf("%u\\n", g_model_len); return 0; }\n')
    exe = tmp_path / "prog"
    srcs = [out / "model_data.cpp", out / "tinyloc_core.cpp", out / "tinyloc_app.cpp", tmp_path / "main.cpp"]
    subprocess.run(["g++", "-std=c++11", "-Wall", "-Wextra", "-Werror", f"-I{out}", *map(str, srcs), "-o", str(exe)],
                   check=True, capture_output=True)
    lines = subprocess.run([str(exe)], capture_output=True, text=True, check=True).stdout.splitlines()
    # readings in steps 0 and 19 -> one window ending at step 19; the fake output favours class 1 everywhere
    assert lines == ["ready house_a T=20 F=3 C=2", "room 2 19 1 kitchen", "done 2 1 0", "768"]


def test_stm32_make_core_cross_compiles(convert_dir, tmp_path):
    tools = [t for t in ("arm-none-eabi-g++", "arm-none-eabi-size", "make") if shutil.which(t) is None]
    if tools:
        if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
            pytest.fail(f"CI: missing {tools}")
        pytest.skip(f"missing {tools}")
    out = sketch.export_sketch(convert_dir, tmp_path / "stm_sketch")
    res = subprocess.run(["make", "-C", str(out / "stm32"), "core"], capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stdout + res.stderr
    sizes = [ln.split() for ln in res.stdout.splitlines() if ln.strip()[:1].isdigit()]
    assert len(sizes) == 2 and all(int(s[1]) == 0 and int(s[2]) == 0 for s in sizes), res.stdout  # no static RAM
    res = subprocess.run(["make", "-C", str(out / "stm32")], capture_output=True, text=True, timeout=60)
    assert res.returncode != 0 and "set TFLM_TREE" in res.stdout + res.stderr
    assert all(500 < int(s[0]) < 8192 for s in sizes), sizes


# ------------------------------------------------------------------------------------------------------------------
# The sketch's own code, run on the host against STAND-IN declarations of the TFLM and Arduino APIs
# (tflm_app/core/tests/stub_tflm: test doubles, not TFLM; the fake "model" copies input[t][c % F] to output[t][c]).
STUB = ROOT / "tflm_app/core/tests/stub_tflm"


def _build(out: Path, tmp_path: Path, which: str, defs: list[str], tag: str) -> Path:
    if which == "arduino":
        main = tmp_path / f"sketch_{tag}.cpp"
        main.write_text('#include "Arduino.h"\n' + (out / f"{out.name}.ino").read_text())  # as the Arduino builder
        srcs = [main, STUB / "arduino_main.cpp"]
    else:
        srcs = [out / "stm32/main.cc", STUB / "stm32_board.cpp"]
    exe = tmp_path / f"{which}_{tag}"
    std = "-std=gnu++14" if which == "arduino" else "-std=c++17"  # the mbed Arduino core builds with gnu++14
    cmd = ["g++", std, "-Wall", "-Wextra", "-Werror", *defs, f"-I{STUB}", f"-I{out}", *map(str, srcs),
           str(out / "model_data.cpp"), str(out / "tinyloc_core.cpp"), str(out / "tinyloc_app.cpp"), "-o", str(exe)]
    res = subprocess.run(cmd, capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
    return exe


@pytest.mark.skipif(shutil.which("g++") is None and os.environ.get("CI", "").lower() not in ("1", "true", "yes"),
                    reason="g++ not installed")
@pytest.mark.parametrize("which", ["arduino", "stm32"])
def test_sketch_code_runs_against_stand_in_tflm(convert_dir, tmp_path, which):
    from keras_tinyloc.deploy import device

    out = sketch.export_sketch(convert_dir, tmp_path / "stub_sketch")
    st = export_c.read_device_settings(convert_dir)
    rng = np.random.default_rng(4)
    t = np.sort(rng.integers(0, 30_000, 400))
    ap, rssi = rng.integers(0, 3, 400), rng.integers(-100, -30, 400)
    session = "reset\n" + "".join(f"{a},{b},{c}\n" for a, b, c in zip(t, ap, rssi)) + "end\n"

    def run(exe):
        return subprocess.run([str(exe)], input=session, capture_output=True, text=True, timeout=30).stdout.splitlines()

    lines = run(_build(out, tmp_path, which, [], "ok"))
    x, ends = device.input_windows(st, t, ap, rssi)
    labels = device.decode(st, x[:, :, np.arange(st.n_classes) % st.n_features])[:, -1]
    rooms = [ln.split()[2:4] for ln in lines if ln.startswith("room ")]
    assert rooms == [[str(e), str(c)] for e, c in zip(ends, labels)] and len(rooms) > 10
    assert lines[0] == f"# arena used 1000 of {3000 + 256}" and "ready house_a T=20 F=3 C=2" in lines
    assert lines[-1] == f"done 400 {len(rooms)} 0"
    if which == "stm32":
        return
    for defs, want in [(["-DSTUB_OPS=3"], "error 0 E7 model_ops_mismatch the model uses UNKNOWN, which"),
                       (["-DSTUB_WRONG_OP"], "error 0 E7 model_ops_mismatch the model uses SOFTMAX, which"),
                       (["-DSTUB_IN_SCALE_FACTOR=2.0f"], "error 0 E5 model_input_mismatch"),
                       (["-DSTUB_OUT_C=3"], "error 0 E6 model_output_mismatch"),
                       (["-DSTUB_ARENA_NEEDED=100000"], "error 0 E4 bad_settings arena_too_small")]:
        lines = run(_build(out, tmp_path, which, defs, defs[0].split("=")[0][2:]))  # tag = macro name
        assert lines and lines[0].startswith(want) and not any(ln.startswith(("ready", "room")) for ln in lines)
        assert lines[0].endswith((")", "does not list")), lines[0]  # the whole message fits in the buffer
