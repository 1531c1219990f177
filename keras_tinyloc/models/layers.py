"""Small Keras 3 layers shared by the emitters, written so their full-int8 TFLite conversion runs in TFLM.

Each class below has one owner (see its docstring); append new classes, do not edit others'.
"""
from __future__ import annotations

import keras
import numpy as np
from keras import ops

from keras_tinyloc.models.fake_quant import L2NORM_RANGE, LOGISTIC_RANGE, fq


# ---------------------------------------------------------------------------------------------------------- MDCSA
@keras.saving.register_keras_serializable(package="keras_tinyloc")
class Int8LayerNorm(keras.layers.Layer):
    """Layer normalisation over the last axis, built only from ops that stay int8 in TFLite and run in TFLM.

    Shapes: ``x`` ``(..., H)`` -> ``(..., H)``; weights ``gamma`` ``(H,)`` (ones), ``beta`` ``(H,)`` (zeros).
    Equation (Ba et al. 2016, "Layer Normalization", eq. 4):  y = (x - mean_h x) / sqrt(var_h x + eps) * gamma + beta.

    ``method`` picks how the graph computes it (all three have the same weights; a saved model can switch):

    ``"l2norm"`` (default), exact::

        d = x @ (I - 11^T / H)                          centring as a constant (H,H) matmul: FULLY_CONNECTED
        y = d * rsqrt(sum_h d_h^2 + H eps) * (sqrt(H) gamma) + beta     fused into L2_NORMALIZATION, MUL, ADD

      The converter fuses ``d * rsqrt(sum(square(d)) + c)`` into one L2_NORMALIZATION (int8 in TFLM, normalises in
      int32, fixed output scale 1/128) -- but only when ``d`` is not a SUB, which it would turn into
      SQUARED_DIFFERENCE; hence the centring matmul. 4 ops per norm, and no per-tensor-quantized variance or rsqrt
      whose range depends on calibration. (TFLM's int8 kernel ignores eps.)
    ``"range_safe"``: d = x - mean; u = d / (max|d| + 1e-6); y = u * rsqrt(mean(u*u) + eps) * gamma + beta
      (MEAN, SUB, ABS, REDUCE_MAX, ADD, DIV, MUL, MEAN, ADD, RSQRT, MUL, MUL, ADD). LayerNorm with the per-token
      epsilon eps * max|d|^2; u in [-1, 1] and mean(u*u) in [1/H, 1] whatever the token's scale.
    ``"textbook"``: d = x - mean; y = d * rsqrt(mean(d*d) + eps) * gamma + beta (MEAN, SUB, MUL, MEAN, ADD, RSQRT,
      MUL, MUL, ADD). Exact, but int8 RSQRT's output range is set by the smallest variance seen in calibration and
      tokens below it are clipped (LayerNorm alone at T=1: max error 0.56 vs 0.12-0.13 for the other two, on
      outputs with scale 0.017).

    Measured on trained MDCSA emitters (TFLM host arena, H16L1 / H8L1 / H16L3): l2norm 17,888 / 13,344 / 41,312 B,
    textbook 19,744 / 18,096 / 51,872 B, range_safe 22,624 / 21,216 / 59,104 B; int8 F1 within 0.15 (l2norm) /
    0.45 (others) point of float (table in the ``models.mdcsa`` docstring).

    Why not ``keras.layers.LayerNormalization``: its graph contains a NEG that the int8 converter leaves as a float
    island wrapped in DEQUANTIZE/QUANTIZE (measured: ``FULLY_CONNECTED, MEAN, DEQUANTIZE, NEG, QUANTIZE,
    SQUARED_DIFFERENCE, ...``). ``epsilon`` defaults to 1e-5 (PyTorch's LayerNorm, which the reference MDCSA uses).
    """

    METHODS = ("l2norm", "range_safe", "textbook")

    def __init__(self, epsilon: float = 1e-5, method: str = "l2norm", range_safe: bool | None = None, **kwargs):
        super().__init__(**kwargs)
        if range_safe is not None:  # configs saved before ``method`` existed
            method = "range_safe" if range_safe else "textbook"
        if method not in self.METHODS:
            raise ValueError(f"method={method!r}: choose one of {self.METHODS}")
        self.epsilon = float(epsilon)
        self.method = method

    def build(self, input_shape):
        h = int(input_shape[-1])
        self.gamma = self.add_weight(shape=(h,), initializer="ones", name="gamma")
        self.beta = self.add_weight(shape=(h,), initializer="zeros", name="beta")
        self.centring = np.eye(h, dtype="float32") - np.float32(1.0 / h)  # (H,H) constant, not a weight
        self.built = True

    def call(self, x):
        h = int(x.shape[-1])
        if self.method == "l2norm":
            d = ops.matmul(x, ops.convert_to_tensor(self.centring, dtype=x.dtype))
            sum_sq = ops.sum(ops.square(d), axis=-1, keepdims=True)
            unit = ops.multiply(d, ops.rsqrt(ops.add(sum_sq, h * self.epsilon)))  # d / ||d||: L2_NORMALIZATION
            return ops.add(ops.multiply(unit, ops.multiply(self.gamma, float(np.sqrt(h)))), self.beta)
        d = ops.subtract(x, ops.mean(x, axis=-1, keepdims=True))
        if self.method == "range_safe":
            d = ops.divide(d, ops.add(ops.max(ops.abs(d), axis=-1, keepdims=True), 1e-6))
        y = ops.multiply(d, ops.rsqrt(ops.add(ops.mean(ops.multiply(d, d), axis=-1, keepdims=True), self.epsilon)))
        return ops.add(ops.multiply(y, self.gamma), self.beta)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self) -> dict:
        config = super().get_config()
        config.update({"epsilon": self.epsilon, "method": self.method})
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
def silu(x, qat_key: str | None = None):
    """SiLU (swish) written as ``x * sigmoid(x)`` so it converts to LOGISTIC + MUL (both int8 in TFLM).

    Shapes: any ``(...)`` -> the same. (Elfwing et al. 2018, eq. 2: ``silu(x) = x * sigma(x)``.)
    ``qat_key``: name of its two int8 tensors under quantization-aware fine-tuning (:func:`keras_tinyloc.training.qat.fq`).
    """
    if qat_key is None:
        return ops.multiply(x, ops.sigmoid(x))
    return fq(ops.multiply(x, fq(ops.sigmoid(x), f"{qat_key}/sigmoid", LOGISTIC_RANGE)), qat_key)


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
    The converted graph has no SQUARE, SQRT, DIV or RSQRT (checked in tests/models/test_layers.py); TFLM's int8 kernel
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
        unit = fq(unit, f"{getattr(self, 'qat_key', self.name)}/l2", L2NORM_RANGE)  # identity outside QAT
        return ops.multiply(unit, ops.multiply(self.weight, float(np.sqrt(h))))

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self) -> dict:
        config = super().get_config()
        config.update({"epsilon": self.epsilon})
        return config
