"""keras_tinyloc.experiments.sphere_analysis: data facts, per-group scores and the report's choices, on hand-made
rows and a hand-made dataset whose figures are worked out in the comments (fast, no model)."""
from __future__ import annotations

import numpy as np
import pytest

from helpers import sphere_like_dataset
from keras_tinyloc.experiments import sphere_analysis as sa

C32, C64 = "32 KiB (RL78/G13)", "64 KiB (ADuCM3029)"


def row(name, family, val, test, arena=10_000, flash=20_000, quant="int8 (TFLM)", **kw):
    return {"name": name, "family": family, "val_f1": val, "test_f1": test, "arena_bytes": arena,
            "flatbuffer_bytes": flash, "quant": quant, "config": kw.pop("config", "H16L1"), **kw}


def test_diagnostics_hand_computed():
    d = sa.diagnostics(sphere_like_dataset())
    assert d["aps"] == ["ap0", "ap1"] and d["classes"] == ["a", "b"]
    # heard at any step: train ap0 in windows 0, 1, 3; ap1 in 1, 2
    assert d["share_windows_ap_heard"]["train"] == {"ap0": 0.75, "ap1": 0.5}
    assert d["share_windows_ap_heard"]["val"] == {"ap0": 0.5, "ap1": 0.5}
    assert d["share_windows_ap_heard"]["test"] == {"ap0": 0.75, "ap1": 0.75}
    assert (d["class_counts_train"], d["class_counts_val"], d["class_counts_test"]) == ([1, 2], [2, 2], [1, 3])
    tr, te = d["per_class_last_step_rssi"]["train"], d["per_class_last_step_rssi"]["test"]
    assert tr["a"] == [{"heard": 1.0, "mean_dbm": -80.0}, {"heard": 0.0, "mean_dbm": None}]
    assert tr["b"] == [{"heard": 0.5, "mean_dbm": -100.0}, {"heard": 1.0, "mean_dbm": -80.0}]
    assert te["b"][0] == {"heard": pytest.approx(1 / 3), "mean_dbm": -100.0}
    assert te["b"][1] == {"heard": 1.0, "mean_dbm": -60.0}
    assert d["test_sequences"] == [("00008", 3), ("00009", 1)]
    assert d["aps_heard_per_sequence"]["00006"] == ["ap1"]


def test_split_analysis_groups_and_window_kinds():
    ds = sphere_like_dataset()
    diag = sa.diagnostics(ds)
    out = sa.split_analysis(ds, np.array([0, 1, 0, 0]), np.array([0, 1, 1, 0]), diag)
    # 00005 (windows 0-1): truth [0, 1], pred [0, 1]
    assert out["val_lounge_heard"] == {"f1": 1.0, "acc": 1.0, "n": 2}
    # 00006 (windows 2-3): truth [1, 0], pred [0, 0]: class 0 F1 2/3, class 1 F1 0
    assert out["val_lounge_absent"] == {"f1": pytest.approx(1 / 3), "acc": 0.5, "n": 2}
    # test window 1 changes room; steady windows 0, 2, 3: truth [0, 1, 1], pred [0, 1, 0] -> both classes F1 2/3
    assert out["test_transition"] == {"f1": 1.0, "acc": 1.0, "n": 1}
    assert out["test_steady"] == {"f1": pytest.approx(2 / 3), "acc": pytest.approx(2 / 3), "n": 3}
    assert out["per_sequence"] == {"00008": {"f1": 1.0, "acc": 1.0, "n": 3}, "00009": {"f1": 0.0, "acc": 0.0, "n": 1}}
    # a missing split is skipped; counts that do not add up give no per-sequence scores
    assert set(sa.split_analysis(ds, None, np.array([0, 1, 1, 0]), diag)) == {"test_steady", "test_transition",
                                                                               "per_sequence"}
    assert sa.per_sequence_f1(ds, [0, 1, 1, 0], [("00008", 3)]) == {}


def test_predictions_from_the_row_or_none(tmp_path):
    ds = sphere_like_dataset()
    r = {"name": "x", "val_pred_last": [1, 0, 1, 0]}
    np.testing.assert_array_equal(sa.predictions(ds, r, tmp_path, "val"), [1, 0, 1, 0])
    assert sa.predictions(ds, r, tmp_path, "test") is None  # no prediction kept, no cached model


def test_ds_for_row_applies_the_mask():
    ds = sphere_like_dataset()
    assert sa.ds_for_row(ds, {"variant": {"mask": None}}) is ds
    masked = sa.ds_for_row(ds, {"variant": {"mask": [1]}})
    assert np.all(masked.x_test[:, :, 1] == 0.0) and np.array_equal(masked.x_test[:, :, 0], ds.x_test[:, :, 0])


def test_choose_by_validation_per_family_and_class():
    rows = [
        row("md-a", "mdcsa", 0.70, 0.90), row("md-b", "mdcsa", 0.80, 0.60),
        row("md-big", "mdcsa", 0.95, 0.10, arena=40_000),  # only fits 64 KiB
        row("md-acc", "mdcsa", 0.99, 0.99, variant={"accelerometer": True}),  # never selected
        row("mb", "mamba", 0.60, 0.70), row("mlp", "mlp", 0.75, 0.80),
        row("rf1", "rf", 0.70, 0.70, quant="int8 features"), row("rf2", "rf", 0.72, 0.50, quant="int8 features"),
        row("rf-nn", "rf", 0.99, 0.99),  # a family name in the wrong quant: not a classic row
        row("teacher", "mdcsa", 0.99, 0.99, quant="float (Keras)"),
    ]
    best = sa.choose(rows)
    name = lambda r: r and r["name"]  # noqa: E731
    assert {f: name(r) for f, r in best[C32].items()} == {"mdcsa": "md-b", "mamba": "mb", "mlp": "mlp", "rf": "rf2",
                                                          "knn": None, "lr": None}
    assert name(best[C64]["mdcsa"]) == "md-big"
    assert sa.best_sequence(rows, C32)["name"] == "md-b"  # val 0.80 beats the mamba's 0.60
    # the verdict takes each side's validation-best selected row: md-b (val 0.80) over mb (0.60), mlp (0.75) over
    # rf2 (0.72); then compares their test figures: 0.60 < 0.80
    top_seq, top_pw, beats = sa.class_verdict(best[C32])
    assert (top_seq["name"], top_pw["name"], beats) == ("md-b", "mlp", False)
    assert sa.class_verdict({f: None for f in sa.FAMILIES}) == (None, None, False)
    top, n = sa.ceiling_check([r for r in rows if r["name"] != "rf-nn"], C32)  # md-a, md-b, mb fit, not md-big
    assert (top["name"], n) == ("md-a", 3)


def test_class_verdict_chooses_by_validation_when_test_disagrees():
    # by test the verdict would be mb 0.90 vs mlp 0.85 (sequence wins); by validation it is md 0.60 vs rf 0.65 (loses)
    best = {"mdcsa": row("md", "mdcsa", 0.80, 0.60), "mamba": row("mb", "mamba", 0.70, 0.90),
            "mlp": row("mlp", "mlp", 0.70, 0.85), "rf": row("rf", "rf", 0.75, 0.65, quant="int8 features"),
            "knn": None, "lr": None}
    top_seq, top_pw, beats = sa.class_verdict(best)
    assert (top_seq["name"], top_pw["name"], beats) == ("md", "rf", False)
    # swap the validation figures only: now mb and mlp are taken, and the sequence side wins on test
    best["mdcsa"]["val_f1"], best["mamba"]["val_f1"] = 0.70, 0.80
    best["mlp"]["val_f1"], best["rf"]["val_f1"] = 0.75, 0.70
    top_seq, top_pw, beats = sa.class_verdict(best)
    assert (top_seq["name"], top_pw["name"], beats) == ("mb", "mlp", True)
    # a validation tie goes to the smaller arena (then flatbuffer), as select_best does, whatever the test figures
    best["mlp"].update(val_f1=0.75, arena_bytes=9_000, test_f1=0.10)
    best["rf"].update(val_f1=0.75, arena_bytes=8_000, test_f1=0.99)
    assert sa.class_verdict(best)[1]["name"] == "rf"
    best["rf"].update(arena_bytes=9_000, flatbuffer_bytes=30_000)
    assert sa.class_verdict(best)[1]["name"] == "mlp"


def test_limiting_facts_hand_computed():
    ds = sphere_like_dataset()
    facts = sa.limiting_facts(ds, sa.diagnostics(ds))
    # training last steps: room a hears ap0 in 1/1 and ap1 in 0/1; room b: ap0 in 1/2, ap1 in 2/2. One AP heard in
    # >= 90 % per room, but a different one: no AP tells two rooms apart by its level alone
    assert facts["level_only"] == {}
    # strongest training AP (heard in >= half): a: ap0 (-80); b: ap1 (-80 vs ap0 -100). Both heard in test 00008
    assert facts["lost_strongest"] == {}
    # shares of windows heard, train -> test: ap0 0.75 -> 0.75, ap1 0.5 -> 0.75: ap1 rises; training sequences that
    # hear it: 00005 and 00006 (both have train windows). Rooms: ap1 in test last steps a 0/1, b 3/3 (>= 75 %), but
    # in training b 2/2 (not rare): none
    assert facts["gained"] == {"ap": "ap1", "train_share": 0.5, "test_share": 0.75,
                               "train_sequences": ["00005", "00006"], "rooms": []}
    # test windows with a room change: window 1 of 4, all labelled
    assert facts["transition_share"] == 0.25


def test_limiting_facts_on_a_hand_made_diagnosis():
    from types import SimpleNamespace

    cell = lambda heard, dbm=None: {"heard": heard, "mean_dbm": dbm}  # noqa: E731
    diag = {"aps": ["K", "L", "U"], "classes": ["r1", "r2", "r3", "r4", "r5"],
            "class_counts_test": [10, 50, 5, 50, 70],
            "share_windows_ap_heard": {"train": {"K": 0.4, "L": 0.5, "U": 0.6}, "test": {"K": 0.45, "L": 0.0, "U": 0.9}},
            "test_sequences": [("s9", 4)], "aps_heard_per_sequence": {"s9": ["K", "U"]},
            "per_class_last_step_rssi": {
                "train": {"r1": [cell(0.2, -90), cell(0.6, -80), cell(0.95, -85)],  # often: U; strongest: L
                          "r2": [cell(0.1, -95), cell(0.7, -75), cell(0.92, -90)],  # often: U; strongest: L
                          "r3": [cell(0.95, -70), cell(0.0), cell(0.99, -80)],  # often: K and U; strongest: K
                          "r4": [cell(0.5, -60), cell(0.4, -50), cell(0.2, -90)],  # L louder but heard < half: K
                          "r5": [cell(0.0), cell(0.0), cell(0.1, -95)]},  # nothing heard in half its windows
                "test": {"r1": [cell(1.0, -90), cell(0.0), cell(0.8, -85)],
                         "r2": [cell(1.0, -90), cell(0.0), cell(0.8, -85)],
                         "r3": [cell(1.0, -70), cell(0.0), cell(1.0, -80)],
                         "r4": [cell(0.5, -60), cell(0.0), cell(0.9, -90)],
                         "r5": [cell(0.0), cell(0.0), cell(0.8, -95)]}}}
    ds = SimpleNamespace(
        meta={"sequences": {"s1": {"windows": {"train": 3, "val": 1}, "aps_heard": ["K", "L", "U"]},
                            "s2": {"windows": {"train": 2}, "aps_heard": ["K", "L"]},
                            "s3": {"windows": {"val": 2}, "aps_heard": ["U"]},  # no training windows
                            "s9": {"windows": {"test": 4}, "aps_heard": ["K", "U"]}}},
        y_test=np.array([[0, 0], [0, 1], [1, -1], [1, 1]]))  # window 2 unlabelled at its last step
    facts = sa.limiting_facts(ds, diag)
    assert facts["level_only"] == {"U": ["r1", "r2"]}  # class order
    assert facts["lost_strongest"] == {"L": ["r2", "r1"]}  # L is heard in no test sequence; most test windows first
    # U rises most (0.6 -> 0.9); only s1 hears it in training; rooms heard in >= 75 % of test, < 25 % of training:
    # r4 (0.2 -> 0.9, 50 test windows) and r5 (0.1 -> 0.8, 70)
    assert facts["gained"] == {"ap": "U", "train_share": 0.6, "test_share": 0.9, "train_sequences": ["s1"],
                               "rooms": ["r5", "r4"]}
    assert facts["transition_share"] == pytest.approx(1 / 3)  # window 1 of the 3 labelled ones
    diag["share_windows_ap_heard"]["test"] = {"K": 0.4, "L": 0.5, "U": 0.6}  # nothing rises: no such AP
    assert sa.limiting_facts(ds, diag)["gained"] is None


def test_target_verdict():
    assert sa.target_verdict(None) == {"row": None, "test_f1": None, "reached": False}
    assert sa.target_verdict({"name": "m", "test_f1": 0.82})["reached"] is True
    assert sa.target_verdict({"name": "m", "test_f1": 0.8199})["reached"] is False


def test_lever_twins():
    plain = row("md", "mdcsa", 0.7, 0.7, levers="none")
    lev = row("md-bal", "mdcsa", 0.8, 0.6, levers="balanced sampling (power 0.5)")
    mamba = row("mb", "mamba", 0.7, 0.7, levers="lr 0.01", config="H8L1")
    mamba_kd = row("mb-kd", "mamba", 0.7, 0.7, levers="KD from t; lr 0.01", config="H8L1")
    other_size = row("md32-bal", "mdcsa", 0.8, 0.6, levers="balanced sampling", config="H32L1")
    teacher = row("t", "mdcsa", 0.9, 0.9, levers="none", quant="float (Keras)")
    twins = sa.lever_twins([plain, lev, mamba, mamba_kd, other_size, teacher])
    assert [(r["name"], t["name"]) for r, t in twins] == [("md-bal", "md"), ("mb-kd", "mb")]


def test_seed_replicas_and_spread():
    rows = [row("m", "mlp", 0.5, 0.6), row("m-s1", "mlp", 0.7, 0.8), row("m-s12", "mlp", 0.6, 0.4),
            row("m-sx", "mlp", 0.0, 0.0), row("m-s1-kd", "mlp", 0.0, 0.0), row("mm-s1", "mlp", 0.0, 0.0)]
    assert [r["name"] for r in sa.seed_replicas(rows, "m")] == ["m", "m-s1", "m-s12"]
    v, t = sa.seed_spread(rows, "m")
    np.testing.assert_allclose(v, [50, 70, 60])
    np.testing.assert_allclose(t, [60, 80, 40])
    assert sa.seed_spread(rows, "mm") is None  # only "mm-s1": one seed


def test_rank_correlations_from_analyses(tmp_path):
    ds = sphere_like_dataset()
    rows = [row(f"r{i}", "mdcsa", 0.5 + 0.1 * i, 0.4 + 0.1 * i) for i in range(4)]
    # validation on the Lounge-absent windows ranks them in reverse; r3 has no such figure
    analyses = {f"r{i}": {"val_lounge_absent": {"f1": 1.0 - 0.1 * i}} for i in range(3)}
    analyses["r3"] = {"test_steady": {}}
    rho, rho_sub, n_sub, n = sa.rank_correlations(ds, rows, tmp_path, sa.diagnostics(ds), analyses)
    assert rho == pytest.approx(1.0) and n == 4
    assert n_sub == 3 and np.isnan(rho_sub)  # fewer than 4 rows with the sub-figure
    analyses["r3"] = {"val_lounge_absent": {"f1": 0.0}}
    assert sa.rank_correlations(ds, rows, tmp_path, {}, analyses)[1:3] == (pytest.approx(-1.0), 4)
    assert sa.rank_correlations(ds, rows[:3], tmp_path, {}, analyses) is None


def test_top_confusions():
    cm = [[5, 2, 0], [3, 4, 2], [0, 1, 7]]
    off, errors = sa.top_confusions(cm, ["a", "b", "c"], k=3)
    assert errors == 8
    assert off == [(3, "b", "a"), (2, "b", "c"), (2, "a", "b")]  # ties: names descending


def test_small_lookups():
    acc = row("md-acc", "mdcsa", 0.8, 0.8, variant={"accelerometer": True})
    rows = [row("md", "mdcsa", 0.7, 0.7, ops=["L2_NORMALIZATION"]), acc, row("old", "mdcsa", 0.7, 0.7, ops=["MEAN"]),
            row("mb", "mamba", 0.7, 0.7)]
    assert sa.is_acc(acc) and not sa.is_acc(rows[0]) and not sa.is_acc({"variant": None})
    assert sa.accelerometer_twin(rows, acc)["name"] == "md"
    assert sa.accelerometer_twin(rows, row("x-acc", "mlp", 0, 0)) is None
    assert sa.stale_mdcsa(rows) == ["md-acc", "old"]
    assert [r["name"] for r in sa.int8_rows(rows)] == ["md", "old", "mb"]
    slim = sa.results_rows([{"a": 1, "val_pred_last": [1], "test_pred_last": [2]}])
    assert slim == [{"a": 1}]


def test_analysed_rows_in_report_order(tmp_path):
    ds = sphere_like_dataset()
    seq = row("md", "mdcsa", 0.8, 0.7, val_pred_last=[0, 1, 0, 0], test_pred_last=[0, 1, 1, 0])
    rf = row("rf-window", "rf", 0.7, 0.7, quant="int8 features", val_pred_last=[0, 1, 1, 0],
             test_pred_last=[0, 1, 1, 1])
    best = {C32: {"mdcsa": seq, "mamba": None, "mlp": None, "rf": rf}, C64: {"mdcsa": seq, "mamba": None,
                                                                              "mlp": None, "rf": None}}
    extra = sa.analysed_rows(ds, [seq, rf], tmp_path, sa.diagnostics(ds), best, seq)
    assert list(extra) == ["md", "rf-window"]
    assert extra["md"]["val_lounge_absent"]["acc"] == 0.5
    assert extra["rf-window"]["per_sequence"]["00009"]["acc"] == 1.0
