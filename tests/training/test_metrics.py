"""window_metrics vs a hand computation of per-class F1 on the last step."""
import numpy as np
import pytest

from keras_tinyloc.errors import TinyLocError
from keras_tinyloc.training.metrics import window_metrics


def _manual_macro_f1(t, p):
    scores = []
    for c in np.unique(t):
        tp = np.sum((t == c) & (p == c))
        fp = np.sum((t != c) & (p == c))
        fn = np.sum((t == c) & (p != c))
        scores.append(0.0 if tp == 0 else 2 * tp / (2 * tp + fp + fn))
    return float(np.mean(scores))


def test_last_step_only_and_unlabelled_windows_skipped():
    y_true = np.array([[0, 0], [1, 1], [2, -1], [1, 2], [5, 0]])
    y_pred = np.array([[1, 0], [0, 1], [2, 2], [1, 1], [5, 3]])
    m = window_metrics(y_true, y_pred)
    t, p = np.array([0, 1, 2, 0]), np.array([0, 1, 1, 3])
    assert m["n"] == 4
    assert m["acc"] == pytest.approx(0.5)
    # class 3 is predicted but absent from y_true: it is not averaged in
    assert m["f1"] == pytest.approx(_manual_macro_f1(t, p))
    assert m["f1"] == pytest.approx(np.mean([2 / 3, 2 / 3, 0.0]))


def test_random_against_manual():
    rng = np.random.default_rng(0)
    y_true = rng.integers(-1, 6, size=(200, 3))
    y_pred = np.where(rng.uniform(size=(200, 3)) < 0.6, np.maximum(y_true, 0), rng.integers(0, 7, size=(200, 3)))
    m = window_metrics(y_true, y_pred)
    keep = y_true[:, -1] >= 0
    assert m["acc"] == pytest.approx(np.mean(y_true[keep, -1] == y_pred[keep, -1]))
    assert m["f1"] == pytest.approx(_manual_macro_f1(y_true[keep, -1], y_pred[keep, -1]))
    assert 0 <= m["f1"] <= 1


def test_perfect_and_errors():
    y = np.array([[0], [1], [1]])
    assert window_metrics(y, y) == {"f1": 1.0, "acc": 1.0, "n": 3}
    with pytest.raises(TinyLocError):
        window_metrics(np.full((3, 2), -1), np.zeros((3, 2)))
    with pytest.raises(TinyLocError):
        window_metrics(np.zeros((3, 2)), np.zeros((3, 1)))
