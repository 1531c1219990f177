"""keras_tinyloc.experiments.qat_vs_ptq: row selection, the report against the committed result document and its
summary counts on hand-made rows, and one tiny run fine-tuned (QAT and the float control) and converted."""
from __future__ import annotations

import json

import pytest

from helpers import synth_dataset
from keras_tinyloc import paths
from keras_tinyloc.experiments import qat_vs_ptq as qp

RESULTS = paths.REPO_ROOT / "docs" / "results"


def test_rng_and_selection():
    assert qp.rng([0.5, -1.25, 2]) == "-1.25 … +2.00" and qp.rng([]) == "–"
    rows = [{"dataset": "a", "family": "mamba", "config": "H8L1"}, {"dataset": "b", "family": "mamba", "config": "H8L1"},
            {"dataset": "a", "family": "mdcsa", "config": "H16L1"}, {"dataset": "a", "error": "x"}]
    assert qp.select_ptq_rows(rows) == rows[:3]
    assert qp.select_ptq_rows(rows, ["a"], ["mamba:8:1"]) == rows[:1]
    assert qp.cache_dir("qat-control").name == "qat-control"


def test_cache_is_the_user_cache_folder_never_the_checkout(monkeypatch, tmp_path):
    monkeypatch.delenv("KERAS_TINYLOC_CACHE", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert qp.cache_dir() == tmp_path / "xdg" / "keras_tinyloc" / "qat"
    monkeypatch.setenv("KERAS_TINYLOC_CACHE", str(tmp_path / "c"))
    assert qp.cache_dir("qat-control") == tmp_path / "c" / "qat-control"


def test_committed_report_is_the_rendering_of_the_committed_rows():
    doc = json.loads((RESULTS / "qat.json").read_text())
    assert qp.markdown(doc["rows"], doc["meta"]) == (RESULTS / "qat.md").read_text()


def test_summary_counts_every_calibration_seed():
    def r(ptq, start_drops, own_drops, control=None):
        return {"dataset": "d", "family": "m", "config": "c", "f1_float_start": 0.8, "ptq_drops": ptq,
                "f1_float_qat": 0.8, "drop_vs_start": dict(enumerate(start_drops)),
                "drop_vs_own_float": dict(enumerate(own_drops)), "qat_best_epoch": 1, "control": control}
    ctl = {"f1_float": 0.8, "drop_vs_start": {0: 0.4, 1: 0.6}, "drop_vs_own_float": {0: 0.1, 1: -1.1}}
    rows = [r([0.2, 1.2], [0.4, 0.5], [0.3, -0.9], ctl),  # PTQ misses 1 point on one seed; QAT within both
            r([0.1, -0.3], [0.6, -2.0], [1.1, 0.0])]  # QAT loses 0.6 against the start on one seed
    md = qp.markdown(rows, {"date": "d", "machine": "m"})
    assert ("Summary over 2 runs (every calibration seed): int8 within 1 point of its own float model — PTQ 1/2, "
            "QAT 1/2; int8 losing at most 0.5 points against the trained run's float F1 (gains allowed) — PTQ 1/2, "
            "QAT 1/2; control (float fine-tuning + PTQ): within 1 point of its own float 0/1, losing ≤ 0.5 against "
            "the start 0/1.") in md
    assert "| d | m c | 80.00 | +0.10 … -0.30 |" not in md and "| d | m c | 80.00 | -0.30 … +0.10 |" in md


@pytest.mark.slow
def test_run_one_and_control(tmp_path, monkeypatch):
    import functools

    import keras_tinyloc.training.qat as qat_mod
    from keras_tinyloc.training.train import TrainConfig, train

    monkeypatch.setattr(qat_mod, "QATConfig", functools.partial(qat_mod.QATConfig, epochs=2, patience=1))  # short
    monkeypatch.setattr(qp, "SEEDS", (0, 2))
    ds = synth_dataset(T=4, F=5, C=3, n=60, seed=0, name="house-a")
    run = tmp_path / "run"
    train(TrainConfig(dataset="house-a", model="mlp", hidden=4, layers=1, out=str(run), epochs=1, patience=1,
                      verbose=False), dataset=ds, log=lambda s: None)
    start = json.loads((run / "metrics.json").read_text())["test_f1"]
    ptq = {"dataset": "house-a", "family": "mlp", "config": "H4L1", "run_dir": str(run), "test_f1_float": start,
           "f1_drop_points": 0.5, "f1_drop_by_calibration_seed": {"0": 0.5, "1": 0.7, "2": -0.1}}
    r = qp.run_one(ptq, ds, tmp_path / "qat")
    assert r["qat_run_dir"] == str(tmp_path / "qat" / "house-a" / "run") and r["ptq_drops"] == [0.5, 0.7, -0.1]
    assert list(r["f1_int8_qat"]) == ["0", "2"] and r["simulated_tensors"] > 0 and r["qat_best_epoch"] <= 2
    for k, v in r["f1_int8_qat"].items():
        assert r["drop_vs_start"][k] == pytest.approx(round(100 * (start - v), 3))
        assert r["drop_vs_own_float"][k] == pytest.approx(round(100 * (r["f1_float_qat"] - v), 3))
    c = qp.run_control(r, ds, tmp_path / "ctl")
    assert c["run_dir"] == str(tmp_path / "ctl" / "house-a" / "run")
    assert c["drop_vs_start"]["0"] == pytest.approx(round(100 * (start - c["f1_int8"]["0"]), 3))
    # cached: the fine-tuning is not redone
    monkeypatch.setattr(qat_mod, "qat_finetune", lambda *a, **k: pytest.fail("fine-tuned a cached run"))
    assert qp.run_one(ptq, ds, tmp_path / "qat")["f1_int8_qat"] == r["f1_int8_qat"]
