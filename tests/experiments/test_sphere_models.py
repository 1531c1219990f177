"""keras_tinyloc.experiments.sphere_models: training-set levers, per-class report, RAM-class selection (synthetic, fast)."""
from __future__ import annotations

import numpy as np
import pytest

from keras_tinyloc.experiments import sphere_models as sm
from keras_tinyloc.data.base import MinMaxScaling, WindowDataset
from keras_tinyloc.errors import TinyLocError


def make_ds(n=60, t=5, f=3, c=3, seed=0) -> WindowDataset:
    """Raw RSSI in [-120, -40] dBm scaled to [0, 1]; -120 (the fill value) scales to 0."""
    rng = np.random.default_rng(seed)
    scaling = MinMaxScaling(low=np.full(f, -120.0, np.float32), high=np.full(f, -40.0, np.float32))

    def split(m):
        raw = rng.uniform(-100, -40, size=(m, t, f)).astype(np.float32)
        raw[: m // 4, :, 0] = -120.0  # AP 0 never heard in a quarter of the windows
        y = rng.integers(0, c, size=(m, t)).astype(np.int32)
        y[:, -1] = np.where(np.arange(m) < m // 2, 0, np.where(np.arange(m) < m - 6, 1, 2))  # imbalanced
        y[-1, -1] = -1
        return scaling.transform(raw), y

    (xtr, ytr), (xva, yva), (xte, yte) = split(n), split(20), split(20)
    return WindowDataset("toy", xtr, ytr, xva, yva, xte, yte, ["a", "b", "c"], [f"ap{i}" for i in range(f)], scaling)


def test_scaled_floor_is_the_fill_value():
    ds = make_ds()
    np.testing.assert_allclose(sm.scaled_floor(ds), 0.0, atol=1e-7)


def test_absent_ap_augment_silences_whole_aps_and_keeps_one():
    ds = make_ds()
    aug = sm.absent_ap_augment(ds, copies=3, p=0.9, seed=1)
    n = len(ds.x_train)
    assert aug.x_train.shape == (4 * n, 5, 3) and aug.y_train.shape == (4 * n, 5)
    np.testing.assert_array_equal(aug.x_train[:n], ds.x_train)  # the originals come first, unchanged
    np.testing.assert_array_equal(aug.y_train, np.tile(ds.y_train, (4, 1)))
    floor = sm.scaled_floor(ds)
    copies = aug.x_train[n:].reshape(3, n, 5, 3)
    for cp in copies:
        same = np.all(cp == ds.x_train, axis=1)  # (B,F) AP untouched
        silenced = np.all(cp == floor[None, None, :], axis=1)
        assert np.all(same | silenced)  # an AP is either untouched or silenced for the whole window
        heard = (ds.x_train > floor + 1e-6).any(axis=1)
        assert np.all((heard & ~silenced).any(axis=1))  # at least one heard AP survives
    # p = 0.9 silences most heard APs
    assert np.mean(np.all(copies == 0.0, axis=2)) > 0.3
    # validation / test / scaling untouched; provenance recorded
    assert aug.x_val is ds.x_val and aug.x_test is ds.x_test and aug.scaling is ds.scaling
    assert aug.meta["train_transform"][0]["absent_ap_augment"]["copies"] == 3


def test_absent_ap_augment_restricted_features_and_errors():
    ds = make_ds()
    aug = sm.absent_ap_augment(ds, copies=1, p=0.99, seed=0, features=[2])
    n = len(ds.x_train)
    np.testing.assert_array_equal(aug.x_train[n:, :, :2], ds.x_train[:, :, :2])
    assert np.mean(np.all(aug.x_train[n:, :, 2] == 0.0, axis=1)) > 0.9
    with pytest.raises(TinyLocError, match="p="):
        sm.absent_ap_augment(ds, p=1.0)
    with pytest.raises(TinyLocError, match="copies"):
        sm.absent_ap_augment(ds, copies=0)
    with pytest.raises(TinyLocError, match="features"):
        sm.absent_ap_augment(ds, features=[3])


def test_balance_oversample_factors():
    ds = make_ds()  # last-step classes: 30 x a, 23 x b, 6 x c (one window's last step unlabelled)
    y_last = ds.y_train[:, -1]
    counts = np.bincount(y_last[y_last >= 0], minlength=3)
    f = sm.balance_factors(y_last, 3, power=1.0)
    np.testing.assert_array_equal(f, np.round(counts.max() / counts).astype(int))
    np.testing.assert_array_equal(sm.balance_factors(y_last, 3, power=0.0), [1, 1, 1])
    np.testing.assert_array_equal(sm.balance_factors(y_last, 3, power=1.0, max_factor=2), np.minimum(f, 2))
    bal = sm.balance_oversample(ds, power=1.0)
    yl = bal.y_train[:, -1]
    new = np.bincount(yl[yl >= 0], minlength=3)
    np.testing.assert_array_equal(new, counts * f)
    assert np.sum(yl == -1) == np.sum(y_last == -1)  # unlabelled windows kept once
    with pytest.raises(TinyLocError, match="power"):
        sm.balance_factors(y_last, 3, power=2.0)


def test_per_class_report_matches_window_metrics():
    from keras_tinyloc.training.metrics import window_metrics

    y = np.array([[0, 0], [1, 1], [1, 2], [2, 2], [0, -1]])
    pred = np.array([[0, 0], [1, 1], [1, 1], [2, 2], [0, 1]])
    rep = sm.per_class_report(y, pred, ["a", "b", "c"])
    m = window_metrics(y, pred)
    assert rep["n"] == 4 and rep["acc"] == pytest.approx(m["acc"]) == pytest.approx(0.75)
    assert rep["macro_f1"] == pytest.approx(m["f1"])
    assert rep["classes"]["c"] == {"precision": 1.0, "recall": 0.5, "f1": pytest.approx(2 / 3), "support": 2}
    assert rep["classes"]["b"]["precision"] == 0.5
    assert rep["confusion"] == [[1, 0, 0], [0, 1, 0], [0, 1, 1]]


def test_select_best_by_validation_within_ram_class():
    rows = [
        {"name": "big", "val_f1": 0.9, "test_f1": 0.5, "arena_bytes": 40_000, "flatbuffer_bytes": 50_000},
        {"name": "small", "val_f1": 0.8, "test_f1": 0.6, "arena_bytes": 20_000, "flatbuffer_bytes": 30_000},
        {"name": "best_test", "val_f1": 0.7, "test_f1": 0.99, "arena_bytes": 10_000, "flatbuffer_bytes": 1_000},
        {"name": "tie", "val_f1": 0.8, "test_f1": 0.1, "arena_bytes": 19_000, "flatbuffer_bytes": 30_000},
        {"name": "flash", "val_f1": 0.95, "test_f1": 0.1, "arena_bytes": 50_000, "flatbuffer_bytes": 200_000},
        {"name": "failed", "val_f1": None, "arena_bytes": 1, "flatbuffer_bytes": 1},
    ]
    assert sm.select_best(rows, "32 KiB (RL78/G13)")["name"] == "tie"  # val, then smaller arena; never test
    assert sm.select_best(rows, "64 KiB (ADuCM3029)")["name"] == "big"  # "flash" exceeds 128 KiB flash
    assert sm.select_best(rows, "32 KiB (RL78/G13)", lambda r: r["name"] == "best_test")["name"] == "best_test"
    assert sm.select_best(rows, "32 KiB (RL78/G13)", lambda r: False) is None
    with pytest.raises(TinyLocError, match="RAM class"):
        sm.fits(rows[0], "16 KiB")


def test_load_json_missing_or_bad(tmp_path):
    assert sm.load_json(tmp_path / "nope.json") is None
    (tmp_path / "bad.json").write_text("{")
    assert sm.load_json(tmp_path / "bad.json") is None
    (tmp_path / "ok.json").write_text('{"a": 1}')
    assert sm.load_json(tmp_path / "ok.json") == {"a": 1}


def test_evaluate_int8_runs_val_and_test_through_tflm(tmp_path):
    """A tiny MLP run: evaluate_int8's test figures equal convert's TFLM ones, validation is measured too."""
    from keras_tinyloc.training.train import TrainConfig, train

    ds = make_ds(n=80)
    run = tmp_path / "run"
    train(TrainConfig(dataset="sphere", model="mlp", hidden=8, layers=1, out=str(run), epochs=1, patience=1,
                      verbose=False), dataset=ds, log=lambda s: None)
    row = sm.evaluate_int8(run, ds, out=tmp_path / "int8")
    assert 0 < row["arena_bytes"] < 32 * 1024
    assert row["flatbuffer_bytes"] == (tmp_path / "int8" / "model.tflite").stat().st_size
    assert set(row["ops"]) <= {"FULLY_CONNECTED", "RESHAPE"}
    for split in ("val", "test"):
        rep = row[f"per_class_{split}"]
        assert row[f"{split}_f1"] == pytest.approx(rep["macro_f1"]) and row[f"{split}_acc"] == pytest.approx(rep["acc"])
        assert rep["n"] == int(np.sum(getattr(ds, f"y_{split}")[:, -1] >= 0))
    pred = np.asarray(row["test_pred_last"])
    assert pred.shape == (20,) and pred[-1] == -1 and np.all(pred[:-1] >= 0)
    assert len(row["val_pred_last"]) == 20
    import json

    saved = json.loads((tmp_path / "int8" / "report.json").read_text())
    assert saved["test_f1_int8"] == pytest.approx(row["test_f1"])
    assert saved["val_f1_int8"] == pytest.approx(row["val_f1"])


def test_transition_windows():
    y = np.array([[1, 1, 1], [0, 1, 1], [-1, 2, 2], [2, -1, 2], [1, 2, -1]])
    np.testing.assert_array_equal(sm.transition_windows(y), [False, True, False, False, True])


def test_mask_features_silences_every_split():
    ds = make_ds()
    m = sm.mask_features(ds, [2, 0])
    for split in ("train", "val", "test"):
        x, xm = getattr(ds, f"x_{split}"), getattr(m, f"x_{split}")
        assert np.all(xm[:, :, [0, 2]] == 0.0)
        np.testing.assert_array_equal(xm[:, :, 1], x[:, :, 1])
        np.testing.assert_array_equal(getattr(m, f"y_{split}"), getattr(ds, f"y_{split}"))
    assert m.meta["masked_features"] == ["ap0", "ap2"] and np.any(ds.x_train[:, :, 0] > 0)
    with pytest.raises(TinyLocError, match="outside"):
        sm.mask_features(ds, [5])
