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


def _parse(argv):
    import argparse

    p = argparse.ArgumentParser()
    registry.add_recordings_options(p)
    return p.parse_args(argv)


def test_zero_valued_options_are_kept_not_replaced_by_the_default():
    """0 == False in Python: a membership test against (None, False) dropped --rate-hz 0 (then the default 5 Hz was
    used silently) and the valid --fill-dbm 0."""
    assert registry.dataset_options(_parse(["--rate-hz", "0", "--fill-dbm", "0"])) == {"rate_hz": 0.0, "fill_dbm": 0.0}
    assert registry.dataset_options(_parse([])) == {}
    assert registry.dataset_options(_parse(["--no-window"])) == {"no_window": True}


def test_rate_zero_is_refused_before_the_file_is_read(tmp_path):
    f = tmp_path / "rec.csv"
    f.write_text("time,ap,rssi,room\n0,a,-50,k\n1,a,-60,l\n")
    with pytest.raises(TinyLocError, match=r"^--rate-hz 0\.0: must be a number from 0\.01 to 1000$"):
        registry.check_dataset(str(f), options={"rate_hz": 0.0})
    with pytest.raises(TinyLocError, match=r"^--fill-dbm: only for a recordings path \(--dataset PATH\), not the built-in 'house-a'$"):
        registry.check_dataset("house-a", options={"fill_dbm": 0.0})
