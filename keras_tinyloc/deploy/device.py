"""Python twins of the device core (``tflm_app/core/tinyloc_core.cpp``): the same bytes, labels and error codes.

The device pipeline is the host pipeline, streamed:

* :func:`input_windows`: readings -> ``data.windows.packets_to_grid`` -> ``make_windows`` ->
  ``MinMaxScaling.transform`` (float32) -> ``quantize.quantize`` = the int8 windows ``Stream::NextWindow`` emits.
* :func:`decode`: int8 model output ``(T, C)`` -> ``quantize.dequantize`` (float32) -> Viterbi in float64 with the
  lowest-index tie rule (``crf.viterbi_numpy``) = ``tinyloc::Decode``. Written here in NumPy so the device side does
  not import TensorFlow; tests check it against ``crf.viterbi_numpy``.
* :func:`check_reading` / :func:`parse_line`: the error codes of ``Stream::AddReading`` / ``ParseLine``
  (:data:`STATUS`, same numbers as ``tinyloc::Status``); :func:`line_status`: the App's verdict on a whole line.
* :func:`check_settings`: ``tinyloc::CheckSettings`` (``DeviceSettings.validate`` holds the rules; status 4).
* Gaps (:func:`segment_starts`, :func:`reading_steps`): a reading more than ``G = max(T, MIN_GAP_STEPS)`` steps
  after the previous reading's step (or past ``MAX_SEGMENT_STEPS`` in its segment) starts a new segment: the grid
  restarts at that reading (new t0, no forward-fill across, hop phase from its step), and step numbers continue
  (segment k's step 0 = segment k-1's last step + 1). :func:`input_windows` cuts each segment separately, so a time
  jump of any length costs nothing here either (no grid over the gap).

Settings are :class:`keras_tinyloc.deploy.export_c.DeviceSettings`.
"""
from __future__ import annotations

import re

import numpy as np

from keras_tinyloc.data import windows as W
from keras_tinyloc.data.base import MinMaxScaling
from keras_tinyloc.errors import TinyLocError
from keras_tinyloc.deploy.export_c import DeviceSettings
from keras_tinyloc.deploy.quantize import dequantize, quantize

# tinyloc::Status (tflm_app/core/tinyloc_core.h): code -> name printed by the sketch.
STATUS: dict[int, str] = {
    0: "ok",
    1: "ap_index_out_of_range",
    2: "time_backwards",
    3: "rssi_out_of_range",
    4: "bad_settings",
    5: "model_input_mismatch",
    6: "model_output_mismatch",
    7: "model_ops_mismatch",
    8: "windows_not_drained",
    9: "not_initialised",
    10: "bad_line",
    11: "invoke_failed",  # tinyloc_app.h: kInvokeFailed
}
OK, ERR_AP, ERR_TIME, ERR_RSSI, ERR_SETTINGS, ERR_INPUT, ERR_OUTPUT, ERR_PARSE = 0, 1, 2, 3, 4, 5, 6, 10
RSSI_MIN, RSSI_MAX = -127, 0
MIN_GAP_STEPS = 20  # tinyloc::kMinGapSteps
MAX_SEGMENT_STEPS = 1 << 30  # tinyloc::kMaxSegmentSteps
MAX_LINE = 63  # tinyloc::kMaxLine: a longer protocol line is a bad line

_INT = r"[ \t]*([+-]?[0-9]{1,18})[ \t]*"
_LINE = re.compile(rf"{_INT},{_INT},{_INT}[\r\n]*\Z")


def parse_line(line: str) -> tuple[int, int, int] | None:
    """``"<time_ms>,<ap>,<rssi>"`` -> ``(time_ms, ap, rssi)``, or None where ``tinyloc::ParseLine`` says kErrParse."""
    m = _LINE.match(line)  # a leading blank is skipped by the C++ too
    if not m:
        return None
    t, a, r = (int(g) for g in m.groups())
    if abs(a) > 1_000_000 or abs(r) > 1_000_000:
        return None
    return t, a, r


def line_status(line: str) -> tuple[int, tuple[int, int, int] | None]:
    """The App's verdict on one sent reading line (``App::PutChar`` + ``HandleLine`` + ``ParseLine``).

    The line goes out as ASCII (other characters become ``?``); more than :data:`MAX_LINE` bytes or a NUL byte make
    it a bad line whatever it holds. Returns ``(OK, (t, ap, rssi))`` or ``(ERR_PARSE, None)``.
    """
    raw = line.encode("ascii", "replace")
    if len(raw) > MAX_LINE or b"\0" in raw:
        return ERR_PARSE, None
    parsed = parse_line(raw.decode("ascii").lstrip(" \t"))
    return (OK, parsed) if parsed is not None else (ERR_PARSE, None)


def check_settings(settings: DeviceSettings) -> int:
    """``tinyloc::CheckSettings``: 0 (ok) or 4 (``bad_settings``); the rules are ``DeviceSettings.validate``'s."""
    try:
        settings.validate()
    except TinyLocError:
        return ERR_SETTINGS
    return OK


def check_model(settings: DeviceSettings, info) -> int:
    """``tinyloc::CheckModel`` on a parsed flatbuffer (``tflite_inspect.ModelInfo``): 0, 4 (settings), 5 (input is
    not ``(1, T, F)`` or ``(T, F)`` int8 with the settings' float32 scale and zero point), 6 (same for the output and
    C). The op count (E7) is left to the board: the flatbuffer's operator-code table is not parsed here."""
    if check_settings(settings):
        return ERR_SETTINGS
    for code, tensor, (scale, zp), c in ((ERR_INPUT, info.input(0), (settings.input_scale, settings.input_zero_point),
                                          settings.n_features),
                                         (ERR_OUTPUT, info.output(0), (settings.output_scale, settings.output_zero_point),
                                          settings.n_classes)):
        shape = tuple(int(v) for v in tensor.shape)
        if (tensor.dtype != "int8" or shape not in ((1, settings.window, c), (settings.window, c))
                or tensor.scale is None or np.float32(tensor.scale) != np.float32(scale) or tensor.zero_point != zp):
            return code
    return OK


def gap_steps(settings: DeviceSettings) -> int:
    """``tinyloc::GapSteps``: a reading more than this many steps after the previous one starts a new segment."""
    return max(int(settings.window), MIN_GAP_STEPS)


def reading_steps(
    settings: DeviceSettings, t_ms, max_segment_steps: int = MAX_SEGMENT_STEPS
) -> tuple[np.ndarray, np.ndarray]:
    """Valid readings' times ``(P,)`` (non-decreasing) -> ``(P,)`` segment index and ``(P,)`` step number.

    The twin of ``Stream::AddReading``'s bookkeeping: within a segment a reading's step is ``(t - t0) // step_ms``;
    a reading more than :func:`gap_steps` steps after the previous reading's step, or whose step would exceed
    ``max_segment_steps``, starts a new segment with ``t0 = t``; the step number is the segment's base (the
    previous segments' steps, back to back) plus the step. Python integers: exact for any int64 time.
    """
    times = [int(v) for v in np.asarray(t_ms, np.int64).reshape(-1)]
    g, step_ms = gap_steps(settings), int(settings.step_ms)
    seg = np.zeros(len(times), np.int64)
    number = np.zeros(len(times), np.int64)
    k, t0, open_, base = -1, 0, 0, 0
    for i, t in enumerate(times):
        step = (t - t0) // step_ms
        if k < 0 or step > open_ + g or step > max_segment_steps:
            if k >= 0:
                base += open_ + 1
            k, t0, open_, step = k + 1, t, 0, 0
        open_ = max(open_, step)
        seg[i], number[i] = k, base + step
    return seg, number


def segment_starts(settings: DeviceSettings, t_ms, max_segment_steps: int = MAX_SEGMENT_STEPS) -> list[int]:
    """Index of each segment's first reading (see :func:`reading_steps`)."""
    seg, _ = reading_steps(settings, t_ms, max_segment_steps)
    return [0] + [int(i) for i in np.flatnonzero(np.diff(seg)) + 1] if len(seg) else []


def check_reading(settings: DeviceSettings, time_ms: int, ap: int, rssi: int, last_time_ms: int | None) -> int:
    """The status ``Stream::AddReading`` returns for one reading (checks in the same order)."""
    if not 0 <= ap < settings.n_features:
        return ERR_AP
    if not RSSI_MIN <= rssi <= RSSI_MAX:
        return ERR_RSSI
    if last_time_ms is not None and time_ms < last_time_ms:
        return ERR_TIME
    return OK


def scale_quantize(settings: DeviceSettings, raw_dbm: np.ndarray) -> np.ndarray:
    """Raw dBm ``(..., F)`` -> int8 model input: ``MinMaxScaling.transform`` then ``quantize`` (twin of ScaleQuantize)."""
    scaling = MinMaxScaling(np.asarray(settings.scale_low, np.float32), np.asarray(settings.scale_high, np.float32))
    return quantize(scaling.transform(raw_dbm), settings.input_scale, settings.input_zero_point)


def input_windows(
    settings: DeviceSettings, t_ms, ap, rssi, source: str = "readings", max_segment_steps: int = MAX_SEGMENT_STEPS
) -> tuple[np.ndarray, np.ndarray]:
    """Readings (in time order) -> ``(B, T, F)`` int8 windows and ``(B,)`` end step numbers, as the device emits them.

    Per segment (:func:`reading_steps`) the host pipeline (``packets_to_grid`` from the segment's first reading,
    ``make_windows``, scaling, ``quantize``), i.e. the device after ``Stream::Finish()``; end steps are step numbers
    (segment base + step). Memory is bounded by the readings, not by the time they span. Readings must already be
    valid (see :func:`check_reading`).
    """
    t_ms, ap, rssi = np.asarray(t_ms, np.int64), np.asarray(ap), np.asarray(rssi)
    seg, number = reading_steps(settings, t_ms, max_segment_steps)
    xs, ends = [np.zeros((0, settings.window, settings.n_features), np.int8)], [np.zeros(0, np.int64)]
    bounds = [0, *(np.flatnonzero(np.diff(seg)) + 1).tolist(), len(seg)] if len(seg) else [0]
    for a, b in zip(bounds[:-1], bounds[1:]):  # segment = readings a..b-1
        grid = W.packets_to_grid(t_ms[a:b], ap[a:b], rssi[a:b], settings.n_features, t0_ms=int(t_ms[a]),
                                 ffill_steps=settings.ffill_steps, fill=settings.fill_dbm, source=source,
                                 step_ms=int(settings.step_ms))
        raw, _ = W.make_windows(grid, np.zeros(len(grid), np.int32), settings.window, settings.hop)
        base = int(number[a])  # the segment's step 0
        xs.append(scale_quantize(settings, raw))
        ends.append(base + np.arange(len(raw), dtype=np.int64) * settings.hop + settings.window - 1)
    return np.concatenate(xs), np.concatenate(ends)


def decode(settings: DeviceSettings, output: np.ndarray) -> np.ndarray:
    """int8 model output ``(T, C)`` or ``(B, T, C)`` -> int labels of the same leading shape (twin of tinyloc::Decode)."""
    q = np.asarray(output)
    single = q.ndim == 2
    em = dequantize(q[None] if single else q, settings.output_scale, settings.output_zero_point).astype(np.float64)
    trans = np.asarray(settings.transitions, np.float32).astype(np.float64)
    start = np.asarray(settings.start, np.float32).astype(np.float64)
    end = np.asarray(settings.end, np.float32).astype(np.float64)
    bsz, steps, n_cls = em.shape
    delta = start[None, :] + em[:, 0, :]
    back = np.zeros((bsz, steps, n_cls), np.int64)
    for t in range(1, steps):
        cand = delta[:, :, None] + trans[None]
        back[:, t] = np.argmax(cand, axis=1)
        delta = np.max(cand, axis=1) + em[:, t, :]
    path = np.zeros((bsz, steps), np.int64)
    path[:, -1] = np.argmax(delta + end[None, :], axis=1)
    rows = np.arange(bsz)
    for t in range(steps - 1, 0, -1):
        path[:, t - 1] = back[rows, t, path[:, t]]
    return path[0] if single else path
