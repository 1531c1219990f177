"""Honest small baselines on the same splits: kNN, random forest, logistic regression, and a tiny int8 MLP.

Every baseline sees the windows the sequence models see and is scored the same way
(:func:`keras_tinyloc.training.metrics.window_metrics`: the last step's label, windows with a labelled last step).

**Features** (per window, from the scaled ``x`` in [0, 1]):

* ``last``: the last step's F values (what a per-scan classifier sees);
* ``window`` (only when T > 1): per AP the window mean, last value and maximum (3F values).

**int8 deployment.** Features are quantized to 8 bits (``round(255 x)``) before training and testing, so the
reported F1 is the F1 of the stored model, and each row carries its deployable size:

* kNN stores its training set: ``n_train x n_features`` bytes + one label per training window (1 byte if C <= 256);
* random forest: ``nodes x`` :data:`RF_NODE_BYTES` (uint16 feature/leaf class, uint8 threshold on the uint8
  feature, uint16 right-child index; the left child is the next node);
* logistic regression: int8 weights (per-class symmetric scale, applied here before scoring) + float32 bias and scale.

``flatbuffer_bytes`` holds that model size (flash) and ``arena_bytes`` an *estimate* of working RAM
(``arena_source = "estimate"``): the input (T x F bytes for window features, else F) plus the per-class or
per-neighbour scratch. No TFLM run backs these two; the tiny MLP does go through the real convert/TFLM path.

Hyper-parameters are not selected here: every setting is one row with its validation and test figures, and the
tables pick by validation F1 within each RAM class (a small forest may fit where a large one does not).
"""
from __future__ import annotations

import dataclasses
import time

import numpy as np

from keras_tinyloc.data.base import WindowDataset
from keras_tinyloc.errors import TinyLocError
from keras_tinyloc.training.metrics import window_metrics

RF_NODE_BYTES = 6
FEATURE_SETS = ("last", "window")


@dataclasses.dataclass
class BaselineConfig:
    """Which baselines to run and with which settings (one result row per setting and feature set)."""

    knn_k: tuple[int, ...] = (1, 3, 5)
    rf: tuple[tuple[int, int | None], ...] = ((100, None), (30, 12), (10, 8))  # (trees, max depth)
    lr_c: tuple[float, ...] = (1.0,)
    feature_sets: tuple[str, ...] = FEATURE_SETS
    mlp_hidden: tuple[int, ...] = ()  # e.g. (16, 64): tiny int8 MLPs through train + convert (needs work_dir)
    mlp_epochs: int = 30
    work_dir: str | None = None
    seed: int = 0
    n_jobs: int = 1

    def __post_init__(self) -> None:
        bad = [f for f in self.feature_sets if f not in FEATURE_SETS]
        if bad:
            raise TinyLocError(f"feature set {bad[0]!r}: choose from {', '.join(FEATURE_SETS)}")
        if any(int(k) < 1 for k in self.knn_k):
            raise TinyLocError(f"knn_k {self.knn_k}: every k must be >= 1")
        if self.mlp_hidden and not self.work_dir:
            raise TinyLocError("mlp_hidden given without work_dir: the MLP runs need a directory")


# ------------------------------------------------------------------------------------------------ features
def window_features(x: np.ndarray, kind: str) -> np.ndarray:
    """``(B,T,F)`` -> ``(B,F)`` (``last``) or ``(B,3F)`` (``window``: mean, last, max per AP)."""
    x = np.asarray(x, dtype=np.float32)
    if x.ndim != 3:
        raise TinyLocError(f"features: expected (B,T,F) windows, got shape {x.shape}")
    if kind == "last":
        return x[:, -1, :]
    if kind == "window":
        return np.concatenate([x.mean(axis=1), x[:, -1, :], x.max(axis=1)], axis=1)
    raise TinyLocError(f"feature set {kind!r}: choose from {', '.join(FEATURE_SETS)}")


def quantize_u8(features: np.ndarray) -> np.ndarray:
    """[0, 1] features -> uint8 ``round(255 x)`` (clipped), the representation stored on the device."""
    return np.round(np.clip(np.asarray(features, np.float32), 0.0, 1.0) * 255.0).astype(np.uint8)


def labelled_windows(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Keep windows whose last step is labelled: ``(x[keep], y[keep, -1])``."""
    keep = np.asarray(y)[:, -1] >= 0
    return x[keep], np.asarray(y)[keep, -1].astype(np.int64)


# ------------------------------------------------------------------------------------------------- sizes
def label_bytes(n_classes: int) -> int:
    return 1 if n_classes <= 256 else 2


def knn_bytes(n_train: int, n_features: int, n_classes: int) -> int:
    """Flash of a kNN: the stored uint8 training set plus its labels."""
    return int(n_train) * int(n_features) + int(n_train) * label_bytes(n_classes)


def knn_ram(input_bytes: int, k: int) -> int:
    """Working RAM: the input plus the k best (float32 distance, uint16 index) pairs."""
    return int(input_bytes) + int(k) * 6


def rf_bytes(n_nodes: int) -> int:
    return int(n_nodes) * RF_NODE_BYTES


def rf_ram(input_bytes: int, n_classes: int) -> int:
    """The input plus one uint16 vote counter per class."""
    return int(input_bytes) + 2 * int(n_classes)


def lr_bytes(n_features: int, n_classes: int) -> int:
    """int8 weights (C x F) + float32 bias and per-class scale."""
    return int(n_features) * int(n_classes) + 8 * int(n_classes)


def lr_ram(input_bytes: int, n_classes: int) -> int:
    """The input plus one int32 score per class."""
    return int(input_bytes) + 4 * int(n_classes)


def input_bytes(kind: str, window: int, n_features: int) -> int:
    """Bytes the device buffers to compute the features: the whole window for ``window`` features."""
    return int(window) * int(n_features) if kind == "window" else int(n_features)


def quantize_lr_weights(coef: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(C,F)`` float weights -> int8 weights and per-class scale (symmetric, ``max|w| -> 127``)."""
    coef = np.asarray(coef, dtype=np.float64)
    scale = np.abs(coef).max(axis=1) / 127.0
    scale = np.where(scale > 0, scale, 1.0)
    q = np.clip(np.round(coef / scale[:, None]), -127, 127).astype(np.int8)
    return q, scale


# ------------------------------------------------------------------------------------------------ running
def _row(ds: WindowDataset, family: str, config: str, features: str, val: dict, test: dict, params: int,
         flash: int, ram: int, seconds: float) -> dict:
    return {"dataset": ds.name, "family": family, "config": config, "hidden": None, "layers": None,
            "technique": "int8", "features": features, "val_f1": val["f1"], "val_acc": val["acc"],
            "test_f1": test["f1"], "test_acc": test["acc"], "params": int(params), "flatbuffer_bytes": int(flash),
            "arena_bytes": int(ram), "arena_source": "estimate", "size_kb": round(flash / 1024.0, 1),
            "seconds": round(seconds, 3), "status": "ok"}


def sklearn_rows(ds: WindowDataset, cfg: BaselineConfig | None = None) -> list[dict]:
    """kNN / random-forest / logistic-regression rows for every setting and feature set (see module doc)."""
    from sklearn.ensemble import RandomForestClassifier
    from sklearn.linear_model import LogisticRegression
    from sklearn.neighbors import KNeighborsClassifier

    cfg = cfg or BaselineConfig()
    C = ds.n_classes
    kinds = [k for k in cfg.feature_sets if k == "last" or ds.window > 1]
    rows: list[dict] = []
    for kind in kinds:
        splits = {}
        for split in ("train", "val", "test"):
            x, y = labelled_windows(*ds.split(split))
            if len(y) == 0:
                raise TinyLocError(f"{ds.name}: the {split} split has no window with a labelled last step")
            splits[split] = (quantize_u8(window_features(x, kind)), y)
        (xtr, ytr), (xva, yva), (xte, yte) = splits["train"], splits["val"], splits["test"]
        n_feat = xtr.shape[1]
        inp = input_bytes(kind, ds.window, ds.n_features)
        ftr, fva, fte = (a.astype(np.float32) for a in (xtr, xva, xte))

        for k in cfg.knn_k:
            t0 = time.perf_counter()
            k_eff = min(int(k), len(ytr))
            model = KNeighborsClassifier(n_neighbors=k_eff, n_jobs=cfg.n_jobs).fit(ftr, ytr)
            val, test = window_metrics(yva, model.predict(fva)), window_metrics(yte, model.predict(fte))
            rows.append(_row(ds, "knn", f"k={k_eff}", kind, val, test, params=ftr.size + len(ytr),
                             flash=knn_bytes(len(ytr), n_feat, C), ram=knn_ram(inp, k_eff),
                             seconds=time.perf_counter() - t0))

        for trees, depth in cfg.rf:
            t0 = time.perf_counter()
            model = RandomForestClassifier(n_estimators=int(trees), max_depth=depth, random_state=cfg.seed,
                                           n_jobs=cfg.n_jobs).fit(xtr, ytr)
            nodes = sum(int(e.tree_.node_count) for e in model.estimators_)
            val, test = window_metrics(yva, model.predict(xva)), window_metrics(yte, model.predict(xte))
            rows.append(_row(ds, "rf", f"{trees} trees, depth {depth or 'any'}", kind, val, test, params=nodes,
                             flash=rf_bytes(nodes), ram=rf_ram(inp, C), seconds=time.perf_counter() - t0))

        for c in cfg.lr_c:
            t0 = time.perf_counter()
            model = LogisticRegression(C=float(c), max_iter=300).fit(ftr / 255.0, ytr)
            q, scale = quantize_lr_weights(model.coef_)
            classes = model.classes_

            def predict(f, q=q, scale=scale, bias=model.intercept_, classes=classes):
                scores = (f.astype(np.int32) @ q.T.astype(np.int32)) * (scale / 255.0) + bias
                return classes[np.argmax(scores, axis=1)] if len(classes) > 2 else \
                    classes[(scores[:, 0] > 0).astype(int)]

            val, test = window_metrics(yva, predict(xva)), window_metrics(yte, predict(xte))
            n_out = q.shape[0]
            rows.append(_row(ds, "lr", f"C={c:g}", kind, val, test, params=q.size + n_out,
                             flash=lr_bytes(n_feat, n_out), ram=lr_ram(inp, n_out),
                             seconds=time.perf_counter() - t0))
    return rows
