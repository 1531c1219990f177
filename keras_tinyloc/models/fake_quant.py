"""Simulated int8 in the float graph: the ``fq`` taps, int8 range setting, and the range math calibration shares.

A model-side primitive, used by the models (every tensor the full-int8 Mamba graph stores passes :func:`fq`), by
quantization-aware fine-tuning (:mod:`keras_tinyloc.training.qat`) and by the converter's MSE-clipped activation
ranges (:mod:`keras_tinyloc.deploy.calibrate`). Written by hand because the maintained toolkit for this,
``tensorflow-model-optimization``, cannot wrap Keras 3 models (it needs tf_keras; see toolchain-facts).

**Fake quantization.** Outside QAT :func:`fq` is the identity (no graph op, saved models unchanged). Inside
:func:`simulating`, each tensor ``v`` becomes its int8 round trip with a straight-through gradient (Jacob et al.
2018, "Quantization and Training of Neural Networks for Efficient Integer-Arithmetic-Only Inference", sec. 3;
Bengio et al. 2013 STE)::

    fq(v) = clamp(v, lo_q, hi_q) + stop_gradient(round(clamp(v, lo_q, hi_q) / s) * s - clamp(v, lo_q, hi_q))
    s = (hi - lo) / 255,  z = round(-128 - lo / s),  [lo_q, hi_q] = [(-128 - z) s, (127 - z) s]

so the loss sees int8 rounding and saturation while gradients pass unchanged inside the range and stop outside it.
Ranges ``[lo, hi]`` per tensor key come from an observation pass (:func:`observe`) over representative windows and
are set with the MSE criterion below, or are the fixed output ranges of LOGISTIC ([0, 255/256]) and
L2_NORMALIZATION ([-1, 127/128]). :func:`simulated_emitter` adds a tap on every layer output of a functional
emitter (``keras.models.clone_model(..., call_function=...)`` sharing the original layers and weights).

**Range setting** (Nagel et al. 2021, "A White Paper on Neural Network Quantization", sec. 3.5)::

    alpha* = argmin_alpha  E_v [ (fake_quant(v; alpha lo, alpha hi) - v)^2 ],   alpha in ALPHA_GRID (1 = min-max)
    fake_quant(v; lo, hi) = (clamp(round(v / s) + z, -128, 127) - z) * s

with the expectation over a histogram of ``BINS`` bins (:func:`mse_alpha`). ``method="minmax"`` keeps [min, max].
"""
from __future__ import annotations

import contextlib
import itertools

import numpy as np

from keras_tinyloc.errors import TinyLocError

CALIBRATIONS = ("mse", "minmax")
ALPHA_GRID = tuple(float(a) for a in np.round(np.linspace(0.04, 1.0, 49), 4))  # clip factors tried, 1 = min-max
BINS = 2048


def fake_quant(v: np.ndarray, lo: float, hi: float) -> np.ndarray:
    """``fq(v; lo, hi)`` of the module docstring: int8 affine quantize-dequantize with range [lo, hi] (0 inside)."""
    lo, hi = min(float(lo), 0.0), max(float(hi), 0.0)
    s = (hi - lo) / 255.0
    if s <= 0:
        return np.zeros_like(np.asarray(v, np.float64))
    z = np.round(-128.0 - lo / s)
    q = np.clip(np.round(np.asarray(v, np.float64) / s) + z, -128, 127)
    return (q - z) * s


def mse_alpha(centers: np.ndarray, counts: np.ndarray, lo: float, hi: float, grid=ALPHA_GRID) -> tuple[float, float]:
    """The clip factor alpha in ``grid`` minimising the histogram-weighted squared error of ``fq(.; alpha lo, alpha hi)``.

    Args: ``centers`` (K,) bin centres, ``counts`` (K,) how many values fell in each bin, [lo, hi] the min-max range.
    Returns ``(alpha, error_ratio)``: the factor (1.0 = keep min-max) and its error over min-max's error (<= 1).
    """
    w = np.asarray(counts, np.float64)
    if w.sum() <= 0:
        return 1.0, 1.0

    def err(a: float) -> float:
        return float(np.sum(w * (fake_quant(centers, a * lo, a * hi) - centers) ** 2))

    base = err(1.0)
    best_a, best = 1.0, base
    for a in grid:
        e = err(a)
        if e < best * (1 - 1e-9):
            best_a, best = float(a), e
    return best_a, (best / base if base > 0 else 1.0)


LOGISTIC_RANGE = (0.0, 255.0 / 256.0)  # TFLite int8 LOGISTIC output: scale 1/256, zero point -128
L2NORM_RANGE = (-1.0, 127.0 / 128.0)  # TFLite int8 L2_NORMALIZATION output: scale 1/128, zero point 0
MAX_SAMPLES = 200_000  # values kept per tensor key in the observation pass

_SIM: "QuantSim | None" = None
_TAPS = itertools.count()  # unique names of the fake-quant tap layers


def fq(x, key: str, fixed: tuple[float, float] | None = None):
    """Identity, unless a :class:`QuantSim` is active: then the int8 round trip of ``x`` (any shape) under ``key``.

    ``fixed``: the tensor's range is set by the int8 kernel (LOGISTIC, L2_NORMALIZATION), not by calibration.
    """
    sim = _SIM
    return x if sim is None else sim.apply(x, key, fixed)


@contextlib.contextmanager
def simulating(sim: "QuantSim"):
    """Make :func:`fq` simulate int8 with ``sim`` while the block runs (trace models inside it)."""
    global _SIM
    previous, _SIM = _SIM, sim
    try:
        yield sim
    finally:
        _SIM = previous


def fake_quant_ste(x, lo: float, hi: float):
    """``fq(v)`` of the module docstring on a Keras tensor: int8 round trip, straight-through gradient."""
    from keras import ops

    lo, hi = min(float(lo), 0.0), max(float(hi), 0.0)
    s = (hi - lo) / 255.0
    if s <= 0:
        return x
    z = float(np.round(-128.0 - lo / s))
    xc = ops.clip(x, (-128.0 - z) * s, (127.0 - z) * s)
    return ops.add(xc, ops.stop_gradient(ops.subtract(ops.multiply(ops.round(ops.divide(xc, s)), s), xc)))


class QuantSim:
    """Per-key int8 ranges, filled by an observation pass, then applied as fake quantization.

    ``observing`` (eager calls only): record a subsample of each key's values; :meth:`finish_observation` turns them
    into ranges (MSE clip or min-max). ``ranges``: ``{key: (lo, hi)}``.
    """

    def __init__(self, method: str = "mse", seed: int = 0):
        if method not in CALIBRATIONS:
            raise TinyLocError(f"--calibration {method!r}: choose from {', '.join(CALIBRATIONS)}")
        self.method = method
        self.ranges: dict[str, tuple[float, float]] = {}
        self.fixed: dict[str, tuple[float, float]] = {}
        self.observing = False
        self._values: dict[str, list[np.ndarray]] = {}
        self._rng = np.random.default_rng(seed)

    def apply(self, x, key: str, fixed=None):
        if fixed is not None:
            self.fixed[key] = fixed
        if self.observing:
            v = np.asarray(x, np.float32).ravel()  # eager tensor -> values
            if v.size > MAX_SAMPLES // 20:
                v = self._rng.choice(v, MAX_SAMPLES // 20, replace=False)
            self._values.setdefault(key, []).append(v)
            return x
        rng = fixed if fixed is not None else self.ranges.get(key)
        if rng is None:
            raise TinyLocError(f"QAT: tensor {key!r} was not seen in the observation pass")
        return fake_quant_ste(x, *rng)

    def finish_observation(self) -> None:
        self.observing = False
        for key, parts in self._values.items():
            if key in self.fixed:
                self.ranges[key] = self.fixed[key]
                continue
            v = np.concatenate(parts)
            if len(v) > MAX_SAMPLES:
                v = self._rng.choice(v, MAX_SAMPLES, replace=False)
            lo, hi = min(float(v.min()), 0.0), max(float(v.max()), 0.0)
            if hi <= lo:
                self.ranges[key] = (lo, lo + 1e-6)
                continue
            alpha = 1.0
            if self.method == "mse":
                counts, edges = np.histogram(v, bins=BINS, range=(lo, hi))
                alpha, _ = mse_alpha(0.5 * (edges[:-1] + edges[1:]), counts, lo, hi)
            self.ranges[key] = (lo * alpha, hi * alpha)
        self._values.clear()


def _tap_layer(key: str):
    """A layer whose call is ``fq(x, key)`` at run time (the clone is built while no simulation is active)."""
    import keras

    class FakeQuantTap(keras.layers.Layer):
        def call(self, x):
            return fq(x, key)

        def compute_output_shape(self, input_shape):
            return input_shape

    return FakeQuantTap(name=f"fq_tap_{next(_TAPS)}")


def simulated_emitter(emitter):
    """A functional view of ``emitter`` (same layer objects and weights) whose every layer output passes :func:`fq`.

    Key of a layer output: the layer's name (``name#k`` for its k-th call when a layer is called more than once).
    """
    import keras

    calls: dict[str, int] = {}

    def call_function(layer, *args, **kwargs):
        out = layer(*args, **kwargs)
        k = calls.get(layer.name, 0)
        calls[layer.name] = k + 1
        key = layer.name if k == 0 else f"{layer.name}#{k}"
        return keras.tree.map_structure(lambda t: _tap_layer(key)(t), out)

    return keras.models.clone_model(emitter, clone_function=lambda layer: layer, call_function=call_function)


def observe(sim: QuantSim, model, x: np.ndarray, batch_size: int = 256) -> None:
    """Run ``model`` eagerly on windows ``x`` (B,T,F) with ``sim`` observing, then fix the ranges."""
    sim.observing = True
    with simulating(sim):
        for i in range(0, len(x), batch_size):
            model(np.asarray(x[i : i + batch_size], np.float32), training=False)
    sim.finish_observation()
