"""``python -m keras_tinyloc replay --port PORT RUN_DIR``: send a recorded session to a board, compare the rooms.

The board runs ``tflm_app`` (Arduino or STM32) with the files of ``RUN_DIR/tflite-int8`` (or ``--convert-dir``).
Replay sends the session's readings over the serial line protocol of ``tflm_app/core/tinyloc_app.h``
(``<time_ms>,<ap>,<rssi>`` per line, then ``end``), collects the board's ``room`` lines and compares them, window by
window (matched by the window's end step), with the host's prediction for the same readings: the device pipeline's
int8 windows (:func:`keras_tinyloc.deploy.device.input_windows`), the model run in TFLM on the host, and CRF Viterbi
(:func:`keras_tinyloc.deploy.device.decode`). It prints the agreement and names every session line the board rejected.

Session (``--session``): a text file with one ``<time_ms>,<ap_index>,<rssi_dbm>`` reading per line (an optional
header line, ``#`` comments and blank lines are skipped), or an In-Home ``rx_wearable_data.dat``. Without
``--session`` the run's dataset must be an In-Home house (real or simulated): its first free-living (test)
recording is used, readings sorted by time and RSSI rounded to whole dBm (the board protocol sends integers).
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import queue
import sys
import threading
import time
from pathlib import Path
from typing import Callable

import numpy as np

from keras_tinyloc.deploy import device
from keras_tinyloc.errors import TinyLocError, cli_errors
from keras_tinyloc.deploy.export_c import DeviceSettings, read_device_settings

Predict = Callable[[np.ndarray], np.ndarray]  # (B,T,F) int8 -> (B,T,C) int8
TFLM_ARENA = 1024 * 1024  # host interpreter arena (run_tflm's default)


@dataclasses.dataclass
class SessionLine:
    """One line to send: where it came from (``source:line``) and its text."""

    where: str
    text: str


@dataclasses.dataclass
class ReplayResult:
    host_rooms: dict[int, int]  # end step -> class index
    board_rooms: dict[int, int]
    agree: int
    board_errors: list[tuple[str, int, str]]  # (where, code, name)
    expected_errors: list[tuple[str, int, str]]
    lines_sent: int
    seconds: float

    @property
    def agreement(self) -> float:
        return self.agree / len(self.host_rooms) if self.host_rooms else float("nan")


# ----------------------------------------------------------------------------------------------- session
def read_session_file(path: str | Path) -> list[SessionLine]:
    """A protocol-lines file -> the lines to send (header/comments/blank lines skipped, bad lines kept)."""
    path = Path(path)
    try:
        text = path.read_text(errors="replace")
    except OSError as exc:
        raise TinyLocError(f"{path}: cannot read session ({exc.strerror})") from None
    out = []
    for i, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if not out and i == 1 and device.parse_line(line) is None and line[:1].isalpha():
            continue  # a header such as "time_ms,ap,rssi"
        if line.lower() in ("reset", "end"):
            raise TinyLocError(f"{path}:{i}: {line!r} is a protocol command, not a reading")
        out.append(SessionLine(f"{path}:{i}", line))
    if not out:
        raise TinyLocError(f"{path}: no readings")
    return out


def session_from_arrays(t_ms, ap, rssi, source: str) -> list[SessionLine]:
    """Readings -> lines, sorted by time (stable), RSSI rounded to whole dBm; ``where`` = source:reading number."""
    t_ms, ap, rssi = np.asarray(t_ms, np.int64), np.asarray(ap, np.int64), np.asarray(rssi, np.float64)
    order = np.argsort(t_ms, kind="stable")
    r = np.rint(rssi).astype(np.int64)
    return [SessionLine(f"{source}:reading {i + 1}", f"{t_ms[i]},{ap[i]},{r[i]}") for i in order]


def default_session(run_dir: Path, session: str | None) -> list[SessionLine]:
    """``--session`` or the first free-living recording of the run's In-Home house."""
    if session:
        p = Path(session)
        if p.name == "rx_wearable_data.dat":
            return _rx_session(p, p.parent.parent.parent)
        return read_session_file(p)
    cfg_path = run_dir / "config.json"
    try:
        config = json.loads(cfg_path.read_text())
    except (OSError, ValueError):
        raise TinyLocError(f"{cfg_path}: cannot read the run's config; give --session FILE") from None
    name = str(config.get("dataset", ""))
    if not name.startswith("house-"):
        raise TinyLocError(f"{cfg_path}: dataset {name!r} has no recorded BLE session here; give --session FILE")
    from keras_tinyloc.data import inhome

    letter = name.split("-", 1)[1].upper()
    opts = dict(config.get("dataset_options") or {})
    found = inhome.find_house(letter, config.get("data_dir"))
    if found is None:
        house = inhome.simulated_house_dir(letter, seed=int(opts.get("seed", 0)), scale=float(opts.get("scale", 1.0)))
    elif found[0] == "published":
        house = found[1]
    else:
        raise TinyLocError(f"{found[1]}: flat CSVs hold no raw readings; give --session FILE")
    livings = sorted(d for d in (house / "experiments").glob("living*") if (d / "rx_wearable_data.dat").exists())
    if not livings:
        raise TinyLocError(f"{house / 'experiments'}: no living_*/rx_wearable_data.dat; give --session FILE")
    return _rx_session(livings[0] / "rx_wearable_data.dat", house)


def _rx_session(path: Path, house: Path) -> list[SessionLine]:
    from keras_tinyloc.data import inhome

    meta = inhome.read_metadata(house)
    t, ap, rssi = inhome.read_rx(path, meta.ap_ids)
    return session_from_arrays(t, ap, rssi, str(path))


def expected_errors(settings: DeviceSettings, lines: list[SessionLine]):
    """The board's verdict on each line, from the device twins: (errors, valid t, ap, rssi)."""
    errors, keep, last = [], [], None
    for ln in lines:
        code, parsed = device.line_status(ln.text)
        if parsed is not None:
            code = device.check_reading(settings, *parsed, last)
        if code:
            errors.append((ln.where, code, device.STATUS[code]))
        else:
            keep.append(parsed)
            last = parsed[0]
    arr = np.array(keep, np.int64).reshape(-1, 3)
    return errors, arr[:, 0], arr[:, 1], arr[:, 2]


def host_rooms(settings: DeviceSettings, t, ap, rssi, predict: Predict) -> dict[int, int]:
    """End step -> room the host predicts (last step of the Viterbi path), for every window the board will emit."""
    if len(t) == 0:
        return {}
    x, ends = device.input_windows(settings, t, ap, rssi)
    if len(x) == 0:
        return {}
    out = np.asarray(predict(x))
    labels = device.decode(settings, out.reshape(len(x), settings.window, settings.n_classes))
    return {int(e): int(lab[-1]) for e, lab in zip(ends, labels)}


def tflm_predict(tflite_path: Path, settings: DeviceSettings | None = None) -> Predict:
    """Run the converted model in TFLM on the host (keras_tinyloc.deploy.tflm.run_tflm), checked before any serial
    traffic: the flatbuffer must parse, match ``settings`` as the board's boot check would (:func:`device.check_model`),
    and build and run in a child process first (a corrupt flatbuffer can crash TFLM's C++, which must not take
    replay down with it)."""
    from keras_tinyloc.deploy import tflite_inspect, tflm

    try:
        buf = tflite_path.read_bytes()
    except OSError as exc:
        raise TinyLocError(f"{tflite_path}: cannot read the model ({exc.strerror})") from None
    try:
        info = tflite_inspect.inspect_tflite(buf)
        info.input(0), info.output(0)
    except TinyLocError as exc:
        raise TinyLocError(f"{tflite_path}: {exc}") from None
    except Exception as exc:  # noqa: BLE001 - flatbuffers raises assorted errors on garbage
        raise TinyLocError(f"{tflite_path}: not a valid .tflite flatbuffer ({type(exc).__name__})") from None
    code = device.check_model(settings, info) if settings is not None else device.OK
    if code:
        raise TinyLocError(f"{tflite_path}: E{code} {device.STATUS[code]}: the model does not match its device "
                           "settings (export both from one convert)")
    if not tflm.arena_works(buf, TFLM_ARENA):
        raise TinyLocError(f"{tflite_path}: TFLM cannot build and run this model (a corrupt .tflite file?)")

    def predict(x: np.ndarray) -> np.ndarray:
        y, _ = tflm.run_tflm(buf, x, arena=TFLM_ARENA)
        return y

    return predict


# ----------------------------------------------------------------------------------------------- serial
class BoardLink:
    """Line-oriented serial link (pyserial); a reader thread queues the board's lines."""

    def __init__(self, port: str, baud: int = 115200):
        try:
            import serial
        except ImportError:
            raise TinyLocError("replay needs pyserial (pip install pyserial)") from None
        try:
            self.ser = serial.serial_for_url(port, baudrate=baud, timeout=0.05)
        except (serial.SerialException, OSError, ValueError) as exc:
            raise TinyLocError(f"--port {port}: cannot open ({exc})") from None
        self.port = port
        self.lines: queue.Queue[str] = queue.Queue()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def _read(self) -> None:
        buf = b""
        while not self._stop.is_set():
            try:
                chunk = self.ser.read(4096)
            except Exception:  # port gone: the waits below time out with a clear message
                return
            if not chunk:
                continue
            buf += chunk
            while b"\n" in buf:
                line, buf = buf.split(b"\n", 1)
                self.lines.put(line.decode("utf-8", "replace").strip())

    def send(self, text: str) -> None:
        self.ser.write(text.encode("ascii", "replace") + b"\n")

    def wait_for(self, prefix: str, timeout: float, sink: list[str]) -> str:
        """Collect lines into ``sink`` until one starts with ``prefix``; return it."""
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                setup = [ln for ln in sink if ln.startswith("error 0 ")]
                seen = f"; it said {setup[-1]!r}" if setup else (f"; last line {sink[-1]!r}" if sink else "")
                raise TinyLocError(f"{self.port}: no '{prefix}' line from the board within {timeout:g} s{seen}")
            try:
                line = self.lines.get(timeout=min(left, 0.2))
            except queue.Empty:
                continue
            sink.append(line)
            if line.startswith(prefix):
                return line

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=1)
        self.ser.close()


def parse_board_lines(lines: list[str], sent: list[SessionLine]):
    """Board output -> (rooms by end step, errors as (where, code, name), done counts or None)."""
    rooms, errors, done = {}, [], None
    for line in lines:
        parts = line.split()
        if not parts:
            continue
        try:
            if parts[0] == "room" and len(parts) >= 4:
                int(parts[1])  # a room line whose reading number is garbled is noise too
                rooms[int(parts[2])] = int(parts[3])
            elif parts[0] == "error" and len(parts) >= 4 and parts[2].startswith("E"):
                n = int(parts[1])
                where = sent[n - 1].where if 1 <= n <= len(sent) else f"board line {n}"
                errors.append((where, int(parts[2][1:]), parts[3] if len(parts) > 3 else "?"))
            elif parts[0] == "done":
                done = tuple(int(v) for v in parts[1:4])
        except ValueError:
            continue  # a line the protocol does not define (boot noise): ignore
    return rooms, errors, done


def replay(link: BoardLink, settings: DeviceSettings, lines: list[SessionLine], predict: Predict,
           timeout: float = 10.0, line_delay_s: float = 0.0) -> ReplayResult:
    """Send ``lines`` over ``link`` and compare the board's rooms with the host's (see module docstring)."""
    t0 = time.monotonic()
    got: list[str] = []
    link.send("reset")
    ready = link.wait_for("ready", timeout, got)
    want = f"T={settings.window} F={settings.n_features} C={settings.n_classes}"
    if not ready.endswith(want):
        raise TinyLocError(f"{link.port}: board answered {ready!r}; the model here has {want} (flash the new sketch)")
    exp_errors, t, ap, rssi = expected_errors(settings, lines)
    host = host_rooms(settings, t, ap, rssi, predict)
    got.clear()
    for ln in lines:
        link.send(ln.text)
        if line_delay_s:
            time.sleep(line_delay_s)
    link.send("end")
    link.wait_for("done", timeout + 0.001 * len(lines), got)
    board, board_errors, done = parse_board_lines(got, lines)
    if done is not None and done[0] != len(lines):
        raise TinyLocError(f"{link.port}: board counted {done[0]} reading lines, {len(lines)} were sent (lost bytes?)")
    agree = sum(1 for e, c in host.items() if board.get(e) == c)
    return ReplayResult(host, board, agree, board_errors, exp_errors, len(lines), time.monotonic() - t0)


def report(res: ReplayResult, settings: DeviceSettings, show: int = 10) -> str:
    """Human-readable summary: agreement, disagreements, the lines the board rejected."""
    names = settings.class_names
    out = [f"sent {res.lines_sent} readings in {res.seconds:.1f} s; windows: host {len(res.host_rooms)}, "
           f"board {len(res.board_rooms)}"]
    if res.host_rooms:
        out.append(f"agreement: {res.agree}/{len(res.host_rooms)} windows = {100 * res.agreement:.1f}%")
    bad = [(e, c, res.board_rooms.get(e)) for e, c in sorted(res.host_rooms.items()) if res.board_rooms.get(e) != c]
    for e, c, b in bad[:show]:
        board = names[b] if b is not None and 0 <= b < len(names) else "missing"
        out.append(f"  window ending at step {e}: host {names[c]}, board {board}")
    if len(bad) > show:
        out.append(f"  ... {len(bad) - show} more disagreements")
    extra = sorted(set(res.board_rooms) - set(res.host_rooms))
    if extra:
        out.append(f"board windows the host does not have (end steps): {extra[:show]}")
    for where, code, name in res.board_errors[:20]:
        out.append(f"{where}: board rejected the line: E{code} {name}")
    if len(res.board_errors) > 20:
        out.append(f"... {len(res.board_errors) - 20} more lines rejected")
    if [e[:2] for e in res.board_errors] != [e[:2] for e in res.expected_errors]:
        expected = "; ".join(f"{w}: E{c}" for w, c, _ in res.expected_errors) or "none"
        out.append(f"warning: the board's errors differ from the host's expectation ({expected})")
    return "\n".join(out)


# ----------------------------------------------------------------------------------------------- CLI
def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m keras_tinyloc replay",
        description="Send a recorded session to a board running tflm_app over serial and compare its rooms with the "
        "host's predictions (agreement, bad lines).")
    p.add_argument("run_dir", metavar="RUN_DIR", help="run directory (train/distill)")
    p.add_argument("--port", required=True, help="serial port of the board (/dev/ttyACM0, COM3, or a pyserial URL)")
    p.add_argument("--convert-dir", metavar="DIR", help="convert output (default RUN_DIR/tflite-int8)")
    p.add_argument("--session", metavar="FILE", help="readings to send (default: the run's first test recording)")
    p.add_argument("--baud", type=int, default=115200, help="serial speed (default: %(default)s, as the sketch)")
    p.add_argument("--max-readings", type=int, default=0, help="send only the first N readings (0 = all)")
    p.add_argument("--line-delay-ms", type=float, default=0.0, help="pause after each line (UART boards)")
    p.add_argument("--timeout", type=float, default=10.0, help="seconds to wait for the board's answers")
    p.add_argument("--min-agreement", type=float, default=0.0, help="exit 1 if agreement is below this (0..1)")
    return p


@cli_errors
def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    run_dir = Path(args.run_dir)
    conv = Path(args.convert_dir) if args.convert_dir else run_dir / "tflite-int8"
    settings = read_device_settings(conv)
    lines = default_session(run_dir, args.session)
    if args.max_readings > 0:
        lines = lines[: args.max_readings]
    predict = tflm_predict(conv / "model.tflite", settings)
    link = BoardLink(args.port, args.baud)
    try:
        res = replay(link, settings, lines, predict, args.timeout, args.line_delay_ms / 1000.0)
    finally:
        link.close()
    print(report(res, settings))
    return 1 if res.host_rooms and res.agreement < args.min_agreement else 0


if __name__ == "__main__":
    sys.exit(main())
