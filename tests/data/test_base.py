"""data/base.py: the scaling the device mirrors, and WindowDataset's checks and info."""
import numpy as np
import pytest

from keras_tinyloc.data.base import MinMaxScaling, WindowDataset
from keras_tinyloc.errors import TinyLocError


def test_minmax_fit_transform_clip_and_constant_feature():
    raw = np.array([[-100.0, -50.0, -120.0], [-60.0, -50.0, -120.0]], np.float32)
    s = MinMaxScaling.fit(raw)
    assert s.low.tolist() == [-100.0, -50.0, -120.0] and s.high.tolist() == [-60.0, -50.0, -120.0]
    out = s.transform(np.array([[-80.0, -40.0, -100.0], [-130.0, -50.0, -120.0]], np.float32))
    assert out.tolist() == [[0.5, 0.0, 0.0], [0.0, 0.0, 0.0]]  # mid-range, constant features -> 0, clipped below
    assert s.transform(np.array([[-20.0, 0, 0]], np.float32))[0, 0] == 1.0
    again = MinMaxScaling.from_dict(s.to_dict())
    assert np.array_equal(again.low, s.low) and np.array_equal(again.high, s.high)
    with pytest.raises(TinyLocError, match="empty training set"):
        MinMaxScaling.fit(np.zeros((0, 3), np.float32))


def _ds(**over):
    rng = np.random.default_rng(0)
    kw = dict(name="toy", class_names=["a", "b"], feature_names=["ap0", "ap1"],
              scaling=MinMaxScaling(np.zeros(2, np.float32), np.ones(2, np.float32)))
    for split, n in (("train", 6), ("val", 3), ("test", 4)):
        kw[f"x_{split}"] = rng.random((n, 5, 2), dtype=np.float32)
        kw[f"y_{split}"] = rng.integers(0, 2, (n, 5)).astype(np.int32)
    kw.update(over)
    return WindowDataset(**kw)


def test_info_and_shapes():
    ds = _ds()
    y = ds.y_train.copy()
    info = ds.info()
    assert (info["n_train"], info["n_val"], info["n_test"]) == (6, 3, 4)
    assert info["input_shape"] == [5, 2] and info["n_classes"] == 2 and ds.window == 5 and ds.n_features == 2
    assert info["class_counts_train"] == np.bincount(y[:, -1], minlength=2).tolist()


def test_bad_shapes_and_empty_splits_are_named():
    with pytest.raises(TinyLocError, match="toy: val split has x"):
        _ds(y_val=np.zeros((3, 4), np.int32))
    with pytest.raises(TinyLocError, match="the test split has no windows"):
        _ds(x_test=np.zeros((0, 5, 2), np.float32), y_test=np.zeros((0, 5), np.int32))
