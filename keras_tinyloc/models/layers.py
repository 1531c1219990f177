"""Small Keras 3 layers shared by the emitters, written so their full-int8 TFLite conversion runs in TFLM.

Each class below has one owner (see its docstring); append new classes, do not edit others'.
"""
from __future__ import annotations

import keras
import numpy as np
from keras import ops


# ---------------------------------------------------------------------------------------------------------- MDCSA
@keras.saving.register_keras_serializable(package="keras_tinyloc")
class Int8LayerNorm(keras.layers.Layer):
    """Layer normalisation over the last axis, built only from ops that stay int8 in TFLite and run in TFLM.

    Shapes: ``x`` ``(..., H)`` -> ``(..., H)``; weights ``gamma`` ``(H,)`` (ones), ``beta`` ``(H,)`` (zeros).

    Equation (Ba et al. 2016, "Layer Normalization", eq. 4). ``range_safe=True`` (default) computes it in a
    range-safe order::

        d   = x - mean_h x_h                  MEAN + SUB
        m   = max_h |d_h| + 1e-6              ABS + REDUCE_MAX + ADD    (per token)
        u   = d / m                           DIV      u in [-1, 1]
        v   = mean_h u_h * u_h                MUL + MEAN   v in [1/H, 1]
        y   = u * rsqrt(v + eps) * gamma + beta   ADD + RSQRT + MUL (+ MUL + ADD unless gamma = 1, beta = 0)

    Algebraically y = d / sqrt(var + eps * m^2) * gamma + beta with var = mean_h d_h^2: ``keras.layers.
    LayerNormalization`` / ``torch.nn.LayerNorm`` with a per-token epsilon eps * m^2 (var >= m^2 / H, so the
    relative difference is below eps * H / 2; a constant token gives beta in both).

    Why this order: after int8 quantization each tensor has one scale for all tokens. The textbook
    ``d * rsqrt(var + eps)`` makes rsqrt's output range depend on the smallest variance seen during calibration;
    tokens with a smaller variance are clipped (measured: max error 0.56 at T=1 vs 0.19 here, on outputs quantized
    with scale 0.017). Dividing by ``m`` first bounds ``u`` to [-1, 1] and ``v`` to [1/H, 1] whatever the token's
    scale, so rsqrt's input and output ranges are known and fully covered by calibration.

    ``range_safe=False`` is the textbook order ``d * rsqrt(mean_h d_h * d_h + eps)`` (MEAN, SUB, MUL, MEAN, ADD,
    RSQRT, MUL): exactly ``keras.layers.LayerNormalization``, 4 fewer ops per norm (measured TFLM host arena of
    MDCSA H16L1 / H8L1 / H16L3: 19,744 / 18,096 / 51,872 B instead of 22,624 / 21,216 / 59,104 B), at the price of
    the calibration-dependent rsqrt range. On trained House A / UJIIndoorLoc models both orders gave the same
    int8 F1 within 0.1 point; the largest emission error was 1.8-2.2x smaller with ``range_safe=True``.

    Why not ``keras.layers.LayerNormalization``: its graph contains a NEG that the int8 converter leaves as a float
    island wrapped in DEQUANTIZE/QUANTIZE (measured: ``FULLY_CONNECTED, MEAN, DEQUANTIZE, NEG, QUANTIZE,
    SQUARED_DIFFERENCE, ...``). This layer has no NEG, SQUARE or SQRT. ``epsilon`` defaults to 1e-5 (PyTorch's
    LayerNorm, which the reference MDCSA uses).
    """

    def __init__(self, epsilon: float = 1e-5, range_safe: bool = True, **kwargs):
        super().__init__(**kwargs)
        self.epsilon = float(epsilon)
        self.range_safe = bool(range_safe)

    def build(self, input_shape):
        h = int(input_shape[-1])
        self.gamma = self.add_weight(shape=(h,), initializer="ones", name="gamma")
        self.beta = self.add_weight(shape=(h,), initializer="zeros", name="beta")
        self.built = True

    def call(self, x):
        d = ops.subtract(x, ops.mean(x, axis=-1, keepdims=True))
        u = ops.divide(d, ops.add(ops.max(ops.abs(d), axis=-1, keepdims=True), 1e-6)) if self.range_safe else d
        v = ops.mean(ops.multiply(u, u), axis=-1, keepdims=True)
        y = ops.multiply(u, ops.rsqrt(ops.add(v, self.epsilon)))
        return ops.add(ops.multiply(y, self.gamma), self.beta)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self) -> dict:
        config = super().get_config()
        config.update({"epsilon": self.epsilon, "range_safe": self.range_safe})
        return config


@keras.saving.register_keras_serializable(package="keras_tinyloc")
class Int8ELU(keras.layers.Layer):
    """ELU (alpha = 1) written with ops that the int8 converter quantizes and TFLM runs; shape-preserving ``(...)``.

    ``keras.activations.elu`` converts to the ELU builtin, which the TFLite int8 quantizer (TF 2.21) leaves **float**
    (``DEQUANTIZE, ELU, QUANTIZE``), and EXP does not run in TFLM. This is the exact identity (Clevert et al. 2016,
    eq. 1: elu(x) = x for x > 0, e^x - 1 otherwise), using e^x - 1 = tanh(x/2) / sigmoid(-x)::

        p = relu(x)                 (x > 0 part)          FULLY_CONNECTED/CONV with fused RELU, or RELU
        n = x - p                   (x <= 0 part, n <= 0) SUB
        elu(x) = p + tanh(n / 2) / sigmoid(p - x)         MUL, TANH, SUB, LOGISTIC, DIV, ADD

    (The converter fuses relu into the preceding FULLY_CONNECTED by duplicating that node, weights shared. Taking
    n = min(x, 0) instead avoids the duplicate but was 6-9x less accurate in int8: MINIMUM keeps x's full
    two-sided scale for n, RELU gives p its own one-sided scale.)

    The divisor sigmoid(-n) lies in [0.5, 1), so the division is well conditioned and never by zero. Float32
    agreement with ``keras.activations.elu`` is ~2e-7; the int8 graph runs bit-identically in LiteRT and TFLM.
    """

    def call(self, x):
        p = ops.relu(x)
        t = ops.tanh(ops.multiply(ops.subtract(x, p), 0.5))
        return ops.add(p, ops.divide(t, ops.sigmoid(ops.subtract(p, x))))

    def compute_output_shape(self, input_shape):
        return input_shape


# ---------------------------------------------------------------------------------------------------------- Mamba
def silu(x):
    """SiLU (swish) written as ``x * sigmoid(x)`` so it converts to LOGISTIC + MUL (both int8 in TFLM).

    Shapes: any ``(...)`` -> the same. (Elfwing et al. 2018, eq. 2: ``silu(x) = x * sigma(x)``.)
    """
    return ops.multiply(x, ops.sigmoid(x))


@keras.saving.register_keras_serializable(package="keras_tinyloc")
class RMSNorm(keras.layers.Layer):
    """Root-mean-square normalisation over the last axis, written so int8 TFLite fuses it into L2_NORMALIZATION.

    Shapes: ``x`` ``(..., H)`` -> ``(..., H)``; weight ``weight`` ``(H,)`` (ones).

    Equation (Zhang & Sennrich 2019, "Root Mean Square Layer Normalization", eq. 4; the ``RMSNorm`` of
    mamba-minimal / ``torch.nn.RMSNorm`` with ``eps`` inside the root), rewritten exactly::

        y = x * rsqrt(mean_h x_h^2 + eps) * weight
          = x * rsqrt(sum_h x_h^2 + H eps) * (sqrt(H) * weight)

    The second form is the pattern the TFLite converter fuses into one L2_NORMALIZATION op (int8 in TFLM, output
    scale 1/128), followed by a MUL with the constant ``sqrt(H) * weight`` (often folded into the next Dense).
    Why: written as MEAN + RSQRT, the int8 RSQRT sees mean squares quantised with one per-tensor scale; a window
    with small activations rounds to ~0 and RSQRT returns ~1/sqrt(eps) (measured: the final norm of a trained
    H8L1 dropped House A validation F1 from 0.95 to 0.65). L2_NORMALIZATION normalises in int32 internally.
    The converted graph has no SQUARE, SQRT, DIV or RSQRT (checked in tests/test_layers.py); TFLM's int8 kernel
    ignores ``eps``, which matters only for vectors with ``mean x^2`` near ``eps``.
    """

    def __init__(self, epsilon: float = 1e-5, **kwargs):
        super().__init__(**kwargs)
        self.epsilon = float(epsilon)

    def build(self, input_shape):
        self.weight = self.add_weight(shape=(int(input_shape[-1]),), initializer="ones", name="weight")
        self.built = True

    def call(self, x):
        h = int(x.shape[-1])
        sum_sq = ops.sum(ops.square(x), axis=-1, keepdims=True)  # (..., 1); fused away by the converter
        unit = ops.multiply(x, ops.rsqrt(ops.add(sum_sq, h * self.epsilon)))  # x / ||x||, L2_NORMALIZATION
        return ops.multiply(unit, ops.multiply(self.weight, float(np.sqrt(h))))

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self) -> dict:
        config = super().get_config()
        config.update({"epsilon": self.epsilon})
        return config
