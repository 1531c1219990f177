"""keras_tinyloc.experiments.int8_loss: run discovery, the report against the committed result document and its
counts on hand-made rows, and both conversions of one tiny run of a small simulated house."""
from __future__ import annotations

import json

import pytest

from keras_tinyloc import paths
from keras_tinyloc.experiments import int8_loss

RESULTS = paths.REPO_ROOT / "docs" / "results"


def test_run_dirs_need_a_model(tmp_path):
    for name in ("b", "a", "empty"):
        (tmp_path / name).mkdir()
    for name in ("b", "a"):
        (tmp_path / name / "model.keras").write_bytes(b"")
    assert int8_loss.run_dirs(str(tmp_path / "*")) == [tmp_path / "a", tmp_path / "b"]


def test_committed_report_is_the_rendering_of_the_committed_rows():
    doc = json.loads((RESULTS / "int8_loss.json").read_text())
    assert int8_loss.markdown(doc["rows"], doc["meta"]) == (RESULTS / "int8_loss.md").read_text()


def test_counts_per_dataset():
    def r(ds, a, b):
        loss = lambda v: {"test_f1_int8": 0.5, "f1_loss_points": v, "acc_loss_points": 0.0}  # noqa: E731
        return {"dataset": ds, "name": "n", "model": "mlp", "hidden": 4, "layers": 1, "test_f1_float": 0.5,
                "minmax": loss(a), "mse": loss(b)}
    rows = [r("uji", 0.4, 0.1), r("uji", -0.7, 0.5), r("uji", 1.2, -0.2), r("house-a", 0.0, 0.0)]
    md = int8_loss.markdown(rows, {"date": "d", "machine": "m", "runs": "runs/*"})
    assert md.index("## house-a") < md.index("## uji")
    # uji: |loss| <= 0.5: min-max 1 (0.4), MSE 3; loss <= 0.5: min-max 2 (0.4, -0.7), MSE 3
    assert ("Rows losing ≤ 0.5 F1 points (|loss|, gains count as changes too): min-max 1/3, MSE 3/3; losing ≤ 0.5 "
            "points (gains allowed): min-max 2/3, MSE 3/3.") in md


@pytest.mark.slow
def test_run_one_converts_twice(tmp_path):
    from keras_tinyloc.data.simulate import simulate_house
    from keras_tinyloc.training.train import TrainConfig, train

    simulate_house("A", tmp_path / "raw", seed=0, scale=0.1)
    run = tmp_path / "run"
    train(TrainConfig(dataset="house-a", data_dir=str(tmp_path / "raw"), model="mlp", hidden=4, layers=1,
                      out=str(run), epochs=1, patience=1, verbose=False), log=lambda s: None)
    before = sorted(p.name for p in run.iterdir())
    row = int8_loss.run_one(run)
    assert (row["dataset"], row["name"], row["model"], row["hidden"]) == ("house-a", "run", "mlp", 4)
    for method in int8_loss.METHODS:
        m = row[method]
        assert m["f1_loss_points"] == pytest.approx(100 * (row["test_f1_float"] - m["test_f1_int8"]), abs=1e-3)
        assert m["acc_loss_points"] == round(100 * (row["test_acc_float"] - m["test_acc_int8"]), 3)
        assert m["arena_bytes"] > 0
    assert row["minmax"]["clipped_tensors"] == 0  # min-max ranges clip nothing
    assert sorted(p.name for p in run.iterdir()) == before  # the flatbuffers went to a temporary folder
