"""Small Keras 3 layers shared by the emitters, written so their full-int8 TFLite conversion runs in TFLM.

Each class below has one owner (see its docstring); append new classes, do not edit others'.
"""
from __future__ import annotations

import keras
from keras import ops


# ---------------------------------------------------------------------------------------------------------- MDCSA
@keras.saving.register_keras_serializable(package="keras_tinyloc")
class Int8LayerNorm(keras.layers.Layer):
    """Layer normalisation over the last axis, built only from ops that stay int8 in TFLite and run in TFLM.

    Shapes: ``x`` ``(..., H)`` -> ``(..., H)``; weights ``gamma`` ``(H,)`` (ones), ``beta`` ``(H,)`` (zeros).

    Equation (Ba et al. 2016, "Layer Normalization", eq. 4, the same function as ``keras.layers.LayerNormalization``
    and ``torch.nn.LayerNorm``)::

        mu  = mean_h x_h                      MEAN
        d   = x - mu                          SUB
        var = mean_h d_h * d_h                MUL + MEAN
        y   = d * rsqrt(var + eps) * gamma + beta     ADD + RSQRT + MUL + MUL + ADD

    Why not ``keras.layers.LayerNormalization``: its TF graph contains a NEG (and, via ``tf.nn.moments``, a
    SQUARED_DIFFERENCE/STOP_GRADIENT path) that the int8 converter leaves as a float island wrapped in
    DEQUANTIZE/QUANTIZE (measured: ``FULLY_CONNECTED, MEAN, DEQUANTIZE, NEG, QUANTIZE, SQUARED_DIFFERENCE, ...``).
    This layer converts to MEAN, SUB, MUL, ADD, RSQRT only (no NEG, SQUARE, SQRT, DIV); gamma = 1 / beta = 0
    are folded away by the converter.
    ``epsilon`` defaults to 1e-5 (PyTorch's LayerNorm, which the reference MDCSA uses).
    """

    def __init__(self, epsilon: float = 1e-5, **kwargs):
        super().__init__(**kwargs)
        self.epsilon = float(epsilon)

    def build(self, input_shape):
        h = int(input_shape[-1])
        self.gamma = self.add_weight(shape=(h,), initializer="ones", name="gamma")
        self.beta = self.add_weight(shape=(h,), initializer="zeros", name="beta")
        self.built = True

    def call(self, x):
        mu = ops.mean(x, axis=-1, keepdims=True)
        d = ops.subtract(x, mu)
        var = ops.mean(ops.multiply(d, d), axis=-1, keepdims=True)
        y = ops.multiply(d, ops.rsqrt(ops.add(var, self.epsilon)))
        return ops.add(ops.multiply(y, self.gamma), self.beta)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self) -> dict:
        config = super().get_config()
        config.update({"epsilon": self.epsilon})
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
    """Root-mean-square normalisation over the last axis, int8-friendly (no SQUARE, no SQRT, no DIV).

    Shapes: ``x`` ``(..., H)`` -> ``(..., H)``; weight ``weight`` ``(H,)`` (ones).

    Equation (Zhang & Sennrich 2019, "Root Mean Square Layer Normalization", eq. 4; the ``RMSNorm`` of
    mamba-minimal / ``torch.nn.RMSNorm`` with ``eps`` inside the root)::

        ms = mean_h x_h * x_h                 MUL + MEAN      (B,T,1)
        y  = x * rsqrt(ms + eps) * weight     ADD + RSQRT + MUL + MUL

    Why not ``keras.layers.RMSNormalization``: its graph squares with SQUARE, which the full-int8 converter leaves
    as a float island (DEQUANTIZE/QUANTIZE around it). ``x * x`` converts to an int8 MUL.
    """

    def __init__(self, epsilon: float = 1e-5, **kwargs):
        super().__init__(**kwargs)
        self.epsilon = float(epsilon)

    def build(self, input_shape):
        self.weight = self.add_weight(shape=(int(input_shape[-1]),), initializer="ones", name="weight")
        self.built = True

    def call(self, x):
        ms = ops.mean(ops.multiply(x, x), axis=-1, keepdims=True)
        return ops.multiply(ops.multiply(x, ops.rsqrt(ops.add(ms, self.epsilon))), self.weight)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self) -> dict:
        config = super().get_config()
        config.update({"epsilon": self.epsilon})
        return config
