"""Window-level metrics: macro-F1 and accuracy of the last step's decoded label.

A window's prediction is the decoded label of its **last** step (the paper's protocol, docs/design.md); windows whose
last step is unlabelled (``-1``) are excluded. Macro-F1 averages the per-class F1 over the classes **present in the
true labels** of the evaluated windows (``sklearn.metrics.f1_score(average="macro", labels=unique(y_true))``,
``zero_division=0``): a class that is predicted but never occurs is not averaged in as a zero; its false positives
still cost the recall of the true classes they replace.
"""
from __future__ import annotations

import numpy as np

from keras_tinyloc.errors import TinyLocError


def window_metrics(y_true: np.ndarray, y_pred: np.ndarray) -> dict[str, float]:
    """Macro-F1 and accuracy on the last step of each window.

    Args:
        y_true: ``(B,T)`` int per-step labels, ``-1`` = unlabelled (or ``(B,)`` window labels).
        y_pred: ``(B,T)`` (or ``(B,)``) int decoded labels.
    Returns:
        ``{"f1": macro-F1, "acc": accuracy, "n": windows evaluated}``, F1 and accuracy in 0..1.
    """
    from sklearn.metrics import f1_score

    y_true = np.asarray(y_true)
    y_pred = np.asarray(y_pred)
    if y_true.shape != y_pred.shape or y_true.ndim not in (1, 2):
        raise TinyLocError(f"labels {y_true.shape} and predictions {y_pred.shape}: expected equal (B,T) or (B,) shapes")
    last_true = y_true[:, -1] if y_true.ndim == 2 else y_true
    last_pred = y_pred[:, -1] if y_pred.ndim == 2 else y_pred
    keep = last_true >= 0
    if not keep.any():
        raise TinyLocError("no window has a labelled last step: cannot compute F1/accuracy")
    t, p = last_true[keep].astype(np.int64), last_pred[keep].astype(np.int64)
    f1 = f1_score(t, p, labels=np.unique(t), average="macro", zero_division=0)
    return {"f1": float(f1), "acc": float(np.mean(t == p)), "n": int(keep.sum())}
