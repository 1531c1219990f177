"""Training-time RSSI augmentation that imitates the test conditions of a new phone / a later day.

Applied to scaled windows ``x`` ``(B,T,F)`` in [0, 1] (``x = clip((dBm - low) / (high - low), 0, 1)``, 0 = not heard),
per window ``b`` and feature ``f``:

1. **per-device offset**: one ``delta_b ~ U(-offset_db, offset_db)`` dB per window (a phone's gain), added to every
   heard value: ``x + delta_b / span_f`` with ``span_f = high_f - low_f`` dB;
2. **noise**: ``N(0, noise_db²)`` dB per value, added the same way;
3. a heard value pushed to ``<= 0`` becomes "not heard" (0) and values are clipped at 1;
4. **AP drop-out**: each (window, feature) pair is silenced (set to 0 at every step) with probability ``p_drop``.

Values that were not heard stay 0 (no AP is invented); features with ``span_f = 0`` are never heard and stay 0.
:func:`augment_tf` is the TensorFlow op used inside ``train_step`` (a fresh draw every batch);
:func:`augment_numpy` is the same arithmetic in NumPy (tests, inspection).
"""
from __future__ import annotations

import dataclasses

import numpy as np

from keras_tinyloc.errors import TinyLocError


@dataclasses.dataclass(frozen=True)
class AugmentConfig:
    """Strengths of the augmentation (all 0 = identity).

    Attributes:
        p_drop: probability that a (window, AP) pair is silenced, in [0, 1).
        offset_db: half-width of the uniform per-window offset, dB (>= 0).
        noise_db: standard deviation of the per-value noise, dB (>= 0).
    """

    p_drop: float = 0.0
    offset_db: float = 0.0
    noise_db: float = 0.0

    def __post_init__(self) -> None:
        if not 0.0 <= float(self.p_drop) < 1.0:
            raise TinyLocError(f"--p-drop {self.p_drop!r}: must be in [0, 1)")
        for name in ("offset_db", "noise_db"):
            if not float(getattr(self, name)) >= 0.0:
                raise TinyLocError(f"--{name.replace('_', '-')} {getattr(self, name)!r}: must be >= 0")

    @property
    def active(self) -> bool:
        return bool(self.p_drop or self.offset_db or self.noise_db)


def inverse_span(low, high) -> np.ndarray:
    """``(F,)`` float32 ``1 / (high - low)`` per feature, 0 where ``high == low`` (a never-heard feature)."""
    span = np.asarray(high, np.float64) - np.asarray(low, np.float64)
    if span.ndim != 1 or np.any(span < 0):
        raise TinyLocError(f"augmentation: scaling low/high must be (F,) with high >= low (got spans {span.shape})")
    return np.where(span > 0, 1.0 / np.where(span > 0, span, 1.0), 0.0).astype(np.float32)


def augment_numpy(x: np.ndarray, inv_span: np.ndarray, cfg: AugmentConfig, rng: np.random.Generator) -> np.ndarray:
    """Augment ``x`` ``(B,T,F)`` with NumPy (see the module docstring); returns float32 ``(B,T,F)``."""
    x = np.asarray(x, np.float32)
    if x.ndim != 3 or x.shape[-1] != len(inv_span):
        raise TinyLocError(f"augmentation: x {x.shape} does not match {len(inv_span)} features")
    b, t, f = x.shape
    delta = np.zeros_like(x)
    if cfg.offset_db:
        delta += rng.uniform(-cfg.offset_db, cfg.offset_db, size=(b, 1, 1)).astype(np.float32)
    if cfg.noise_db:
        delta += rng.normal(0.0, cfg.noise_db, size=x.shape).astype(np.float32)
    moved = x + delta * inv_span
    keep = (x > 0) & (moved > 0)
    if cfg.p_drop:
        keep &= rng.uniform(size=(b, 1, f)) >= cfg.p_drop
    return np.where(keep, np.minimum(moved, 1.0), 0.0).astype(np.float32)


def augment_tf(x, inv_span, cfg: AugmentConfig, seed_generator):
    """Augment a ``(B,T,F)`` float32 tensor inside a traced ``train_step``.

    Args:
        inv_span: ``(F,)`` from :func:`inverse_span`.
        seed_generator: a ``keras.random.SeedGenerator`` (its state advances every call).
    """
    import keras
    import tensorflow as tf

    if not cfg.active:
        return x
    shape = tf.shape(x)
    delta = tf.zeros_like(x)
    if cfg.offset_db:
        delta += keras.random.uniform(
            tf.stack([shape[0], 1, 1]), -cfg.offset_db, cfg.offset_db, seed=seed_generator
        )
    if cfg.noise_db:
        delta += keras.random.normal(shape, 0.0, cfg.noise_db, seed=seed_generator)
    moved = x + delta * tf.constant(inv_span, tf.float32)
    keep = tf.logical_and(x > 0, moved > 0)
    if cfg.p_drop:
        u = keras.random.uniform(tf.stack([shape[0], 1, shape[2]]), seed=seed_generator)
        keep = tf.logical_and(keep, u >= cfg.p_drop)
    return tf.where(keep, tf.minimum(moved, 1.0), tf.zeros_like(x))
