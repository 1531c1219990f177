"""Small datasets and models shared by several test files (``pythonpath = tests`` in setup.cfg makes this importable)."""
from __future__ import annotations

import numpy as np

from keras_tinyloc.data.base import MinMaxScaling, WindowDataset


def _toy_windows(n, rng, steps=4, feats=3, c=3):
    y = rng.integers(0, c, size=(n, 1)).repeat(steps, axis=1).astype("int32")
    x = np.clip(np.eye(c, feats)[y] * 0.7 + rng.uniform(0, 0.3, size=(n, steps, feats)), 0, 1).astype("float32")
    y[::5, :2] = -1
    return x, y


def toy_dataset(seed=0):
    """A separable 3-room, 3-AP WindowDataset of 4-step windows (96/32/32), some steps unlabelled (-1)."""
    rng = np.random.default_rng(seed)
    (xt, yt), (xv, yv), (xs, ys) = _toy_windows(96, rng), _toy_windows(32, rng), _toy_windows(32, rng)
    return WindowDataset(
        "toy", xt, yt, xv, yv, xs, ys, ["a", "b", "c"], ["ap1", "ap2", "ap3"],
        MinMaxScaling(np.full(3, -110.0, np.float32), np.full(3, -40.0, np.float32)),
    )


# ------------------------------------------------------------------ a small Mamba shared by the step-model tests
MAMBA_T, MAMBA_F, MAMBA_C = 12, 5, 4


def small_mamba(hidden=8, layers=1, seed=0):
    """A seeded Mamba emitter ``(B,12,5) -> (B,12,4)``."""
    import keras

    from keras_tinyloc.models.mamba import build_mamba_emitter

    keras.utils.set_random_seed(seed)
    return build_mamba_emitter((MAMBA_T, MAMBA_F), MAMBA_C, hidden, layers)


def mamba_windows(n, seed=1):
    """``n`` random windows ``(n,12,5)`` in [0, 1) with feature 0 never heard (0.0)."""
    rng = np.random.default_rng(seed)
    x = rng.uniform(0, 1, (n, MAMBA_T, MAMBA_F)).astype(np.float32)
    x[:, :, 0] = 0.0
    return x


def synth_dataset(T=4, F=5, C=3, n=60, seed=0, name="synth"):
    """Class c: AP c is loud at some step of the window (not necessarily the last); a few last steps unlabelled."""
    rng = np.random.default_rng(seed)
    splits = {}
    for split, count in (("train", n), ("val", n // 2), ("test", n // 2)):
        y = rng.integers(0, C, size=count)
        x = rng.uniform(0.0, 0.3, size=(count, T, F)).astype(np.float32)
        loud_step = rng.integers(0, T, size=count)
        x[np.arange(count), loud_step, y] = rng.uniform(0.7, 1.0, size=count)
        yy = np.repeat(y[:, None], T, axis=1).astype(np.int32)
        yy[:3, -1] = -1
        splits[split] = (x, yy)
    return WindowDataset(
        name=name, x_train=splits["train"][0], y_train=splits["train"][1], x_val=splits["val"][0],
        y_val=splits["val"][1], x_test=splits["test"][0], y_test=splits["test"][1],
        class_names=[f"c{i}" for i in range(C)], feature_names=[f"ap{i}" for i in range(F)],
        scaling=MinMaxScaling(np.zeros(F, np.float32), np.ones(F, np.float32)))


def sphere_like_dataset():
    """A hand-made 2-room, 2-AP dataset of 2-step windows laid out like ``sphere`` (dBm -120..-40 scaled to [0, 1],
    -120 = not heard = 0.0; ``meta["sequences"]`` with validation sequences 00005 (Lounge_AP heard) and 00006
    (absent) and test sequences 00008 (3 windows) and 00009 (1 window)). Values are exact in float32.

    train last steps (dBm): a: (-80, -120); b: (-100, -70), (-120, -90); one window with an unlabelled last step.
    val last labels [0, 1, 1, 0]; test y [[0,0],[0,1],[1,1],[1,1]] (window 1 has a room change).
    """
    lo, hi = -120.0, -40.0

    def scaled(dbm):
        return ((np.asarray(dbm, np.float32) - lo) / (hi - lo)).astype(np.float32)

    x_train = scaled([[[-60, -120], [-80, -120]], [[-120, -120], [-100, -70]],
                      [[-120, -50], [-120, -90]], [[-70, -120], [-120, -120]]])
    y_train = np.array([[0, 0], [1, 1], [0, 1], [1, -1]], np.int32)
    x_val = scaled([[[-60, -120], [-60, -120]], [[-120, -60], [-120, -60]],
                    [[-120, -60], [-120, -60]], [[-60, -120], [-60, -120]]])
    y_val = np.array([[0, 0], [1, 1], [1, 1], [0, 0]], np.int32)
    x_test = scaled([[[-60, -120], [-60, -120]], [[-60, -120], [-120, -60]],
                     [[-120, -60], [-120, -60]], [[-120, -60], [-100, -60]]])
    y_test = np.array([[0, 0], [0, 1], [1, 1], [1, 1]], np.int32)
    meta = {"sequences": {
        "00005": {"windows": {"train": 2, "val": 2}, "aps_heard": ["ap0", "ap1"]},
        "00006": {"windows": {"train": 2, "val": 2}, "aps_heard": ["ap1"]},
        "00008": {"windows": {"test": 3}, "aps_heard": ["ap0", "ap1"]},
        "00009": {"windows": {"test": 1}, "aps_heard": ["ap1"]}}}
    return WindowDataset("sphere-like", x_train, y_train, x_val, y_val, x_test, y_test, ["a", "b"], ["ap0", "ap1"],
                         MinMaxScaling(np.full(2, lo, np.float32), np.full(2, hi, np.float32)), meta=meta)


def tiny_int8_mlp(seed=0):
    """An int8 MLP flatbuffer (Dense(16)+ReLU -> Dense(4) on (1, 8): FULLY_CONNECTED only), through ``convert``,
    tensor names stripped; calibrated on 64 uniform [0, 1) inputs drawn with ``seed``."""
    import keras

    from keras_tinyloc.deploy import convert

    keras.utils.set_random_seed(seed)
    inp = keras.Input((1, 8))
    em = keras.Model(inp, keras.layers.Dense(4)(keras.layers.Dense(16, activation="relu")(inp)))
    x = np.random.default_rng(seed).uniform(0, 1, (64, 1, 8)).astype(np.float32)
    return convert.strip_tensor_names(convert.convert_emitter(em, "int8", x, n_calibration=64))
