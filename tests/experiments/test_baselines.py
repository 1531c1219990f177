"""baselines.py: features, int8 sizes and the scikit-learn rows against independent computations."""
import numpy as np
import pytest

from keras_tinyloc.experiments import baselines as B
from keras_tinyloc.errors import TinyLocError
from keras_tinyloc.training.metrics import window_metrics

from helpers import synth_dataset as make_ds


def test_window_features_values():
    x = np.arange(2 * 3 * 2, dtype=np.float32).reshape(2, 3, 2) / 12.0
    np.testing.assert_allclose(B.window_features(x, "last"), x[:, 2, :])
    w = B.window_features(x, "window")
    assert w.shape == (2, 6)
    np.testing.assert_allclose(w[0], np.concatenate([x[0].mean(0), x[0, -1], x[0].max(0)]), rtol=1e-6)
    with pytest.raises(TinyLocError, match="feature set 'median'"):
        B.window_features(x, "median")


def test_quantize_u8_and_sizes():
    np.testing.assert_array_equal(B.quantize_u8(np.array([-0.2, 0.0, 0.5, 1.0, 1.7])), [0, 0, 128, 255, 255])
    assert B.knn_bytes(1000, 520, 59) == 1000 * 520 + 1000
    assert B.knn_bytes(10, 4, 300) == 10 * 4 + 20
    assert B.rf_bytes(100) == 100 * B.RF_NODE_BYTES
    assert B.lr_bytes(520, 59) == 520 * 59 + 8 * 59
    assert B.input_bytes("window", 20, 11) == 220 and B.input_bytes("last", 20, 11) == 11
    q, s = B.quantize_lr_weights(np.array([[0.5, -1.0, 0.25], [0.0, 0.0, 0.0]]))
    np.testing.assert_array_equal(q[0], [64, -127, 32])
    np.testing.assert_allclose(s, [1.0 / 127, 1.0])


def test_sklearn_rows_match_independent_knn_and_sizes():
    ds = make_ds()
    cfg = B.BaselineConfig(knn_k=(1,), rf=((5, 3),), lr_c=(1.0,))
    rows = B.sklearn_rows(ds, cfg)
    assert {(r["family"], r["features"]) for r in rows} == {(f, k) for f in ("knn", "rf", "lr")
                                                            for k in ("last", "window")}
    n_train = int((ds.y_train[:, -1] >= 0).sum())
    for r in rows:
        assert r["dataset"] == "synth" and r["arena_source"] == "estimate" and r["status"] == "ok"
        F = ds.n_features * (3 if r["features"] == "window" else 1)
        inp = ds.window * ds.n_features if r["features"] == "window" else ds.n_features
        if r["family"] == "knn":
            assert r["flatbuffer_bytes"] == n_train * F + n_train
            assert r["arena_bytes"] == inp + 6
        if r["family"] == "lr":
            assert r["flatbuffer_bytes"] == F * 3 + 24
        if r["family"] == "rf":
            assert r["flatbuffer_bytes"] == r["params"] * B.RF_NODE_BYTES and r["params"] <= 5 * 15
    # independent 1-NN (brute force, squared Euclidean on the uint8 features) on the window features
    xtr, ytr = B.labelled_windows(ds.x_train, ds.y_train)
    xte, yte = B.labelled_windows(ds.x_test, ds.y_test)
    ftr = B.quantize_u8(B.window_features(xtr, "window")).astype(np.int64)
    fte = B.quantize_u8(B.window_features(xte, "window")).astype(np.int64)
    d = ((fte[:, None, :] - ftr[None, :, :]) ** 2).sum(-1)
    expect = window_metrics(yte, ytr[np.argmin(d, axis=1)])
    knn = next(r for r in rows if r["family"] == "knn" and r["features"] == "window")
    assert knn["test_f1"] == pytest.approx(expect["f1"]) and knn["test_acc"] == pytest.approx(expect["acc"])
    # the class is in the window maximum, often not in the last step: window features must win clearly
    by = {(r["family"], r["features"]): r for r in rows}
    assert by[("lr", "window")]["test_f1"] > 0.9
    assert by[("lr", "window")]["test_f1"] > by[("lr", "last")]["test_f1"] + 0.2


def test_single_step_dataset_has_only_last_features():
    ds = make_ds(T=1)
    rows = B.sklearn_rows(ds, B.BaselineConfig(knn_k=(3,), rf=((3, 2),), lr_c=(1.0,)))
    assert {r["features"] for r in rows} == {"last"} and len(rows) == 3


def test_run_baselines_bad_input():
    with pytest.raises(TinyLocError, match="feature set 'mean'"):
        B.BaselineConfig(feature_sets=("mean",))
    with pytest.raises(TinyLocError, match="work_dir"):
        B.BaselineConfig(mlp_hidden=(16,))
    ds = make_ds()
    ds.y_val[:, -1] = -1
    with pytest.raises(TinyLocError, match="synth: the val split has no window with a labelled last step"):
        B.sklearn_rows(ds, B.BaselineConfig(knn_k=(1,), rf=(), lr_c=()))
