"""keras_tinyloc.experiments.sphere_variants: the SPHERE catalogue — levers in words, the training set of a variant,
the evaluation dataset, the cache, one tiny trained + TFLM-measured row, the scikit-learn rows."""
from __future__ import annotations

import dataclasses
import hashlib
import json

import numpy as np
import pytest

from helpers import sphere_like_dataset, synth_dataset
from keras_tinyloc.experiments import sphere_models as sm
from keras_tinyloc.experiments import sphere_variants as sv


def test_levers_in_words():
    V = sv.Variant
    assert V("a", "mdcsa", 16, 1).levers == "none"
    assert V("a", "mamba", 8, 1, lr=1e-2).levers == "lr 0.01"
    v = V("a", "mdcsa", 16, 1, absent=(2, 0.3), absent_features=(1, 3), balance=0.5, teacher="t", seed=2,
          epochs=300, patience=60, model_options=(("d_state", 4),))
    assert v.levers == ("absent-AP aug (APs 1+3; 2 copies, p=0.3); balanced sampling (power 0.5); KD from t; "
                        "d_state=4; seed 2; up to 300 epochs, patience 60")
    assert V("a", "mlp", 16, 1, mask=(1, 3), accelerometer=True, absent=(1, 0.5)).levers == (
        "absent-AP aug (any AP; 1 copies, p=0.5); only the APs present in every recording (masked: 1+3); "
        "+ accelerometer input (F = 7; not in the device pipeline)")
    names = [v.name for v in sv.VARIANTS]
    assert len(names) == len(set(names))  # names are cache keys
    teachers = {v.teacher for v in sv.VARIANTS if v.teacher}
    assert all(names.index(t) < names.index(v.name) for v in sv.VARIANTS for t in [v.teacher] if t)  # run first
    assert teachers == {"teacher-mdcsa-H64L1"}


def test_training_data_applies_absent_then_balance():
    ds = synth_dataset(n=60, seed=3)
    v = sv.Variant("a", "mlp", 4, 1, absent=(1, 0.5), balance=1.0)
    tds = sv.training_data(ds, v)
    # the absent-AP copy doubles the windows, then every class is replicated to the largest count
    y_last = np.concatenate([ds.y_train[:, -1]] * 2)
    counts = np.bincount(y_last[y_last >= 0], minlength=3)
    factors = np.round(counts.max() / counts).astype(int)
    assert len(tds.x_train) == int((counts * factors).sum() + np.sum(y_last < 0))
    assert [list(t) for t in tds.meta["train_transform"]] == [["absent_ap_augment"], ["balance_oversample"]]
    assert tds.x_test is ds.x_test and sv.training_data(ds, sv.Variant("p", "mlp", 4, 1)) is ds


def test_variant_data_masks_and_loads_the_accelerometer_once():
    ds = sphere_like_dataset()
    calls = []

    def load():
        calls.append(1)
        return dataclasses.replace(ds, name="acc")

    data = sv.VariantData(ds, load)
    assert data(sv.Variant("a", "mlp", 4, 1)) is ds
    assert np.all(data(sv.Variant("a", "mlp", 4, 1, mask=(0,))).x_val[:, :, 0] == 0.0)
    acc = sv.Variant("a", "mlp", 4, 1, accelerometer=True)
    assert data(acc).name == "acc" and data(acc).name == "acc" and len(calls) == 1
    other = sphere_like_dataset()
    other.y_test[0, -1] = 1
    with pytest.raises(RuntimeError, match="windows differ"):
        sv.VariantData(ds, lambda: other)(acc)


def test_model_code_md5(tmp_path):
    for f, text in zip(sv.MODEL_FILES, (b"a", b"b", b"c")):
        (tmp_path / f).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / f).write_bytes(text)
    assert sv.model_code_md5(tmp_path) == hashlib.md5(b"abc").hexdigest()[:10]
    assert len(sv.model_code_md5()) == 10


def test_pick_by_validation():
    assert sv.pick_by_validation({"calib": {"val_f1": 0.5}, "nocalib": {"val_f1": 0.5}}) == "calib"
    assert sv.pick_by_validation({"calib": {"val_f1": 0.5}, "nocalib": {"val_f1": 0.6}}) == "nocalib"


def test_collect_rows_from_the_cache(tmp_path):
    ds = sphere_like_dataset()
    variants = (sv.Variant("m1", "mlp", 4, 1), sv.Variant("m2", "mlp", 4, 1, balance=0.5),
                sv.Variant("gone", "mlp", 4, 1))
    (tmp_path / "classic").mkdir()
    (tmp_path / "classic" / "rows.json").write_text(json.dumps([{"name": "rf-window"}]))
    for name, levers in (("m2", "old wording"), ("m1", "none")):
        (tmp_path / name).mkdir()
        (tmp_path / name / "row.json").write_text(json.dumps({"name": name, "levers": levers}))
    rows = sv.collect_rows(sv.VariantData(ds, None), tmp_path, render_only=True, variants=variants)
    assert rows == [{"name": "rf-window"}, {"name": "m1", "levers": "none"},
                    {"name": "m2", "levers": "balanced sampling (power 0.5)"}]


def test_collect_rows_survives_a_failed_variant(tmp_path):
    ds = sphere_like_dataset()
    logs = []
    variants = (sv.Variant("kd", "mlp", 4, 1, teacher="t"),)
    rows = sv.collect_rows(sv.VariantData(ds, None), tmp_path, only=["kd"], log=logs.append, variants=variants)
    assert rows == []
    assert logs == ["kd: FAILED RuntimeError: kd: teacher t has not been trained (run it first)"]


def test_run_variant_trains_converts_and_caches(tmp_path, monkeypatch):
    ds = synth_dataset(n=60, seed=1, name="sphere")
    v = sv.Variant("tiny", "mlp", 4, 1, absent=(1, 0.5), epochs=1, patience=1)
    logs = []
    row = sv.run_variant(ds, v, tmp_path, redo=False, log=logs.append)
    assert (row["name"], row["family"], row["config"], row["quant"]) == ("tiny", "mlp", "H4L1", "int8 (TFLM)")
    assert row["levers"] == v.levers and tuple(row["variant"]["absent"]) == (1, 0.5)
    assert row["n_train_windows"] == 2 * len(ds.x_train) and row["model_code_md5"] == sv.model_code_md5()
    assert row["flatbuffer_bytes"] == (tmp_path / "tiny" / "tflite-int8" / "model.tflite").stat().st_size
    report = json.loads((tmp_path / "tiny" / "tflite-int8" / "report.json").read_text())
    assert report["test_f1_int8"] == pytest.approx(row["test_f1"])
    assert json.loads((tmp_path / "tiny" / "row.json").read_text())["test_f1"] == row["test_f1"]
    assert len(logs) == 1 and logs[0].startswith("tiny: val F1 ")
    # cached: a second call trains nothing
    import keras_tinyloc.training.train as train_mod

    monkeypatch.setattr(train_mod, "train", lambda *a, **k: pytest.fail("retrained a cached row"))
    assert sv.run_variant(ds, v, tmp_path, redo=False, log=logs.append)["test_f1"] == row["test_f1"]


def test_rf_window_row_and_run_classic(tmp_path):
    from keras_tinyloc.experiments import baselines
    from keras_tinyloc.training.metrics import window_metrics

    ds = synth_dataset(n=90, seed=2)
    r = sv.rf_window_row(ds, ds, "rf-window", "none")
    for split in ("val", "test"):
        y = getattr(ds, f"y_{split}")
        pred = np.asarray(r[f"{split}_pred_last"])
        np.testing.assert_array_equal(pred < 0, y[:, -1] < 0)  # -1 exactly where the last step is unlabelled
        m = window_metrics(y[:, -1], pred)
        assert r[f"{split}_f1"] == pytest.approx(m["f1"]) and r[f"{split}_acc"] == pytest.approx(m["acc"])
    assert r["flatbuffer_bytes"] == baselines.rf_bytes(r["params"]) and r["arena_source"] == "estimate"
    logs = []
    rows = sv.run_classic(ds, tmp_path, redo=False, log=logs.append)
    assert [x["name"] for x in rows[-2:]] == ["rf-window", "rf-window-absent-bal"]
    assert rows[-1]["levers"] == sv.RF_LEVERS.levers and rows[-2]["test_f1"] == r["test_f1"]
    assert all(x["quant"] == "int8 features" for x in rows)
    assert sm.load_json(tmp_path / "classic" / "rows.json") == json.loads(json.dumps(rows))
    assert sv.run_classic(ds, tmp_path, redo=False, log=logs.append) == json.loads(json.dumps(rows))
    assert len(logs) == 1
