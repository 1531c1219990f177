"""``fit --mcu`` on a tiny grid (MLP H8/H64x2, with and without augmentation) and a synthetic dataset, host basis.

Checked against independent computations: the int8 validation F1 of every complete candidate (its .tflite re-run in
TFLM), the winner (the best of those that fit), the pruner's decisions (the successive-halving rule recomputed from the
study), the winner's test F1 (re-run in TFLM); and behaviour: test labels never change the search, a killed search
resumes to the same leaderboard, bad options give one line.
"""
from __future__ import annotations

import csv
import dataclasses
import json

import numpy as np
import pytest

from helpers import synth_dataset
from keras_tinyloc.errors import TinyLocError
from keras_tinyloc.experiments import fit, fit_sizes, search_space

TIMING = ("seconds", "invoke_us_host", "latency_ms")
TEST_COLUMNS = ("test_f1_int8", "test_acc_int8")
MARGIN = {"ram": 10_000, "flash": 80_000}
FLASH_KB = 83  # 84,992 B: MLP H8L1 (flatbuffer ~1.5 KB + 80,000) fits, H64L2 (~7.7 KB + 80,000) does not


@pytest.fixture(scope="module")
def space():
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(search_space, "FAMILIES", {"mlp": search_space.Family("mlp", "mlp", ((8, 1), (64, 2)))})
        mp.setattr(search_space, "POWERS", (1,))
        mp.setattr(fit_sizes, "HOST_MARGINS", {"mlp": MARGIN})
        yield


def dataset(seed=0):
    return synth_dataset(T=4, F=5, C=3, n=96, seed=seed)


def config(out, **kw):
    base = dict(dataset="synth", out=str(out), ram_kb=64, flash_kb=FLASH_KB, clock_mhz=48, families=("mlp",),
                epochs=5, patience=3, min_epochs=2, reduction_factor=2, device="host", progress=False, seed=3)
    return fit.FitConfig(**{**base, **kw})


def leaderboard(out, drop=TIMING):
    with open(out / "leaderboard.csv") as fh:
        return [{k: v for k, v in r.items() if k not in drop} for r in csv.DictReader(fh)]


@pytest.fixture(scope="module")
def base(space, tmp_path_factory):
    out = tmp_path_factory.mktemp("fit") / "base"
    ds = dataset()
    summary = fit.run_fit(config(out), dataset=ds, log=lambda line: None)
    return out, ds, summary


def tflm_f1(tflite_path, x, y, crf):
    from keras_tinyloc.deploy import tflm
    from keras_tinyloc.deploy.convert import decode_metrics
    from keras_tinyloc.deploy.quantize import dequantize, quantize
    from keras_tinyloc.deploy.tflite_inspect import inspect_tflite

    buf = tflite_path.read_bytes()
    info = inspect_tflite(buf)
    q, _ = tflm.run_tflm(buf, quantize(x, info.input().scale, info.input().zero_point))
    return decode_metrics(dequantize(q, info.output().scale, info.output().zero_point), y, crf)[0]


def test_every_row_and_the_winner_match_independent_computations(base):
    out, ds, summary = base
    rows = {r["key"]: r for r in leaderboard(out, drop=())}
    assert set(rows) == {"mlp-H8L1", "mlp-H8L1-aug", "mlp-H64L2", "mlp-H64L2-aug"}
    for key in ("mlp-H64L2", "mlp-H64L2-aug"):  # screened out before training: nothing trained
        assert rows[key]["status"] == "does not fit" and rows[key]["selection"].startswith("not trained: flash need ")
        assert not (out / "trials" / key).exists()
    scores = {}
    for key in ("mlp-H8L1", "mlp-H8L1-aug"):
        r = rows[key]
        assert r["status"] in ("winner", "complete", "pruned")
        if r["status"] == "pruned":
            continue
        cfg = json.loads((out / "trials" / key / "run" / "config.json").read_text())
        m = tflm_f1(out / "trials" / key / "int8" / "model.tflite", ds.x_val, ds.y_val, cfg["crf"])
        assert float(r["val_f1_int8"]) == pytest.approx(m["f1"], abs=1e-12)
        scores[key] = m["f1"]
    assert scores, "at least the first trial runs to the end (successive halving promotes it)"
    best = max(scores, key=lambda k: scores[k])
    win = summary["winner"]
    assert win["key"] == best and rows[best]["status"] == "winner" and win["fits"]
    # test figures: computed for the winner only, and they are its int8 model's figures in TFLM
    assert [k for k, r in rows.items() if r["test_f1_int8"]] == [best]
    cfg = json.loads((out / "winner" / "run" / "config.json").read_text())
    m = tflm_f1(out / "winner" / "int8" / "model.tflite", ds.x_test, ds.y_test, cfg["crf"])
    assert win["test_f1_int8"] == pytest.approx(m["f1"], abs=1e-12)
    rep = json.loads((out / "winner" / "int8" / "report.json").read_text())
    assert rep["test_f1_int8"] == win["test_f1_int8"] and "mcu_fit" in rep
    assert (out / "winner" / "sketch").is_dir() and (out / "val_f1_vs_ram.png").stat().st_size > 1000
    assert "| **winner** |" in (out / "leaderboard.md").read_text()


def test_pruning_follows_the_successive_halving_rule(base):
    """Recompute each decision: at a rung epoch m·eta^r a trial goes on only if its value is in the top 1/eta of
    the values that every trial so far (itself included) reported at that epoch."""
    import optuna

    out, _, _ = base
    study = optuna.load_study(study_name="fit-1", storage=fit.storage_url(out))
    trials = sorted(study.trials, key=lambda t: t.number)
    assert len(trials) == 2
    rungs = [2 * 2 ** r for r in range(3)]
    for i, t in enumerate(trials):
        for step in (s for s in rungs if s in t.intermediate_values):
            values = [u.intermediate_values[step] for u in trials[:i] if step in u.intermediate_values]
            values.append(t.intermediate_values[step])
            k = max(len(values) // 2 - 1, 0)
            keep = t.intermediate_values[step] >= sorted(values, reverse=True)[k]
            stopped_here = t.state == optuna.trial.TrialState.PRUNED and max(t.intermediate_values) == step
            assert stopped_here == (not keep), (t.number, step, values)


def test_test_labels_never_change_the_search(space, base, tmp_path):
    """Same data with the test labels permuted: every figure of the search is identical (also: same seed, same
    result); only the winner's test figures differ."""
    out, ds, summary = base
    rng = np.random.default_rng(0)
    shuffled = dataclasses.replace(ds, y_test=ds.y_test[rng.permutation(len(ds.y_test))])
    other = fit.run_fit(config(tmp_path / "perm"), dataset=shuffled, log=lambda line: None)
    assert leaderboard(tmp_path / "perm", drop=TIMING + TEST_COLUMNS) == leaderboard(out, drop=TIMING + TEST_COLUMNS)
    assert other["winner"]["key"] == summary["winner"]["key"]
    assert other["winner"]["val_f1_int8"] == summary["winner"]["val_f1_int8"]


def test_a_killed_search_resumes_to_the_same_leaderboard(space, base, tmp_path, monkeypatch):
    out, ds, _ = base
    real = fit.run_trial
    calls = {"n": 0}

    def killing_run_trial(trial, cand, ds_, cfg, trial_dir):
        calls["n"] += 1
        if calls["n"] < 2:
            return real(trial, cand, ds_, cfg, trial_dir)

        class Proxy:  # the second trial is killed at its first rung (epoch 2), after the pruner recorded it there
            step = 0

            def report(self, value, step):
                trial.report(value, step)
                self.step = step

            def should_prune(self):
                decision = trial.should_prune()
                if self.step == 2:
                    raise KeyboardInterrupt
                return decision

        return real(Proxy(), cand, ds_, cfg, trial_dir)

    monkeypatch.setattr(fit, "run_trial", killing_run_trial)
    with pytest.raises(KeyboardInterrupt):
        fit.run_fit(config(tmp_path / "k"), dataset=ds, log=lambda line: None)
    monkeypatch.setattr(fit, "run_trial", real)
    lines = []
    fit.run_fit(config(tmp_path / "k"), dataset=ds, log=lines.append)
    assert any(line.startswith("resume: 1 unfinished trial(s) of fit-1") for line in lines)
    assert leaderboard(tmp_path / "k") == leaderboard(out)


@pytest.mark.parametrize("argv, msg", [
    (["--mcu", "ATmega328P"], "error: --mcu ATmega328P: its AVR (8-bit) core cannot run TensorFlow Lite Micro"),
    (["--mcu", "CC2650", "--time-budget", "0"], "error: --time-budget 0.0: must be a positive number of minutes"),
    (["--mcu", "CC2650", "--families", "mlp,gru"], "error: --families 'gru': choose from mlp"),
    (["--ram-kb", "32"], "error: give --mcu NAME ("),
    (["--mcu", "CC2650", "--min-epochs", "50"], "error: --min-epochs 50: must be an integer from 1 to 40"),
])
def test_bad_options_are_one_line_before_any_work(argv, msg, tmp_path, capsys):
    rc = fit.main(["--dataset", "house-a", "--out", str(tmp_path / "o"), *argv])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and len(err) == 1 and err[0].startswith(msg)
    assert not (tmp_path / "o").exists()


def test_a_folder_of_another_search_or_command_is_refused(space, base, tmp_path):
    out, ds, _ = base
    with pytest.raises(TinyLocError, match=r"holds a search with another seed \(3, now 4\)"):
        fit.run_fit(config(out, seed=4), dataset=ds)
    (tmp_path / "x").mkdir()
    (tmp_path / "x" / "notes.txt").write_text("mine")
    with pytest.raises(TinyLocError, match="exists, is not empty and holds no fit.json"):
        config(tmp_path / "x").validate(in_memory=True)


def test_ray_with_one_worker_is_the_local_search(space, base, tmp_path):
    """--backend ray runs the same trials through Ray tasks reporting to the shared SQLite study; with one worker
    nothing runs concurrently, so the leaderboard equals the local one."""
    pytest.importorskip("ray")
    out, ds, summary = base
    other = fit.run_fit(config(tmp_path / "ray", backend="ray", jobs=1), dataset=ds, log=lambda line: None)
    assert leaderboard(tmp_path / "ray") == leaderboard(out)
    assert other["winner"]["key"] == summary["winner"]["key"]
