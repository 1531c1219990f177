"""MDCSA emitter (Multihead Dual Convolutional Self-Attention, Jovan et al. KDD 2023) in Keras 3, int8/TFLM-ready.

``build_mdcsa_emitter(input_shape=(T, F), n_classes=C, hidden=H, layers=L)`` returns a functional ``keras.Model``
``(B,T,F)`` float32 -> ``(B,T,C)`` emissions; the linear-chain CRF on top is ``crf.CRF`` inside ``tagger.CRFTagger``.

Architecture (equations numbered here; "ref" = the public PyTorch reference implementation of MDCSA)::

    (1) embedding      e = Dense(F->H)(x) * sqrt(H) + PE[:T]                                  (B,T,H)
        PE[p, i]   = sin(p / 10000^(2i/H))        for even i            (ref's formula, kept as is; max length 160)
        PE[p, i+1] = cos(p / 10000^(2(i+1)/H))    for even i
    (2) DCSA(k)        q = tanh(CausalConv1D_k(H->H)(e)), kk = tanh(CausalConv1D_k(H->H)(e)), v = e   (B,T,H)
                       a = Dropout_0.15(softmax(q kk^T / sqrt(H))) v                          (B,T,T)->(B,T,H)
                       u = LayerNorm(a + e)
    (3) GRN            g = Dropout_0.15(Dense(4H->4H)(ELU(Dense(H->4H)(u))))                   (B,T,4H)
                       out = LayerNorm(Dense(4H->H)(g) * sigmoid(Dense(4H->H)(g)) + u)       (B,T,H)  (GLU + add&norm)
    (4) L >= 2         branches DCSA(1), DCSA(4), DCSA(7) (kernel 3i+1 for branch i) on the same e,
                       interleaved per step into L*T tokens (t0k1, t0k4, t0k7, t1k1, ...)     (B,L*T,H)
                       parameter-free self-attention z = Dropout_0.15(softmax(s s^T / sqrt(H))) s
                       Conv1D(H->H, kernel L, stride L) folds each step's L tokens back to one  (B,T,H)
                       LayerNorm
        L = 1          one DCSA(1) branch, parameter-free self-attention over its T tokens, LayerNorm
                       (**no fusion conv**, see below)
    (5) head           Dense(H->C)(Dropout_0.3(.))                                            (B,T,C)

The GRN follows the reference code (TFT GRN with hidden size 4H): its second Dense is 4H->4H and the GLU is
4H->2H (held here as two Dense(4H->H), value and gate, which is the same function and parameter count and gives
the two halves separate int8 scales). ``../shared/notes/reference-architecture.md`` words it as "Dense(4H->H) ->
GLU(Dense(H->2H))", but that reading gives 4,332 parameters for House A H16L1, not the paper's 10,588 / 8,988 used;
the reference's layout reproduces them exactly. The reference's no-grad embedding (an untrained input layer) is
**not** reproduced: the embedding trains.

Design decision for L1: the reference's fusion Conv1D(kernel 3, stride 3), applied to one branch, folds T steps
into T // 3 (T = 20 -> 6 steps; T = 1 fails), which breaks the per-step CRF labels. Our L1 omits it (the
parameter-free self-attention and the final LayerNorm stay), so L1 keeps T steps.

Parameter counts (``emitter.count_params() + C^2 + 2C`` for the CRF), asserted in ``tests/models/test_mdcsa.py``:

=============================  ======  ========  ========================================================
shape                          paper   ours      difference
=============================  ======  ========  ========================================================
House A (F=8, C=4) H16L1       10,588   8,204    ref builds 1,600 never used (2nd-modality LayerNorm 32 and
                                                 two convs 544, GRN context Dense 1,024): 8,988 used;
                                                 minus the 784-param fusion conv our L1 omits
House A H8L1                    2,812   2,196    unused 416 (16 + 144 + 256), fusion conv 200
UJIIndoorLoc (F=520, C=59)     23,290  20,906    unused 1,600, fusion conv 784
  H16L1
House A H16L3                     --   29,468    ref code builds 38,876, of which 9,408 unused (per branch
                                                 k: LayerNorm, two k-wide convs, context Dense); same used
=============================  ======  ========  ========================================================

int8 / TFLM (full-int8 PTQ, ``TFLITE_BUILTINS_INT8``): every op of the converted graph is int8 and in TFLM's
kernel set -- FULLY_CONNECTED, CONV_2D (+PAD/RESHAPE for the causal convolutions), TANH, LOGISTIC, BATCH_MATMUL,
SOFTMAX, MUL, ADD, SUB, DIV, L2_NORMALIZATION, RESHAPE/CONCATENATION (L >= 2). LayerNorm is
``layers.Int8LayerNorm`` (no NEG island; one fused L2_NORMALIZATION) and ELU is ``layers.Int8ELU`` (the ELU
builtin stays float after int8 quantization). No masks (-1e4 masks ruin int8 attention), no
EXP/LOG/SQRT/GELU/NEG/SQUARE/WHILE. Dropout is the identity at inference and leaves no op. Convert a fixed-batch
clone (``convert.fixed_batch``): a ``None`` batch leaves SHAPE/GATHER/REDUCE_PROD ops that TFLM cannot run.

Measured (trained with ``python -m keras_tinyloc train`` for 20-30 epochs on the simulated House A, T=20, F=8, C=4,
and on UJIIndoorLoc 59 zones, T=1; 200 training windows for calibration; host TFLM wheel; minimal arena by
bisection, an upper bound for a Cortex-M build; macro-F1 on the test windows, float -> int8 run in TFLM), with the
default ``norm="l2norm"`` and, for comparison, the same weights with the other two LayerNorm graphs:

==========  ====  ==========  ========  ==============  =====================  =====================
model       ops   flatbuffer  arena     F1 float->int8  "range_safe" arena/F1  "textbook" arena/F1
==========  ====  ==========  ========  ==============  =====================  =====================
H16L1        41   27,736 B    17,888 B  71.35 -> 71.24  22,624 B / 71.30       19,744 B / 71.35
H8L1         41   18,616 B    13,344 B  70.62 -> 70.60  21,216 B / 70.57       18,096 B / 70.57
H16L3       121   84,328 B    41,312 B  72.80 -> 72.67  59,104 B / 72.93       51,872 B / 72.93
UJI H16L1    43   37,672 B    15,088 B  76.14 -> 76.13  22,768 B / 75.70       19,648 B / 75.70
==========  ====  ==========  ========  ==============  =====================  =====================
"""
from __future__ import annotations

import math
import warnings
from typing import Sequence

import keras
import numpy as np
from keras import ops

from keras_tinyloc.errors import TinyLocError
from keras_tinyloc.models.layers import Int8ELU, Int8LayerNorm

MAX_LEN = 160  # longest window the positional encoding covers (reference value)
ATTENTION_DROPOUT = 0.15


def positional_encoding(length: int, hidden: int) -> np.ndarray:
    """The reference's fixed sinusoidal table ``(length, H)`` float32 (eq. 1 of this module).

    For even i: ``PE[p, i] = sin(p / 10000^(2i/H))``, ``PE[p, i+1] = cos(p / 10000^(2(i+1)/H))``. (Vaswani et al.
    use exponent i/H for both; the reference's variant is kept so trained models match the paper's.)
    """
    if hidden % 2:
        raise TinyLocError(f"hidden={hidden}: MDCSA needs an even hidden size (sin/cos pairs)")
    pos = np.arange(length, dtype=np.float64)[:, None]
    even = np.arange(0, hidden, 2, dtype=np.float64)[None, :]
    pe = np.zeros((length, hidden), dtype=np.float64)
    pe[:, 0::2] = np.sin(pos / 10000.0 ** (2.0 * even / hidden))
    pe[:, 1::2] = np.cos(pos / 10000.0 ** (2.0 * (even + 1.0) / hidden))
    return pe.astype(np.float32)


@keras.saving.register_keras_serializable(package="keras_tinyloc")
class ScaledPositionalEncoding(keras.layers.Layer):
    """``e = x * sqrt(H) + PE[:T]`` (eq. 1); ``x`` ``(B,T,H)`` -> ``(B,T,H)``. No weights (PE is a constant)."""

    def __init__(self, max_len: int = MAX_LEN, **kwargs):
        super().__init__(**kwargs)
        self.max_len = int(max_len)

    def build(self, input_shape):
        steps, hidden = input_shape[1], int(input_shape[-1])
        if steps is None or not 1 <= int(steps) <= self.max_len:
            raise TinyLocError(f"T={steps}: MDCSA's positional encoding needs a fixed 1 <= T <= {self.max_len}")
        self.scale = math.sqrt(hidden)
        self.pe = positional_encoding(int(steps), hidden)[None]  # (1,T,H)
        self.built = True

    def call(self, x):
        return ops.add(ops.multiply(x, self.scale), ops.convert_to_tensor(self.pe, dtype=x.dtype))

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self) -> dict:
        config = super().get_config()
        config.update({"max_len": self.max_len})
        return config


@keras.saving.register_keras_serializable(package="keras_tinyloc")
class DotProductAttention(keras.layers.Layer):
    """Single-head scaled dot-product attention without mask (eq. 2): ``[q, k, v]`` each ``(B,T,H)`` -> ``(B,T,H)``.

    ``out = Dropout(softmax(q k^T / sqrt(H))) v``; the ``(B,T,T)`` weights are dropped only in training.
    Converts to BATCH_MATMUL, MUL, SOFTMAX, BATCH_MATMUL (all int8 in TFLM).
    """

    def __init__(self, dropout: float = ATTENTION_DROPOUT, **kwargs):
        super().__init__(**kwargs)
        self.dropout = float(dropout)
        self.drop = keras.layers.Dropout(self.dropout)

    def call(self, inputs, training=None):
        q, k, v = inputs
        scores = ops.multiply(ops.matmul(q, ops.transpose(k, (0, 2, 1))), 1.0 / math.sqrt(int(k.shape[-1])))
        with warnings.catch_warnings():  # T = 1 (UJIIndoorLoc): a softmax over one key is 1, as in the reference
            warnings.filterwarnings("ignore", message="You are using a softmax over axis")
            weights = ops.softmax(scores, axis=-1)
        return ops.matmul(self.drop(weights, training=training), v)

    def compute_output_shape(self, input_shape):
        return input_shape[2]

    def get_config(self) -> dict:
        config = super().get_config()
        config.update({"dropout": self.dropout})
        return config


def _causal_conv_tanh(x, hidden: int, kernel: int, name: str):
    """``tanh(CausalConv1D_k(H->H)(x))`` ``(B,T,H)``: explicit left zero-padding of k-1 steps, then a valid conv.

    A kernel-1 conv is the per-step ``Dense(H->H)`` (same function and parameter count, kernel ``(H,H)`` instead of
    ``(1,H,H)``): it converts to one FULLY_CONNECTED instead of RESHAPE + CONV_2D + RESHAPE.
    """
    if kernel == 1:
        return keras.layers.Dense(hidden, activation="tanh", name=name)(x)
    x = keras.layers.ZeroPadding1D((kernel - 1, 0), name=f"{name}_pad")(x)
    return keras.layers.Conv1D(hidden, kernel, activation="tanh", name=name)(x)


def _grn(u, hidden: int, dropout: float, name: str, norm: str):
    """Gated residual network (eq. 3): ``u`` ``(B,T,H)`` -> ``(B,T,H)`` with inner size 4H."""
    g = keras.layers.Dense(4 * hidden, name=f"{name}_fc1")(u)
    g = Int8ELU(name=f"{name}_elu")(g)
    g = keras.layers.Dense(4 * hidden, name=f"{name}_fc2")(g)
    g = keras.layers.Dropout(dropout, name=f"{name}_drop")(g)
    value = keras.layers.Dense(hidden, name=f"{name}_glu_value")(g)
    gate = keras.layers.Dense(hidden, activation="sigmoid", name=f"{name}_glu_gate")(g)
    glu = keras.layers.Multiply(name=f"{name}_glu")([value, gate])
    residual = keras.layers.Add(name=f"{name}_add")([glu, u])
    return Int8LayerNorm(method=norm, name=f"{name}_norm")(residual)


def _dcsa(e, hidden: int, kernel: int, dropout: float, name: str, norm: str):
    """DCSA(k) (eq. 2 + 3): ``e`` ``(B,T,H)`` -> ``(B,T,H)``."""
    q = _causal_conv_tanh(e, hidden, kernel, f"{name}_q")
    k = _causal_conv_tanh(e, hidden, kernel, f"{name}_k")
    a = DotProductAttention(dropout, name=f"{name}_attn")([q, k, e])
    u = Int8LayerNorm(method=norm, name=f"{name}_norm")(keras.layers.Add(name=f"{name}_add")([a, e]))
    return _grn(u, hidden, dropout, f"{name}_grn", norm)


def branch_kernels(layers: int) -> list[int]:
    """Causal-conv kernel sizes of the DCSA branches: 1, 4, 7, ... (``3i + 1``; L3 = the paper's 1/4/7)."""
    return [3 * i + 1 for i in range(layers)]


def build_mdcsa_emitter(
    input_shape: Sequence[int],
    n_classes: int,
    hidden: int,
    layers: int,
    dropout: float = ATTENTION_DROPOUT,
    head_dropout: float = 0.3,
    norm: str = "l2norm",
    name: str = "mdcsa",
) -> keras.Model:
    """MDCSA emitter ``(B,T,F)`` float32 -> ``(B,T,C)`` emissions (module equations 1-5).

    Args:
        input_shape: ``(T, F)``; 1 <= T <= 160 (T = 1 for UJIIndoorLoc).
        n_classes: C. hidden: H (even). layers: L, the number of DCSA branches (1 or 3 in the paper).
        dropout: on attention weights and inside the GRN (reference 0.15). head_dropout: before the head (0.3).
        norm: ``Int8LayerNorm(method=...)`` of every LayerNorm: "l2norm" (default), "range_safe" or "textbook"
            (same weights and float function; they differ in the int8 graph, see ``layers.Int8LayerNorm``).
    Raises:
        TinyLocError: on non-positive or inconsistent sizes.
    """
    try:
        steps, features = (int(v) for v in input_shape)
    except (TypeError, ValueError):
        raise TinyLocError(f"input_shape={input_shape!r}: expected (T, F)") from None
    for label, value in (("T", steps), ("F", features), ("n_classes", n_classes), ("hidden", hidden),
                         ("layers", layers)):
        if int(value) <= 0:
            raise TinyLocError(f"{label}={value}: must be a positive integer")
    if steps > MAX_LEN:
        raise TinyLocError(f"T={steps}: MDCSA's positional encoding covers at most {MAX_LEN} steps")
    if hidden % 2:
        raise TinyLocError(f"hidden={hidden}: MDCSA needs an even hidden size (sin/cos positional encoding)")
    if norm not in Int8LayerNorm.METHODS:
        raise TinyLocError(f"norm={norm!r}: choose one of {', '.join(Int8LayerNorm.METHODS)}")
    if not (0.0 <= dropout < 1.0 and 0.0 <= head_dropout < 1.0):
        raise TinyLocError(f"dropout={dropout}, head_dropout={head_dropout}: must lie in [0, 1)")
    hidden, layers, n_classes = int(hidden), int(layers), int(n_classes)

    x = keras.Input((steps, features), name="rssi")
    e = keras.layers.Dense(hidden, name="embed")(x)
    e = ScaledPositionalEncoding(name="pos_enc")(e)
    branches = [_dcsa(e, hidden, k, dropout, f"dcsa{k}", norm) for k in branch_kernels(layers)]
    if layers == 1:
        s = branches[0]
    else:  # interleave per step: token t*L + i = branch i at step t
        stacked = keras.layers.Concatenate(axis=2, name="stack")(
            [keras.layers.Reshape((steps, 1, hidden), name=f"expand{i}")(b) for i, b in enumerate(branches)]
        )
        s = keras.layers.Reshape((steps * layers, hidden), name="interleave")(stacked)
    z = DotProductAttention(dropout, name="fusion_attn")([s, s, s])
    if layers > 1:
        z = keras.layers.Conv1D(hidden, layers, strides=layers, name="fusion_fold")(z)
    z = Int8LayerNorm(method=norm, name="fusion_norm")(z)
    z = keras.layers.Dropout(head_dropout, name="head_drop")(z)
    out = keras.layers.Dense(n_classes, name="emissions")(z)
    return keras.Model(x, out, name=name)


def crf_params(n_classes: int) -> int:
    """Parameters of the linear-chain CRF head: transitions C^2 + start C + end C."""
    return n_classes * n_classes + 2 * n_classes
