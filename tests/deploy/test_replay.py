"""replay over a pseudo-terminal, against a TEST DOUBLE of the board's serial side.

The double (tflm_app/core/tests/serial_double.cpp) is the real protocol code (tinyloc_app) and the real core
compiled for the host, with a FAKE model: output[t][c] = input[t][c % F]. It stands in for the serial link and the
board, not for the model: the host side here uses the same fake (``fake_predict``), so agreement checks the
pre-processing, the protocol and the decoding end to end. ``--flip-every N`` makes the double disagree on purpose.
"""
from __future__ import annotations

import importlib.util
import json
import os
import re
import shutil
import subprocess
import tty
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings as hsettings, strategies as st_

from keras_tinyloc.deploy import device, replay
from keras_tinyloc.errors import TinyLocError
from keras_tinyloc.deploy.export_c import read_device_settings

ROOT = Path(__file__).resolve().parents[2]
_spec = importlib.util.spec_from_file_location("harness_data", ROOT / "tflm_app/core/tests/harness_data.py")
hd = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(hd)

# Skipped only off CI: under CI (.ci/run installs g++) a missing compiler must fail.
pytestmark = pytest.mark.skipif(shutil.which("g++") is None and os.environ.get("CI", "").lower() not in ("1", "true", "yes"),
                                reason="g++ not installed")
pytest.importorskip("serial")


@pytest.fixture(scope="module")
def board(tmp_path_factory):
    """Settings, their convert-like dir, and the compiled serial double."""
    d = tmp_path_factory.mktemp("double")
    rng = np.random.default_rng(5)
    st = hd.make_settings(rng, window=8, n_features=4, n_classes=3, hop=4)
    hd.write_harness(d, st, [], [], [])  # writes model_settings.h + device_settings.json
    exe = hd.host_compile(d, [ROOT / "tflm_app/core/tinyloc_app.cpp", ROOT / "tflm_app/core/tests/serial_double.cpp"],
                          exe="double")
    return st, d, exe


def fake_predict(settings):
    def predict(x):
        idx = np.arange(settings.n_classes) % settings.n_features
        return x[:, :, idx]
    return predict


def start_double(exe, *args):
    master, slave = os.openpty()
    tty.setraw(slave)
    proc = subprocess.Popen([str(exe), *args], stdin=master, stdout=master, close_fds=True)
    return proc, master, slave, os.ttyname(slave)


def run_replay(exe, settings, lines, *args):
    proc, master, slave, port = start_double(exe, *args)
    link = replay.BoardLink(port)
    try:
        return replay.replay(link, settings, lines, fake_predict(settings), timeout=10)
    finally:
        link.close()
        proc.kill()
        proc.wait()
        os.close(master)
        os.close(slave)


def session(rng, n=500):
    t, ap, rssi = hd.make_readings(rng, 4, n=n, t0=10_000)
    return t, ap, rssi


def test_replay_agrees_with_host_over_pty(board, tmp_path):
    st, d, exe = board
    assert read_device_settings(d) == st
    rng = np.random.default_rng(0)
    t, ap, rssi = session(rng)
    lines = replay.session_from_arrays(t, ap, rssi, "rec")
    res = run_replay(exe, st, lines)
    # independent host expectation: the pipeline's windows, the fake model, crf-style Viterbi
    x, ends = device.input_windows(st, t, ap, rssi)
    labels = device.decode(st, fake_predict(st)(x))[:, -1]
    assert res.host_rooms == {int(e): int(lab) for e, lab in zip(ends, labels)}
    assert len(res.host_rooms) > 50 and len(set(res.host_rooms.values())) > 1
    assert res.board_rooms == res.host_rooms and res.agreement == 1.0
    assert res.board_errors == [] and res.lines_sent == len(t)
    text = replay.report(res, st)
    assert f"agreement: {len(ends)}/{len(ends)} windows = 100.0%" in text


def test_replay_reports_disagreement_and_names_bad_lines(board, tmp_path):
    st, d, exe = board
    rng = np.random.default_rng(1)
    t, ap, rssi = session(rng, n=300)
    rows = [f"{a},{b},{c}" for a, b, c in zip(t, ap, rssi)]
    rows.insert(10, f"{t[9]},9,-50")  # AP out of range -> file line 12 (after the header)
    rows.insert(20, f"{t[18]},1,5")  # RSSI > 0 -> line 22
    rows.insert(30, f"{t[27] - 5},1,-50")  # time going backwards -> line 32
    rows.insert(40, "hello,world")  # not a reading -> line 42
    f = tmp_path / "session.csv"
    f.write_text("time_ms,ap,rssi\n" + "\n".join(rows) + "\n")
    lines = replay.read_session_file(f)
    res = run_replay(exe, st, lines, "--flip-every", "3")
    want_err = [(f"{f}:12", 1), (f"{f}:22", 3), (f"{f}:32", 2), (f"{f}:42", 10)]
    assert [e[:2] for e in res.board_errors] == want_err == [e[:2] for e in res.expected_errors]
    # every 3rd window the double answers room (window index % C); count the host windows that differ
    x, ends = device.input_windows(st, t, ap, rssi)
    host = device.decode(st, fake_predict(st)(x))[:, -1]
    flipped = np.arange(len(ends)) % 3 == 2
    board_expect = np.where(flipped, np.arange(len(ends)) % st.n_classes, host)
    assert res.board_rooms == {int(e): int(b) for e, b in zip(ends, board_expect)}
    assert res.agree == int((board_expect == host).sum()) < len(ends)
    text = replay.report(res, st)
    assert f"{f}:22: board rejected the line: E3 rssi_out_of_range" in text
    assert f"agreement: {res.agree}/{len(ends)} windows" in text


def test_replay_refuses_a_board_with_another_model(board):
    st, d, exe = board
    other = hd.make_settings(np.random.default_rng(2), window=8, n_features=5, n_classes=3, hop=4)
    lines = replay.session_from_arrays([0, 10], [0, 1], [-50, -60], "rec")
    with pytest.raises(TinyLocError, match="F=5"):
        run_replay(exe, other, lines)


def test_replay_reports_a_board_that_failed_setup(board):
    st, d, exe = board
    proc, master, slave, port = start_double(exe, "--setup-error")
    link = replay.BoardLink(port)
    try:
        with pytest.raises(TinyLocError, match="no 'ready' line .* it said 'error 0 E7 model_ops_mismatch"):
            replay.replay(link, st, replay.session_from_arrays([0], [0], [-50], "rec"), fake_predict(st), timeout=1)
    finally:
        link.close()
        proc.kill()
        proc.wait()
        os.close(master)
        os.close(slave)


def test_session_file_errors(tmp_path):
    with pytest.raises(TinyLocError, match="cannot read session"):
        replay.read_session_file(tmp_path / "missing.csv")
    (tmp_path / "s.csv").write_text("1,2,3\nend\n")
    with pytest.raises(TinyLocError, match=r"s.csv:2: 'end' is a protocol command"):
        replay.read_session_file(tmp_path / "s.csv")
    (tmp_path / "e.csv").write_text("# nothing\n\n")
    with pytest.raises(TinyLocError, match="no readings"):
        replay.read_session_file(tmp_path / "e.csv")


def test_cli_names_missing_convert_dir(tmp_path, capsys):
    assert replay.main([str(tmp_path), "--port", "/dev/null"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "device_settings.json: not found" in err and err.count("\n") == 1


@pytest.mark.parametrize("flip, want_rc", [((), 0), (("--flip-every", "2"), 1)])
def test_cli_end_to_end(board, tmp_path, monkeypatch, capsys, flip, want_rc):
    """The CLI wiring: device_settings.json from --convert-dir, --session, --port, report, --min-agreement.
    The host model is replaced by the same fake the double runs (TFLM on a real model is convert's business)."""
    st, d, exe = board
    t, ap, rssi = session(np.random.default_rng(3), n=200)
    f = tmp_path / "s.csv"
    f.write_text("".join(f"{a},{b},{c}\n" for a, b, c in zip(t, ap, rssi)))
    monkeypatch.setattr(replay, "tflm_predict", lambda path, settings=None: fake_predict(st))
    proc, master, slave, port = start_double(exe, *flip)
    try:
        rc = replay.main([str(tmp_path / "run"), "--port", port, "--convert-dir", str(d), "--session", str(f),
                          "--min-agreement", "0.99"])
    finally:
        proc.kill()
        proc.wait()
        os.close(master)
        os.close(slave)
    out = capsys.readouterr().out
    n = len(device.input_windows(st, t, ap, rssi)[1])
    assert rc == want_rc and f"sent {len(t)} readings" in out
    if not flip:
        assert f"agreement: {n}/{n} windows = 100.0%" in out
    else:
        assert "window ending at step" in out and f"/{n} windows" in out


@pytest.fixture(scope="module")
def real_model(tmp_path_factory):
    """A real int8 emitter (Dense-ReLU-Dense on (T=8, F=4) -> C=3) converted by keras_tinyloc.deploy.convert, and settings
    carrying its quantization."""
    keras = pytest.importorskip("keras")
    from keras_tinyloc.deploy import convert

    rng = np.random.default_rng(7)
    T, F, C = 8, 4, 3
    inp = keras.Input((T, F))
    hidden = keras.layers.Dense(6, activation="relu")
    out = keras.layers.Dense(C)
    emitter = keras.Model(inp, out(hidden(inp)))
    # weights that make the strongest of APs 1..C the room (so decoded rooms vary; AP 0 is constant in
    # make_settings), plus random noise
    w1 = np.zeros((F, 6), np.float32)
    w1[np.arange(C) + 1, np.arange(C)] = 1.0
    w2 = np.zeros((6, C), np.float32)
    w2[np.arange(C), np.arange(C)] = 8.0
    hidden.set_weights([w1 + rng.normal(0, 0.1, w1.shape).astype(np.float32), np.zeros(6, np.float32)])
    out.set_weights([w2 + rng.normal(0, 0.1, w2.shape).astype(np.float32), np.zeros(C, np.float32)])
    buf = convert.convert_emitter(emitter, "int8", rng.uniform(0, 1, (64, T, F)).astype(np.float32), n_calibration=64)
    from ai_edge_litert import interpreter as litert

    it = litert.Interpreter(model_content=buf)
    (in_s, in_z), (out_s, out_z) = it.get_input_details()[0]["quantization"], it.get_output_details()[0]["quantization"]
    st = hd.make_settings(rng, window=T, n_features=F, n_classes=C, hop=4)
    st.input_scale, st.input_zero_point, st.output_scale, st.output_zero_point = in_s, in_z, out_s, out_z
    d = tmp_path_factory.mktemp("real_model")
    (d / "model.tflite").write_bytes(buf)
    return st, buf, d


def test_host_rooms_with_a_real_int8_model_in_tflm(real_model):
    """replay's host side with a real converted int8 model: TFLM (tflm_predict, what the CLI uses) gives the rooms
    that LiteRT's int8 outputs give through device.decode, on the device pipeline's windows."""
    from keras_tinyloc.deploy import tflm

    st, buf, d = real_model
    t, ap, rssi = session(np.random.default_rng(8), n=300)
    got = replay.host_rooms(st, t, ap, rssi, replay.tflm_predict(d / "model.tflite"))
    x, ends = device.input_windows(st, t, ap, rssi)
    y, _ = tflm.run_litert(buf, x)
    assert got == {int(e): int(lab[-1]) for e, lab in zip(ends, device.decode(st, y))} and len(got) == len(ends) > 20
    assert len(set(got.values())) == st.n_classes


def test_replay_against_the_core_running_the_real_model_in_tflm(real_model, tmp_path):
    """The board minus the hardware: the C++ core and protocol (shared library, app_capi.cpp) behind a
    pseudo-terminal, with the model callback running the real int8 model in TFLM's host interpreter. Replay must
    agree on every window with its own host prediction (Python pipeline + TFLM + Viterbi)."""
    import ctypes
    import select
    import threading

    from keras_tinyloc.deploy import tflm

    st, buf, d = real_model
    hd.write_harness(tmp_path, st, [], [], [])
    so = tmp_path / "libtinyloc_app.so"
    cmd = ["g++", "-std=c++11", "-shared", "-fPIC", "-Wall", "-Wextra", "-Werror", f"-I{ROOT / 'tflm_app/core'}",
           f"-I{tmp_path}", *(str(ROOT / "tflm_app/core" / f) for f in ("tinyloc_core.cpp", "tinyloc_app.cpp",
                                                                         "tests/app_capi.cpp")), "-o", str(so)]
    subprocess.run(cmd, check=True, capture_output=True)
    lib = ctypes.CDLL(str(so))
    master, slave = os.openpty()
    tty.setraw(slave)
    T, F, C = st.window, st.n_features, st.n_classes
    invokes = []

    @ctypes.CFUNCTYPE(ctypes.c_bool, ctypes.c_void_p, ctypes.POINTER(ctypes.c_int8), ctypes.POINTER(ctypes.c_int8))
    def model(_ctx, inp, out):
        x = np.ctypeslib.as_array(inp, (T * F,)).reshape(1, T, F).copy()
        y, _ = tflm.run_tflm(buf, x)
        ctypes.memmove(out, np.ascontiguousarray(y, np.int8).ctypes.data, T * C)
        invokes.append(1)
        return True

    @ctypes.CFUNCTYPE(None, ctypes.c_void_p, ctypes.c_char_p)
    def emit(_ctx, line):
        os.write(master, line + b"\r\n")

    stop = threading.Event()

    def board():
        while not stop.is_set():
            if select.select([master], [], [], 0.05)[0]:
                data = os.read(master, 4096)
                lib.tl_put(data, len(data))

    assert lib.tl_init(model, emit) == 0
    thread = threading.Thread(target=board, daemon=True)
    thread.start()
    t, ap, rssi = session(np.random.default_rng(9), n=250)
    link = replay.BoardLink(os.ttyname(slave))
    try:
        res = replay.replay(link, st, replay.session_from_arrays(t, ap, rssi, "rec"),
                            replay.tflm_predict(d / "model.tflite"), timeout=30)
    finally:
        link.close()
        stop.set()
        thread.join(timeout=2)
        os.close(master)
        os.close(slave)
    assert len(res.host_rooms) > 20 and len(invokes) == len(res.board_rooms)
    assert res.board_rooms == res.host_rooms and res.agreement == 1.0 and res.board_errors == []
    assert len(set(res.host_rooms.values())) == C  # every room comes up: the decoding is exercised


def test_default_session_is_the_first_living_recording_of_the_house(tmp_path):
    """Without --session: the run's In-Home house (here a small simulated copy in the published layout)."""
    from keras_tinyloc.data import inhome
    from keras_tinyloc.data.simulate import simulate_house

    house = simulate_house("A", tmp_path / "data", seed=0, scale=0.02)
    run = tmp_path / "run"
    run.mkdir()
    (run / "config.json").write_text(json.dumps({"dataset": "house-a", "data_dir": str(tmp_path / "data")}))
    lines = replay.default_session(run, None)
    rx = house / "experiments" / "living_1" / "rx_wearable_data.dat"
    t, ap, rssi = inhome.read_rx(rx, inhome.read_metadata(house).ap_ids)
    order = np.argsort(t, kind="stable")
    assert [ln.text for ln in lines] == [f"{t[i]},{ap[i]},{int(np.rint(rssi[i]))}" for i in order]
    assert lines[0].where == f"{rx}:reading {order[0] + 1}" and len(lines) == len(t) > 100
    assert [ln.text for ln in replay.default_session(run, str(rx))] == [ln.text for ln in lines]
    (run / "config.json").write_text(json.dumps({"dataset": "uji"}))
    with pytest.raises(TinyLocError, match="dataset 'uji' has no recorded BLE session here; give --session"):
        replay.default_session(run, None)


# ------------------------------------------------------------------------------------------------ issue 13
def test_replay_far_future_jump_agrees_and_stays_bounded(board):
    """The issue's line ``999999999999,0,-50`` inside a session: board and host both restart the stream at the jump
    (a gap longer than max(T, 20) steps), agree on every window, and neither runs the model for the 31 years."""
    st, d, exe = board
    t, ap, rssi = session(np.random.default_rng(21), n=300)
    t = np.concatenate([t[:150], t[150:] - t[150] + 999_999_999_999])
    lines = replay.session_from_arrays(t, ap, rssi, "jump")
    res = run_replay(exe, st, lines)
    assert res.agreement == 1.0 and res.board_rooms == res.host_rooms and res.board_errors == []
    assert 40 < len(res.host_rooms) < 300 and max(res.host_rooms) < 10_000  # step numbers of the readings' own time
    assert res.seconds < 10


def _mutated(buf: bytes, edit) -> bytes:
    import flatbuffers

    from keras_tinyloc.deploy import tflite_inspect

    schema = tflite_inspect._schema()
    model = schema.ModelT.InitFromObj(schema.Model.GetRootAsModel(bytearray(buf), 0))
    edit(model)
    b = flatbuffers.Builder(1024)
    b.Finish(model.Pack(b), file_identifier=b"TFL3")
    return bytes(b.Output())


@pytest.mark.parametrize("kind, message", [
    ("garbage", r"not a valid \.tflite flatbuffer"),
    ("truncated", r"not a valid \.tflite flatbuffer"),
    ("op_input_out_of_range", r"TFLM cannot build and run this model"),  # parses, but crashes TFLM in-process
    ("other_model", r"E5 model_input_mismatch: the model does not match its device settings"),
])
def test_cli_corrupt_model_is_a_one_line_error(real_model, tmp_path, capsys, kind, message):
    """replay checks the model before it opens the port: one line, exit 2, never a traceback or a crash."""
    from keras_tinyloc.deploy import export_c

    st, buf, _ = real_model
    conv = tmp_path / "conv"
    conv.mkdir()
    if kind == "other_model":
        st = export_c.DeviceSettings(**{**st.__dict__, "window": st.window + 1})
    export_c.write_model_settings(conv, st)
    model = {"garbage": bytes(np.random.default_rng(0).integers(0, 256, len(buf), dtype=np.uint8)),
             "truncated": buf[: len(buf) // 2],
             "op_input_out_of_range": _mutated(buf, lambda m: m.subgraphs[0].operators[0].inputs.__setitem__(0, 999)),
             "other_model": buf}[kind]
    (conv / "model.tflite").write_bytes(model)
    (tmp_path / "s.csv").write_text("1000,0,-50\n")
    rc = replay.main([str(tmp_path), "--port", str(tmp_path / "no-such-port"), "--convert-dir", str(conv),
                      "--session", str(tmp_path / "s.csv")])
    err = capsys.readouterr().err
    assert rc == 2 and err.count("\n") == 1 and err.startswith("error: ") and "model.tflite" in err, err
    assert re.search(message, err), err


# ------------------------------------------------------------------------------------------------ parsers (hypothesis)
READING = st_.tuples(st_.integers(-(10**17), 10**17), st_.integers(-5, 20), st_.integers(-130, 5))


@hsettings(max_examples=60, deadline=None, database=None)
@given(st_.lists(st_.tuples(READING, st_.sampled_from(["", " ", "\t"]), st_.integers(0, 2)), min_size=1, max_size=30),
       st_.booleans(), st_.sampled_from(["\n", "\r\n"]))
def test_read_session_file_round_trip(readings, header, newline):
    """Readings written with padding, comments and blank lines, an optional header -> read_session_file gives
    exactly the readings back (through device.parse_line) and names each one's file line."""
    import tempfile

    text, want_lines = ["time_ms,ap,rssi"] if header else [], []
    for (t, a, r), pad, extra in readings:
        text += ["# a comment", ""][:extra]
        text.append(f"{pad}{t},{pad}{a},{r}{pad}")
        want_lines.append(len(text))
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "s.csv"
        path.write_bytes(newline.join(text).encode())
        got = replay.read_session_file(path)
    assert [device.parse_line(ln.text) for ln in got] == [r for r, _, _ in readings]
    assert [ln.where for ln in got] == [f"{path}:{i}" for i in want_lines]


@hsettings(max_examples=60, deadline=None, database=None)
@given(st_.dictionaries(st_.integers(0, 10**12), st_.integers(0, 254), max_size=20),
       st_.lists(st_.tuples(st_.integers(-3, 40), st_.sampled_from(sorted(device.STATUS))), max_size=10),
       st_.one_of(st_.none(), st_.tuples(*[st_.integers(0, 10**9)] * 3)),
       st_.lists(st_.text(max_size=20).filter(lambda s: s.split()[:1] not in (["room"], ["error"], ["done"])),
                 max_size=5))
def test_parse_board_lines_round_trip(rooms, errors, done, noise):
    """Board lines printed as tinyloc_app prints them (plus boot noise and malformed lines) -> parse_board_lines
    returns the same rooms, errors (with their session line) and done counts."""
    sent = [replay.SessionLine(f"s.csv:{i + 1}", "0,0,0") for i in range(30)]
    lines = [f"room {i} {e} {c} name{c}" for i, (e, c) in enumerate(rooms.items())]
    lines += [f"error {n} E{code} {device.STATUS[code]}" for n, code in errors]
    lines += noise + ["room x 1 2 a", "error 1 Ex bad", "done a b c"]  # malformed: ignored
    if done is not None:
        lines.append("done " + " ".join(map(str, done)))
    got_rooms, got_errors, got_done = replay.parse_board_lines(lines, sent)
    assert got_rooms == rooms and got_done == done
    assert got_errors == [(f"s.csv:{n}" if 1 <= n <= 30 else f"board line {n}", code, device.STATUS[code])
                          for n, code in errors]


@hsettings(max_examples=60, deadline=None, database=None)
@given(st_.lists(st_.tuples(st_.integers(-(10**17), 10**17), st_.integers(0, 30),
                            st_.floats(-127.4, 0.4, allow_nan=False)), max_size=40))
def test_session_from_arrays_round_trip(readings):
    """Arrays -> lines -> device.parse_line: the readings in stable time order, RSSI rounded half to even."""
    t, ap, rssi = (np.array([r[k] for r in readings], dtype) for k, dtype in ((0, np.int64), (1, np.int64),
                                                                              (2, np.float64)))
    lines = replay.session_from_arrays(t, ap, rssi, "rec")
    order = sorted(range(len(readings)), key=lambda i: readings[i][0])  # Python's sort is stable
    assert [device.parse_line(ln.text) for ln in lines] == [
        (readings[i][0], readings[i][1], int(np.rint(readings[i][2]))) for i in order]
    assert [ln.where for ln in lines] == [f"rec:reading {i + 1}" for i in order]


def test_expected_errors_long_and_nul_lines_are_bad_lines(board):
    """What the board does with a line too long for its buffer (kMaxLine) or holding a NUL: E10, like any bad line."""
    st = board[0]
    lines = [replay.SessionLine(f"s:{i}", x) for i, x in enumerate(
        ["1000,0,-50", "1001," + " " * 60 + "0,-50", "1002,0,-50\0", "1003,1,-40", "1004,0,-5é"])]
    errors, t, ap, rssi = replay.expected_errors(st, lines)
    assert errors == [("s:1", 10, "bad_line"), ("s:2", 10, "bad_line"), ("s:4", 10, "bad_line")]
    assert t.tolist() == [1000, 1003]
