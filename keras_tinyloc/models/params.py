"""Parameter counts of a Keras model or layer, and the paper's total (emitter + linear-chain CRF).

The paper counts every weight the PyTorch model holds, frozen ones included (Mamba's A_log), plus the CRF's
transitions (C,C), start (C,) and end (C,) scores: ``total(emitter) + C^2 + 2C``.
"""
from __future__ import annotations

import math

from keras_tinyloc.errors import TinyLocError


def count_params(model_or_layer) -> dict:
    """``{"trainable", "non_trainable", "total"}`` weight counts of a built Keras model or layer.

    A weight shared by several layers is counted once. Raises TinyLocError if the layer is not built yet
    (it has no weights to count).
    """
    if not getattr(model_or_layer, "built", False):
        raise TinyLocError(f"{getattr(model_or_layer, 'name', model_or_layer)!r}: not built, call it on an input first")

    def size(weights) -> int:
        seen = {}
        for w in weights:
            seen.setdefault(id(w), math.prod(int(d) for d in w.shape))
        return sum(seen.values())

    trainable = size(model_or_layer.trainable_weights)
    non_trainable = size(model_or_layer.non_trainable_weights)
    return {"trainable": trainable, "non_trainable": non_trainable, "total": trainable + non_trainable}


def crf_param_count(n_classes: int) -> int:
    """Weights of a linear-chain CRF over C classes: transitions C^2 + start C + end C."""
    c = int(n_classes)
    if c <= 0:
        raise TinyLocError(f"n_classes={n_classes!r}: must be a positive integer")
    return c * c + 2 * c


def paper_param_count(emitter, n_classes: int) -> int:
    """The paper's parameter total: every emitter weight (frozen ones too) plus the CRF's C^2 + 2C."""
    return count_params(emitter)["total"] + crf_param_count(n_classes)
