"""Python twins of the device core (``tflm_app/core/tinyloc_core.cpp``): the same bytes, labels and error codes.

The device pipeline is the host pipeline, streamed:

* :func:`input_windows`: readings -> ``data.windows.packets_to_grid`` -> ``make_windows`` ->
  ``MinMaxScaling.transform`` (float32) -> ``quantize.quantize`` = the int8 windows ``Stream::NextWindow`` emits.
* :func:`decode`: int8 model output ``(T, C)`` -> ``quantize.dequantize`` (float32) -> Viterbi in float64 with the
  lowest-index tie rule (``crf.viterbi_numpy``) = ``tinyloc::Decode``. Written here in NumPy so the device side does
  not import TensorFlow; tests check it against ``crf.viterbi_numpy``.
* :func:`check_reading` / :func:`parse_line`: the error codes of ``Stream::AddReading`` / ``ParseLine``
  (:data:`STATUS`, same numbers as ``tinyloc::Status``).

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
OK, ERR_AP, ERR_TIME, ERR_RSSI, ERR_PARSE = 0, 1, 2, 3, 10
RSSI_MIN, RSSI_MAX = -127, 0

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
    settings: DeviceSettings, t_ms, ap, rssi, source: str = "readings"
) -> tuple[np.ndarray, np.ndarray]:
    """Readings (in time order) -> ``(B, T, F)`` int8 windows and ``(B,)`` end steps, as the device emits them.

    Uses the host pipeline (``packets_to_grid``, ``make_windows``, scaling, ``quantize``) on all readings, i.e. the
    device after ``Stream::Finish()``. Readings must already be valid (see :func:`check_reading`).
    """
    if settings.step_ms != W.STEP_MS:
        raise TinyLocError(f"{source}: step_ms {settings.step_ms} differs from the pipeline's {W.STEP_MS} ms")
    grid = W.packets_to_grid(
        t_ms, ap, rssi, settings.n_features, ffill_steps=settings.ffill_steps, fill=settings.fill_dbm, source=source
    )
    raw, _ = W.make_windows(grid, np.zeros(len(grid), np.int32), settings.window, settings.hop)
    ends = np.arange(len(raw), dtype=np.int64) * settings.hop + settings.window - 1
    return scale_quantize(settings, raw), ends


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
