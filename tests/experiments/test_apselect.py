"""apselect: the heard-share and mutual-information rules against independent computations; spec errors."""
from __future__ import annotations

import numpy as np
import pytest

from keras_tinyloc.experiments import apselect
from keras_tinyloc.data.base import MinMaxScaling, WindowDataset
from keras_tinyloc.errors import TinyLocError


def _mi_from_counts(bit: np.ndarray, y: np.ndarray) -> float:
    """Mutual information (nats) of two discrete variables from their joint counts."""
    joint = np.zeros((2, y.max() + 1))
    np.add.at(joint, (bit, y), 1.0)
    p = joint / joint.sum()
    pa, pb = p.sum(1, keepdims=True), p.sum(0, keepdims=True)
    nz = p > 0
    return float((p[nz] * np.log(p[nz] / (pa @ pb)[nz])).sum())


def _windows(n=400, seed=0):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 3, n)
    x = np.zeros((n, 2, 5), np.float32)
    x[:, -1, 0] = rng.random(n) * (rng.random(n) < 0.5)  # heard in ~half the scans, unrelated to the class
    x[:, -1, 2] = np.where(y == 1, 0.7, 0.0)  # heard exactly in class 1
    x[:, -1, 3] = np.where(y != 2, 0.4, 0.0) * (rng.random(n) < 0.9)  # mostly heard outside class 2
    x[:3, -1, 4] = 0.2  # heard in 3 scans only
    x[:, 0, 1] = 0.9  # feature 1 heard only at the first step: the rule looks at the last step
    return x, np.stack([np.full(n, -1), y], 1).astype(np.int32)


def test_heard_share_rule_matches_counting():
    x, y = _windows()
    share = np.array([(x[:, -1, f] > 0).sum() / len(x) for f in range(5)])
    np.testing.assert_allclose(apselect.heard_share(x), share)
    for p in (0.0, 0.005, 0.3, 0.45, 0.9):
        want = np.flatnonzero(share >= p)
        if len(want):
            np.testing.assert_array_equal(apselect.select_indices(x, y, f"heard:{p}"), want)
        else:
            with pytest.raises(TinyLocError, match="selects no feature"):
                apselect.select_indices(x, y, f"heard:{p}")
    assert apselect.select_indices(x, y, "heard:0.005").tolist() == [0, 2, 3, 4]
    np.testing.assert_array_equal(apselect.select_indices(x, y, "all"), np.arange(5))


def test_mutual_information_rule_matches_counts():
    x, y = _windows()
    expect = np.array([_mi_from_counts((x[:, -1, f] > 0).astype(int), y[:, -1]) for f in range(5)])
    np.testing.assert_allclose(apselect.mutual_information(x, y), expect, atol=1e-9)
    order = np.lexsort((np.arange(5), -expect))
    for k in (1, 2, 3, 5):
        np.testing.assert_array_equal(apselect.select_indices(x, y, f"mi:{k}"), np.sort(order[:k]))
    assert apselect.select_indices(x, y, "mi:1").tolist() == [2]  # the feature that identifies class 1


def test_select_features_names_and_errors():
    x, y = _windows()
    ds = WindowDataset("uji", x, y, x[:20], y[:20], x[:20], y[:20], ["a", "b", "c"], [f"WAP{i:03d}" for i in range(5)],
                       MinMaxScaling(np.zeros(5, np.float32), np.ones(5, np.float32)))
    assert apselect.select_features(ds, "heard:0.3") == ["WAP000", "WAP002", "WAP003"]
    for bad, match in (("heard:1.5", "share"), ("mi:0", "count"), ("top:3", "choose all"), ("all:3", "choose all")):
        with pytest.raises(TinyLocError, match=match):
            apselect.select_indices(x, y, bad)
    with pytest.raises(TinyLocError, match="only 5 features"):
        apselect.select_indices(x, y, "mi:6")
    with pytest.raises(TinyLocError, match="selects no feature"):
        apselect.select_indices(np.zeros((4, 1, 3), np.float32), np.zeros((4, 1), np.int32), "heard:0.1")
