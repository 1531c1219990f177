"""export-sketch: the assembled folder has the sketch, model files and core; its non-TFLM parts compile
(host g++ -Werror, and `make -C SKETCH/stm32 core` with arm-none-eabi-g++ for Cortex-M4).

Then the exported sketch, UNMODIFIED, against real TFLM (the kit's libraries, keras_tinyloc.deploy.tflm_kit): the
Arduino sketch through the Arduino shim and the STM32 main.cc through its own Makefile, for the host and for the
Cortex-M4 on QEMU mps2-an386, each replaying a recorded session (a simulated In-Home house's living_1 recording)
through ``replay`` over a pseudo-terminal: the board's room equals the Python pipeline's (device pre-processing, the
model in the host TFLM, CRF Viterbi) on every window. Setup errors with real TFLM (an op missing from the list, a
mismatched quantization or class count, a too-small arena, TFLM's own message on the M4). The streaming sketch with
a real step model, against its Python twin.
"""
from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import time
from pathlib import Path

import pytest

import numpy as np

from keras_tinyloc.deploy import export_c, sketch
from keras_tinyloc.errors import TinyLocError

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def tiny_int8(raw_int8):
    """A real full-int8 flatbuffer ``(1,20,3) -> (1,20,2)`` (one Dense) and its inspected I/O."""
    import keras

    from keras_tinyloc.deploy import tflite_inspect

    keras.utils.set_random_seed(0)
    inp = keras.Input((20, 3), batch_size=1)
    model = keras.Model(inp, keras.layers.Dense(2)(inp))
    buf = raw_int8(model, np.random.default_rng(0).uniform(0, 1, (16, 1, 20, 3)).astype(np.float32).reshape(16, 20, 3))
    return buf, tflite_inspect.inspect_tflite(buf)


@pytest.fixture
def convert_dir(tmp_path, tiny_int8):
    buf, info = tiny_int8
    d = tmp_path / "tflite-int8"
    d.mkdir()
    s = export_c.DeviceSettings(
        model_name="house_a", window=20, n_features=3, n_classes=2, class_names=["hall", "kitchen"],
        feature_names=["a", "b", "c"], scale_low=[-100.0] * 3, scale_high=[-40.0] * 3, fill_dbm=-120.0,
        input_scale=info.input().scale, input_zero_point=info.input().zero_point, output_scale=info.output().scale,
        output_zero_point=info.output().zero_point, transitions=[[0.5, -0.5], [-0.5, 0.5]], start=[0.0, 0.0],
        end=[0.0, 0.0], arena_bytes=3000, arena_margin_bytes=256, ops=list(info.op_types))
    export_c.write_model_data(d, buf)
    export_c.write_model_settings(d, s)
    (d / "model.tflite").write_bytes(buf)
    return d


def test_export_refuses_truncated_edited_or_mismatched_model_files(convert_dir, tmp_path, tiny_int8):
    cc, h = convert_dir / "model_data.cc", convert_dir / "model_settings.h"
    good_cc, good_h = cc.read_text(), h.read_text()
    cc.write_text(good_cc[: len(good_cc) // 2])
    with pytest.raises(TinyLocError) as exc:
        sketch.export_sketch(convert_dir, tmp_path / "s")
    assert str(exc.value) == f"{cc}: not a complete model array (truncated or edited?); run convert again"
    cc.write_text(good_cc)
    (convert_dir / "model.tflite").write_bytes(tiny_int8[0][:-4] + b"abcd")
    with pytest.raises(TinyLocError, match="model_data.cc: does not hold .*model.tflite"):
        sketch.export_sketch(convert_dir, tmp_path / "s")
    (convert_dir / "model.tflite").write_bytes(tiny_int8[0])
    h.write_text("")
    with pytest.raises(TinyLocError, match=r"model_settings.h: does not match .*device_settings.json \(truncated"):
        sketch.export_sketch(convert_dir, tmp_path / "s")
    h.write_text(good_h)
    settings = export_c.read_device_settings(convert_dir)
    export_c.write_model_settings(convert_dir, __import__("dataclasses").replace(settings, output_zero_point=3))
    with pytest.raises(TinyLocError, match="output quantization .* files from different conversions"):
        sketch.export_sketch(convert_dir, tmp_path / "s")
    assert not (tmp_path / "s").exists()


def test_export_layout_and_contents(convert_dir, tmp_path):
    out = sketch.export_sketch(convert_dir, tmp_path / "my_sketch")
    files = sorted(str(p.relative_to(out)) for p in out.rglob("*") if p.is_file())
    assert files == sorted([
        ".keras_tinyloc.json", "my_sketch.ino", "README.md", "model_data.cpp", "model_data.h", "model_settings.h", "tinyloc_core.h",
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
    assert lines == ["ready house_a T=20 F=3 C=2", "room 2 19 1 kitchen", "done 2 1 0",
                     str(len((convert_dir / "model.tflite").read_bytes()))]


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
# The exported sketch against real TFLM (host and Cortex-M4 on QEMU)
T, F, C, HOP = 20, 8, 4, 10  # house A: 8 APs, 4 rooms, 4 s windows every 2 s


@pytest.fixture(scope="module")
def recording(tmp_path_factory):
    """The living_1 recording of a small simulated house A (~70 s, ~2,200 readings), as replay reads it."""
    from keras_tinyloc.data.simulate import simulate_house
    from keras_tinyloc.deploy import replay

    d = tmp_path_factory.mktemp("house")
    house = simulate_house("A", d / "data", seed=0, scale=0.08)
    lines = replay.default_session(d, str(house / "experiments/living_1/rx_wearable_data.dat"))
    return lines


@pytest.fixture(scope="module")
def real_model(tmp_path_factory):
    """A real int8 model through convert for house A's shape (T=20, F=8, C=4): a gated per-step MLP
    (FULLY_CONNECTED, LOGISTIC, MUL) whose weights make the strongest of APs 0..3 the room, so that the rooms of the
    recording vary; and a convert-like folder. (The Mamba's 16 op types run on the M4 in tests/deploy/test_m4.py.)"""
    import keras

    from keras_tinyloc.deploy import convert, tflite_inspect, tflm

    keras.utils.set_random_seed(3)
    rng = np.random.default_rng(3)
    inp = keras.Input((T, F))
    hidden, gate, out = keras.layers.Dense(C, activation="relu"), keras.layers.Dense(C, activation="sigmoid"), \
        keras.layers.Dense(C)
    em = keras.Model(inp, out(keras.layers.Multiply()([hidden(inp), gate(inp)])))
    pick = np.zeros((F, C), np.float32)
    pick[np.arange(C), np.arange(C)] = 1.0
    hidden.set_weights([pick + rng.normal(0, 0.05, pick.shape).astype(np.float32), np.zeros(C, np.float32)])
    gate.set_weights([rng.normal(0, 0.3, (F, C)).astype(np.float32), np.full(C, 2.0, np.float32)])
    out.set_weights([8.0 * np.eye(C, dtype=np.float32), np.zeros(C, np.float32)])
    x = rng.uniform(0, 1, (96, T, F)).astype(np.float32)
    buf = convert.strip_tensor_names(convert.convert_emitter(em, "int8", x, n_calibration=96))
    info = tflite_inspect.inspect_tflite(buf)
    st = export_c.DeviceSettings(
        model_name="house_a_test", window=T, n_features=F, n_classes=C, hop=HOP,
        class_names=["foyer", "bedroom", "living", "bath"], feature_names=[f"ap{i}" for i in range(F)],
        scale_low=[-105.0] * F, scale_high=[-45.0] * F, fill_dbm=-120.0,
        input_scale=info.input().scale, input_zero_point=info.input().zero_point,
        output_scale=info.output().scale, output_zero_point=info.output().zero_point,
        transitions=(rng.normal(0, 0.3, (C, C)) + np.eye(C)).tolist(), start=[0.0] * C, end=[0.0] * C,
        arena_bytes=tflm.minimal_arena(buf).arena_bytes, arena_margin_bytes=256,
        ops=tflite_inspect.summary(info)["op_types"])
    d = tmp_path_factory.mktemp("real_convert")
    export_c.write_model_data(d, buf)
    (d / "model.tflite").write_bytes(buf)
    return buf, st, d


def _sketch_for(tmp_path: Path, buf: bytes, st: export_c.DeviceSettings, name: str = "tinyloc_real") -> Path:
    conv = tmp_path / f"conv_{name}"
    conv.mkdir()
    export_c.write_model_data(conv, buf)
    export_c.write_model_settings(conv, st)
    return sketch.export_sketch(conv, tmp_path / name)


def _replay_all(port: str, st, lines, buf):
    from keras_tinyloc.deploy import replay

    from keras_tinyloc.deploy import tflm

    link = replay.BoardLink(port)
    try:  # the host side: device pre-processing, the model in the host TFLM wheel, CRF Viterbi
        return replay.replay(link, st, lines, lambda x: tflm.run_tflm(buf, x)[0], timeout=60)
    finally:
        link.close()


def _check_every_window(res, lines):
    assert res.board_errors == [] and res.expected_errors == [] and res.lines_sent == len(lines)
    assert len(res.host_rooms) >= 25 and res.board_rooms == res.host_rooms and res.agreement == 1.0
    assert len(set(res.host_rooms.values())) > 1  # the rooms vary: the decoding is exercised


@contextlib.contextmanager
def _host_board(exe: Path):
    """A host build of a sketch behind a pseudo-terminal: yields the port replay opens."""
    import tty

    master, slave = os.openpty()
    tty.setraw(slave)
    proc = subprocess.Popen([str(exe)], stdin=master, stdout=master, stderr=subprocess.DEVNULL, close_fds=True)
    try:
        yield os.ttyname(slave)
    finally:
        proc.kill()
        proc.wait()
        os.close(master)
        os.close(slave)


@pytest.mark.parametrize("app", ["arduino", "stm32"])
def test_sketch_on_host_tflm_replays_the_recording(real_model, recording, host_lib, tmp_path, app):
    """The .ino (through the shim) and stm32/main.cc (stdio board), unmodified, against the host TFLM library."""
    from keras_tinyloc.deploy import firmware

    buf, st, _ = real_model
    sk = _sketch_for(tmp_path, buf, st)
    fw = firmware.build(app, sk, host_lib, tmp_path / "build")
    with _host_board(fw.path) as port:
        res = _replay_all(port, st, recording, buf)
    _check_every_window(res, recording)


def _first_lines(exe: Path, n: int = 1, timeout: float = 20.0) -> list[str]:
    """Start a host build with no input; the first ``n`` lines it prints (a failed setup prints and repeats)."""
    import select

    proc = subprocess.Popen([str(exe)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    out, deadline = b"", time.monotonic() + timeout
    try:
        while out.count(b"\n") < n and time.monotonic() < deadline:
            if select.select([proc.stdout], [], [], 0.2)[0]:
                out += os.read(proc.stdout.fileno(), 4096)
    finally:
        proc.kill()
        proc.wait()
    return [ln.rstrip("\r") for ln in out.decode().splitlines()[:n]]


@pytest.mark.parametrize("change, want", [
    (lambda st: {"ops": [o for o in st.ops if o != "MUL"]},
     "error 0 E7 model_ops_mismatch the model uses MUL, which model_settings.h does not list"),
    (lambda st: {"input_scale": 2 * st.input_scale}, "error 0 E5 model_input_mismatch"),
    (lambda st: {"n_classes": C + 1, "class_names": st.class_names + ["attic"], "start": [0.0] * (C + 1),
                 "end": [0.0] * (C + 1), "transitions": np.eye(C + 1).tolist()}, "error 0 E6 model_output_mismatch"),
    (lambda st: {"arena_bytes": 1536, "arena_margin_bytes": 0}, "error 0 E4 bad_settings arena_too_small"),
])
def test_arduino_sketch_setup_errors_with_real_tflm(real_model, host_lib, tmp_path, change, want):
    """model_settings.h that does not describe model_data (copied from another conversion into the sketch folder:
    export-sketch itself refuses such a pair): the board says so at boot, naming the mismatch."""
    import dataclasses

    from keras_tinyloc.deploy import firmware

    buf, st, _ = real_model
    sk = _sketch_for(tmp_path, buf, st)
    (sk / "model_settings.h").write_text(export_c.model_settings_source(dataclasses.replace(st, **change(st))))
    fw = firmware.build("arduino", sk, host_lib, tmp_path / "build")
    lines = _first_lines(fw.path)
    assert lines and lines[0].startswith(want), lines
    assert lines[0].endswith((")", "list", "convert dir)")), lines[0]  # the whole message fits the line buffer


def test_without_op_names_the_unknown_op_is_named_by_its_code(real_model, host_lib, tmp_path):
    """stm32/main.cc built with -DTINYLOC_NO_OP_NAMES (no TFLM op-name table in flash): the same E7 check, the op
    named by its builtin code (MUL = 18 in tensorflow/lite/schema/schema.fbs)."""
    import dataclasses

    from keras_tinyloc.deploy import firmware

    buf, st, _ = real_model
    assert "MUL" in st.ops
    sk = _sketch_for(tmp_path, buf, st)
    (sk / "model_settings.h").write_text(export_c.model_settings_source(
        dataclasses.replace(st, ops=[o for o in st.ops if o != "MUL"])))
    fw = firmware.build("stm32", sk, host_lib, tmp_path / "build", app_defs=("-DTINYLOC_NO_OP_NAMES",))
    assert _first_lines(fw.path) == [
        "error 0 E7 model_ops_mismatch the model uses builtin op 18, which model_settings.h does not list"]


def _stm32_elf(sk: Path, lib, tmp_path: Path) -> Path:
    """The sketch's own stm32/Makefile, with the cached TFLM library and the QEMU board files (no CubeMX here)."""
    board = ROOT / "tflm_app/boards/mps2_an386"
    build = tmp_path / "stm32_build"
    res = subprocess.run(
        ["make", "-C", str(sk / "stm32"), f"BUILD={build}", f"TFLM_TREE={lib.kit}", f"TFLM_LIB={lib.path}",
         f"STARTUP={board / 'startup.c'}", f"LDSCRIPT={board / 'mps2_an386.ld'}",
         f"BOARD_SRCS={board / 'board_uart.c'}"], capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    return build / "tflm_app.elf"


def test_stm32_main_on_m4_qemu_replays_the_recording(real_model, recording, m4_lib, tmp_path):
    """stm32/main.cc built by the sketch's own Makefile against real TFLM (CMSIS-NN), on QEMU, UART on a pty."""
    import dataclasses

    from keras_tinyloc.deploy import m4, qemu

    buf, st, _ = real_model
    probe = m4.build_probe(buf, m4_lib, tmp_path)
    dev_arena = m4.minimal_arena(probe.path).arena_bytes
    sk = _sketch_for(tmp_path, buf, dataclasses.replace(st, arena_device_bytes=dev_arena))  # the M4 arena + margin
    elf = _stm32_elf(sk, m4_lib, tmp_path)
    with qemu.SerialBoard(elf) as board:
        res = _replay_all(board.port, st, recording, buf)
    _check_every_window(res, recording)


def test_tflm_messages_reach_the_uart_on_the_m4(real_model, m4_lib, tmp_path):
    """main.cc registers TFLM's debug-log callback: a too-small arena is reported with TFLM's own reason."""
    import dataclasses

    from keras_tinyloc.deploy import qemu
    from keras_tinyloc.deploy.replay import BoardLink

    buf, st, _ = real_model
    sk = _sketch_for(tmp_path, buf, dataclasses.replace(st, arena_device_bytes=1024, arena_margin_bytes=0))
    elf = _stm32_elf(sk, m4_lib, tmp_path)
    with qemu.SerialBoard(elf, paused=True) as board:  # paused: the boot lines reach the port
        link = BoardLink(board.port)
        got: list[str] = []
        try:
            board.resume()
            link.wait_for("error 0 ", 20, got)
            link.send("reset")  # a board whose setup failed answers every line with the reason
            again = link.wait_for("error 0 ", 20, got)
        finally:
            link.close()
    assert got[-1] == again and again.startswith("error 0 E4 bad_settings arena_too_small")
    assert any(ln.startswith("# tflm: Failed to ") for ln in got), got  # TFLM's own reason, via the log callback


def test_arduino_sketch_on_m4_qemu_replays_the_recording(real_model, recording, m4_lib, tmp_path):
    """The .ino through the Arduino shim (Serial on the emulated UART), for the M4."""
    import dataclasses

    from keras_tinyloc.deploy import firmware, m4, qemu

    buf, st, _ = real_model
    probe = m4.build_probe(buf, m4_lib, tmp_path)
    dev_arena = m4.minimal_arena(probe.path).arena_bytes
    sk = _sketch_for(tmp_path, buf, dataclasses.replace(st, arena_device_bytes=dev_arena))
    fw = firmware.build("arduino", sk, m4_lib, tmp_path / "build")
    with qemu.SerialBoard(fw.path) as board:
        res = _replay_all(board.port, st, recording, buf)
    _check_every_window(res, recording)


# ------------------------------------------------------------------------------------------------------------------
# The streaming sketch (tflm_app_stream.ino through the shim) with a real int8 step model


@pytest.fixture(scope="module")
def step_model(tmp_path_factory):
    """An int8 Mamba step model for house A's shape, its io map, and a streaming model folder (window 1, hop 1)."""
    import keras

    from keras_tinyloc.deploy import export_stream, streaming, tflite_inspect, tflm
    from keras_tinyloc.models.mamba import build_mamba_emitter, calibrate_state_scales
    from keras_tinyloc.models.mamba_step import build_step_model, state_shapes_from_model

    keras.utils.set_random_seed(4)
    em = build_mamba_emitter((T, F), C, 8, 1)
    rng = np.random.default_rng(4)
    x = rng.uniform(0, 1, (48, T, F)).astype(np.float32)
    calibrate_state_scales(em, x)
    step = build_step_model(em)
    buf, io = streaming.convert_step_model(step, x, n_windows=24, n_calibration=200)
    xq, eq = io["input_q"][io["inputs"].index("x_t")], io["output_q"][io["outputs"].index("emissions")]
    st = export_c.DeviceSettings(
        model_name="house_a_stream", window=1, hop=1, n_features=F, n_classes=C,
        class_names=["foyer", "bedroom", "living", "bath"], feature_names=[f"ap{i}" for i in range(F)],
        scale_low=[-105.0] * F, scale_high=[-45.0] * F, fill_dbm=-120.0, input_scale=xq[0], input_zero_point=xq[1],
        output_scale=eq[0], output_zero_point=eq[1], transitions=(rng.normal(0, 0.3, (C, C)) + np.eye(C)).tolist(),
        start=[0.0] * C, end=[0.0] * C, arena_bytes=tflm.minimal_arena(buf).arena_bytes, arena_margin_bytes=256,
        ops=tflite_inspect.summary(tflite_inspect.inspect_tflite(buf))["op_types"])
    lag = 3
    d = tmp_path_factory.mktemp("stream_model")
    export_c.write_model_data(d, buf)
    export_c.write_model_settings(d, st)
    sizes = {name: int(np.prod(shape)) for name, shape in state_shapes_from_model(step)}
    export_stream.write_step_settings(d, io, sizes, lag, st.model_name)
    return buf, io, st, lag, d


def _stream_twin(buf, io, st, lag, t, ap, rssi, stagger=0) -> list[tuple[int, int]]:
    """(step, room) the streaming sketch prints: device pre-processing (window 1), the step model in the host TFLM
    wheel with the states requantized and fed back, fixed-lag Viterbi, then the last ``lag`` steps at ``end``.
    ``stagger`` = TINYLOC_STAGGER: two state sets reset every ``stagger`` steps, half a period apart; each step's
    emissions from the set with at least half a period of context (as the sketch's RunStep)."""
    from tflite_micro.python.tflite_micro import runtime

    from keras_tinyloc.deploy import device, tflm
    from keras_tinyloc.deploy.quantize import dequantize
    from keras_tinyloc.deploy.streaming import requantize
    from keras_tinyloc.models.online_crf import OnlineViterbi, flush_tail

    x, _ = device.input_windows(st, t, ap, rssi)
    with tflm.capture_fd(2):
        it = runtime.Interpreter.from_bytes(buf, arena_size=256 * 1024)
    shapes = [tuple(it.get_input_details(i)["shape"]) for i in range(len(io["inputs"]))]

    def zero():
        return {n: np.full(shapes[i], io["input_q"][i][1], np.int8) for i, n in enumerate(io["inputs"]) if n != "x_t"}

    def step(row, states):
        for i, name in enumerate(io["inputs"]):
            it.set_input(row.reshape(shapes[i]) if name == "x_t" else states[name], i)
        it.invoke()
        outs = [np.array(it.get_output(j), copy=True) for j in range(len(io["outputs"]))]
        for j, name in enumerate(io["outputs"]):
            if name != "emissions":
                i = io["inputs"].index(name)
                states[name] = requantize(outs[j], io["output_q"][j], io["input_q"][i]).reshape(shapes[i])
        return outs[io["outputs"].index("emissions")].reshape(-1)

    sets = [zero(), zero()]
    dec = OnlineViterbi(np.array(st.transitions), np.array(st.start), np.array(st.end), lag=lag)
    rooms = []
    for k, row in enumerate(x[:, 0, :]):
        if stagger:
            half, ems = stagger // 2, [None, None]
            for j, off in enumerate((0, half)):
                if k >= off:
                    if (k - off) % stagger == 0:
                        sets[j] = zero()
                    ems[j] = step(row, sets[j])
            em = ems[0] if (k < half or k % stagger >= half) else ems[1]
        else:
            em = step(row, sets[0])
        r = dec.push(dequantize(em, st.output_scale, st.output_zero_point))
        if r is not None:
            rooms.append((int(r[0]), int(r[1])))
    tail = flush_tail(dec, len(x))
    return rooms + [(i, int(tail[i])) for i in range(len(x) - lag, len(x))]


@pytest.mark.parametrize("target, stagger", [("host", 0), ("host", 8), ("m4", 0)])
def test_stream_sketch_with_a_real_step_model(step_model, recording, tmp_path, request, target, stagger):
    from keras_tinyloc.deploy import firmware, qemu, replay

    lib = request.getfixturevalue("host_lib" if target == "host" else "m4_lib")
    buf, io, st, lag, d = step_model
    sk = sketch.export_sketch(d, tmp_path / "tinyloc_stream")
    assert (sk / "tinyloc_stream.ino").read_bytes() == (
        ROOT / "tflm_app/arduino/tflm_app_stream/tflm_app_stream.ino").read_bytes()
    fw = firmware.build("stream", sk, lib, tmp_path / "build", app_defs=(f"-DTINYLOC_STAGGER={stagger}",))
    _, t, ap, rssi = replay.expected_errors(st, recording)
    want = _stream_twin(buf, io, st, lag, t, ap, rssi, stagger)
    board = _host_board(fw.path) if target == "host" else qemu.SerialBoard(fw.path)
    with board as b:
        link = replay.BoardLink(b if target == "host" else b.port)
        got: list[str] = []
        try:
            link.send("reset")
            ready = link.wait_for("ready", 20, got)
            for ln in recording:
                link.send(ln.text)
            link.send("end")
            link.wait_for("done", 120, got)
        finally:
            link.close()
    assert ready.startswith(f"ready house_a_stream stream F={F} C={C} lag={lag} stagger={stagger} arena=")
    assert int(ready.rsplit("=", 1)[1]) == st.arena_bytes + 256  # the arena it declares, not arena_used_bytes()
    rooms = [tuple(int(v) for v in ln.split()[1:3]) for ln in got if ln.startswith("room ")]
    assert rooms == want and len(rooms) > 300 and len({r for _, r in rooms}) > 1
    assert got[-1] == f"done {len(recording)} {len(want)} 0"
