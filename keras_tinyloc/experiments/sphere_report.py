"""The SPHERE report (issue 8, "Results"): ``docs/results/sphere.md``, the figure ``sphere.png`` and the JSON
document, rendered from the rows of :mod:`keras_tinyloc.experiments.sphere_variants`.

Every choice and figure the text states comes from :mod:`keras_tinyloc.experiments.sphere_analysis` (selection by
validation macro-F1 only; test figures are reported, never used to choose); this module only words and lays them
out, so the report can be re-rendered from cached rows without training anything.
"""
from __future__ import annotations

import io
from pathlib import Path
from typing import Sequence

import numpy as np

from keras_tinyloc.data.base import WindowDataset
from keras_tinyloc.experiments import sphere_analysis as sa
from keras_tinyloc.experiments import sphere_models as sm


def pct(v) -> str:
    """A share as a percentage with one decimal, ``–`` for None."""
    return "–" if v is None else f"{100 * v:.1f}"


def kib(v) -> str:
    """Bytes as KiB with one decimal, ``–`` for None."""
    return "–" if v is None else f"{v / 1024:.1f}"


def and_list(items: Sequence[str]) -> str:
    """``a``, ``a and b``, ``a, b and c``."""
    items = list(items)
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " and " + items[-1]


NUMBER_WORDS = {1: "one", 2: "two", 3: "three", 4: "four", 5: "five"}


def why_sentence(facts: dict) -> str:
    """The sentences after the confusions, worded from :func:`sphere_analysis.limiting_facts` (a clause only where
    the data has it; room changes are called "not the problem" only below
    :data:`~keras_tinyloc.experiments.sphere_analysis.FEW_TRANSITIONS` of the test windows)."""
    clauses = [f"{and_list(rooms)} are told apart mainly by the level of {ap}"
               for ap, rooms in facts["level_only"].items()]
    clauses += [f"{and_list(rooms)} {'lose their' if len(rooms) > 1 else 'loses its'} strongest training AP ({ap}) "
                "in every test sequence" for ap, rooms in facts["lost_strongest"].items()]
    g = facts["gained"]
    if g:
        seqs = g["train_sequences"]
        where = (f"{NUMBER_WORDS.get(len(seqs), len(seqs))} sequence{'s' if len(seqs) > 1 else ''}, {', '.join(seqs)}"
                 if seqs else "no training sequence")
        clauses.append(f"{g['ap']}, heard in {100 * g['train_share']:.0f} % of training windows ({where}), is heard "
                       f"in {100 * g['test_share']:.0f} % of test windows"
                       + (f" and in rooms where training rarely saw it ({', '.join(g['rooms'])})" if g["rooms"] else ""))
    out = f" The per-room table above shows why: {'; '.join(clauses)}." if clauses else ""
    share = facts["transition_share"]
    if share is not None:
        out += (" Room changes inside a window are not the problem: such windows are " if share < sa.FEW_TRANSITIONS
                else " Windows with a room change inside are ") + f"{100 * share:.0f} % of the test set " \
            "(steady / transition columns)."
    return out


def render(ds: WindowDataset, rows: Sequence[dict], work: Path, diag: dict, commands: Sequence[str]) -> dict:
    """The report of ``rows`` on ``ds`` (``diag`` = :func:`sphere_analysis.diagnostics`; ``work`` = the run cache,
    read only for rows that did not keep their predictions; ``commands`` = the reproduce lines).

    Returns ``{"markdown": str, "verdicts": {class: {"best_sequence", "best_per_window",
    "sequence_beats_per_window"}, "target_32k": {"row", "test_f1", "reached"}}, "extra": {name: split analysis},
    "best": {class: {family: name or None}}}``.
    """
    best = sa.choose(rows)
    # the best int8 sequence model overall (by validation F1) inside the 32 KiB class
    seq32 = sa.best_sequence(rows, sa.CLASS_32K)
    rf_ref = next((r for r in rows if r["name"] == "rf-window"), None)
    extra = sa.analysed_rows(ds, rows, work, diag, best, seq32)

    L = ["# Real BLE (SPHERE house): int8 sequence models vs per-window baselines", "",
         "Dataset `sphere` (issue 8): 4 APs, 9 rooms, T = 20 steps of 0.2 s, hop 10; sequences 00001–00007 train "
         "/ validation (75/25 by 60 s blocks), 00008–00010 test. Windows are scored on their last step "
         "(macro-F1 over the classes present, accuracy). **Every selection below is by validation macro-F1; the test "
         "columns are reported, never used to choose.** Neural rows: full-int8 `.tflite` run in the TFLM interpreter "
         "(host build) on both validation and test windows, CRF Viterbi on the dequantized emissions; arena = "
         "minimal working TFLM arena (host 64-bit, an upper bound for a Cortex-M build); flatbuffer = the shipped "
         "model (tensor names stripped). scikit-learn rows: features quantized to uint8, sizes are the package's "
         "estimates (no TFLM run). One training seed (0) per row.", "",
         "Reproduce (from the repository root):", "", "```"] + list(commands) + ["```", ""]
    verdicts = {}
    summary_at = len(L)
    summary = ["## Summary", ""]
    for cls, b in best.items():
        arena, flash = sm.RAM_CLASSES[cls]
        L += [f"## RAM class {cls}: arena ≤ {arena // 1024} KiB, flatbuffer ≤ {flash // 1024} KiB", "",
              "| family | selected row | levers | val F1 | **test F1** | test acc | arena KiB | flatbuffer KiB | params |",
              "|---|---|---|---|---|---|---|---|---|"]
        for fam in ("mdcsa", "mamba", "mlp", "rf", "knn", "lr"):
            r = b[fam]
            if r is None:
                L.append(f"| {fam} | none fits | | | | | | | |")
                continue
            L.append(f"| {fam} | {r['name']} ({r['quant']}) | {r['levers']} | {pct(r['val_f1'])} | "
                     f"**{pct(r['test_f1'])}** | {pct(r['test_acc'])} | {kib(r['arena_bytes'])}"
                     f"{' (est.)' if r.get('arena_source') == 'estimate' else ''} | {kib(r['flatbuffer_bytes'])} | "
                     f"{r.get('params') or '–'} |")
        top_seq, top_pw, beats = sa.class_verdict(b)
        verdicts[cls] = {"best_sequence": top_seq and top_seq["name"], "best_per_window": top_pw and top_pw["name"],
                         "sequence_beats_per_window": beats}
        if top_seq and top_pw:
            L += ["", f"**Verdict ({cls}):** the sequence models "
                  f"{'beat' if beats else 'do NOT beat'} the per-window baselines on test macro-F1: best selected "
                  f"sequence model {top_seq['name']} {pct(top_seq['test_f1'])} vs best selected per-window baseline "
                  f"{top_pw['name']} {pct(top_pw['test_f1'])} "
                  f"({'+' if top_seq['test_f1'] >= top_pw['test_f1'] else ''}"
                  f"{100 * (top_seq['test_f1'] - top_pw['test_f1']):.1f} points; on validation "
                  f"{pct(top_seq['val_f1'])} vs {pct(top_pw['val_f1'])}). Compared: of the validation-selected "
                  "rows above, the MDCSA/Mamba row with the higher validation F1 vs the MLP/RF/kNN/LR row with the "
                  "higher validation F1; their test figures are reported, not used to choose.", ""]
            summary.append(f"* **{cls}**: sequence models {'beat' if beats else 'do NOT beat'} the per-window "
                           f"baselines — {top_seq['name']} {pct(top_seq['test_f1'])} vs {top_pw['name']} "
                           f"{pct(top_pw['test_f1'])} test macro-F1 (int8; selected by validation).")
        else:
            L += [""]

    L += ["## Target: int8 sequence model in TFLM, arena ≤ 32 KiB, ≥ 82 test macro-F1 (never below RF's 75.5)", ""]
    if seq32:
        reached = sa.target_verdict(seq32)["reached"]
        L += [f"Selected by validation F1 among every int8 MDCSA/Mamba row that fits 32 KiB: **{seq32['name']}** "
              f"(levers: {seq32['levers']}): val {pct(seq32['val_f1'])}, **test {pct(seq32['test_f1'])}** macro-F1, "
              f"test accuracy {pct(seq32['test_acc'])} %, arena {seq32['arena_bytes']:,} B, flatbuffer "
              f"{seq32['flatbuffer_bytes']:,} B. Target **{'reached' if reached else 'NOT reached'}**"
              + ("" if reached else f"; RF reference (issue 8) 75.5 — this model is "
                 f"{'above' if seq32['test_f1'] >= sa.RF_ISSUE8_F1 else 'below'} it") + ".", ""]
        top, n_fit32 = sa.ceiling_check(rows, sa.CLASS_32K)
        L += [f"Ceiling check (not a selection): the highest test macro-F1 of **any** of the {n_fit32} int8 "
              f"MDCSA/Mamba rows that fit 32 KiB is {pct(top['test_f1'])} ({top['name']}, validation "
              f"{pct(top['val_f1'])}), so no lever tried here reaches 82 even when picked with hindsight.", ""]
    verdicts["target_32k"] = sa.target_verdict(seq32)
    if seq32:
        summary.append(f"* **Target** (int8 sequence model, arena ≤ 32 KiB, ≥ 82 test macro-F1): "
                       f"{'reached' if verdicts['target_32k']['reached'] else 'NOT reached'} — the validation-selected "
                       f"{seq32['name']} scores {pct(seq32['test_f1'])} "
                       f"({'above' if seq32['test_f1'] >= sa.RF_ISSUE8_F1 else 'below'} the random forest's 75.5 of issue 8). "
                       "What limits it: see 'What limits the sequence models here'.")
    L[summary_at:summary_at] = summary + [""]

    # levers vs their plain twin
    lever_rows = sa.lever_twins(rows)
    if lever_rows:
        L += ["### Levers, each against its plain twin (same family and size, int8 in TFLM)", "",
              "| row | levers | val F1 (Δ) | test F1 (Δ) | test acc (Δ) | best epoch / run |",
              "|---|---|---|---|---|---|"]
        for r, t in lever_rows:
            d = lambda k: f"{pct(r[k])} ({100 * (r[k] - t[k]):+.1f})"  # noqa: E731
            L.append(f"| {r['name']} | {r['levers']} | {d('val_f1')} | {d('test_f1')} | {d('test_acc')} | "
                     f"{r.get('best_epoch')} / {r.get('epochs_run')} |")
        L += ["", "Plain twins (no lever): " + "; ".join(
            f"{t['name']}: val {pct(t['val_f1'])}, test {pct(t['test_f1'])}, best epoch {t.get('best_epoch')} of "
            f"{t.get('epochs_run')} (early stopping, patience 30, max 150)"
            for t in {id(t): t for _, t in lever_rows}.values()) + ".", ""]

    # per-class F1
    show = [r for r in (seq32, best[sa.CLASS_32K]["mlp"], rf_ref) if r]
    if show:
        L += ["### Per-class test F1 (int8 in TFLM for the sequence model)", "",
              "| class | train windows | val windows | test windows | " + " | ".join(r["name"] for r in show) + " |",
              "|---|---|---|---|" + "---|" * len(show)]
        for ci, c in enumerate(ds.class_names):
            L.append(f"| {c} | {diag['class_counts_train'][ci]} | {diag['class_counts_val'][ci]} | "
                     f"{diag['class_counts_test'][ci]} | "
                     + " | ".join(pct(r["per_class_test"]["classes"][c]["f1"]) for r in show) + " |")
        L.append("")
        if seq32:
            cm = np.asarray(seq32["per_class_test"]["confusion"])
            L += [f"Confusion matrix of {seq32['name']} on test (rows = true, columns = predicted; "
                  f"{', '.join(ds.class_names)}):", "", "```"]
            L += ["      " + " ".join(f"{c[:6]:>7}" for c in ds.class_names)]
            L += [f"{c[:6]:>6}" + " ".join(f"{v:7d}" for v in row) for c, row in zip(ds.class_names, cm)]
            L += ["```", ""]

    # what limits it
    L += ["## What limits the sequence models here", ""]
    h = diag["share_windows_ap_heard"]
    L += ["Share of windows in which each AP is heard at least once:", "",
          "| split | " + " | ".join(diag["aps"]) + " |", "|---|" + "---|" * len(diag["aps"])]
    for split in ("train", "val", "test"):
        L.append(f"| {split} | " + " | ".join(f"{100 * h[split][ap]:.0f} %" for ap in diag["aps"]) + " |")
    L += ["", "Per room, the last step of each window: share of windows in which each AP is heard / its mean RSSI when "
          "heard (dBm), train vs test:", "",
          "| room | " + " | ".join(f"{ap} train | {ap} test" for ap in diag["aps"]) + " |",
          "|---|" + "---|---|" * len(diag["aps"])]
    pc = diag["per_class_last_step_rssi"]
    cell = lambda d: "–" if d["heard"] is None else (  # noqa: E731
        f"{100 * d['heard']:.0f} % / {d['mean_dbm']:.0f}" if d["mean_dbm"] is not None else "0 %")
    for c in ds.class_names:
        L.append(f"| {c} | " + " | ".join(f"{cell(pc['train'][c][i])} | {cell(pc['test'][c][i])}"
                                          for i in range(len(diag["aps"]))) + " |")
    L += ["", "APs heard per sequence: " + "; ".join(f"{s}: {', '.join(a or [])}"
                                                   for s, a in diag["aps_heard_per_sequence"].items()) + ".", ""]
    L += ["Validation F1 split by sequence group (Lounge_AP heard in 00001–00005; absent in 00006–00007, as in every "
          "test sequence), test F1 per test sequence, and test accuracy on windows with one room throughout (steady) "
          "vs windows with a room change inside the 4 s window (transition):", "",
          "| row | val F1 | val F1 Lounge heard | val F1 Lounge absent | test F1 | " +
          " | ".join(f"test {s}" for s, _ in diag["test_sequences"]) +
          " | test acc steady (n) | test acc transition (n) | test F1 steady |",
          "|---|---|---|---|---|" + "---|" * len(diag["test_sequences"]) + "---|---|---|"]
    for name, e in extra.items():
        r = next(x for x in rows if x["name"] == name)
        g = lambda k, f="f1": e.get(k, {}).get(f)  # noqa: E731
        L.append(f"| {name} | {pct(r['val_f1'])} | {pct(g('val_lounge_heard'))} | {pct(g('val_lounge_absent'))} | "
                 f"{pct(r['test_f1'])} | " +
                 " | ".join(pct(e.get("per_sequence", {}).get(s, {}).get("f1")) for s, _ in diag["test_sequences"]) +
                 f" | {pct(g('test_steady', 'acc'))} ({g('test_steady', 'n')}) | "
                 f"{pct(g('test_transition', 'acc'))} ({g('test_transition', 'n')}) | {pct(g('test_steady'))} |")
    L.append("")

    # how well validation predicts test, seed spread, the main confusions
    corr = sa.rank_correlations(ds, rows, work, diag, extra)
    if corr is not None:
        rho, rho_sub, n_sub, n_cand = corr
        L += [f"* **Validation is a weak guide here.** Over the {n_cand} int8 MDCSA/Mamba/MLP rows, the Spearman "
              f"rank correlation of validation and test macro-F1 is {rho:.2f}; restricted to the validation windows of "
              f"00006–00007 (Lounge_AP absent, like the test sequences) it is {rho_sub:.2f} ({n_sub} rows; a "
              "diagnostic, not used to select). The validation split holds "
              + ", ".join(f"{c} {n}" for c, n in zip(ds.class_names, diag["class_counts_val"]) if n < 50)
              + " windows (study: none, so validation macro-F1 averages 8 classes and test 9)."]
    seed_lines = []
    for base in ("mlp-H16L1", "mdcsa-H16L1", "mdcsa-H16L1-kd", "mamba-H8L1-kd"):
        spread = sa.seed_spread(rows, base)
        if spread is not None:
            v, t = spread
            seed_lines.append(f"| {base} | {len(v)} | {v.mean():.1f} ({v.min():.1f}–{v.max():.1f}) | "
                              f"{t.mean():.1f} ({t.min():.1f}–{t.max():.1f}) |")
    if seed_lines:
        L += ["* **Seed spread** (same data and recipe, training seeds 0, 1, 2; int8 in TFLM) is as large as every "
              "difference between families and levers above:", "",
              "| model | seeds | val F1 mean (min–max) | test F1 mean (min–max) |", "|---|---|---|---|",
              *seed_lines, ""]
    if seq32:
        off, n_errors = sa.top_confusions(seq32["per_class_test"]["confusion"], ds.class_names, 5)
        L.append(f"* **Where {seq32['name']} errs** (test, true → predicted windows): "
                 + ", ".join(f"{a} → {b} {n}" for n, a, b in off) + f" of {n_errors} errors." + why_sentence(
                     sa.limiting_facts(ds, diag)))
    L.append("")

    mrows = [r for r in rows if r.get("mamba_int8_choice")]
    if mrows:
        L += ["## Mamba int8: with or without `calibrate_state_scales`", "",
              "Each Mamba run is converted twice (state-scale equalisation of `models.mamba.calibrate_state_scales`, "
              "strength 0.5, on / off); the row keeps the conversion with the better **validation** F1. Float = "
              "Keras model before conversion.", "",
              "| row | float val / test | int8 calibrated val / test | int8 uncalibrated val / test | kept |",
              "|---|---|---|---|---|"]
        for r in mrows:
            c = r["mamba_int8_choice"]
            L.append(f"| {r['name']} | {pct(r.get('val_f1_float'))} / {pct(r.get('test_f1_float'))} | "
                     f"{pct(c['calib']['val_f1'])} / {pct(c['calib']['test_f1'])} | "
                     f"{pct(c['nocalib']['val_f1'])} / {pct(c['nocalib']['test_f1'])} | {c['chosen']} |")
        L.append("")

    acc_rows = [r for r in rows if sa.is_acc(r)]
    if acc_rows:
        L += ["## Beyond RSSI: adding the accelerometer (not part of the comparison above)", "",
              "The loader's optional `accelerometer=True` adds per-step mean acceleration (x, y, z) to the 4 APs "
              "(F = 7). The device pipeline (`tflm_app/core`) does not compute these features, so these rows are "
              "not deployable end-to-end today and are never selected in the tables above; same split, same windows.",
              "", "| row | val F1 | test F1 | test acc | arena B | flatbuffer B | RSSI-only twin: val / test F1 |",
              "|---|---|---|---|---|---|---|"]
        for r in acc_rows:
            twin = sa.accelerometer_twin(rows, r)
            L.append(f"| {r['name']} | {pct(r['val_f1'])} | {pct(r['test_f1'])} | {pct(r['test_acc'])} | "
                     f"{r.get('arena_bytes')} | {r.get('flatbuffer_bytes')} | "
                     f"{pct(twin and twin['val_f1'])} / {pct(twin and twin['test_f1'])} |")
        L.append("")

    # every row
    stale = sa.stale_mdcsa(rows)
    L += ["## Every row", "",
          "MDCSA rows use the current `Int8LayerNorm(method='l2norm')` (L2_NORMALIZATION in the int8 graph) "
          + (f"except {', '.join(stale)} (measured before that change; re-run with `--redo`)." if stale else
             "throughout."), "",
          "| row | family | config | levers | quant | val F1 | test F1 | test acc | float val F1 | float test F1 | "
          "arena B | flatbuffer B | params | s |", "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in sorted(rows, key=lambda r: (r["family"], r["name"])):
        L.append(f"| {r['name']} | {r['family']} | {r.get('config')} | {r.get('levers')} | {r.get('quant')} | "
                 f"{pct(r['val_f1'])} | {pct(r['test_f1'])} | {pct(r['test_acc'])} | {pct(r.get('val_f1_float'))} | "
                 f"{pct(r.get('test_f1_float'))} | {r.get('arena_bytes') if r.get('arena_bytes') is not None else '–'}"
                 f"{' (est.)' if r.get('arena_source') == 'estimate' else ''} | "
                 f"{r.get('flatbuffer_bytes') if r.get('flatbuffer_bytes') is not None else '–'} | "
                 f"{r.get('params') or '–'} | {r.get('seconds', '–')} |")
    L.append("")
    L += ["![validation vs test macro-F1 and arena; per-class F1](sphere.png)", ""]
    return {"markdown": "\n".join(L), "verdicts": verdicts, "extra": extra, "best": {
        c: {f: (r and r["name"]) for f, r in b.items()} for c, b in best.items()}}



def plot_png(ds: WindowDataset, rows: Sequence[dict], rendered: dict) -> bytes:
    """PNG bytes of the figure: test macro-F1 vs TFLM arena per row (line to its validation F1; x = size estimate
    of a scikit-learn row), and the per-class test F1 of the 32 KiB sequence model, the 32 KiB MLP and ``rf-window``
    (the names from :func:`render`'s result)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (a1, a2) = plt.subplots(1, 2, figsize=(13, 5))
    colors = {"mdcsa": "tab:blue", "mamba": "tab:orange", "mlp": "tab:green", "rf": "tab:red", "knn": "tab:purple",
              "lr": "tab:brown"}
    for r in rows:
        if r.get("arena_bytes") is None or sa.is_acc(r):
            continue
        a1.scatter(r["arena_bytes"] / 1024, 100 * r["test_f1"], color=colors.get(r["family"], "k"),
                   marker="o" if r.get("quant") == "int8 (TFLM)" else "x", s=30)
        a1.plot([r["arena_bytes"] / 1024] * 2, [100 * r["val_f1"], 100 * r["test_f1"]],
                color=colors.get(r["family"], "k"), alpha=0.3, lw=1)
    for fam, c in colors.items():
        a1.scatter([], [], color=c, label=fam)
    for x in (32, 64):
        a1.axvline(x, color="grey", ls="--", lw=1)
    a1.axhline(82, color="k", ls=":", lw=1, label="target 82")
    a1.axhline(75.5, color="tab:red", ls=":", lw=1, label="RF (issue 8) 75.5")
    a1.set_xscale("log")
    a1.set_xlabel("arena KiB (TFLM host; x = estimate for scikit-learn)")
    a1.set_ylabel("test macro-F1 % (line: to validation F1)")
    a1.set_title("sphere: int8 test macro-F1 vs RAM (RSSI only)")
    a1.legend(fontsize=7)
    names = [n for n in (rendered["verdicts"]["target_32k"]["row"], rendered["best"][sa.CLASS_32K]["mlp"],
                         "rf-window") if n]
    show = [next(r for r in rows if r["name"] == n) for n in names]
    idx = np.arange(len(ds.class_names))
    w = 0.8 / max(len(show), 1)
    for k, r in enumerate(show):
        a2.bar(idx + k * w, [100 * r["per_class_test"]["classes"][c]["f1"] for c in ds.class_names], w, label=r["name"])
    a2.set_xticks(idx + w * (len(show) - 1) / 2, ds.class_names, rotation=30)
    a2.set_ylabel("test F1 %")
    a2.set_title("per-class test F1")
    a2.legend(fontsize=7)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110)
    plt.close(fig)
    return buf.getvalue()


def results_document(rows: Sequence[dict], rendered: dict, diag: dict) -> dict:
    """The ``sphere.json`` document: selection rule, RAM classes, verdicts, selected names, diagnostics, the detailed
    rows' analyses and every row (:func:`sphere_analysis.results_rows`)."""
    return {"dataset": "sphere", "selection": "validation macro-F1 (never test)",
            "ram_classes": {k: {"arena_bytes": v[0], "flatbuffer_bytes": v[1]} for k, v in sm.RAM_CLASSES.items()},
            "verdicts": rendered["verdicts"], "best": rendered["best"], "diagnostics": diag,
            "per_sequence_and_lounge": rendered["extra"], "rows": sa.results_rows(rows)}
