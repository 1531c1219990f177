"""Activation ranges for full-int8 conversion: the converter's min-max, or MSE-optimal clipping per tensor.

TFLite's post-training quantizer gives every activation tensor the range [min, max] it recorded on the
representative windows (widened to contain 0); ops whose int8 kernels need one scale on both sides (UNPACK, PACK,
CONCATENATION, reshapes) then share the widest of those ranges. In the unrolled Mamba scan that is costly: the
per-step slices and the first steps' state products get the range of the whole sequence (House B H8L1: the step-1
product ``P_1 * g_0`` had a 0.0115 step where 0.0018 suffices) and the read-out, gate, ``out_proj`` and residual
ADD are heavy-tailed (range +-20, 99 % of values within +-3.4). ``method="mse"`` replaces each range by the clipped
range that minimises the expected squared quantization error (rounding inside the range + saturation outside it)
over the calibration activations — the "MSE" range setting of Nagel et al. 2021 ("A White Paper on Neural Network
Quantization", sec. 3.5):

    alpha* = argmin_alpha  E_v [ (fq(v; alpha lo, alpha hi) - v)^2 ],   alpha in ALPHA_GRID (1 = min-max)
    fq(v; lo, hi) = (clamp(round(v / s) + z, -128, 127) - z) * s,  s = (hi - lo) / 255,  z = round(-128 - lo / s)

Squared error rarely pays for saturating real outliers at 8 bits (a Gaussian bulk with two 8-sigma values keeps
alpha >= 0.9); it shrinks ranges that are wider than the tensor's values (alpha 0.12-0.2 on the scan's per-step
tensors of House B H8L1; median alpha over its 107 clipped tensors 0.90). Measured: House B Mamba H8L1 int8 F1 drop
+3.59 -> +0.17 points, House D H8L1 +1.78 -> -0.09; 34 of the 35 paper configurations within 1 point
(31 with min-max) — ``docs/results/convert_targets.md``, columns "drop" and "drop min-max".

The expectation is taken over a histogram (``BINS`` bins over the min-max range) of the tensor's float values on the
representative windows, computed by running the calibrated float flatbuffer in LiteRT with all intermediates kept.
Tensors whose scale the int8 kernels fix (LOGISTIC, TANH, SOFTMAX, L2_NORMALIZATION outputs) keep it: the
quantizer ignores their ranges. The model input is never clipped (the device quantizes RSSI with the input scale).

Pipeline (same converter, one extra pass): ``converter._experimental_calibrate_only = True`` gives the float model
with calibrated min/max per tensor; :func:`clip_ranges` rewrites them; ``mlir_quantize`` (what the converter itself
calls next) produces the int8 flatbuffer. ``method="minmax"`` skips the rewrite and reproduces the converter's
default output.
"""
from __future__ import annotations

import contextlib
import io

import numpy as np

from keras_tinyloc.errors import TinyLocError
from keras_tinyloc.models.fake_quant import ALPHA_GRID, BINS, CALIBRATIONS, mse_alpha

def calibrated_model(converter) -> bytes:
    """Run the converter's calibration only: the float flatbuffer with each tensor's min/max filled in."""
    converter._experimental_calibrate_only = True  # noqa: SLF001 - TFLite's documented debugging hook
    try:
        with contextlib.redirect_stdout(io.StringIO()):  # the caller captures the C-level log (fd 2)
            return bytes(converter.convert())
    finally:
        converter._experimental_calibrate_only = False  # noqa: SLF001


def _feed(it, sample) -> None:
    """Set the interpreter's inputs from one sample: a window ``(T,F)`` (single input) or ``{input name: array}``.

    With a dict, the key must occur in the flatbuffer's input tensor name (``serving_default_x_t:0`` for ``x_t``).
    """
    details = it.get_input_details()
    if not isinstance(sample, dict):
        it.set_tensor(details[0]["index"], np.asarray(sample, np.float32)[None].astype(details[0]["dtype"]))
        return
    for d in details:
        keys = [k for k in sample if k in d["name"]]
        if len(keys) != 1:
            raise TinyLocError(f"calibration sample keys {sorted(sample)} do not name input {d['name']!r} uniquely")
        it.set_tensor(d["index"], np.asarray(sample[keys[0]], np.float32).reshape(d["shape"]).astype(d["dtype"]))


def activation_histograms(calibrated: bytes, samples, tensors: dict[int, tuple[float, float]],
                          bins: int = BINS) -> dict[int, np.ndarray]:
    """Histograms ``(bins,)`` of each tensor's float values over ``samples``, bins spanning its min-max range.

    ``samples``: windows ``(B,T,F)`` of a single-input model, or a list of ``{input name: array}`` (multi-input
    models such as the streaming step model). ``tensors``: ``{tensor index: (lo, hi)}``. Runs the calibrated float
    model in LiteRT, one sample at a time, keeping every intermediate tensor.
    """
    from ai_edge_litert.interpreter import Interpreter

    it = Interpreter(model_content=calibrated, experimental_preserve_all_tensors=True)
    it.allocate_tensors()
    hist = {i: np.zeros(bins, np.int64) for i in tensors}
    for sample in samples:
        _feed(it, sample)
        it.invoke()
        for i, (lo, hi) in tensors.items():
            try:
                v = it.get_tensor(i)
            except ValueError:  # a tensor LiteRT did not keep (e.g. folded away)
                continue
            hist[i] += np.histogram(np.asarray(v, np.float64).ravel(), bins=bins, range=(lo, hi))[0]
    return hist


def clip_ranges(calibrated: bytes, rep_x, grid=ALPHA_GRID, bins: int = BINS) -> tuple[bytes, list[dict]]:
    """Rewrite the min/max of every calibrated activation tensor (not the model inputs) to its MSE-optimal clip.

    ``rep_x``: the calibration samples (see :func:`activation_histograms`).

    Returns the rewritten calibrated flatbuffer and one record per tensor that was clipped:
    ``{"tensor", "name", "min", "max", "alpha", "error_ratio"}``.
    """
    import flatbuffers

    from tflite_micro.tensorflow.lite.micro.python import schema_py_generated as schema

    model = schema.ModelT.InitFromObj(schema.Model.GetRootAsModel(bytearray(calibrated), 0))
    if not model.subgraphs:
        raise TinyLocError("calibrated model has no subgraph")
    sub = model.subgraphs[0]
    inputs = set(int(i) for i in (sub.inputs if sub.inputs is not None else []))
    ranges = {}
    for i, t in enumerate(sub.tensors or []):
        q = t.quantization
        if i in inputs or q is None or q.min is None or q.max is None or len(q.min) != 1 or len(q.max) != 1:
            continue
        lo, hi = min(float(q.min[0]), 0.0), max(float(q.max[0]), 0.0)
        if hi > lo:
            ranges[i] = (lo, hi)
    hists = activation_histograms(calibrated, rep_x, ranges, bins)
    changed = []
    for i, (lo, hi) in ranges.items():
        counts = hists[i]
        if counts.sum() == 0:
            continue
        edges = np.linspace(lo, hi, bins + 1)
        alpha, ratio = mse_alpha(0.5 * (edges[:-1] + edges[1:]), counts, lo, hi, grid)
        if alpha < 1.0:
            q = sub.tensors[i].quantization
            q.min, q.max = [float(q.min[0]) * alpha], [float(q.max[0]) * alpha]
            name = sub.tensors[i].name
            changed.append({"tensor": i, "name": name.decode() if isinstance(name, bytes) else str(name),
                            "min": q.min[0], "max": q.max[0], "alpha": alpha, "error_ratio": round(ratio, 4)})
    builder = flatbuffers.Builder(len(calibrated))
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    return bytes(builder.Output()), changed


def quantize_calibrated(calibrated: bytes, int8_io: bool = True) -> bytes:
    """The converter's last step on a calibrated model: full-integer quantization with int8 input and output."""
    import tensorflow as tf
    from tensorflow.lite.python import convert as tf_convert

    io_type = tf.int8 if int8_io else tf.float32
    with contextlib.redirect_stdout(io.StringIO()):  # the caller captures the C-level log (fd 2)
        return bytes(tf_convert.mlir_quantize(calibrated, False, input_data_type=io_type, output_data_type=io_type))


def quantize_with_calibration(converter, rep_x, method: str = "mse") -> tuple[bytes, list[dict]]:
    """Full-int8 flatbuffer from a converter already set up for int8 (representative dataset, int8 I/O).

    ``method``: ``"mse"`` (clip each activation range, see module docstring) or ``"minmax"`` (the converter's own
    ranges). ``rep_x``: the calibration samples the converter's representative dataset yields — windows (B,T,F), or
    ``{input name: array}`` dicts for a multi-input model.
    Returns ``(flatbuffer, clipped tensors)``.
    """
    if method not in CALIBRATIONS:
        raise TinyLocError(f"--calibration {method!r}: choose from {', '.join(CALIBRATIONS)}")
    calibrated = calibrated_model(converter)
    changed: list[dict] = []
    if method == "mse":
        calibrated, changed = clip_ranges(calibrated, rep_x)
    return quantize_calibrated(calibrated), changed
