"""keras_tinyloc.experiments.train_speed: jit pairing and the decision counts on hand-made rows, the report against the
committed result document, and one timed configuration."""
from __future__ import annotations

import json

from helpers import synth_dataset
from keras_tinyloc import paths
from keras_tinyloc.experiments import train_speed as ts

RESULTS = paths.REPO_ROOT / "docs" / "results"


def row(ds, jit, first, epoch, bs=128, model="mamba H8L1"):
    return {"dataset": ds, "model": model, "batch_size": bs, "jit_compile": jit, "first_epoch_s": first,
            "epoch_s": epoch, "params": 10, "steps_per_epoch": 1, "decode_s": 0.1, "loss": 1.0, "loadavg_before": 1.0}


def test_pairs_gain_and_decision():
    rows = [row("a", False, 2.0, 1.0), row("a", True, 12.0, 0.5),  # jit 2x per epoch, +10 s once: 20 epochs
            row("b", False, 2.0, 0.5), row("b", True, 30.0, 0.6),  # jit slower per epoch: never pays back
            row("c", True, 1.0, 1.0)]  # no jit-off twin
    pairs = ts.jit_pairs(rows)
    assert [(on["dataset"], off["dataset"]) for on, off in pairs] == [("a", "a"), ("b", "b")]
    assert ts.jit_gain(*pairs[0]) == (2.0, 10.0, 20.0)
    assert ts.jit_gain(*pairs[1])[2] is None
    # 100 epochs: a: 12 + 99 * 0.5 = 61.5 < 2 + 99 = 101 (worth); b: 30 + 59.4 > 2 + 49.5
    assert ts.decision(rows) == (1, 1, 2)
    md = ts.markdown(rows, {"command": "c", "date": "d", "machine": "m", "cpus": 2, "tensorflow": "t", "keras": "k",
                            "epochs": 4})
    assert "- a, mamba H8L1, batch 128: jit 2.00× per epoch (1.000 s → 0.500 s); compilation costs +10.0 s once, " \
           "paid back after 20 epochs." in md
    assert "paid back after never." in md
    assert "faster in 1 of 2 configurations and a 100-epoch run (first epoch + 99 more) faster in 1 of 2" in md


def test_decision_follows_the_counts(monkeypatch):
    assert ts.train_jit_default() is False  # TrainConfig's default: train --jit turns it on
    slow_jit = [row("a", False, 2.0, 0.5), row("a", True, 30.0, 0.6), row("b", False, 4.0, 0.25), row("b", True, 9.0, 0.1)]
    # 100 epochs: a: 30 + 59.4 > 2 + 49.5; b: 9 + 9.9 < 4 + 24.75 -> worth in 1 of 2: not most, the default stands
    text = ts.decision_text(slow_jit)
    assert "faster in 1 of 2; `train` therefore compiles without XLA by default (`--jit` turns it on)." in text
    # jit-off epochs 0.25-0.5 s, first epochs 2.00-4.00 s: 4 (a: 2 / 0.5) to 16 (b: 4 / 0.25) epochs' worth
    assert text.endswith("Without XLA a steady-state epoch took 0.250–0.500 s and the first epoch (tracing) "
                         "2.00–4.00 s, as long as 4–16 steady-state epochs.")
    fast_jit = slow_jit[2:] + [row("c", False, 2.0, 1.0), row("c", True, 12.0, 0.5)]  # worth in 2 of 2
    text = ts.decision_text(fast_jit)
    assert "faster in 2 of 2; `train` nevertheless compiles without XLA by default (`--jit` turns it on): these " \
           "counts do not support that default." in text
    monkeypatch.setattr(ts, "train_jit_default", lambda: True)  # were the default jit on, these counts support it
    assert "`train` therefore compiles with XLA by default (`--no-jit` turns it off)." in ts.decision_text(fast_jit)
    assert "`train` nevertheless compiles with XLA by default" in ts.decision_text(slow_jit)
    assert ts.decision_text(fast_jit) in ts.markdown(fast_jit, {"command": "c", "date": "d", "machine": "m", "cpus": 2,
                                                                "tensorflow": "t", "keras": "k", "epochs": 4})


def test_committed_report_is_the_rendering_of_the_committed_rows():
    doc = json.loads((RESULTS / "train_speed.json").read_text())
    assert ts.markdown(doc["rows"], doc["meta"]) == (RESULTS / "train_speed.md").read_text()


def test_measure_one_configuration():
    ds = synth_dataset(T=4, F=5, C=3, n=50, seed=0)
    r = ts.measure(ds, "mlp", 4, 1, batch_size=16, jit=False, epochs=2)
    assert (r["n_train"], r["steps_per_epoch"], r["batch_size"], r["jit_compile"]) == (50, 4, 16, False)
    assert r["model"] == "mlp H4L1" and r["input_shape"] == [4, 5]
    assert r["params"] == 5 * 4 + 4 + 4 * 3 + 3 + 3 * 3 + 2 * 3  # Dense F->H, Dense H->C per step, CRF C^2 + 2C
    assert r["first_epoch_s"] > 0 and r["epoch_s"] > 0 and r["decode_s"] > 0
    assert 0 < r["loss"] < float("inf")  # CRF negative log-likelihood after the last epoch
