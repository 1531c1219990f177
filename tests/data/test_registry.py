"""data/registry.py: names, errors, and the generic feature selection."""
import pytest

from keras_tinyloc.data import registry
from keras_tinyloc.errors import TinyLocError


def test_names():
    assert registry.dataset_names() == ("uji", "uji-zones", "house-a", "house-b", "house-c", "house-d", "sphere")


def test_unknown_dataset_is_named():
    with pytest.raises(TinyLocError, match=r"unknown dataset 'house-z' \(choose from uji, "):
        registry.load_dataset("house-z")


def test_feature_selection_keeps_columns_and_records_indices():
    full = registry.load_dataset("house-a", scale=0.2)
    names = [full.feature_names[3], full.feature_names[1]]
    sel = registry.load_dataset("house-a", scale=0.2, features=names)
    assert sel.feature_names == names and sel.meta["feature_index"] == [3, 1]
    assert (sel.x_train == full.x_train[:, :, [3, 1]]).all()
    assert sel.scaling.low.tolist() == full.scaling.low[[3, 1]].tolist()
    with pytest.raises(TinyLocError):
        registry.load_dataset("house-a", scale=0.2, features=["no-such-ap"])
