"""beyond: the registry's features option, kFeatureIndex in model_settings.h, and one teacher + distilled student row
end to end (train, int8 convert through TFLM, reload with the stored AP selection), checked independently."""
from __future__ import annotations

import dataclasses
import json
import re

import numpy as np
import pytest

from keras_tinyloc.experiments import beyond
from keras_tinyloc.deploy import export_c
from keras_tinyloc.data.base import MinMaxScaling, WindowDataset
from keras_tinyloc.data.registry import select_features
from keras_tinyloc.errors import TinyLocError

F, C = 8, 3


def _toy(n_train=360, seed=0) -> WindowDataset:
    """T = 1 scans: class c is heard strongly on AP 2c+1; APs 0 and 7 are never heard."""
    rng = np.random.default_rng(seed)

    def split(n):
        y = rng.integers(0, C, n)
        x = 0.3 * rng.random((n, 1, F)) * (rng.random((n, 1, F)) < 0.5)
        x[np.arange(n), 0, 2 * y + 1] = 0.6 + 0.4 * rng.random(n)
        x[:, :, [0, 7]] = 0.0
        return x.astype(np.float32), y[:, None].astype(np.int32)

    (a, b), (c, d), (e, f) = split(n_train), split(90), split(120)
    return WindowDataset("uji-zones", a, b, c, d, e, f, [f"Z{i}" for i in range(C)], [f"WAP{i + 1:03d}" for i in range(F)],
                         MinMaxScaling(np.linspace(-110, -100, F).astype(np.float32), np.full(F, -30, np.float32)),
                         fill_value=-110.0, meta={"source": "toy"})


def test_select_features_subsets_and_composes_index():
    ds = _toy()
    sub = select_features(ds, ["WAP006", "WAP002", "WAP004"])
    np.testing.assert_array_equal(sub.x_test, ds.x_test[:, :, [5, 1, 3]])
    np.testing.assert_array_equal(sub.scaling.low, ds.scaling.low[[5, 1, 3]])
    assert sub.feature_names == ["WAP006", "WAP002", "WAP004"] and sub.meta["feature_index"] == [5, 1, 3]
    assert sub.meta["source"] == "toy" and ds.n_features == F  # the original is untouched
    again = select_features(sub, ["WAP004", "WAP006"])
    assert again.meta["feature_index"] == [3, 5]
    for bad, match in ((["WAP099"], "does not exist"), (["WAP001", "WAP001"], "selected twice"), ([], "at least one")):
        with pytest.raises(TinyLocError, match=match):
            select_features(ds, bad)


def test_load_dataset_features_option_on_real_uji():
    from keras_tinyloc.data.registry import load_dataset

    try:
        full = load_dataset("uji")
    except TinyLocError:
        pytest.skip("UJIIndoorLoc not available")
    sub = load_dataset("uji", features=["WAP010", "WAP500"])
    np.testing.assert_array_equal(sub.x_train[..., 1], full.x_train[..., 499])
    assert sub.meta["feature_index"] == [9, 499] and sub.scaling.high[0] == full.scaling.high[9]


def _settings(**kw):
    base = dict(model_name="m", window=1, n_features=3, n_classes=2, class_names=["a", "b"],
                feature_names=["WAP002", "WAP007", "WAP010"], scale_low=[-110.0] * 3, scale_high=[0.0] * 3,
                fill_dbm=-110.0, input_scale=1 / 255, input_zero_point=-128, output_scale=0.1, output_zero_point=0,
                transitions=[[0.0, 0.0], [0.0, 0.0]], start=[0.0, 0.0], end=[0.0, 0.0], arena_bytes=100,
                arena_margin_bytes=0, ops=["FULLY_CONNECTED"])
    base.update(kw)
    return export_c.DeviceSettings(**base)


def test_feature_index_in_model_settings(tmp_path):
    plain = export_c.model_settings_source(_settings())
    assert "kFeatureIndex" not in plain
    text = export_c.model_settings_source(_settings(feature_index=[1, 6, 9]))
    assert re.search(r"constexpr int kFeatureIndex\[kNumFeatures\] = \{\s*1, 6, 9\};", text)
    assert text.replace(text[text.index("\n// Access-point"):text.index("// Tensor arena")], "\n") == plain
    export_c.write_model_settings(tmp_path, _settings(feature_index=[1, 6, 9]))
    assert export_c.read_device_settings(tmp_path).feature_index == [1, 6, 9]
    for bad in ([1, 6], [1, 1, 2], [-1, 2, 3]):
        with pytest.raises(TinyLocError, match="feature_index"):
            export_c.model_settings_source(_settings(feature_index=bad))


def test_teacher_and_distilled_student_rows(tmp_path):
    from keras_tinyloc.deploy import tflm
    from keras_tinyloc.training.metrics import window_metrics
    from keras_tinyloc.deploy.quantize import dequantize, quantize
    from keras_tinyloc.deploy.tflite_inspect import inspect_tflite
    from keras_tinyloc.training.train import load_run

    ds = _toy()
    common = dict(dataset="uji-zones", ap="heard:0.05", epochs=4, patience=4, batch_size=64, lr=1e-2, out=str(tmp_path))
    teacher = beyond.run_row(beyond.BeyondConfig(name="t", hidden=16, layers=2, dropout=0.2, p_drop=0.2,
                                                 offset_db=6.0, **common), base=ds, log=lambda s: None)
    row = beyond.run_row(beyond.BeyondConfig(name="s", hidden=8, teachers=("t",), **common), base=ds,
                         log=lambda s: None)
    assert teacher["n_features"] == row["n_features"] == 6 and row["within_budget"]
    assert "KD from 1-run ensemble" in row["technique"] and "aug(drop 0.2" in teacher["technique"]
    run = tmp_path / "uji-zones" / "s"
    tagger, config, metrics = load_run(run)
    names = [f"WAP{i:03d}" for i in range(2, 8)]
    assert config["dataset_options"] == {"features": names} and config["feature_names"] == names
    # the float figure: decode the test split independently
    sub = select_features(ds, names)
    assert abs(window_metrics(sub.y_test, tagger.decode(sub.x_test))["f1"] - row["test_f1_float"]) < 1e-9
    # the int8 figure: run the shipped flatbuffer in TFLM ourselves and decode with the exported CRF scores
    buf = (run / "tflite-int8" / "model.tflite").read_bytes()
    info = inspect_tflite(buf)
    q, _ = tflm.run_tflm(buf, quantize(sub.x_test, info.input().scale, info.input().zero_point), row["arena_bytes"])
    em = dequantize(q, info.output().scale, info.output().zero_point) + np.asarray(config["crf"]["start"]) \
        + np.asarray(config["crf"]["end"])
    assert abs(window_metrics(sub.y_test, em.argmax(-1))["f1"] - row["test_f1_int8"]) < 1e-9
    assert row["int8_loss_points"] == pytest.approx(100 * (row["test_f1_float"] - row["test_f1_int8"]), abs=1e-3)
    header = (run / "tflite-int8" / "model_settings.h").read_text()
    assert re.search(r"kFeatureIndex\[kNumFeatures\] = \{\s*1, 2, 3, 4, 5, 6\}", header)
    assert json.loads((run / "row.json").read_text())["test_f1_int8"] == row["test_f1_int8"]
    # a student of a teacher that reads other APs is refused
    with pytest.raises(TinyLocError, match="other APs"):
        beyond.run_row(beyond.BeyondConfig(name="x", teachers=("t",), **{**common, "ap": "all"}), base=ds,
                       log=lambda s: None)


def test_config_errors_and_cli():
    with pytest.raises(TinyLocError, match="dataset"):
        beyond.BeyondConfig(dataset="house-a").validate()
    with pytest.raises(TinyLocError, match="--row"):
        beyond.row_config("uji", "nope")
    assert beyond.main(["uji", "--ap", "best:3"]) == 2
    assert beyond.main(["uji", "--p-drop", "1.5"]) == 2
    cfg = beyond.row_config("uji-zones", "kd-aug-h64", out="x")
    assert cfg.teachers and cfg.run_dir().as_posix() == "x/uji-zones/kd-aug-h64"
    assert list(beyond.ROWS).index("teacher-h256l2-s1") < list(beyond.ROWS).index("kd-h64")
    rows = [dict(name=n, val_f1=v, params=p, within_budget=b) for n, v, p, b in
            (("a", 0.9, 10, True), ("b", 0.95, 20, False), ("c", 0.9, 5, True))]
    assert beyond.best_row(rows)["name"] == "c"


def test_powed_row_config():
    with pytest.raises(TinyLocError, match="power"):
        beyond.BeyondConfig(dataset="uji", power=5).validate()
    assert "powed x^3" in beyond.row_config("uji", "pow3-aug-h64").technique()


def test_phone_holdout_holds_out_whole_phones(tmp_path, monkeypatch):
    """Synthetic CSVs: every row's RSSI encodes its row number, so each validation row maps back to its phone."""
    from keras_tinyloc.data.registry import load_dataset

    monkeypatch.setenv("KERAS_TINYLOC_CACHE", str(tmp_path / "cache"))
    header = ["WAP001", "WAP002", "WAP003", "LONGITUDE", "LATITUDE", "FLOOR", "BUILDINGID", "SPACEID",
              "RELATIVEPOSITION", "USERID", "PHONEID", "TIMESTAMP"]
    # (building, floor) visited by each phone; phone 2 is the only one on floor (0, 1): it must stay in training
    visits = {1: [(0, 0)], 2: [(0, 1), (0, 0)], 3: [(0, 0), (1, 0)], 4: [(1, 0)], 5: [(1, 0), (0, 0)]}
    rows, n = [], 0
    for phone, bfs in visits.items():
        for b, f in bfs:
            for _ in range(12):
                rows.append([-(30 + n % 60), -(30 + n // 60), 100, 10.0 * b + n % 3, 5.0 * f, f, b, 0, 0, 1, phone, 0])
                n += 1
    test = [r[:10] + [9, 0] for r in rows[::10]]
    d = tmp_path / "raw"
    d.mkdir()
    for name, rr in (("trainingData.csv", rows), ("validationData.csv", test)):
        (d / name).write_text(",".join(header) + "\n" + "".join(",".join(map(str, r)) + "\n" for r in rr))
    ds = load_dataset("uji", d)
    ho = beyond.phone_holdout(ds, d, share=0.3)
    phone_of = {(r[0], r[1]): r[10] for r in rows}

    def phones(x):
        raw = np.round(x[:, 0, :2] * (ds.scaling.high[:2] - ds.scaling.low[:2]) + ds.scaling.low[:2]).astype(int)
        return np.array([phone_of[(a, b)] for a, b in raw])

    held = ho.meta["holdout_phones"]
    assert 2 not in held and held  # the phone with an exclusive building-floor stays in training
    assert set(phones(ho.x_val)) == set(held) and not set(phones(ho.x_train)) & set(held)
    assert len(ho.x_val) >= 0.3 * len(rows) and len(ho.x_train) + len(ho.x_val) == len(rows)
    assert set(ho.y_val[:, 0]) <= set(ho.y_train[:, 0])
    np.testing.assert_array_equal(ho.x_test, ds.x_test)
    assert held == [1, 3]  # ascending phones, each kept only if its floors stay covered, until >= 30 % of rows


def test_breakdown_counts_by_hand():
    names = ["B0-F0-Z00", "B0-F0-Z01", "B0-F0-Z02", "B0-F1-Z00", "B1-F0-Z00"]
    centres = {"B0-F0": [[0.0, 0.0], [10.0, 0.0], [30.0, 0.0]], "B0-F1": [[0.0, 0.0]], "B1-F0": [[500.0, 0.0]]}
    y_true = np.array([0, 0, 0, 1, 2, 0])
    y_pred = np.array([0, 1, 2, 3, 4, 0])
    pos = np.array([[1.0, 0], [4.0, 0], [2.0, 0], [9.0, 0], [29.0, 0], [0.0, 0]])
    out = beyond.breakdown(y_true, y_pred, names, pos, centres)
    # errors: (0->1) same floor, 2nd nearest, margin |4-10|-4 = 2; (0->2) same floor, 3rd nearest, margin 28-2 = 26;
    # (1->3) wrong floor; (2->4) wrong building
    assert out == {"n": 6, "errors": 4, "wrong_building": 1, "wrong_floor": 1, "wrong_zone_same_floor": 2,
                   "second_nearest_zone": 1, "median_margin_m": 14.0, "median_zone_spacing_m": 10.0}
    assert beyond.breakdown(y_true, y_pred, names) == {"n": 6, "errors": 4, "wrong_building": 1, "wrong_floor": 1}


def test_zone_groups():
    names = ["B0-F0-Z00", "B0-F0-Z01", "B0-F1-Z00", "B1-F0-Z00", "B1-F0-Z01"]
    groups, of_class = beyond.zone_groups(names)
    assert groups == ["B0-F0", "B0-F1", "B1-F0"] and of_class == [0, 0, 1, 2, 2]
    with pytest.raises(TinyLocError, match="'Z7'"):
        beyond.zone_groups(["Z7"])


def test_hierarchical_row_trains_folds_and_converts(tmp_path):
    ds = _toy()
    ds = dataclasses.replace(ds, class_names=["B0-F0-Z00", "B0-F0-Z01", "B0-F1-Z00"])
    row = beyond.run_row(beyond.BeyondConfig(dataset="uji-zones", name="h", hidden=8, floor_weight=1.0, epochs=3,
                                             patience=3, batch_size=64, lr=1e-2, out=str(tmp_path)), base=ds,
                         log=lambda s: None)
    assert "hierarchical head" in row["technique"] and row["test_f1_int8"] > 0.5
    flat = beyond.run_row(beyond.BeyondConfig(dataset="uji-zones", name="f", hidden=8, epochs=3, patience=3,
                                              batch_size=64, lr=1e-2, out=str(tmp_path)), base=ds, log=lambda s: None)
    assert row["params"] == flat["params"] and row["flatbuffer_bytes"] == flat["flatbuffer_bytes"]  # same device cost
    with pytest.raises(TinyLocError, match="--floor-weight needs uji-zones"):
        beyond.BeyondConfig(dataset="uji", floor_weight=1.0).validate()
    assert "pow3-aug-hier-h64" in beyond.rows_for("uji-zones") and "pow3-aug-hier-h64" not in beyond.rows_for("uji")
    assert beyond.rows_for("uji") == [n for n in beyond.rows_for("uji-zones") if "hier" not in n]


def test_ensemble_row_averages_member_scores_in_one_int8_model(tmp_path):
    from keras_tinyloc.training.train import load_run

    ds = _toy()
    common = dict(dataset="uji-zones", ap="heard:0.05", power=2, epochs=2, patience=2, batch_size=64, lr=1e-2,
                  out=str(tmp_path))
    members = [beyond.run_row(beyond.BeyondConfig(name=f"m{s}", hidden=6, seed=s, **common), base=ds,
                              log=lambda line: None) for s in (0, 1)]
    row = beyond.run_row(beyond.BeyondConfig(name="ens", hidden=6, members=("m0", "m1"), **common), base=ds,
                         log=lambda line: None)
    assert "ensemble of 2 runs" in row["technique"] and row["epochs_run"] == 0
    assert row["params"] > sum(m["params"] for m in members) - 2 * 12  # two members' weights (the CRF is shared)
    # independently: mean over members of (emissions + start + end), argmax, against the ensemble's float decode
    sub = select_features(ds, [f"WAP{i:03d}" for i in range(2, 8)])
    scores = []
    for name in ("m0", "m1"):
        tagger, config, _ = load_run(tmp_path / "uji-zones" / name)
        scores.append(np.asarray(tagger.emitter(sub.x_test)) + np.asarray(config["crf"]["start"])
                      + np.asarray(config["crf"]["end"]))
    ens, _, _ = load_run(tmp_path / "uji-zones" / "ens")
    np.testing.assert_allclose(np.asarray(ens.emitter(sub.x_test)), np.mean(scores, axis=0), rtol=1e-5, atol=1e-5)
    np.testing.assert_array_equal(ens.decode(sub.x_test), np.mean(scores, axis=0).argmax(-1))
    with pytest.raises(TinyLocError, match="other --power"):
        beyond.run_row(beyond.BeyondConfig(name="bad", members=("m0",), **{**common, "power": 3}), base=ds,
                       log=lambda line: None)


def test_every_option_has_help_text(capsys):
    parser = beyond.build_parser()
    missing = [a.dest for a in parser._actions if not a.help]
    assert missing == []
    with pytest.raises(SystemExit):
        parser.parse_args(["--help"])
    assert "--noise-db NOISE_DB" in capsys.readouterr().out


def test_target_is_checked_before_any_work(monkeypatch, tmp_path):
    with pytest.raises(TinyLocError, match=r"^--target 'stm32': choose from host, cortex-m4$"):
        beyond.BeyondConfig("uji", target="stm32").validate()
    monkeypatch.setenv("TFLM_DIR", str(tmp_path / "nokit"))
    with pytest.raises(TinyLocError, match=r"^--target cortex-m4: \$TFLM_DIR=.*nokit: not a TFLM kit"):
        beyond.run_row(beyond.row_config("uji", "plain-h16", out=str(tmp_path / "o"), target="cortex-m4"))
    assert not (tmp_path / "o").exists()
