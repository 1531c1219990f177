"""Online CRF decoding for streams: a label per step with bounded delay (the device's streaming decoder's twin).

The windowed model decodes a window with Viterbi (:mod:`keras_tinyloc.models.crf`); on a stream a label must be
emitted with bounded delay.

* Fixed-lag Viterbi (:class:`OnlineViterbi`) with lag D (steps; 5 Hz, so D = 5 is 1 s): after step t it emits the
  label of step t - D on the best path of the prefix 0..t, the prefix scored **as if it ended at t** (the CRF's
  ``end`` added)::

      delta_0[j] = start[j] + e_0[j]
      delta_t[j] = max_i (delta_{t-1}[i] + trans[i, j]) + e_t[j],  bp_t[j] = argmax_i (lowest index on ties)
      label(t - D) = back-trace D steps along bp from argmax_j (delta_t[j] + end[j])

  It is therefore exactly ``viterbi_numpy(e[:t+1])[t - D]``: D = 0 is the windowed decoder's last-step label when
  the stream starts with the window; a longer lag lets later evidence revise a step. Memory: C scores and a ring of
  D + 1 rows of C back-pointers. ``delta`` is shifted by its maximum after every step (no growth on an unbroken
  stream; arg-maxes unchanged). Arithmetic is float32 in this order, like the C++ twin
  (``tflm_app/core/tinyloc_online.cpp``), so labels match exactly.
* Forward filtering (:class:`ForwardFilter`): ``alpha_t = logsumexp_i(alpha_{t-1}[i] + trans[i, j]) + e_t[j]``,
  label = argmax_j alpha_t[j] (the filtering posterior's mode, lag 0, no ``end``). Python only (it needs EXP/LOG per
  step on the device).

Shapes: emissions ``e (L,C)`` of a stream of L steps, ``trans (C,C)``, ``start``/``end (C,)``.
"""
from __future__ import annotations

import numpy as np

from keras_tinyloc.errors import TinyLocError

# Limits of the C++ twin's Init (tflm_app/core/tinyloc_online.h: kMaxLag; tinyloc_core.h: kMaxAbsScore).
MAX_LAG = 4096
MAX_ABS_SCORE = np.float32(1e30)


class OnlineViterbi:
    """Fixed-lag Viterbi over a stream of emissions ``e_t (C,)`` (module docstring: equations, exactness, memory).

    ``lag`` D >= 0 steps. :meth:`push` returns ``(index, label)`` of step t - D once t >= D, else None.
    float32 throughout, with a strict ``>`` scan (lowest index wins ties), as in ``tinyloc_online.cpp``.
    """

    def __init__(self, transitions, start, end, lag: int = 0, use_end: bool = True):
        self.trans = np.asarray(transitions, np.float32)
        self.start = np.asarray(start, np.float32)
        self.end = np.asarray(end, np.float32) if use_end else np.zeros_like(self.start)
        c = len(self.start)
        if self.trans.shape != (c, c) or self.end.shape != (c,):
            raise TinyLocError(f"CRF scores: transitions {self.trans.shape}, start {self.start.shape}, end {self.end.shape}")
        if isinstance(lag, bool) or int(lag) != lag or not 0 <= lag <= MAX_LAG:
            raise TinyLocError(f"lag={lag!r}: must be an integer in 0..{MAX_LAG}")
        if not 1 <= c <= 255:
            raise TinyLocError(f"CRF scores: {c} classes; the device decoder supports 1..255")
        for name, v in (("transitions", self.trans), ("start", self.start), ("end", self.end)):
            if not np.all(np.abs(v) <= MAX_ABS_SCORE):
                raise TinyLocError(f"CRF scores: {name} holds a value that is not finite or beyond +-{MAX_ABS_SCORE:g}")
        self.lag = int(lag)
        self.reset()

    def reset(self) -> None:
        self.t = 0
        self.delta = None
        self.bp = np.zeros((self.lag + 1, len(self.start)), np.int32)  # ring: row t % (D+1) = bp_t

    def push(self, e: np.ndarray):
        e = np.asarray(e, np.float32).reshape(-1)
        c = len(self.start)
        if self.delta is None:
            new = (self.start + e).astype(np.float32)
        else:
            new = np.empty(c, np.float32)
            row = self.bp[self.t % (self.lag + 1)]
            for j in range(c):
                best, arg = np.float32(self.delta[0] + self.trans[0, j]), 0
                for i in range(1, c):
                    v = np.float32(self.delta[i] + self.trans[i, j])
                    if v > best:
                        best, arg = v, i
                new[j] = np.float32(best + e[j])
                row[j] = arg
        m = np.float32(new.max())
        self.delta = (new - m).astype(np.float32)
        t = self.t
        self.t += 1
        if t < self.lag:
            return None
        fin = (self.delta + self.end).astype(np.float32)
        lab = 0
        for j in range(1, c):
            if fin[j] > fin[lab]:
                lab = j
        for s in range(t, t - self.lag, -1):  # back-trace D steps: label(s-1) = bp_s[label(s)]
            lab = int(self.bp[s % (self.lag + 1), lab])
        return t - self.lag, int(lab)

    def run(self, emissions: np.ndarray) -> np.ndarray:
        """Labels ``(T,)`` of a whole stream ``(T,C)``: the fixed-lag output, then the last D steps flushed from the
        final back-trace (``viterbi_numpy`` of the full stream for those)."""
        self.reset()
        em = np.asarray(emissions, np.float32)
        out = np.full(len(em), -1, np.int32)
        for e in em:
            r = self.push(e)
            if r is not None:
                out[r[0]] = r[1]
        if len(em):
            out[out < 0] = flush_tail(self, len(em))[out < 0]
        return out


def flush_tail(dec: OnlineViterbi, steps: int) -> np.ndarray:
    """Back-trace the whole ring at the end of a stream: labels of the last min(D+1, steps) steps (others -1)."""
    c = len(dec.start)
    fin = (dec.delta + dec.end).astype(np.float32)
    lab = 0
    for j in range(1, c):
        if fin[j] > fin[lab]:
            lab = j
    out = np.full(steps, -1, np.int32)
    t = steps - 1
    out[t] = lab
    for s in range(t, max(t - dec.lag, 0), -1):
        lab = int(dec.bp[s % (dec.lag + 1), lab])
        out[s - 1] = lab
    return out


class ForwardFilter:
    """Forward filtering: ``alpha_t = logsumexp_i(alpha_{t-1} + trans[:, j]) + e_t``; label = argmax alpha_t (lag 0).

    float64; ``alpha`` is normalised to log-probabilities after every step (:attr:`log_probs`).
    """

    def __init__(self, transitions, start):
        self.trans = np.asarray(transitions, np.float64)
        self.start = np.asarray(start, np.float64)
        self.reset()

    def reset(self) -> None:
        self.alpha = None

    def push(self, e: np.ndarray) -> int:
        e = np.asarray(e, np.float64).reshape(-1)
        if self.alpha is None:
            a = self.start + e
        else:
            z = self.alpha[:, None] + self.trans
            m = z.max(axis=0)
            a = m + np.log(np.exp(z - m).sum(axis=0)) + e
        mx = a.max()
        self.alpha = a - (mx + np.log(np.exp(a - mx).sum()))
        return int(np.argmax(self.alpha))

    @property
    def log_probs(self) -> np.ndarray:
        return self.alpha

    def run(self, emissions: np.ndarray) -> np.ndarray:
        self.reset()
        return np.array([self.push(e) for e in np.asarray(emissions)], np.int32)
