"""Mamba emitter (Gu & Dao 2023) whose selective scan converts to full-int8 TFLite and runs in TFLM.

The model (reference notes "Mamba model", paper "HxLy" = ``hidden`` x, ``layers`` y)::

    x (B,T,F) -> Dense(F->H, no bias) -> L x MambaBlock -> RMSNorm -> Dense(H->C, no bias) -> emissions (B,T,C)

    MambaBlock (residual; mamba-minimal's ResidualBlock + MambaBlock):
        z        = RMSNorm(x)                                   (B,T,H)
        xs, res  = split(in_proj(z))                            (B,T,E) each; in_proj Dense(H->2E, no bias)
        xs       = silu(causal depthwise conv_k(xs) + bias)     (B,T,E); kernel k = d_conv over time
        dlt, Bm, Cm = split(x_proj(xs))                         (B,T,R), (B,T,N), (B,T,N); x_proj Dense(E->R+2N)
        v        = dt_proj(dlt)                                 (B,T,E); dt_proj Dense(R->E, bias)
        y        = SelectiveScan(xs, v, Bm, Cm)                 (B,T,E)
        out      = x + out_proj(y * silu(res))                  (B,T,H); out_proj Dense(E->H, no bias)

Parameter count = the paper's (A_log counted, frozen): see :mod:`keras_tinyloc.models.params`. The structure above
with a bias in the embedding is exactly H parameters over all three published totals (House A H32L1 10,392 and
H8L1 1,432, UJIIndoorLoc H8L1 9,543, with the CRF's C^2 + 2C); an embedding without bias (chosen here) or no final
norm both match them; the reference notes list a final norm, so the embedding has no bias.

Full int8 (TFLM): convert with the batch fixed at 1 (``convert.fixed_batch``), after
:func:`calibrate_state_scales` on the representative windows (float-exact). Graph of H8L1, T=20, F=8: 87 nodes —
FULLY_CONNECTED 6, L2_NORMALIZATION 2 (the RMSNorms), SPLIT 1, SPLIT_V 1, PAD 1, DEPTHWISE_CONV_2D 1, RESHAPE 7,
LOGISTIC 3, MUL 34, ADD 21, SUB 1, CONCATENATION 4, UNPACK 2, PACK 1, BATCH_MATMUL 1 and one int8->int8 QUANTIZE
(the LOGISTIC output, fixed scale 1/256, requantised for a CONCATENATION). Measured macro-F1 change int8 - float
(LiteRT, calibrated, points): House A simulator H8L1 seed 0 val -2.2 (261 windows: 2 flipped) / test +0.1,
H8L1 seed 1 -0.5 / +0.6, H32L1 0.0 / +0.0 (last-step test labels agree on 99.3-99.8 %); UJIIndoorLoc H8L1
building-floor -0.0 / -0.1, zones -0.1 / -1.1 (without calibration -0.0 / -0.3).

Where this deviates from the reference (mamba-minimal / mamba's ``selective_scan_ref``), exactly, and why. TFLM's
int8 kernels have no EXP, LOG or POW (toolchain-facts), so neither ``exp(delta A)`` with a learned A nor
``delta = softplus(u)`` itself can be in the graph; what can is LOGISTIC and MUL:

1. **A is frozen at A_n = -n in every channel** (S4D-real initialisation, ``A_log = log(1..N)``, non-trainable). The
   graph never reads ``A_log`` (kept only so the parameter count equals the paper's); the reference learns A (E,N).
   Then ``exp(delta A_n) = sigmoid(-u)^n`` exactly (:class:`SelectiveScan`).
2. **Zero-order hold for the input term**: ``(1 - a^n)/n * B x`` (the Mamba paper's eq. 4), where the reference code
   uses the Euler term ``delta * B x``. Euler needs delta itself (softplus = LOG(1 + EXP)); ZOH needs only a^n. The two
   agree to first order in n*delta (``(1 - e^{-n delta})/n = delta - n delta^2/2 + ...``) and differ widely for large
   steps (``tests/models/test_mamba.py::test_the_scan_is_not_the_reference_euler_scan_and_never_reads_a_log``).
3. **Sign of dt** (exact, a re-parameterisation): ``dt_proj`` outputs ``v = -u`` where the reference has
   ``delta = softplus(u)``, so ``delta = softplus(-v)`` and ``exp(-delta) = sigmoid(v)`` with no NEG in the graph.

So a PyTorch mamba-minimal checkpoint does **not** map over: negating ``dt_proj``'s weight and bias fixes 3, but 1
discards its learned A and 2 changes every step's input gain (outputs differ by up to ~0.25 on random weights).
What each choice costs in accuracy (frozen vs learned A, ZOH vs Euler, float, same budget) is measured in
``docs/results/mamba_fidelity.md`` (the float-only options ``a_mode="learned"`` / ``input_term="euler"`` of
:class:`SelectiveScan`): over 5 seeds on uji-zones H32L1, house-a H8L1/H32L1 and sphere H8L1, neither a learned A
(pooled test macro-F1 change -1.8 ... +0.5 points) nor the Euler term (-1.0 ... +1.0) differs from today's form by
more than the seed noise, so the frozen A_n = -n and the ZOH term cost nothing measurable and no int8 form of a
learned A was added.
"""
from __future__ import annotations

import math

import keras
import numpy as np
from keras import ops

from keras_tinyloc.errors import TinyLocError
from keras_tinyloc.models.layers import RMSNorm, silu
from keras_tinyloc.models.fake_quant import LOGISTIC_RANGE, fq


@keras.saving.register_keras_serializable(package="keras_tinyloc")
class NegInvSoftplusDt(keras.initializers.Initializer):
    """Bias initialiser for ``dt_proj``: ``b = -softplus^-1(dt)``, ``dt = exp(U(log dt_min, log dt_max))``.

    Mamba's ``dt_init`` (Gu & Dao 2023, sec. 3.6 / mamba_simple.py), negated for the ``v = -u`` convention above,
    so the initial step sizes ``delta = softplus(-b)`` are log-uniform in ``[dt_min, dt_max]``. Shape ``(E,)``.
    """

    def __init__(self, dt_min: float = 1e-3, dt_max: float = 1e-1, dt_floor: float = 1e-4, seed=None):
        self.dt_min, self.dt_max, self.dt_floor, self.seed = float(dt_min), float(dt_max), float(dt_floor), seed

    def __call__(self, shape, dtype=None):
        lo, hi = math.log(self.dt_min), math.log(self.dt_max)
        dt = ops.exp(keras.random.uniform(shape, lo, hi, seed=self.seed))
        dt = ops.maximum(dt, self.dt_floor)
        inv_softplus = dt + ops.log(-ops.expm1(-dt))  # softplus^-1(dt) = log(exp(dt) - 1)
        return ops.cast(-inv_softplus, dtype or "float32")

    def get_config(self) -> dict:
        return {"dt_min": self.dt_min, "dt_max": self.dt_max, "dt_floor": self.dt_floor, "seed": self.seed}


def _powers(a, n_max: int, qat_key: str = "powers"):
    """``[a^1, ..., a^n_max]`` stacked on a new last axis by repeated squaring: (B,T,E) -> (B,T,E,n_max).

    ``p_{2k} = concat(p_k, p_k * a^k)`` with ``a^{2k} = a^k * a^k``: ceil(log2 n_max) rounds of 2 MUL + 1 CONCAT
    each (plus one MUL for the last round's square, which is unused), so N = 16 costs 10 ops, not 15 per step.
    """
    ak = ops.expand_dims(a, -1)  # a^1, (B,T,E,1)
    p = ak
    k = 1
    while k < n_max:
        p = fq(ops.concatenate([p, fq(ops.multiply(p, ak), f"{qat_key}/p{k}ak")], axis=-1), f"{qat_key}/p{2 * k}")
        k *= 2
        if k < n_max:
            ak = fq(ops.multiply(ak, ak), f"{qat_key}/a{k}")  # a^k for the next round
    return p[..., :n_max] if k != n_max else p


A_MODES = ("frozen", "learned")  # A_n = -n (int8/TFLM) | A = -exp(A_log), A_log (E,N) trainable (float only)
INPUT_TERMS = ("zoh", "euler")  # (1 - a^n)/n B x (int8/TFLM) | delta B x, the reference code's (float only)


def check_scan_options(a_mode: str = "frozen", input_term: str = "zoh") -> None:
    """Raise TinyLocError (one line) unless ``a_mode`` is in :data:`A_MODES` and ``input_term`` in :data:`INPUT_TERMS`."""
    if a_mode not in A_MODES:
        raise TinyLocError(f"mamba a_mode={a_mode!r}: choose from {', '.join(A_MODES)}")
    if input_term not in INPUT_TERMS:
        raise TinyLocError(f"mamba input_term={input_term!r}: choose from {', '.join(INPUT_TERMS)}")


def _non_default_options(a_mode: str, input_term: str) -> dict:
    """The scan options that differ from the int8 defaults (``{}`` for the default model)."""
    return {k: v for k, v, d in (("a_mode", a_mode, A_MODES[0]), ("input_term", input_term, INPUT_TERMS[0]))
            if v != d}


def float_only_options(a_mode: str = "frozen", input_term: str = "zoh") -> list[str]:
    """Why a scan variant cannot run in TFLM int8: one phrase per non-default option (``[]`` = int8-runnable).

    ``a_mode="learned"`` needs ``exp(delta A)`` with a learned A: EXP (and softplus = LOG(1 + EXP) for delta);
    ``input_term="euler"`` needs delta itself: softplus. TFLM's EXP and LOG kernels are float32-only.
    """
    check_scan_options(a_mode, input_term)
    out = []
    if a_mode == "learned":
        out.append("a_mode=learned (exp(delta A) with a learned A: EXP, and softplus: LOG)")
    if input_term == "euler":
        out.append("input_term=euler (delta = softplus(u) itself: EXP and LOG)")
    return out


@keras.saving.register_keras_serializable(package="keras_tinyloc")
class SelectiveScan(keras.layers.Layer):
    """Mamba's selective scan (S6, Gu & Dao 2023, Algorithm 2) with A frozen at A_n = -n, in TFLM-runnable ops.

    Inputs: ``x`` (B,T,E) the conv+SiLU branch; ``v`` (B,T,E) = ``-u``, the negated pre-softplus step
    (``delta = softplus(-v)``); ``Bm`` (B,T,N); ``Cm`` (B,T,N). Output ``y`` (B,T,E).
    Weights: ``A_log`` (E,N) = log(1..N) in every row, non-trainable (kept, and counted, to match the paper's
    parameter totals; the graph uses A_n = -exp(A_log_n) = -n exactly); ``D`` (E,) trainable, ones.

    Textbook recurrence (Algorithm 2 with zero-order hold for both A and B, eq. 4 of the paper)::

        delta_t = softplus(u_t)                                     (B,T,E)
        h_t     = exp(delta_t A) * h_{t-1} + (exp(delta_t A) - 1) / A * B_t x_t        (B,E,N), h_{-1} = 0
        y_t     = sum_n C_{t,n} h_{t,n} + D * x_t                   (B,E)

    Exact TFLM form used here (A_n = -n, a = exp(-delta) = sigmoid(-u) = sigmoid(v))::

        a       = sigmoid(v)                                        (B,T,E)     LOGISTIC
        P_n     = a^n           n = 1..N                            (B,T,E,N)   MUL/CONCAT by squaring
        U       = (1 - P) * (x / s_e) * (B_t / s_n)                 (B,T,E,N)   SUB, MUL, MUL
        g_t     = P_t * g_{t-1} + U_t                               (B,E,N)     T-1 MUL + ADD (unrolled), g_{-1} = 0
        y_t     = s_e * sum_n (C_{t,n} s_n / n) g_{t,n} + D * x_t   (B,T,E)     BATCH_MATMUL, MUL, MUL, ADD

    so that g_{t,e,n} = n h_{t,e,n} / (s_e s_n), because exp(delta A_n) = exp(-n softplus(u)) = (1 + e^u)^-n =
    sigmoid(-u)^n and the ZOH input gain is (1 - a^n) / n. Only LOGISTIC, MUL, SUB, ADD, CONCATENATION, UNPACK,
    PACK, BATCH_MATMUL and reshapes appear: no EXP/LOG (softplus), NEG, SQUARE or WHILE (the T steps are
    unrolled in Python at trace time).

    Why ZOH for B (mamba-minimal uses Euler, delta * B x): Euler needs delta itself, i.e. softplus = LOG(1 + EXP),
    which TFLM cannot run in int8; ZOH needs only a^n. For small n*delta the two agree to first order
    ((1 - e^{-n delta})/n = delta - n delta^2/2 + ...). Why the state is kept as g = n h (= -A h): then
    ``g_t = a^n g_{t-1} + (1 - a^n) B_t x_t`` is an exponential moving average of B x, so every g_t lies in the
    range of B x (and 0) whatever the step sizes, and an int8 rounding error in ``a`` changes only the averaging
    time, never the gain.

    State scales ``s_e`` (E,) and ``s_n`` (N,) (``state_scale_e``/``state_scale_n``; default: none, i.e. ones) are
    calibration constants, not parameters: any positive values give the same float output, but int8 uses one
    scale for the whole (E,N) state, and trained models have per-channel state ranges 10-20x apart. Setting them
    to the channel ranges of x and B (:func:`calibrate_state_scales`) bounds every scaled state channel by 1
    before full-int8 conversion, at the cost of three MULs on (B,T,E)/(B,T,N) tensors.

    ``scan_chunks`` = k > 1 computes P, U and the y read-out per contiguous chunk of ~T/k steps (SPLIT first,
    CONCATENATION of the k read-outs last; the state g carries across chunks). Same float result; the largest
    temporaries shrink from (B,T,E,N) to (B,T/k,E,N), at ~14-24 more graph nodes per extra chunk (each node costs
    persistent arena too), and the converter is free to schedule chunks' temporaries together. Measured host TFLM
    minimal arenas, T=20, F=8, calibrated (k = 1 / 2 / 4): H8L1 38,016 / 36,768 / 42,656 B (87 / 115 / 161 nodes);
    H32L1 103,232 / 86,416 / 88,704 B. It
    changes no weight: it can be set on a trained model before conversion (:func:`set_scan_chunks`).

    **Float-only variants** (measuring what the TFLM form costs, ``docs/results/mamba_fidelity.md``; they need EXP
    and LOG, which TFLM cannot run in int8, so the int8 converter rejects them — :func:`float_only_options`):

    * ``a_mode="learned"``: A = -exp(A_log), ``A_log`` (E,N) **trainable** (initialised to log(1..N), so a fresh
      layer equals the default one to float32 rounding), as in the reference. ``P = exp(delta A)`` (B,T,E,N) with
      ``delta = softplus(-v)``; the state is still g = -A h, and the read-out divides by -A per (E,N).
    * ``input_term="euler"``: the reference code's ``h_t = exp(delta A) h_{t-1} + delta B_t x_t``, i.e.
      ``U = (-A) delta x B`` in the g = -A h form (A frozen or learned).

    Both keep every shape above; the options are saved in ``get_config`` only when not the default, so the default
    layer's saved files and converted graph are unchanged.
    """

    def __init__(self, state_scale_e=None, state_scale_n=None, scan_chunks: int = 1, a_mode: str = "frozen",
                 input_term: str = "zoh", **kwargs):
        super().__init__(**kwargs)
        if isinstance(scan_chunks, bool) or not isinstance(scan_chunks, (int, np.integer)) or scan_chunks < 1:
            raise TinyLocError(f"scan_chunks={scan_chunks!r}: must be a positive integer")
        check_scan_options(a_mode, input_term)
        self.scan_chunks = int(scan_chunks)
        self.a_mode, self.input_term = a_mode, input_term
        self.state_scale_e = None if state_scale_e is None else [float(v) for v in state_scale_e]
        self.state_scale_n = None if state_scale_n is None else [float(v) for v in state_scale_n]

    def build(self, input_shape):
        x_shape, _, b_shape, _ = input_shape
        e, n = int(x_shape[-1]), int(b_shape[-1])
        self.d_inner, self.d_state = e, n
        self.A_log = self.add_weight(shape=(e, n), initializer="zeros", trainable=self.a_mode == "learned",
                                     name="A_log")
        self.A_log.assign(np.log(np.tile(np.arange(1, n + 1, dtype="float32"), (e, 1))))
        self.D = self.add_weight(shape=(e,), initializer="ones", name="D")
        self._check_scales(self.state_scale_e, self.state_scale_n)
        self.built = True

    def _check_scales(self, scale_e, scale_n) -> None:
        for name, vals, size in (("state_scale_e", scale_e, getattr(self, "d_inner", None)),
                                 ("state_scale_n", scale_n, getattr(self, "d_state", None))):
            if vals is None:
                continue
            if size is not None and len(vals) != size:
                raise TinyLocError(f"{self.name}: {name} has {len(vals)} values, expected {size}")
            if not all(np.isfinite(v) and v > 0 for v in vals):
                raise TinyLocError(f"{self.name}: {name} must be positive and finite")

    def set_state_scales(self, scale_e, scale_n) -> None:
        """Set ``s_e`` (E,) and ``s_n`` (N,) (``None`` for both: no scaling). Float outputs do not change."""
        if (scale_e is None) != (scale_n is None):
            raise TinyLocError(f"{self.name}: set both state scales or neither")
        scale_e = None if scale_e is None else [float(v) for v in np.ravel(scale_e)]
        scale_n = None if scale_n is None else [float(v) for v in np.ravel(scale_n)]
        self._check_scales(scale_e, scale_n)
        self.state_scale_e, self.state_scale_n = scale_e, scale_n

    def _scan(self, x, v, bm, cm, scaled: bool, want_states: bool = False):
        """The unrolled recurrence, in ``scan_chunks`` time chunks; returns y (B,T,E) or the T states g_t (B,E,N)."""
        n = self.d_state
        key = getattr(self, "qat_key", self.name)  # fq(): identity outside quantization-aware fine-tuning
        learned, euler = self.a_mode == "learned", self.input_term == "euler"
        # float-only variants (see float_only_options): delta = softplus(-v) itself, (B,T,E)
        delta = ops.softplus(ops.negative(v)) if learned or euler else None
        a = None if learned else fq(ops.sigmoid(v), f"{key}/a", LOGISTIC_RANGE)  # a = exp(-delta), (B,T,E)
        c_gain = np.ones(n, "float32") if learned else 1.0 / np.arange(1, n + 1, dtype="float32")
        if scaled and self.state_scale_e is not None:
            x = fq(ops.multiply(x, ops.convert_to_tensor(1.0 / np.array(self.state_scale_e, "float32"))), f"{key}/xs")
            bm = fq(ops.multiply(bm, ops.convert_to_tensor(1.0 / np.array(self.state_scale_n, "float32"))),
                    f"{key}/bs")
            c_gain = c_gain * np.array(self.state_scale_n, "float32")
        c = fq(ops.multiply(cm, ops.convert_to_tensor(c_gain)), f"{key}/c")  # C_t s_n / n, (B,T,N)
        neg_a = ops.exp(self.A_log) if learned else None  # -A = exp(A_log), (E,N); learned A only
        t_len = int(x.shape[1])
        k = min(self.scan_chunks, t_len)
        if k > 1:  # contiguous chunks of near-equal length: every (B,T,E,N) temporary shrinks k-fold
            cuts = [round(i * t_len / k) for i in range(1, k)]
            a, x, bm, c, delta = (None if z is None else ops.split(z, cuts, axis=1) for z in (a, x, bm, c, delta))
        else:
            a, x, bm, c, delta = (None if z is None else [z] for z in (a, x, bm, c, delta))
        a, delta = a or [None] * len(x), delta or [None] * len(x)
        g, states, ys = None, [], []
        for a_c, d_c, x_c, b_c, c_c in zip(a, delta, x, bm, c):
            if learned:  # P = exp(delta A), (B,t,E,N): EXP
                p = ops.exp(ops.multiply(ops.expand_dims(ops.negative(d_c), -1), neg_a))
            else:
                p = _powers(a_c, n, f"{key}/powers")  # P = a^n, (B,t,E,N)
            one_minus_p = None if euler else fq(ops.subtract(1.0, p), f"{key}/1-p")
            p_t = ops.unstack(p, axis=1)  # t x (B,E,N)
            if euler:  # g = -A h gets -A delta B x: U = (-A) (delta x) B, (B,t,E,N)
                gain = neg_a if learned else ops.convert_to_tensor(np.arange(1, n + 1, dtype="float32"))
                u = ops.multiply(ops.multiply(ops.expand_dims(ops.multiply(d_c, x_c), -1), gain),
                                 ops.expand_dims(b_c, -2))
            else:
                # ((1 - P) x) B: no separate B x tensor (B,t,E,N) is live at the same time
                u = fq(ops.multiply(fq(ops.multiply(one_minus_p, ops.expand_dims(x_c, -1)), f"{key}/u1"),
                                    ops.expand_dims(b_c, -2)), f"{key}/u")
            chunk = []
            for p_s, u_s in zip(p_t, ops.unstack(u, axis=1)):  # unrolled at trace time: T is fixed
                # g_0 = U_0 since g_{-1} = 0
                g = u_s if g is None else fq(ops.add(fq(ops.multiply(p_s, g), f"{key}/pg"), u_s), f"{key}/g")
                chunk.append(g)
            states += chunk
            if not want_states:  # sum_n g_n C_n s_n / (-A_n) for the chunk's steps, (B,t,E)
                stacked = ops.stack(chunk, axis=1)  # (B,t,E,N)
                if learned:
                    stacked = ops.divide(stacked, neg_a)  # h = g / (-A)
                ys.append(fq(ops.squeeze(ops.matmul(stacked, ops.expand_dims(c_c, -1)), -1), f"{key}/y"))
        if want_states:
            return states
        y = ys[0] if len(ys) == 1 else ops.concatenate(ys, axis=1)  # (B,T,E)
        if scaled and self.state_scale_e is not None:
            y = fq(ops.multiply(y, ops.convert_to_tensor(np.array(self.state_scale_e, "float32"))), f"{key}/ys")
        return y

    def states(self, inputs):
        """Unscaled states ``g = n h`` of the textbook recurrence, (B,T,E,N), for calibration and tests."""
        x, v, bm, cm = inputs
        return ops.stack(self._scan(x, v, bm, cm, scaled=False, want_states=True), axis=1)

    def call(self, inputs):
        x, v, bm, cm = inputs
        y = self._scan(x, v, bm, cm, scaled=True)  # (B,T,E)
        key = getattr(self, "qat_key", self.name)
        return fq(ops.add(y, fq(ops.multiply(x, self.D), f"{key}/dx")), f"{key}/out")

    def compute_output_shape(self, input_shape):
        return tuple(input_shape[0])

    def get_config(self) -> dict:
        config = super().get_config()
        config.update({"state_scale_e": self.state_scale_e, "state_scale_n": self.state_scale_n,
                       "scan_chunks": self.scan_chunks})
        config.update(_non_default_options(self.a_mode, self.input_term))  # default saved files stay as they were
        return config


@keras.saving.register_keras_serializable(package="keras_tinyloc")
class MambaBlock(keras.layers.Layer):
    """One residual Mamba block (mamba-minimal ResidualBlock + MambaBlock; equations in the module docstring).

    Shapes: ``x`` (B,T,H) -> (B,T,H). Sizes: E = expand * H, N = d_state, R = dt_rank, conv kernel d_conv.
    ``state_scale_e``/``state_scale_n``: the scan's int8 calibration constants (see :class:`SelectiveScan`).
    ``a_mode``/``input_term``: the scan's float-only variants (see :class:`SelectiveScan`; defaults = TFLM form).
    Parameters: H (norm) + 2HE (in_proj) + (d_conv+1)E (conv) + E(R+2N) (x_proj) + (R+1)E (dt_proj)
    + EN (A_log, frozen) + E (D) + EH (out_proj).
    """

    def __init__(self, d_model: int, d_state: int = 16, d_conv: int = 4, expand: int = 2, dt_rank=None,
                 state_scale_e=None, state_scale_n=None, scan_chunks: int = 1, a_mode: str = "frozen",
                 input_term: str = "zoh", **kwargs):
        super().__init__(**kwargs)
        self.d_model, self.d_state, self.d_conv, self.expand = int(d_model), int(d_state), int(d_conv), int(expand)
        self.dt_rank = int(dt_rank) if dt_rank is not None else math.ceil(self.d_model / 16)
        e, r, n = self.expand * self.d_model, self.dt_rank, self.d_state
        self.d_inner = e
        self.norm = RMSNorm(name="norm")
        self.in_proj = keras.layers.Dense(2 * e, use_bias=False, name="in_proj")
        self.conv = keras.layers.DepthwiseConv1D(self.d_conv, padding="valid", use_bias=True, name="conv1d")
        self.x_proj = keras.layers.Dense(r + 2 * n, use_bias=False, name="x_proj")
        dt_init_std = r**-0.5  # Mamba dt_init="random", dt_scale=1
        self.dt_proj = keras.layers.Dense(
            e,
            kernel_initializer=keras.initializers.RandomUniform(-dt_init_std, dt_init_std),
            bias_initializer=NegInvSoftplusDt(),
            name="dt_proj",
        )
        self.scan = SelectiveScan(state_scale_e, state_scale_n, scan_chunks, a_mode=a_mode, input_term=input_term,
                                  name="selective_scan")
        self.out_proj = keras.layers.Dense(self.d_model, use_bias=False, name="out_proj")
        self.norm.qat_key, self.scan.qat_key = f"{self.name}/norm", f"{self.name}/scan"  # unique fq() keys per block

    def build(self, input_shape):
        b, t, h = input_shape
        e, r, n = self.d_inner, self.dt_rank, self.d_state
        self.norm.build((b, t, h))
        self.in_proj.build((b, t, h))
        self.conv.build((b, None if t is None else t + self.d_conv - 1, e))
        self.x_proj.build((b, t, e))
        self.dt_proj.build((b, t, r))
        self.scan.build(((b, t, e), (b, t, e), (b, t, n), (b, t, n)))
        self.out_proj.build((b, t, e))
        self.built = True

    def scan_inputs(self, x):
        """The selective scan's inputs for block input ``x`` (B,T,H): ``(xs, v, Bm, Cm)`` and the gate ``res``."""
        e, r, n = self.d_inner, self.dt_rank, self.d_state
        k = self.name  # fq(): the int8 tensors under quantization-aware fine-tuning; identity otherwise
        xz = fq(self.in_proj(self.norm(x)), f"{k}/in_proj")  # (B,T,2E)
        xs, res = ops.split(xz, 2, axis=-1)  # (B,T,E) each; one SPLIT op
        xs = ops.pad(xs, ((0, 0), (self.d_conv - 1, 0), (0, 0)))  # causal: left-pad k-1 steps, (B,T+k-1,E)
        xs = silu(fq(self.conv(xs), f"{k}/conv"), f"{k}/conv_silu")  # (B,T,E)
        dbc = fq(self.x_proj(xs), f"{k}/x_proj")  # (B,T,R+2N)
        dlt, bm, cm = ops.split(dbc, [r, r + n], axis=-1)  # (B,T,R), (B,T,N), (B,T,N); one SPLIT_V op
        return (xs, fq(self.dt_proj(dlt), f"{k}/dt_proj"), bm, cm), res

    def call(self, x):
        scan_in, res = self.scan_inputs(x)
        y = self.scan(scan_in)  # (B,T,E)
        k = self.name
        gated = fq(ops.multiply(y, silu(res, f"{k}/gate_silu")), f"{k}/gated")
        return fq(ops.add(x, fq(self.out_proj(gated), f"{k}/out_proj")), f"{k}/residual")

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self) -> dict:
        config = super().get_config()
        config.update(
            {
                "d_model": self.d_model,
                "d_state": self.d_state,
                "d_conv": self.d_conv,
                "expand": self.expand,
                "dt_rank": self.dt_rank,
                "state_scale_e": self.scan.state_scale_e,  # int8 calibration constants (SelectiveScan)
                "state_scale_n": self.scan.state_scale_n,
                "scan_chunks": self.scan.scan_chunks,
            }
        )
        config.update(_non_default_options(self.scan.a_mode, self.scan.input_term))  # default files unchanged
        return config


def build_mamba_emitter(
    input_shape,
    n_classes: int,
    hidden: int,
    layers: int,
    d_state: int = 16,
    d_conv: int = 4,
    expand: int = 2,
    dt_rank=None,
    scan_chunks: int = 1,
    a_mode: str = "frozen",
    input_term: str = "zoh",
) -> keras.Model:
    """Mamba emitter ``(B,T,F)`` float32 -> ``(B,T,C)`` emissions (module docstring gives the equations).

    Args:
        input_shape: ``(T, F)``; T = 1 (UJIIndoorLoc, no windowing) works.
        n_classes: C.  hidden: H (d_model).  layers: L residual blocks.
        d_state: N (16).  d_conv: causal depthwise conv kernel over time (4).  expand: E / H (2).
        dt_rank: R, default ceil(H / 16).
        scan_chunks: time chunks of the unrolled scan (1); a TFLM arena/graph-size trade-off, see SelectiveScan.
        a_mode: ``"frozen"`` (A_n = -n, the int8/TFLM form) or ``"learned"`` (A = -exp(A_log), A_log (E,N)
            trainable from log(1..N): float only).
        input_term: ``"zoh"`` ((1 - a^n)/n B x, int8/TFLM) or ``"euler"`` (delta B x, the reference code's: float
            only). A float-only variant's model name ends in ``_float-only_<option>-<value>...``, so the int8
            converter's check, which names the emitter, names the option when it rejects the EXP/LOG ops.
    """
    sizes = {"n_classes": n_classes, "hidden": hidden, "layers": layers, "d_state": d_state, "d_conv": d_conv,
             "expand": expand, "scan_chunks": scan_chunks}
    if dt_rank is not None:
        sizes["dt_rank"] = dt_rank
    for name, value in sizes.items():
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value <= 0:
            raise TinyLocError(f"mamba {name}={value!r}: must be a positive integer")
    check_scan_options(a_mode, input_term)
    variant = _non_default_options(a_mode, input_term)
    if len(tuple(input_shape)) != 2 or any(int(s) <= 0 for s in input_shape):
        raise TinyLocError(f"mamba input_shape {tuple(input_shape)!r}: expected (T, F) with positive sizes")
    t, f = (int(s) for s in input_shape)
    inputs = keras.Input(shape=(t, f), name="rssi", dtype="float32")
    h = keras.layers.Dense(hidden, use_bias=False, name="embedding")(inputs)  # (B,T,H)
    for i in range(layers):
        h = MambaBlock(hidden, d_state, d_conv, expand, dt_rank, scan_chunks=scan_chunks, name=f"mamba_block_{i}",
                       **variant)(h)
    h = RMSNorm(name="norm_f")(h)
    emissions = keras.layers.Dense(n_classes, use_bias=False, name="emissions")(h)  # (B,T,C)
    name = f"mamba_h{hidden}l{layers}"
    if variant:
        name += "_float-only_" + "_".join(f"{k}-{v}" for k, v in variant.items())  # TF scope-name characters
    return keras.Model(inputs, emissions, name=name)


def calibrate_state_scales(emitter: keras.Model, x, strength: float = 1.0, max_windows: int = 512) -> list[dict]:
    """Set every :class:`SelectiveScan`'s state scales from float runs on ``x`` (B,T,F), before int8 conversion.

    For each block, s_e = (max |x_e|)^strength and s_n = (max |B_n|)^strength over the windows and steps of
    ``x`` (channels that never move keep 1). With strength 1 the scan's scaled inputs x / s_e and B / s_n peak at
    1 in every channel, and since the state g' = g / (s_e s_n) is an exponential moving average of
    (x / s_e)(B / s_n), every state channel is bounded by 1 too: the int8 state's 256 levels serve every channel
    instead of the few largest, and no scaled tensor can grow beyond the calibrated inputs' range. The float
    outputs do not change (up to float32 rounding). Call it with the representative (training) windows before
    converting; the scales are saved with the model.

    (A rank-1 fit of the states' own channel peaks equalises g further, but at T = 1 it divides x by the tiny
    (1 - a^n) of slow channels: on UJIIndoorLoc zones H8L1 the scaled x range grew ~100x and test F1 fell
    1.8 points; this input-range form cannot blow up.)

    Measured (mean |int8 - float| test emission error / last-step test label agreement, full int8 in LiteRT):
    House A simulator H8L1 seed 0: 0.106 / 0.984 without -> 0.087 / 0.995 with; H8L1 seed 1: 0.186 / 0.990 ->
    0.175 / 0.993; H32L1: 0.121 / 0.9987 -> 0.126 / 0.998; UJI building-floor H8L1: 0.088 / 0.9955 ->
    0.088 / 0.998; UJI zones H8L1: 0.196 / 0.985 -> 0.202 / 0.982.

    Returns one dict per block: ``{"block", "spread_before", "spread_after"}``, the ratio of the largest to the
    median state-channel peak before and after scaling.
    """
    if not (0.0 <= float(strength) <= 1.0):
        raise TinyLocError(f"calibrate_state_scales: strength={strength!r} must be in [0, 1]")
    x = np.asarray(x, dtype="float32")[:max_windows]
    if x.ndim != 3 or x.shape[1:] != tuple(emitter.input_shape[1:]):
        raise TinyLocError(f"calibration windows: shape {x.shape}, expected (B,) + {tuple(emitter.input_shape[1:])}")
    h = emitter.get_layer("embedding")(x)
    report = []
    for layer in emitter.layers:
        if not isinstance(layer, MambaBlock):
            continue
        scan_in, _ = layer.scan_inputs(h)
        s_e = np.abs(np.asarray(scan_in[0], np.float64)).max(axis=(0, 1))  # max |x_e|, (E,)
        s_n = np.abs(np.asarray(scan_in[2], np.float64)).max(axis=(0, 1))  # max |B_n|, (N,)
        s_e = np.where(s_e > 0, s_e, 1.0) ** strength
        s_n = np.where(s_n > 0, s_n, 1.0) ** strength
        m = np.abs(np.asarray(layer.scan.states(scan_in), np.float64)).max(axis=(0, 1))  # state peaks, (E,N)
        layer.scan.set_state_scales(s_e, s_n)
        scaled = m / np.outer(s_e, s_n)
        report.append({"block": layer.name, "spread_before": float(m.max() / max(float(np.median(m)), 1e-30)),
                       "spread_after": float(scaled.max() / max(float(np.median(scaled)), 1e-30))})
        h = layer(h)
    emitter.predict_function = None  # a traced predict() would keep the old constants
    return report


def set_scan_chunks(emitter: keras.Model, scan_chunks: int) -> None:
    """Set ``scan_chunks`` of every Mamba block of ``emitter`` (weights and float outputs unchanged)."""
    if isinstance(scan_chunks, bool) or not isinstance(scan_chunks, (int, np.integer)) or scan_chunks < 1:
        raise TinyLocError(f"scan_chunks={scan_chunks!r}: must be a positive integer")
    for layer in emitter.layers:
        if isinstance(layer, MambaBlock):
            layer.scan.scan_chunks = int(scan_chunks)
    emitter.predict_function = None
