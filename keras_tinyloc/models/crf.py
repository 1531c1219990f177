"""Linear-chain conditional random field over the T steps of a window, in Keras 3 (TF ops) and NumPy.

A label sequence ``y`` of a window with emissions ``e`` ``(T, C)`` scores

    s(y) = start[y_0] + sum_t e[t, y_t] + sum_{t>0} transitions[y_{t-1}, y_t] + end[y_{T-1}]      (CRF, eq. 1)

and has probability ``p(y | e) = exp(s(y)) / Z`` with ``log Z = logsumexp_y s(y)`` computed by the forward algorithm
in log space (Lafferty et al. 2001; Rabiner 1989 for forward-backward / Viterbi):

    alpha_0[j] = start[j] + e[0, j]
    alpha_t[j] = logsumexp_i(alpha_{t-1}[i] + transitions[i, j]) + e[t, j]                       (forward, eq. 2)
    log Z      = logsumexp_j(alpha_{T-1}[j] + end[j])

Partially labelled windows (label ``-1`` = unlabelled step) are handled by **marginalising** the unlabelled steps:
the negative log-likelihood is ``log Z - log Z_y`` where ``Z_y`` is the same forward algorithm restricted to the
gold label at labelled steps and to every label at ``-1`` steps (the "constrained forward algorithm",
Tsuboi et al. 2008). A window without any label contributes exactly 0.

Only the emitter is converted to TFLite; decoding runs on the host with :func:`viterbi_numpy` and on the device in
C++ with the exported ``transitions``/``start``/``end`` scores, so the NumPy twins here are the reference.
"""
from __future__ import annotations

import keras
import numpy as np
import tensorflow as tf

# A finite "minus infinity" for disallowed labels: exp() of it underflows to exactly 0, and it never produces NaN
# in gradients (unlike -inf - -inf). Disallowed scores never accumulate, because every allowed path is finite.
_NEG = -1e30


def _static_steps(emissions) -> int:
    steps = emissions.shape[1]
    if steps is None:
        raise ValueError("CRF needs a static window length T (emissions shape (B, T, C) with T known)")
    return int(steps)


@keras.saving.register_keras_serializable(package="keras_tinyloc")
class CRF(keras.layers.Layer):
    """Linear-chain CRF scores and inference (TF ops; work under ``tf.function`` and ``jit_compile``).

    Weights:
        transitions: ``(C, C)``, ``transitions[i, j]`` = score of moving from class i to class j.
        start: ``(C,)`` score of the first step's class.  end: ``(C,)`` score of the last step's class.

    The recurrences are unrolled in Python over the static window length T (T = 20 for the houses, 1 for
    UJIIndoorLoc), which is faster than ``tf.scan`` on CPU for such short windows and compiles with XLA.
    Calling the layer returns its input unchanged (the CRF has no forward transformation of emissions).
    """

    def __init__(self, n_classes: int, **kwargs):
        super().__init__(**kwargs)
        if int(n_classes) <= 0:
            raise ValueError(f"n_classes must be positive, got {n_classes}")
        self.n_classes = int(n_classes)
        c = self.n_classes
        self.transitions = self.add_weight(
            shape=(c, c), initializer=keras.initializers.Zeros(), name="transitions", dtype="float32"
        )
        self.start = self.add_weight(shape=(c,), initializer="zeros", name="start", dtype="float32")
        self.end = self.add_weight(shape=(c,), initializer="zeros", name="end", dtype="float32")
        self.built = True

    def get_config(self) -> dict:
        config = super().get_config()
        config.update({"n_classes": self.n_classes})
        return config

    def call(self, emissions):
        """Identity on emissions ``(B,T,C)``; present so the layer can sit in a model graph."""
        return emissions

    def compute_output_shape(self, input_shape):
        return input_shape

    # ------------------------------------------------------------------ scores
    def _forward(self, emissions, allowed=None, scale: float = 1.0):
        """Forward algorithm (eq. 2). emissions ``(B,T,C)``; allowed ``(B,T,C)`` bool or None -> log Z ``(B,)``."""
        em = tf.convert_to_tensor(emissions, tf.float32) / scale
        trans = tf.convert_to_tensor(self.transitions) / scale
        start = tf.convert_to_tensor(self.start) / scale
        end = tf.convert_to_tensor(self.end) / scale
        if allowed is not None:
            em = tf.where(allowed, em, _NEG)
        steps = _static_steps(em)
        alpha = start[None, :] + em[:, 0, :]  # (B,C)
        for t in range(1, steps):
            alpha = tf.reduce_logsumexp(alpha[:, :, None] + trans[None, :, :], axis=1) + em[:, t, :]
        return tf.reduce_logsumexp(alpha + end[None, :], axis=1)

    def log_partition(self, emissions):
        """``log Z`` ``(B,)`` of emissions ``(B,T,C)`` (eq. 2)."""
        return self._forward(emissions)

    def nll(self, emissions, labels):
        """Negative log-likelihood of the labelled steps, unlabelled steps marginalised.

        Args:
            emissions: ``(B,T,C)`` float32 unnormalised scores.
            labels: ``(B,T)`` int class indices, ``-1`` = unlabelled step.
        Returns:
            ``(B,)`` float32 ``log Z - log Z_y`` (>= 0); exactly 0 for a window with no labelled step.
        """
        emissions = tf.convert_to_tensor(emissions, tf.float32)
        labels = tf.cast(labels, tf.int32)
        labelled = labels >= 0  # (B,T)
        onehot = tf.one_hot(tf.maximum(labels, 0), self.n_classes, on_value=True, off_value=False, dtype=tf.bool)
        allowed = tf.logical_or(onehot, tf.logical_not(labelled)[:, :, None])  # (B,T,C)
        # one forward pass over [unconstrained; constrained] stacked on the batch axis (half the graph to trace)
        both = tf.concat([tf.ones_like(allowed), allowed], axis=0)  # (2B,T,C)
        log_zs = self._forward(tf.concat([emissions, emissions], axis=0), both)  # (2B,)
        log_z, log_z_y = tf.split(log_zs, 2, axis=0)
        any_label = tf.reduce_any(labelled, axis=1)
        return tf.where(any_label, log_z - log_z_y, tf.zeros_like(log_z))

    def viterbi(self, emissions):
        """Most probable label sequence (Viterbi). emissions ``(B,T,C)`` -> ``(B,T)`` int32.

        Ties (equal scores, practically only with exactly equal floats) pick the lowest class index in
        :func:`viterbi_numpy`; ``tf.argmax`` does not document its tie rule, so only the NumPy twin is the reference.
        """
        em = tf.convert_to_tensor(emissions, tf.float32)
        trans = tf.convert_to_tensor(self.transitions)
        steps = _static_steps(em)
        delta = self.start[None, :] + em[:, 0, :]  # (B,C)
        backptrs = []
        for t in range(1, steps):
            cand = delta[:, :, None] + trans[None, :, :]  # (B,C_prev,C)
            backptrs.append(tf.argmax(cand, axis=1, output_type=tf.int32))  # (B,C)
            delta = tf.reduce_max(cand, axis=1) + em[:, t, :]
        last = tf.argmax(delta + self.end[None, :], axis=1, output_type=tf.int32)  # (B,)
        path = [last]
        for bp in reversed(backptrs):
            last = tf.gather(bp, last, axis=1, batch_dims=1)
            path.append(last)
        return tf.stack(path[::-1], axis=1)

    def marginals(self, emissions, temperature: float = 1.0):
        """Per-step marginals ``p(y_t = c | e)`` (forward-backward). ``(B,T,C)`` -> ``(B,T,C)`` summing to 1 over C.

        With ``temperature`` tau every score (emissions, transitions, start, end) is divided by tau, i.e. the
        marginals of the tempered distribution ``p(y) ∝ exp(s(y)/tau)`` (Hinton et al. 2015, applied to the CRF).
        """
        return tf.nn.softmax(self._alpha_plus_beta(emissions, temperature), axis=-1)

    def log_marginals(self, emissions, temperature: float = 1.0):
        """``log p(y_t = c | e)`` ``(B,T,C)``, computed stably (no ``log 0``); see :meth:`marginals`."""
        return tf.nn.log_softmax(self._alpha_plus_beta(emissions, temperature), axis=-1)

    def _alpha_plus_beta(self, emissions, temperature: float):
        """Forward-backward: ``alpha_t + beta_t`` ``(B,T,C)`` (= log marginals + log Z)."""
        em = tf.convert_to_tensor(emissions, tf.float32) / temperature
        trans = tf.convert_to_tensor(self.transitions) / temperature
        start = tf.convert_to_tensor(self.start) / temperature
        end = tf.convert_to_tensor(self.end) / temperature
        steps = _static_steps(em)
        alphas = [start[None, :] + em[:, 0, :]]
        for t in range(1, steps):
            alphas.append(tf.reduce_logsumexp(alphas[-1][:, :, None] + trans[None], axis=1) + em[:, t, :])
        # beta_{T-1} = end;  beta_t[i] = logsumexp_j(transitions[i, j] + e[t+1, j] + beta_{t+1}[j])
        betas = [tf.broadcast_to(end[None, :], tf.shape(alphas[0]))]
        for t in range(steps - 2, -1, -1):
            nxt = em[:, t + 1, :] + betas[-1]  # (B,C_next)
            betas.append(tf.reduce_logsumexp(trans[None] + nxt[:, None, :], axis=2))
        betas = betas[::-1]
        return tf.stack([a + b for a, b in zip(alphas, betas)], axis=1)


# ---------------------------------------------------------------------- NumPy twins (host / device reference)
def _logsumexp(a: np.ndarray, axis: int) -> np.ndarray:
    m = np.max(a, axis=axis, keepdims=True)
    m = np.where(np.isfinite(m), m, 0.0)
    return np.squeeze(m, axis=axis) + np.log(np.sum(np.exp(a - m), axis=axis))


def _as_batch(emissions: np.ndarray) -> tuple[np.ndarray, bool]:
    em = np.asarray(emissions, dtype=np.float64)
    if em.ndim == 2:
        return em[None], True
    if em.ndim != 3:
        raise ValueError(f"emissions must be (T,C) or (B,T,C), got shape {em.shape}")
    return em, False


def viterbi_numpy(emissions: np.ndarray, transitions: np.ndarray, start: np.ndarray, end: np.ndarray) -> np.ndarray:
    """Viterbi decoding in NumPy (float64), the host/device reference.

    Args:
        emissions: ``(B,T,C)`` (or ``(T,C)``) scores, e.g. dequantised int8 emitter outputs.
        transitions: ``(C,C)`` i→j scores; start, end: ``(C,)``.
    Returns:
        ``(B,T)`` (or ``(T,)``) int32 labels.
    Tie-breaking is deterministic: wherever several predecessors or final classes have the same score,
    the lowest class index wins (``np.argmax``). The C++ decoder must use a strict ``>`` scan to match.
    """
    em, single = _as_batch(emissions)
    trans = np.asarray(transitions, np.float64)
    bsz, steps, _ = em.shape
    delta = np.asarray(start, np.float64)[None, :] + em[:, 0, :]
    backptrs = np.zeros((bsz, steps, em.shape[2]), np.int64)
    for t in range(1, steps):
        cand = delta[:, :, None] + trans[None]
        backptrs[:, t] = np.argmax(cand, axis=1)
        delta = np.max(cand, axis=1) + em[:, t, :]
    path = np.zeros((bsz, steps), np.int32)
    path[:, -1] = np.argmax(delta + np.asarray(end, np.float64)[None, :], axis=1)
    rows = np.arange(bsz)
    for t in range(steps - 1, 0, -1):
        path[:, t - 1] = backptrs[rows, t, path[:, t]]
    return path[0] if single else path


def marginals_numpy(
    emissions: np.ndarray, transitions: np.ndarray, start: np.ndarray, end: np.ndarray, temperature: float = 1.0
) -> np.ndarray:
    """Per-step marginals by forward-backward in NumPy (float64). ``(B,T,C)`` (or ``(T,C)``) -> same shape."""
    em, single = _as_batch(emissions)
    em = em / temperature
    trans = np.asarray(transitions, np.float64) / temperature
    start = np.asarray(start, np.float64) / temperature
    end = np.asarray(end, np.float64) / temperature
    steps = em.shape[1]
    alpha = np.zeros_like(em)
    beta = np.zeros_like(em)
    alpha[:, 0] = start[None] + em[:, 0]
    for t in range(1, steps):
        alpha[:, t] = _logsumexp(alpha[:, t - 1, :, None] + trans[None], axis=1) + em[:, t]
    beta[:, -1] = end[None]
    for t in range(steps - 2, -1, -1):
        beta[:, t] = _logsumexp(trans[None] + (em[:, t + 1] + beta[:, t + 1])[:, None, :], axis=2)
    logits = alpha + beta
    logits = logits - logits.max(axis=-1, keepdims=True)
    probs = np.exp(logits)
    probs /= probs.sum(axis=-1, keepdims=True)
    return probs[0] if single else probs
