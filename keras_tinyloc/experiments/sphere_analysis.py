"""Analyses of the SPHERE rows (issue 8, "Results"): data facts, per-sequence / per-group scores, and the choices the
report makes — every choice by **validation** macro-F1, never test.

* :func:`diagnostics` — facts of the split that bound any model (no model involved): share of windows in which each
  AP is heard, per-room last-step RSSI, class counts, test sequences; :func:`limiting_facts` — what the report says
  limits the models, computed from them (rooms told apart by one AP's level, rooms that lose their strongest AP in
  test, the AP test hears far more often than training, the share of windows with a room change).
* :func:`split_analysis` — one row's validation F1 split by sequence group (Lounge_AP heard in 00001–00005 vs absent
  in 00006–00007, as in every test sequence), test accuracy / F1 on *steady* windows (one room throughout) vs
  *transition* windows (a room change inside the window), and test F1 per test sequence.
* :func:`choose` — per RAM class, the best row of each family by validation F1
  (:func:`keras_tinyloc.experiments.sphere_models.select_best`); :func:`class_verdict`, :func:`lever_twins`,
  :func:`seed_spread`, :func:`rank_correlations`, :func:`top_confusions` — the figures the report states.

Rows are the dicts of :mod:`keras_tinyloc.experiments.sphere_variants` (``val_f1``, ``test_f1``, ``family``,
``quant``, sizes; ``val_pred_last`` / ``test_pred_last`` ``(B,)`` decoded last-step labels, -1 = unlabelled step).
Windows: ``x`` ``(B,T,F)`` scaled RSSI, ``y`` ``(B,T)``; scores are on each window's last step
(:func:`keras_tinyloc.training.metrics.window_metrics`: macro-F1 over the classes present).
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from keras_tinyloc.data.base import WindowDataset
from keras_tinyloc.experiments import sphere_models as sm

INT8 = "int8 (TFLM)"  # ``quant`` of a neural row measured in TFLM
CLASSIC = "int8 features"  # ``quant`` of a scikit-learn row
SEQUENCE = ("mdcsa", "mamba")
PER_WINDOW = ("mlp", "rf", "knn", "lr")
FAMILIES = SEQUENCE + PER_WINDOW
CLASS_32K = "32 KiB (RL78/G13)"
LOUNGE_ABSENT_VAL = ("00006", "00007")  # validation sequences without Lounge_AP (like every test sequence)


# ------------------------------------------------------------------------------------------------ data facts
def diagnostics(ds: WindowDataset) -> dict:
    """Data facts that bound what any model can do on this split (no model involved).

    Returns ``{"aps", "classes", "class_counts_{train,val,test}"`` (last-step labels per class),
    ``"share_windows_ap_heard"`` ``{split: {ap: share of windows with any step above the not-heard floor}}``,
    ``"per_class_last_step_rssi"`` ``{train|test: {room: [{"heard": share, "mean_dbm": mean RSSI when heard} per
    AP]}}`` (None where the room or the reading is absent), ``"test_sequences"`` [(sequence, test windows)],
    ``"aps_heard_per_sequence"``}``.
    """
    floor = sm.scaled_floor(ds)
    out = {"aps": list(ds.feature_names), "classes": list(ds.class_names)}
    heard = {}
    for split in ("train", "val", "test"):
        x, y = ds.split(split)
        h = (x > floor[None, None, :] + 1e-6).any(axis=1)
        heard[split] = {ap: float(h[:, i].mean()) for i, ap in enumerate(ds.feature_names)}
        last = y[:, -1]
        out[f"class_counts_{split}"] = np.bincount(last[last >= 0], minlength=ds.n_classes).astype(int).tolist()
    out["share_windows_ap_heard"] = heard
    lo, hi = np.asarray(ds.scaling.low), np.asarray(ds.scaling.high)
    per_class = {}
    for split in ("train", "test"):
        x, y = ds.split(split)
        raw = x[:, -1, :] * (hi - lo) + lo  # last step, dBm
        h = x[:, -1, :] > floor[None, :] + 1e-6
        last = y[:, -1]
        per_class[split] = {
            c: [{"heard": float(h[last == ci, i].mean()) if np.any(last == ci) else None,
                 "mean_dbm": float(raw[(last == ci) & h[:, i], i].mean()) if np.any((last == ci) & h[:, i]) else None}
                for i in range(ds.n_features)]
            for ci, c in enumerate(ds.class_names)}
    out["per_class_last_step_rssi"] = per_class
    seqs = ds.meta.get("sequences", {})
    out["test_sequences"] = [(s, int(v["windows"]["test"])) for s, v in seqs.items() if "test" in v["windows"]]
    out["aps_heard_per_sequence"] = {s: v.get("aps_heard") for s, v in seqs.items()}
    return out


HEARD_OFTEN = 0.9  # an AP "heard in" a room's training windows: in at least this share of their last steps
HEARD_HALF = 0.5  # an AP counts as a room's strongest only when heard in at least this share of its last steps
RARELY = 0.25  # training "rarely saw" an AP in a room: heard in fewer than this share of the room's last steps
MOSTLY = 0.75  # ... and test hears it there: in at least this share of the room's test last steps
FEW_TRANSITIONS = 0.1  # room changes inside a window are "not the problem" below this share of the test windows


def limiting_facts(ds: WindowDataset, diag: dict) -> dict:
    """The data facts the report gives as what limits the models (no model involved), from :func:`diagnostics`.

    Returns:
        ``"level_only"`` ``{ap: [rooms]}``: rooms whose only AP heard in >= :data:`HEARD_OFTEN` of their training last
        steps is ``ap`` (told apart from each other by its level alone); only APs with two rooms or more; rooms in
        class order. ``"lost_strongest"`` ``{ap: [rooms]}``: rooms whose strongest training AP (highest mean RSSI
        when heard, among the APs heard in >= :data:`HEARD_HALF` of their training last steps) is heard in no test
        sequence. ``"gained"``: None, or for the AP whose share of windows heard rises most from train to test (only
        if it rises) ``{"ap", "train_share", "test_share", "train_sequences"`` (training sequences that hear it),
        ``"rooms"`` (heard in >= :data:`MOSTLY` of their test last steps, < :data:`RARELY` of their training ones)``}``.
        ``"transition_share"``: share of the labelled test windows with a room change inside
        (:func:`keras_tinyloc.experiments.sphere_models.transition_windows`). Rooms of the last two: most test
        windows first (ties in class order).
    """
    aps, classes = diag["aps"], diag["classes"]
    pc_train, pc_test = diag["per_class_last_step_rssi"]["train"], diag["per_class_last_step_rssi"]["test"]
    n_test = dict(zip(classes, diag["class_counts_test"]))
    by_test = lambda rooms: sorted(rooms, key=lambda c: (-n_test[c], classes.index(c)))  # noqa: E731

    def heard(cell, at_least):
        return cell["heard"] is not None and cell["heard"] >= at_least

    level_only: dict[str, list[str]] = {}
    for c in classes:
        often = [ap for i, ap in enumerate(aps) if heard(pc_train[c][i], HEARD_OFTEN)]
        if len(often) == 1:
            level_only.setdefault(often[0], []).append(c)
    level_only = {ap: rooms for ap, rooms in level_only.items() if len(rooms) >= 2}
    seqs = ds.meta.get("sequences", {})
    test_seqs = [s for s, _ in diag["test_sequences"]]
    in_test = {ap for s in test_seqs for ap in (diag["aps_heard_per_sequence"].get(s) or [])}
    lost: dict[str, list[str]] = {}
    for c in by_test(classes):
        cand = [(pc_train[c][i]["mean_dbm"], ap) for i, ap in enumerate(aps)
                if heard(pc_train[c][i], HEARD_HALF) and pc_train[c][i]["mean_dbm"] is not None]
        if cand and test_seqs and max(cand)[1] not in in_test:
            lost.setdefault(max(cand)[1], []).append(c)
    h = diag["share_windows_ap_heard"]
    rise = {ap: h["test"][ap] - h["train"][ap] for ap in aps}
    gained = None
    ap = max(aps, key=lambda a: rise[a]) if aps else None
    if ap is not None and rise[ap] > 0:
        i = aps.index(ap)
        gained = {"ap": ap, "train_share": h["train"][ap], "test_share": h["test"][ap],
                  "train_sequences": [s for s, v in seqs.items() if v["windows"].get("train")
                                      and ap in (v.get("aps_heard") or [])],
                  "rooms": by_test([c for c in classes if heard(pc_test[c][i], MOSTLY)
                                    and pc_train[c][i]["heard"] is not None and pc_train[c][i]["heard"] < RARELY])}
    labelled = ds.y_test[:, -1] >= 0
    share = float(sm.transition_windows(ds.y_test)[labelled].mean()) if labelled.any() else None
    return {"level_only": level_only, "lost_strongest": lost, "gained": gained, "transition_share": share}


# ------------------------------------------------------------------------------------------------ one row's analyses
def per_sequence_f1(ds: WindowDataset, pred_last: Sequence[int], test_sequences) -> dict:
    """``{sequence: {"f1", "acc", "n"}}`` of the test windows of each sequence (test windows are stored in sequence
    order; ``test_sequences`` = [(name, windows)]). Empty if the counts do not add up to the test split."""
    from keras_tinyloc.training.metrics import window_metrics

    y = ds.y_test[:, -1]
    pred = np.asarray(pred_last)
    out, start = {}, 0
    if sum(n for _, n in test_sequences) != len(y):
        return out
    for seq, n in test_sequences:
        m = window_metrics(y[start:start + n], pred[start:start + n])
        out[seq] = {"f1": m["f1"], "acc": m["acc"], "n": m["n"]}
        start += n
    return out


def predictions(ds: WindowDataset, row: dict, work: Path, split: str) -> np.ndarray | None:
    """``(B,)`` decoded last-step labels of ``split`` (-1 = unlabelled): from the row, else re-run the cached int8
    model (``work/<name>/<tflite_dir>/model.tflite``) in TFLM (rows cached before the row kept them); None if
    neither exists."""
    from keras_tinyloc.deploy import convert
    from keras_tinyloc.training.train import load_run

    if row.get(f"{split}_pred_last") is not None:
        return np.asarray(row[f"{split}_pred_last"])
    tfl = work / row["name"] / row.get("tflite_dir", "tflite-int8") / "model.tflite"
    if not tfl.is_file():
        return None
    x, y = ds.split(split)
    rep = json.loads((tfl.parent / "report.json").read_text())
    tagger, _, _ = load_run(work / row["name"] / "run")
    _, pred = convert.decode_metrics(sm.tflm_emissions(tfl.read_bytes(), rep, x), y, tagger.crf_weights())
    return np.where(y[:, -1] >= 0, pred[:, -1], -1)


def ds_for_row(ds: WindowDataset, row: dict) -> WindowDataset:
    """The evaluation dataset of a row (masked APs applied; accelerometer rows are not analysed)."""
    mask = (row.get("variant") or {}).get("mask")
    return sm.mask_features(ds, mask) if mask else ds


def split_analysis(ds: WindowDataset, pred_val, pred_test, diag: dict) -> dict:
    """Validation F1 by sequence group and test scores by window kind (see the module doc).

    Args:
        pred_val / pred_test: ``(B_val,)`` / ``(B_test,)`` last-step predictions, or None to skip that split.
        diag: :func:`diagnostics` of ``ds`` (its ``test_sequences``).
    Returns:
        ``{"val_lounge_heard", "val_lounge_absent", "test_steady", "test_transition": {"f1", "acc", "n"},
        "per_sequence": {sequence: {"f1", "acc", "n"}}}`` — the keys whose inputs exist.
    """
    from keras_tinyloc.training.metrics import window_metrics

    out = {}
    seqs = ds.meta.get("sequences", {})
    val_counts = [(s, v["windows"].get("val", 0)) for s, v in seqs.items() if "val" in v["windows"]]
    if pred_val is not None and sum(n for _, n in val_counts) == len(ds.y_val):
        group = np.concatenate([np.full(n, s in LOUNGE_ABSENT_VAL) for s, n in val_counts])
        for name, mask in (("val_lounge_heard", ~group), ("val_lounge_absent", group)):
            m = window_metrics(ds.y_val[mask][:, -1], pred_val[mask])
            out[name] = {"f1": m["f1"], "acc": m["acc"], "n": m["n"]}
    if pred_test is not None:
        trans = sm.transition_windows(ds.y_test)
        for name, mask in (("test_steady", ~trans), ("test_transition", trans)):
            m = window_metrics(ds.y_test[mask][:, -1], pred_test[mask])
            out[name] = {"f1": m["f1"], "acc": m["acc"], "n": m["n"]}
        out["per_sequence"] = per_sequence_f1(ds, pred_test, diag["test_sequences"])
    return out


def analyse_row(ds: WindowDataset, row: dict, work: Path, diag: dict) -> dict:
    """:func:`split_analysis` of one row on its own evaluation dataset (:func:`ds_for_row`)."""
    d = ds_for_row(ds, row)
    return split_analysis(ds, predictions(d, row, work, "val"), predictions(d, row, work, "test"), diag)


# ------------------------------------------------------------------------------------------------ choices
def is_acc(row: dict) -> bool:
    """Whether the row was trained with the accelerometer features (never selected, reported apart)."""
    return bool((row.get("variant") or {}).get("accelerometer"))


def int8_rows(rows: Sequence[dict]) -> list[dict]:
    """The neural rows measured in TFLM, without the accelerometer rows: the candidates of every selection."""
    return [r for r in rows if r.get("quant") == INT8 and not is_acc(r)]


def choose(rows: Sequence[dict]) -> dict[str, dict[str, dict | None]]:
    """Per RAM class: the best row of each family by validation F1 (``sphere_models.select_best``); neural families
    among :func:`int8_rows`, scikit-learn families among the classic rows. ``{class: {family: row or None}}``."""
    nn = int8_rows(rows)
    classic = [r for r in rows if r.get("quant") == CLASSIC]
    out = {}
    for cls in sm.RAM_CLASSES:
        out[cls] = {
            "mdcsa": sm.select_best(nn, cls, lambda r: r["family"] == "mdcsa"),
            "mamba": sm.select_best(nn, cls, lambda r: r["family"] == "mamba"),
            "mlp": sm.select_best(nn, cls, lambda r: r["family"] == "mlp"),
            "rf": sm.select_best(classic, cls, lambda r: r["family"] == "rf"),
            "knn": sm.select_best(classic, cls, lambda r: r["family"] == "knn"),
            "lr": sm.select_best(classic, cls, lambda r: r["family"] == "lr"),
        }
    return out


def best_sequence(rows: Sequence[dict], ram_class: str = CLASS_32K) -> dict | None:
    """The int8 MDCSA/Mamba row with the best validation F1 that fits ``ram_class`` (the target's model)."""
    return sm.select_best(int8_rows(rows), ram_class, lambda r: r["family"] in SEQUENCE)


def _by_validation(row: dict) -> tuple:
    """The key a selection maximises: validation macro-F1, ties to the smaller arena, then the smaller flatbuffer
    (the order of :func:`keras_tinyloc.experiments.sphere_models.select_best`); test figures play no part."""
    return row["val_f1"], -row["arena_bytes"], -row["flatbuffer_bytes"]


def class_verdict(best_of_class: dict[str, dict | None]) -> tuple[dict | None, dict | None, bool]:
    """``(top_seq, top_pw, beats)``: among one RAM class's validation-selected rows (:func:`choose`), the MDCSA/Mamba
    row and the MLP/RF/kNN/LR row with the higher **validation** F1 (ties: smaller arena, then smaller flatbuffer),
    and whether the sequence side's **test** F1 is strictly higher — the test figures are compared after both sides
    are chosen, never used to choose."""
    seqs = [best_of_class[f] for f in SEQUENCE if best_of_class[f]]
    per_window = [best_of_class[f] for f in PER_WINDOW if best_of_class[f]]
    top_seq = max(seqs, key=_by_validation) if seqs else None
    top_pw = max(per_window, key=_by_validation) if per_window else None
    beats = bool(top_seq and top_pw and top_seq["test_f1"] > top_pw["test_f1"])
    return top_seq, top_pw, beats


def ceiling_check(rows: Sequence[dict], ram_class: str = CLASS_32K) -> tuple[dict, int]:
    """``(row, n)``: the highest **test** F1 of any non-MLP row of :func:`int8_rows` (in the catalogue: the MDCSA
    and Mamba rows) that fits ``ram_class``, and how many there are — a ceiling check shown beside the selection,
    never a selection."""
    fit = [r for r in int8_rows(rows) if r["family"] != "mlp" and sm.fits(r, ram_class)]
    return max(fit, key=lambda r: r["test_f1"]), len(fit)


def lever_twins(rows: Sequence[dict]) -> list[tuple[dict, dict]]:
    """``[(row, twin)]``: every int8 row with a plain twin — the int8 row of the same family and config whose levers
    are ``"none"`` (or only the Mamba learning rate ``"lr 0.01"``; the last such row wins) — other than the twin."""
    nn_rows = [r for r in rows if r.get("quant") == INT8]
    plain_of = {(r["family"], r["config"]): r for r in nn_rows if r.get("levers") in ("none", "lr 0.01")}
    return [(r, plain_of[(r["family"], r["config"])]) for r in nn_rows
            if (r["family"], r["config"]) in plain_of and plain_of[(r["family"], r["config"])] is not r]


def seed_replicas(rows: Sequence[dict], base: str) -> list[dict]:
    """The rows named ``base`` or ``base-s<digits>`` (the same recipe with other training seeds)."""
    return [r for r in rows if r["name"] == base
            or (r["name"].startswith(base + "-s") and r["name"][len(base) + 2:].isdigit())]


def seed_spread(rows: Sequence[dict], base: str) -> tuple[np.ndarray, np.ndarray] | None:
    """``(val, test)`` macro-F1 in percent ``(S,)`` of :func:`seed_replicas`, or None with fewer than two seeds."""
    reps = seed_replicas(rows, base)
    if len(reps) < 2:
        return None
    return np.array([100 * r["val_f1"] for r in reps]), np.array([100 * r["test_f1"] for r in reps])


def rank_correlations(ds: WindowDataset, rows: Sequence[dict], work: Path, diag: dict,
                      analyses: dict[str, dict]) -> tuple[float, float, int, int] | None:
    """How well validation ranks the int8 rows as test does: ``(rho, rho_sub, n_sub, n)``.

    ``rho`` = Spearman correlation of validation and test macro-F1 over the ``n`` :func:`int8_rows`; ``rho_sub`` =
    the same with validation restricted to the Lounge_AP-absent sequences (:func:`split_analysis`, taken from
    ``analyses`` or computed), over the ``n_sub`` rows where that exists (nan below 4). None below 4 rows. A
    diagnostic, never used to select.
    """
    from scipy.stats import spearmanr

    cand = int8_rows(rows)
    if len(cand) < 4:
        return None
    rho = spearmanr([r["val_f1"] for r in cand], [r["test_f1"] for r in cand]).statistic
    sub = []
    for r in cand:
        e = analyses.get(r["name"]) or split_analysis(ds, predictions(ds_for_row(ds, r), r, work, "val"), None, diag)
        if e.get("val_lounge_absent"):
            sub.append((e["val_lounge_absent"]["f1"], r["test_f1"]))
    rho_sub = spearmanr(*zip(*sub)).statistic if len(sub) >= 4 else float("nan")
    return rho, rho_sub, len(sub), len(cand)


def top_confusions(confusion, class_names: Sequence[str], k: int = 5) -> tuple[list[tuple[int, str, str]], int]:
    """``([(count, true, predicted)] of the k largest off-diagonal cells, total errors)`` of a ``(C,C)`` confusion
    matrix (rows = true); ties ordered by the names, descending."""
    cm = np.asarray(confusion)
    off = [(cm[i, j], class_names[i], class_names[j]) for i in range(len(cm)) for j in range(len(cm)) if i != j]
    off.sort(reverse=True)
    return off[:k], int(cm.sum() - np.trace(cm))


def accelerometer_twin(rows: Sequence[dict], row: dict) -> dict | None:
    """The RSSI-only row of an accelerometer row (its name without ``-acc``), or None."""
    return next((x for x in rows if x["name"] == row["name"].removesuffix("-acc")), None)


def stale_mdcsa(rows: Sequence[dict]) -> list[str]:
    """Names of int8 MDCSA rows whose graph has no L2_NORMALIZATION (measured before ``Int8LayerNorm`` used it)."""
    return [r["name"] for r in rows if r.get("quant") == INT8 and r["family"] == "mdcsa"
            and "L2_NORMALIZATION" not in (r.get("ops") or [])]


def analysed_rows(ds: WindowDataset, rows: Sequence[dict], work: Path, diag: dict,
                  best: dict, seq32: dict | None) -> dict[str, dict]:
    """``{name: analyse_row(...)}`` for the rows the report details: the 32 KiB sequence model, each RAM class's
    selected MDCSA/Mamba/MLP/RF rows and the plain ``rf-window`` reference, in that order."""
    rf_ref = next((r for r in rows if r["name"] == "rf-window"), None)
    extra: dict[str, dict] = {}
    for r in [seq32] + [best[c][f] for c in best for f in ("mdcsa", "mamba", "mlp", "rf")] + [rf_ref]:
        if r is None or r["name"] in extra:
            continue
        extra[r["name"]] = analyse_row(ds, r, work, diag)
    return extra


def results_rows(rows: Sequence[dict]) -> list[dict[str, Any]]:
    """The rows as stored in ``sphere.json``: without the per-window ``*_pred_last`` lists."""
    return [{k: v for k, v in r.items() if not k.endswith("_pred_last")} for r in rows]


TARGET_F1 = 0.82  # issue 8: an int8 sequence model with arena <= 32 KiB and test macro-F1 >= 82
RF_ISSUE8_F1 = 0.755  # the random forest's test macro-F1 in issue 8 (never to fall below)


def target_verdict(seq32: dict | None) -> dict:
    """``{"row", "test_f1", "reached"}`` of the issue-8 target for the validation-selected 32 KiB sequence model
    (:func:`best_sequence`): reached when its test macro-F1 is at least :data:`TARGET_F1`."""
    return {"row": seq32 and seq32["name"], "test_f1": seq32 and seq32["test_f1"],
            "reached": bool(seq32 and seq32["test_f1"] >= TARGET_F1)}
