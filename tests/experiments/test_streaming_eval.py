"""keras_tinyloc.experiments.streaming_eval: the unbroken-stream decoders against labels worked out by hand (a
NumPy stand-in for the int8 stepper whose emission says how many steps its state has seen), and one tiny house
measured end to end (Mamba step model through TFLM, the int8 MLP), its run reused from the cache."""
from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest

from helpers import synth_dataset
from keras_tinyloc.errors import TinyLocError
from keras_tinyloc.experiments import streaming_eval as se
from keras_tinyloc.training.metrics import window_metrics

T, HALF, C = 4, 2, 16


class CountingStepper:
    """Emission = one-hot of the number of steps since the last reset (int8 100 / 0, scale 1, zero point 0)."""

    def __init__(self):
        self.reset()

    def reset(self):
        self.states = {"n": np.zeros(1, np.int64)}

    def step(self, x_t):
        out = np.zeros(C, np.int8)
        out[min(int(self.states["n"][0]), C - 1)] = 100
        self.states["n"] = self.states["n"] + 1
        return out

    def emission_q(self):
        return 1.0, 0


def windows_of(stream_x, stream_y):
    """Windows of T steps, hop T/2, cut from one stream."""
    starts = range(0, len(stream_x) - T + 1, HALF)
    return np.stack([stream_x[s:s + T] for s in starts]), np.stack([stream_y[s:s + T] for s in starts])


def test_eval_continuous_against_hand_labels():
    rng = np.random.default_rng(0)
    xa, ya = rng.uniform(size=(12, 2)).astype(np.float32), rng.integers(0, C, 12)
    xb, yb = rng.uniform(size=(6, 2)).astype(np.float32), rng.integers(0, C, 6)
    (wa, la), (wb, lb) = windows_of(xa, ya), windows_of(xb, yb)
    ds = SimpleNamespace(x_test=np.concatenate([wa, wb]), y_test=np.concatenate([la, lb]))
    zero = [np.zeros((C, C)), np.zeros(C), np.zeros(C)]  # no transition scores: every decoder = argmax emission
    p_float = np.full(len(ds.x_test), 3, np.int64)
    out = se.eval_continuous(ds, CountingStepper(), zero, p_float, lag=5)
    assert (out["streams"], out["windows_covered"], out["mean_stream_steps"]) == (2, 7, 9.0)

    def staggered(t):  # two state sets reset every T steps, T/2 apart; use the one with T/2..T-1 steps of context
        ctx0 = t % T
        ctx1 = (t - HALF) % T if t >= HALF else -1
        return ctx0 if (t < HALF or ctx0 >= HALF) else ctx1

    ends = [np.arange(T - 1, 12, HALF), np.arange(T - 1, 6, HALF)]  # window ends in each stream
    y_last = ds.y_test[:, -1]
    carried = np.concatenate([np.minimum(e, C - 1) for e in ends])  # one reset per stream
    stag = np.concatenate([[staggered(t) for t in e] for e in ends])
    assert carried.tolist() == [3, 5, 7, 9, 11, 3, 5]  # the state has seen the whole stream so far
    assert stag.tolist() == [3, 3, 3, 3, 3, 3, 3]  # with hop = T/2 every window end has T - 1 steps of context
    for key, expect in (("lag0", carried), ("lag5", carried), ("forward", carried), ("staggered_lag0", stag)):
        m = window_metrics(y_last, expect)
        assert (out[f"f1_{key}"], out[f"acc_{key}"]) == (pytest.approx(m["f1"]), pytest.approx(m["acc"])), key
        assert out[f"agree_{key}_vs_float_window"] == pytest.approx(np.mean(expect == 3))
    assert "f1_float_lag0" not in out


@pytest.mark.slow
def test_evaluate_house_end_to_end(tmp_path, monkeypatch):
    ds = synth_dataset(T=6, F=4, C=3, n=60, seed=0, name="house-b")  # a registry name: train checks it
    monkeypatch.setitem(se.CONFIGS, "house-b", ((4, 1),))
    logs = []
    h = se.evaluate_house("house-b", 2, tmp_path, log=logs.append, dataset=ds)
    r = h["mamba"]["H4L1"]
    assert r["float_step_max_abs_diff"] < 1e-4 * max(1.0, r["emission_abs_max"])
    assert r["online_lag0_equals_window_viterbi"] is True  # lag-0 fixed-lag Viterbi == the window's last step
    assert r["float_ops"] == [] and r["test_windows"] == len(ds.x_test) == r["continuous"]["windows_covered"]
    assert 0 < r["arena_head_bytes"] <= r["arena_bytes"] and r["step_flatbuffer_bytes"] > 0
    m = window_metrics(ds.y_test[:, -1], np.zeros(len(ds.y_test), int))  # shapes only: values are in [0, 1]
    assert 0 <= r["f1_int8_step_tflm"] <= 1 and m["n"] == len(ds.y_test) - 3
    mlp = h["mlp"]
    assert mlp["params"] == 6 * 4 * 32 + 32 + 32 * 3 + 3  # (T*F -> 32) + (32 -> C)
    assert mlp["hidden"] == se.MLP_HIDDEN and mlp["arena_bytes"] > 0
    assert [s.split(" {")[0] for s in logs] == ["house-b H4L1", "house-b mlp"]
    # the trained run is cached: training again would fail
    import keras_tinyloc.training.train as train_mod

    monkeypatch.setattr(train_mod, "train", lambda *a, **k: pytest.fail("retrained a cached run"))
    tagger, cfg, metrics = se.train_mamba(ds, "house-b", 4, 1, 2, tmp_path)
    assert metrics["params"] == r["params"] and cfg["model"] == "mamba"
    # the row keeps the validation F1 that selects among configurations: the run's decoded validation windows
    assert r["val_f1"] == metrics["val_f1"] == pytest.approx(window_metrics(ds.y_val, tagger.decode(ds.x_val))["f1"])
    assert 0 <= mlp["val_f1_float"] <= 1
    # a row stored without it gets it from its run, only when the run reproduces the row's float test F1
    row = {"f1_float_window": metrics["test_f1"]}
    assert se.validation_f1("house-b", "H4L1", row, 2, tmp_path, dataset=ds) == metrics["val_f1"]
    with pytest.raises(TinyLocError, match=r"house-b H4L1: the run under .* has float test F1 .*, the stored row "
                                           r".*: not the run the row was measured on"):
        se.validation_f1("house-b", "H4L1", {"f1_float_window": metrics["test_f1"] + 0.01}, 2, tmp_path, dataset=ds)


class StateCounter:
    """An int8 stepper stand-in with io like a step model's: inputs x_t (1, 2) at scale 0.5 and a state ``n`` (1,) that
    counts the steps since the reset."""

    io = {"inputs": ["x_t", "n"], "input_q": [(0.5, 0), (1.0, 0)]}
    in_shapes = [(1, 2), (1,)]

    def reset(self):
        self.states = {"n": np.zeros(1, np.int8)}

    def step(self, x_t):
        self.states["n"] = self.states["n"] + 1


def test_step_inputs_are_the_feeds_of_the_chosen_steps():
    rng = np.random.default_rng(4)
    x = rng.uniform(0, 1, (3, 6, 2)).astype(np.float32)
    xs, ns = se.step_inputs(StateCounter(), x, steps=(1, 4))
    assert xs.shape == (6, 1, 2) and xs.dtype == np.int8 and ns.shape == (6, 1)
    want = np.round(x[:, [1, 4]] / 0.5).reshape(6, 1, 2)  # window-major, then step
    assert np.array_equal(xs, want.astype(np.int8))
    assert ns[:, 0].tolist() == [1, 4] * 3  # the state each chosen step is fed: the steps seen since the reset
