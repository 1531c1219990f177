"""Sequence models vs per-window baselines on real BLE (``sphere``): training levers, int8/TFLM evaluation, selection.

Used by :mod:`keras_tinyloc.experiments.sphere_variants` (the catalogue of ``benchmarks/sphere_models.py``, issue 8,
"Results"); everything here is generic over a
:class:`~keras_tinyloc.data.base.WindowDataset` with ``x_*`` ``(B,T,F)`` in [0, 1] and ``y_*`` ``(B,T)`` (``-1`` =
unlabelled step).

**Training-set levers** (except :func:`mask_features`, they change only ``x_train``/``y_train``; validation, test
and the scaling are untouched, so a run trained on the result converts and deploys exactly like any other run):

* :func:`absent_ap_augment` — *whole-AP drop-out*: extra copies of the training windows in which each access point
  that is heard in the window is silenced for the **whole window** (set to the scaled "not heard" floor) with
  probability p. It imitates an AP that is not installed / switched off in a recording (in SPHERE, Study_AP is absent
  from 00001–00006 and Lounge_AP from 00006–00010, i.e. from the entire test set). ``train``'s own ``ap_dropout``
  drops single readings independently, which is a different perturbation (missed packets, not a missing AP).
* :func:`mask_features` (changes every split, i.e. the deployed input) — silence chosen APs everywhere, e.g. keep
  only the APs installed in every recording.
* :func:`balance_oversample` — class-balanced sampling by replication: a window whose last step has class c is
  repeated ``min(max_factor, round((n_max / n_c) ** power))`` times (``power`` 0 = unchanged, 1 = fully balanced).

**Evaluation** (:func:`evaluate_int8`): full-int8 conversion with :func:`keras_tinyloc.deploy.convert.convert_model`
(the same path as ``convert`` and the sweep: calibration on training windows, float-island check, tensor names
stripped, minimal TFLM arena by bisection), then **both** the validation and the test windows run through the TFLM
interpreter; CRF Viterbi on the dequantized emissions; window metrics of the last step
(:func:`keras_tinyloc.training.metrics.window_metrics`), per-class F1 and the confusion matrix. Mamba emitters get
:func:`keras_tinyloc.models.mamba.calibrate_state_scales` on the calibration windows first (no change of the float
function; better int8 state ranges).

**Selection** (:func:`select_best`): within a RAM class (TFLM arena and flatbuffer limits), the row with the best
**validation** macro-F1 (ties: smaller arena). The test split is never used to choose.
"""
from __future__ import annotations

import dataclasses
import json
import time
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from keras_tinyloc.data.base import WindowDataset
from keras_tinyloc.errors import TinyLocError

KIB = 1024
# The two RAM classes of issue 8: name -> (arena limit, flatbuffer limit), bytes; the MCU that defines each.
RAM_CLASSES: dict[str, tuple[int, int]] = {
    "32 KiB (RL78/G13)": (32 * KIB, 512 * KIB),
    "64 KiB (ADuCM3029)": (64 * KIB, 128 * KIB),
}


# ------------------------------------------------------------------------------------------------ levers
def scaled_floor(ds: WindowDataset) -> np.ndarray:
    """``(F,)`` float32: the scaled value of ``ds.fill_value`` ("not heard") per feature."""
    return ds.scaling.transform(np.full((1, ds.n_features), ds.fill_value, np.float32))[0].astype(np.float32)


def _with_train(ds: WindowDataset, x: np.ndarray, y: np.ndarray, note: dict) -> WindowDataset:
    meta = dict(ds.meta)
    meta["train_transform"] = list(meta.get("train_transform", [])) + [note]
    return dataclasses.replace(ds, x_train=np.ascontiguousarray(x, np.float32),
                               y_train=np.ascontiguousarray(y, np.int32), meta=meta)


def absent_ap_augment(ds: WindowDataset, copies: int = 1, p: float = 0.3, seed: int = 0,
                      features: Sequence[int] | None = None) -> WindowDataset:
    """Append ``copies`` whole-AP drop-out copies of the training windows (see module doc).

    Args:
        ds: the dataset; ``x_train`` ``(B,T,F)``.
        copies: how many perturbed copies of the training set to append (>= 1).
        p: probability (0 < p < 1) that an AP heard in a window is silenced for that whole window.
        seed: NumPy seed of the draws.
        features: indices of the APs that may be silenced (default: all F). At least one heard AP is kept per
            window (if all heard APs are drawn, the strongest one — largest window mean — survives).
    Returns:
        A new WindowDataset with ``x_train`` ``((1 + copies) B, T, F)`` and ``y_train`` repeated to match.
    """
    if isinstance(copies, bool) or not isinstance(copies, (int, np.integer)) or copies < 1:
        raise TinyLocError(f"absent_ap_augment: copies={copies!r} must be a positive integer")
    if not (0.0 < float(p) < 1.0):
        raise TinyLocError(f"absent_ap_augment: p={p!r} must be in (0, 1)")
    f_all = ds.n_features
    feats = np.arange(f_all) if features is None else np.asarray(list(features), int)
    if feats.size == 0 or feats.min() < 0 or feats.max() >= f_all:
        raise TinyLocError(f"absent_ap_augment: features {list(feats)} outside 0..{f_all - 1}")
    rng = np.random.default_rng(seed)
    floor = scaled_floor(ds)
    x, y = ds.x_train, ds.y_train
    heard = (x > floor[None, None, :] + 1e-6).any(axis=1)  # (B,F)
    out_x, out_y = [x], [y]
    for _ in range(int(copies)):
        drop = np.zeros_like(heard)
        drop[:, feats] = rng.random((len(x), feats.size)) < float(p)
        drop &= heard
        all_gone = heard.any(axis=1) & ~(heard & ~drop).any(axis=1)  # every heard AP drawn: keep the strongest
        if all_gone.any():
            keep = np.argmax(np.where(heard, x.mean(axis=1), -np.inf), axis=1)
            drop[np.flatnonzero(all_gone), keep[all_gone]] = False
        xc = np.where(drop[:, None, :], floor[None, None, :], x)
        out_x.append(xc)
        out_y.append(y)
    note = {"absent_ap_augment": {"copies": int(copies), "p": float(p), "seed": int(seed),
                                  "features": [int(v) for v in feats]}}
    return _with_train(ds, np.concatenate(out_x), np.concatenate(out_y), note)


def mask_features(ds: WindowDataset, features: Sequence[int]) -> WindowDataset:
    """Silence APs in **every** split: ``x[:, :, f]`` = the scaled "not heard" floor for ``f`` in ``features``.

    The model then uses only the other APs (input shape unchanged, so it converts and deploys as before; on the
    device the masked inputs are constant). Used to keep only the APs installed in every recording (in SPHERE,
    Kitchen_AP and Upstairs_AP). Returns a new WindowDataset; ``meta["masked_features"]`` lists the masked names.
    """
    feats = sorted({int(f) for f in features})
    if not feats or feats[0] < 0 or feats[-1] >= ds.n_features:
        raise TinyLocError(f"mask_features: features {feats} outside 0..{ds.n_features - 1}")
    floor = scaled_floor(ds)
    new = {}
    for split in ("train", "val", "test"):
        x = getattr(ds, f"x_{split}").copy()
        x[:, :, feats] = floor[feats]
        new[f"x_{split}"] = x
    meta = dict(ds.meta)
    meta["masked_features"] = [ds.feature_names[f] for f in feats]
    return dataclasses.replace(ds, meta=meta, **new)


def balance_factors(y_last: np.ndarray, n_classes: int, power: float = 0.5, max_factor: int = 20) -> np.ndarray:
    """``(C,)`` int replication factor per class: ``min(max_factor, max(1, round((n_max / n_c) ** power)))``.

    ``y_last`` ``(B,)`` holds each window's last-step label (-1 = unlabelled, replicated once). Absent classes get 1.
    """
    if not (0.0 <= float(power) <= 1.0):
        raise TinyLocError(f"balance: power={power!r} must be in [0, 1]")
    counts = np.bincount(y_last[y_last >= 0], minlength=n_classes).astype(np.float64)
    if counts.max() == 0:
        raise TinyLocError("balance: no window has a labelled last step")
    ratio = np.where(counts > 0, counts.max() / np.maximum(counts, 1.0), 1.0)
    return np.clip(np.round(ratio ** float(power)), 1, int(max_factor)).astype(np.int64)


def balance_oversample(ds: WindowDataset, power: float = 0.5, max_factor: int = 20) -> WindowDataset:
    """Replicate training windows by the class of their last step (:func:`balance_factors`).

    Returns a new WindowDataset whose ``x_train`` ``(B', T, F)`` / ``y_train`` ``(B', T)`` hold every window
    ``factor[class]`` times (windows with an unlabelled last step once); the order is shuffled by training anyway.
    """
    y_last = ds.y_train[:, -1]
    factors = balance_factors(y_last, ds.n_classes, power, max_factor)
    reps = np.where(y_last >= 0, factors[np.clip(y_last, 0, None)], 1)
    idx = np.repeat(np.arange(len(y_last)), reps)
    note = {"balance_oversample": {"power": float(power), "max_factor": int(max_factor),
                                   "factors": [int(v) for v in factors]}}
    return _with_train(ds, ds.x_train[idx], ds.y_train[idx], note)


# ------------------------------------------------------------------------------------------------ metrics
def last_step(y: np.ndarray, pred: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(true, pred)`` last-step labels ``(B',)`` of the windows whose last step is labelled."""
    y, pred = np.asarray(y), np.asarray(pred)
    t = y[:, -1] if y.ndim == 2 else y
    p = pred[:, -1] if pred.ndim == 2 else pred
    keep = t >= 0
    return t[keep].astype(np.int64), p[keep].astype(np.int64)


def per_class_report(y: np.ndarray, pred: np.ndarray, class_names: Sequence[str]) -> dict[str, Any]:
    """Per-class precision/recall/F1/support of the last step, and the confusion matrix.

    Args:
        y: ``(B,T)`` (or ``(B,)``) true labels, -1 = unlabelled.  pred: same shape, decoded labels.
    Returns:
        ``{"classes": {name: {"precision", "recall", "f1", "support"}}, "confusion": (C,C) list (rows = true),
        "macro_f1" (over the classes present, as :func:`keras_tinyloc.training.metrics.window_metrics`), "acc", "n"}``.
    """
    from sklearn.metrics import confusion_matrix, precision_recall_fscore_support

    t, p = last_step(y, pred)
    if t.size == 0:
        raise TinyLocError("per_class_report: no window has a labelled last step")
    c = len(class_names)
    prec, rec, f1, sup = precision_recall_fscore_support(t, p, labels=np.arange(c), zero_division=0)
    present = np.unique(t)
    return {
        "classes": {class_names[i]: {"precision": float(prec[i]), "recall": float(rec[i]), "f1": float(f1[i]),
                                     "support": int(sup[i])} for i in range(c)},
        "confusion": confusion_matrix(t, p, labels=np.arange(c)).tolist(),
        "macro_f1": float(np.mean(f1[present])),
        "acc": float(np.mean(t == p)),
        "n": int(t.size),
    }


# ------------------------------------------------------------------------------------------------ int8 in TFLM
def tflm_emissions(buf: bytes, rep: dict, x: np.ndarray) -> np.ndarray:
    """``(B,T,C)`` float32 emissions of a full-int8 flatbuffer run in the TFLM interpreter on ``x`` ``(B,T,F)``:
    ``x`` quantized with the input's scale / zero point of ``rep`` (a convert report), outputs dequantized with the
    output's; ``rep["arena_bytes"]`` is the arena."""
    from keras_tinyloc.deploy import tflm
    from keras_tinyloc.deploy.quantize import dequantize, quantize

    i, o = rep["input"], rep["output"]
    y, _ = tflm.run_tflm(buf, quantize(np.asarray(x, np.float32), i["scale"], i["zero_point"]), rep["arena_bytes"])
    return dequantize(y, o["scale"], o["zero_point"]).astype(np.float32)


def evaluate_int8(run_dir: str | Path, ds: WindowDataset, out: str | Path | None = None,
                  calibrate_mamba: bool = True, n_calibration: int = 200) -> dict[str, Any]:
    """Convert a run's emitter to full int8, run validation and test through TFLM, return one result dict.

    Args:
        run_dir: a RUN_DIR written by ``train``/``distill``.
        ds: the dataset the run was trained on (its ``x_train`` calibrates; pass the *un-augmented* dataset or the
            augmented one — the calibration windows are drawn from ``x_train`` either way).
        out: if given, ``model.tflite`` and ``report.json`` (the convert report) are written there atomically.
        calibrate_mamba: apply :func:`~keras_tinyloc.models.mamba.calibrate_state_scales` to a Mamba emitter first.
    Returns:
        ``{"val_f1", "val_acc", "test_f1", "test_acc"`` (int8, TFLM), ``"val_f1_float", "val_acc_float",
        "test_f1_float", "test_acc_float"`` (Keras, from the run's metrics.json), ``"arena_bytes", "arena_head_bytes",
        "arena_tail_bytes", "flatbuffer_bytes", "params", "n_ops", "ops", "invoke_us_tflm", "tflm_matches_litert",
        "per_class_test", "per_class_val"`` (:func:`per_class_report`), ``"test_pred_last"`` ``(B_test,)`` the
        decoded last-step label of every test window (-1 where that step is unlabelled)}``.
    """
    from keras_tinyloc.deploy import convert
    from keras_tinyloc.paths import atomic_write_bytes, atomic_write_json
    from keras_tinyloc.training.train import load_run

    t0 = time.perf_counter()
    tagger, config, metrics = load_run(run_dir)
    emitter = tagger.emitter
    calib = None
    if calibrate_mamba and config.get("model") == "mamba":
        from keras_tinyloc.models.mamba import calibrate_state_scales
        from keras_tinyloc.data.windows import representative_sample

        calib = calibrate_state_scales(emitter, representative_sample(ds.x_train, n=n_calibration, seed=0))
    crf = tagger.crf_weights()
    buf, rep = convert.convert_model(emitter, crf, ds, "int8", n_calibration=n_calibration, seed=0,
                                     name=Path(run_dir).name)
    em_val = tflm_emissions(buf, rep, ds.x_val)
    em_test = tflm_emissions(buf, rep, ds.x_test)
    m_val, p_val = convert.decode_metrics(em_val, ds.y_val, crf)
    m_test, p_test = convert.decode_metrics(em_test, ds.y_test, crf)
    if abs(m_test["f1"] - rep["test_f1_int8"]) > 1e-9:  # the same interpreter, the same windows: must agree
        raise TinyLocError(f"{run_dir}: TFLM test F1 {m_test['f1']} differs from convert's {rep['test_f1_int8']}")
    names = list(ds.class_names)
    row = {
        "val_f1": m_val["f1"], "val_acc": m_val["acc"], "test_f1": m_test["f1"], "test_acc": m_test["acc"],
        "val_f1_float": metrics.get("val_f1"), "val_acc_float": metrics.get("val_acc"),
        "test_f1_float": metrics.get("test_f1"), "test_acc_float": metrics.get("test_acc"),
        "arena_bytes": rep["arena_bytes"], "arena_head_bytes": rep.get("arena_head_bytes"),
        "arena_tail_bytes": rep.get("arena_tail_bytes"), "flatbuffer_bytes": rep["flatbuffer_bytes"],
        "params": int(metrics.get("params") or 0), "n_ops": rep["n_ops"], "ops": rep["ops"],
        "invoke_us_tflm": rep.get("invoke_us_tflm"), "tflm_matches_litert": rep.get("tflm_matches_litert"),
        "mamba_state_calibration": calib, "best_epoch": metrics.get("best_epoch"),
        "epochs_run": metrics.get("epochs_run"), "train_seconds": metrics.get("train_seconds"),
        "per_class_val": per_class_report(ds.y_val, p_val, names),
        "per_class_test": per_class_report(ds.y_test, p_test, names),
        "test_pred_last": np.where(ds.y_test[:, -1] >= 0, p_test[:, -1], -1).astype(int).tolist(),
        "val_pred_last": np.where(ds.y_val[:, -1] >= 0, p_val[:, -1], -1).astype(int).tolist(),
        "convert_seconds": round(time.perf_counter() - t0, 2),
    }
    if out is not None:
        out = Path(out)
        out.mkdir(parents=True, exist_ok=True)
        atomic_write_bytes(out / "model.tflite", buf)
        atomic_write_json(out / "report.json", {**rep, "val_f1_int8": m_val["f1"], "val_acc_int8": m_val["acc"]})
    return row


# ------------------------------------------------------------------------------------------------ selection
def fits(row: dict, ram_class: str) -> bool:
    """Whether a row's arena and flatbuffer fit ``ram_class`` (a key of :data:`RAM_CLASSES`)."""
    if ram_class not in RAM_CLASSES:
        raise TinyLocError(f"unknown RAM class {ram_class!r} (choose from {', '.join(RAM_CLASSES)})")
    arena, flash = RAM_CLASSES[ram_class]
    a, f = row.get("arena_bytes"), row.get("flatbuffer_bytes")
    return a is not None and f is not None and a <= arena and f <= flash


def select_best(rows: Sequence[dict], ram_class: str, where: Callable[[dict], bool] = lambda r: True) -> dict | None:
    """The row with the highest **validation** macro-F1 among ``rows`` that fit ``ram_class`` and satisfy ``where``.

    Ties go to the smaller arena, then the smaller flatbuffer. Rows without ``val_f1`` (failed runs) are skipped.
    Returns None if no row qualifies. The test figures play no part.
    """
    ok = [r for r in rows if r.get("val_f1") is not None and fits(r, ram_class) and where(r)]
    if not ok:
        return None
    return max(ok, key=lambda r: (r["val_f1"], -r["arena_bytes"], -r["flatbuffer_bytes"]))


def transition_windows(y: np.ndarray) -> np.ndarray:
    """``(B,)`` bool: the window's labelled steps are not all the room of its last step (a room change inside the
    window). ``y`` ``(B,T)``, -1 steps ignored."""
    y = np.asarray(y)
    last = y[:, -1:]
    return np.any((y >= 0) & (y != last), axis=1)


def load_json(path: str | Path) -> Any | None:
    """A JSON file's content, or None if it is missing or unreadable (a resumable benchmark's cache entry)."""
    try:
        return json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
