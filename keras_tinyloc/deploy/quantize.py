"""Affine int8 quantization as the device does it, and the converter's representative dataset.

``quantize`` is the single definition of how a float input becomes int8; the C++ core on the device
(``tflm_app/core``) mirrors it exactly:

    q = clamp(round_half_away_from_zero(x / scale) + zero_point, -128, 127)

computed in float32 (``x / scale`` is one float32 division, as ``x / scale`` in C on ``float``s), with
``round_half_away_from_zero`` = C's ``roundf``. TFLite's own QUANTIZE kernel rounds the same way.
"""
from __future__ import annotations

from typing import Callable, Iterator

import numpy as np

from keras_tinyloc.data.windows import representative_sample
from keras_tinyloc.errors import TinyLocError

INT8_MIN, INT8_MAX = -128, 127


def round_half_away(v: np.ndarray) -> np.ndarray:
    """C ``roundf``: nearest integer, ties away from zero; exact for every float32 (no ``+0.5`` error)."""
    v = np.asarray(v, dtype=np.float32)
    whole = np.trunc(v)
    frac = v - whole  # exact in float32
    return whole + np.where(np.abs(frac) >= np.float32(0.5), np.sign(v), np.float32(0)).astype(np.float32)


def quantize(x: np.ndarray, scale: float, zero_point: int) -> np.ndarray:
    """Float values ``(...)`` -> int8 ``(...)`` with ``q = clamp(roundf(x / scale) + zero_point, -128, 127)``."""
    if not scale > 0:
        raise TinyLocError(f"quantize: scale must be > 0, got {scale!r}")
    v = np.asarray(x, dtype=np.float32) / np.float32(scale)
    q = round_half_away(v).astype(np.int64) + int(zero_point)
    return np.clip(q, INT8_MIN, INT8_MAX).astype(np.int8)


def dequantize(q: np.ndarray, scale: float, zero_point: int) -> np.ndarray:
    """int8 ``(...)`` -> float32 ``(...)``: ``(q - zero_point) * scale``."""
    return ((np.asarray(q).astype(np.int32) - int(zero_point)).astype(np.float32) * np.float32(scale)).astype(np.float32)


def representative_dataset(x_train: np.ndarray, n: int = 200, seed: int = 0) -> Callable[[], Iterator[list[np.ndarray]]]:
    """The converter's ``representative_dataset``: a callable yielding ``[x (1,T,F) float32]`` per window.

    Windows are drawn once (``representative_sample``) so every call yields the same ``n`` windows.
    """
    sample = representative_sample(x_train, n=n, seed=seed)

    def gen() -> Iterator[list[np.ndarray]]:
        for i in range(len(sample)):
            yield [sample[i : i + 1]]

    return gen
