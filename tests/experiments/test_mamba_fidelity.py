"""keras_tinyloc.experiments.mamba_fidelity: the paired statistics against hand computations, the verdict and report
on hand-made rows, option checks, and one tiny run trained, cached and reloaded."""
from __future__ import annotations

import json
import math

import numpy as np
import pytest

from helpers import synth_dataset
from keras_tinyloc.errors import TinyLocError
from keras_tinyloc.experiments import mamba_fidelity as mf

T975_2 = 4.302652729911275  # Student t, 97.5 % quantile, 2 degrees of freedom (tables)


def test_t_interval_by_hand():
    p = mf.t_interval([0.01, 0.02, 0.03])  # mean 0.02, sample std 0.01
    assert p["mean"] == pytest.approx(0.02) and p["std"] == pytest.approx(0.01)
    assert p["half_width"] == pytest.approx(T975_2 * 0.01 / math.sqrt(3))
    assert not p["beyond_noise"]  # 0.02 - 0.0248 < 0
    q = mf.t_interval([0.05, 0.06, 0.07])
    assert q["beyond_noise"] and q["low"] == pytest.approx(0.06 - T975_2 * 0.01 / math.sqrt(3))
    assert mf.t_interval([-0.05, -0.06, -0.07])["beyond_noise"]
    one = mf.t_interval([0.3])
    assert one["half_width"] is None and not one["beyond_noise"]


def hand_rows(learned_gain=(0.05, 0.06, 0.07), euler_gain=(0.01, -0.01, 0.0)):
    """setup "s": frozen-zoh test F1 0.70/0.72/0.74 (seeds 0-2; learned-zoh then 0.75/0.78/0.81: 78.0 ± 3.0 points);
    learned A adds ``learned_gain`` per seed, Euler adds
    ``euler_gain``; val F1 = test F1 + 0.1."""
    rows = []
    for s, base in enumerate((0.70, 0.72, 0.74)):
        for v in mf.VARIANTS:
            f1 = base + (learned_gain[s] if "learned" in v else 0.0) + (euler_gain[s] if "euler" in v else 0.0)
            rows.append({"setup": "s", "variant": v, "seed": s, "params": 100, "test_f1": f1, "val_f1": f1 + 0.1,
                         "test_acc": 0.9, "best_epoch": 5, "epochs_run": 10, "seconds": 1.0})
    return rows


def test_paired_and_main_effects():
    rows = hand_rows()
    p = mf.paired(rows, "s", "learned-zoh")
    assert p["seeds"] == [0, 1, 2] and p["diffs"] == pytest.approx([0.05, 0.06, 0.07]) and p["beyond_noise"]
    e = mf.main_effects(rows, "s")
    assert e["learned_a"]["n"] == 6 and e["learned_a"]["mean"] == pytest.approx(0.06)
    assert e["euler"]["n"] == 6 and e["euler"]["mean"] == pytest.approx(0.0) and not e["euler"]["beyond_noise"]
    assert mf.paired(rows, "other", "learned-zoh") == {"n": 0}
    # a missing seed leaves only the common seeds paired
    p2 = mf.paired([r for r in rows if not (r["variant"] == "learned-zoh" and r["seed"] == 1)], "s", "learned-zoh")
    assert p2["seeds"] == [0, 2]


def test_analyse_verdict_and_report():
    a = mf.analyse(hand_rows())
    assert a["learned_a_worth_it"] and a["learned_a_beyond_noise"] == ["s"]
    md = mf.markdown(hand_rows(), a, "CMD")
    assert "`CMD`" in md and "| `learned-zoh` | 3 | 100 | 78.0 ± 3.0 |" in md
    assert "+6.0 [" in md and "**beyond noise**" in md and "gains more than the seed noise on s." in md
    flat = mf.analyse(hand_rows(learned_gain=(0.01, -0.01, 0.0)))
    assert not flat["learned_a_worth_it"]
    assert "on no setup" in mf.markdown(hand_rows(learned_gain=(0.01, -0.01, 0.0)), flat, "CMD")
    assert "* The Euler term gains more than the seed noise on no setup." in md
    worse = mf.analyse(hand_rows(learned_gain=(-0.05, -0.06, -0.07)))
    assert worse["learned_a_worse_beyond_noise"] == ["s"] and not worse["learned_a_worth_it"]
    doc = json.loads(mf.results_json(hand_rows(), a))
    assert doc["variants"]["learned-euler"]["options"] == {"a_mode": "learned", "input_term": "euler"}
    assert len(doc["rows"]) == 12


def test_check_names():
    mf.check_names(list(mf.SETUPS), list(mf.VARIANTS), [0, 1])
    with pytest.raises(TinyLocError, match=r"^unknown setup 'uji-H8L1' \(choose from "):
        mf.check_names(["uji-H8L1"], [], [])
    with pytest.raises(TinyLocError, match=r"^unknown variant 'exact'"):
        mf.check_names([], ["exact"], [])
    with pytest.raises(TinyLocError, match=r"^seed -1: must be"):
        mf.check_names([], [], [-1])


def test_run_one_tiny(tmp_path):
    from keras_tinyloc.training.train import evaluate, load_run

    ds = synth_dataset(T=4, F=5, C=3, n=60, seed=0, name="synth")
    setup = mf.Setup("synth", 4, 1, 1e-2, 2, 2, ap="heard:0.01", power=2, p_drop=0.1, offset_db=2.0)
    logs = []
    r = mf.run_one(setup, "learned-euler", 1, ds, tmp_path, log=logs.append)
    assert (r["setup"], r["variant"], r["seed"], r["epochs_run"]) == ("synth-H4L1", "learned-euler", 1, 2)
    assert r["options"] == {"a_mode": "learned", "input_term": "euler"} and len(logs) == 1
    rdir = tmp_path / "synth-H4L1" / "learned-euler-s1"
    tagger, config, _ = load_run(rdir)
    assert config["model_options"] == r["options"] and config["mamba_fidelity"]["variant"] == "learned-euler"
    scan = tagger.emitter.get_layer("mamba_h4l1_float-only_a_mode-learned_input_term-euler").get_layer(
        "mamba_block_0").scan
    assert scan.a_mode == "learned" and scan.A_log.trainable
    assert evaluate(tagger, ds)["test_f1"] == pytest.approx(r["test_f1"])  # the saved run reproduces the row
    assert mf.run_one(setup, "learned-euler", 1, ds, tmp_path, log=logs.append) == r and len(logs) == 1  # cached
    assert mf.load_rows(tmp_path) == [r]
    # where training took A: read back from the saved model (2 epochs at lr 1e-2 move it a little)
    assert mf.add_a_drift(tmp_path) == 1 and mf.add_a_drift(tmp_path) == 0
    drift = mf.load_rows(tmp_path)[0]["a_drift"]
    a_log = np.asarray(scan.A_log, np.float64)  # (E,N) = (8, 16)
    change = np.abs(a_log - np.log(np.arange(1, 17)))
    assert drift["a_log_mean_abs_change"] == pytest.approx(change.mean()) and 0 < change.mean() < 0.5
    assert drift["a_ratio_min"] <= drift["a_ratio_median"] <= drift["a_ratio_max"]
    assert "`learned-euler` mean |A_log − log n| " in mf.markdown(mf.load_rows(tmp_path), mf.analyse(
        mf.load_rows(tmp_path)), "CMD")


def test_committed_report_is_rebuilt_from_its_json():
    """docs/results/mamba_fidelity.md and .json are exactly what the library makes of the JSON's rows (the analysis
    and verdicts included)."""
    from keras_tinyloc import paths

    results = paths.REPO_ROOT / "docs" / "results"
    doc = json.loads((results / "mamba_fidelity.json").read_text())
    md, js = mf.report_files(doc["rows"])
    assert md == (results / "mamba_fidelity.md").read_text()
    assert js == (results / "mamba_fidelity.json").read_text()
