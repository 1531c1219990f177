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
