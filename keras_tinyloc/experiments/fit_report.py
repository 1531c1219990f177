"""The outputs of ``fit --mcu`` besides the winner: the leaderboard (CSV + Markdown) and the plot of validation
macro-F1 against RAM need with the MCU's limit drawn.

Every candidate of the grid has one row, whatever happened to it, with the rule that put it where it is
(``selection``): the winner; trained to the end; eliminated by successive halving at an epoch; not trained because
its estimated whole-program RAM or flash exceeds the MCU's; not reached within the budget; failed. Rows are ranked by
validation macro-F1 of the int8 model in TFLM (the selection score), then by the float validation F1 of the best
epoch reached. Test figures appear in the winner's row only. Pure functions of the row dicts (tested); the plot uses
matplotlib's Agg backend.
"""
from __future__ import annotations

import csv
import io
import math
import os
from pathlib import Path

from keras_tinyloc.paths import atomic_write_bytes, atomic_write_text

KIB = 1024
COLUMNS = ("rank", "key", "family", "hidden", "layers", "levers", "status", "selection", "val_f1", "val_f1_int8",
           "val_acc_int8", "params", "arena_bytes", "ram_need_bytes", "flash_need_bytes", "fits", "need_basis",
           "invoke_us_host", "latency_ms", "epochs_run", "best_epoch", "trial", "seconds", "test_f1_int8",
           "test_acc_int8")
STATUS_ORDER = {"winner": 0, "complete": 1, "pruned": 2, "failed": 3, "not run": 4, "does not fit": 5}
FAMILY_COLORS = {"mdcsa": "tab:blue", "mamba": "tab:orange", "mlp": "tab:green"}
STATUS_MARKERS = {"winner": "*", "complete": "o", "pruned": "x", "failed": "v", "not run": ".", "does not fit": "s"}


def _num(v, default=-1.0) -> float:
    return default if v is None or (isinstance(v, float) and math.isnan(v)) else float(v)


def _order(r: dict) -> tuple:
    score = r.get("val_f1_int8") if r.get("val_f1_int8") is not None else r.get("val_f1")
    return STATUS_ORDER.get(r["status"], 9), -_num(score), _num(r.get("params"), 0), r["key"]


def rank_rows(rows: list[dict]) -> list[dict]:
    """Rows sorted for the leaderboard: status group (winner, complete, pruned, failed, not run, does not fit), then
    the int8 validation F1 (the float one for rows never converted), fewer parameters, key — the winner's own
    tie-break. ``rank`` 1..n is set on the rows that have a selection score (winner, complete), None elsewhere."""
    out = sorted((dict(r) for r in rows), key=_order)
    k = 0
    for r in out:
        if r["status"] in ("winner", "complete"):
            k += 1
            r["rank"] = k
        else:
            r["rank"] = None
    return out


def leaderboard_csv(rows: list[dict]) -> str:
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=COLUMNS, extrasaction="ignore", lineterminator="\n")
    w.writeheader()
    for r in rank_rows(rows):
        w.writerow({c: ("" if r.get(c) is None else r.get(c)) for c in COLUMNS})
    return buf.getvalue()


def _pct(v) -> str:
    return "–" if v is None else f"{100 * float(v):.2f}"


def _kib(v) -> str:
    return "–" if v is None else f"{int(v) / KIB:.1f}"


def leaderboard_markdown(rows: list[dict], header: dict) -> str:
    """The leaderboard as Markdown: ``header`` = ``{"dataset", "target" (Target.to_json()), "device", "seed",
    "budget", "counts"}`` (what was searched and how), then one table row per candidate."""
    t = header["target"]
    lines = [
        f"# fit: {header['dataset']} on {t['name']} ({t['ram_bytes'] // KIB} KiB RAM, {t['flash_bytes'] // KIB} KiB "
        f"flash, {t['clock_mhz']:g} MHz)", "",
        f"Search: {header['counts']}. Selection: the highest **validation** macro-F1 of the int8 model in TFLM among "
        f"the candidates trained to the end whose whole-program RAM and flash fit the MCU; early elimination: "
        f"Optuna's SuccessiveHalvingPruner on the float validation macro-F1 per epoch. Test figures: the winner's "
        f"only, computed once after selection. Seed {header['seed']}; budget {header['budget']}.", "",
        f"Fit basis: {header['device']}. RAM need = tensor arena (host TFLM, an upper bound of the Cortex-M arena) + "
        f"app RAM; flash need = flatbuffer + TFLM runtime, app and libc; the winner's figures are measured on the "
        f"device when the basis says so (see winner/int8/report.md).", "",
        "| rank | candidate | levers | status | val F1 int8 | val F1 float | RAM need KiB | flash need KiB | arena KiB "
        "| fits | invoke µs (host) | epochs | test F1 int8 | selection |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rank_rows(rows):
        lines.append(
            f"| {r['rank'] or ''} | {r['key']} | {r['levers']} | {'**winner**' if r['status'] == 'winner' else r['status']} "
            f"| {_pct(r.get('val_f1_int8'))} | {_pct(r.get('val_f1'))} | {_kib(r.get('ram_need_bytes'))} "
            f"| {_kib(r.get('flash_need_bytes'))} | {_kib(r.get('arena_bytes'))} "
            f"| {'yes' if r.get('fits') else 'no'} | {'–' if r.get('invoke_us_host') is None else r['invoke_us_host']} "
            f"| {'' if r.get('epochs_run') is None else r['epochs_run']} | {_pct(r.get('test_f1_int8'))} "
            f"| {r['selection']} |")
    return "\n".join(lines) + "\n"


def plot_points(rows: list[dict]) -> list[dict]:
    """``[{"key", "family", "status", "ram", "f1"}]``: every row with a RAM need and a validation F1 (int8 when the
    candidate was converted, else the float F1 of the last epoch it reached)."""
    pts = []
    for r in rows:
        f1 = r.get("val_f1_int8") if r.get("val_f1_int8") is not None else r.get("val_f1")
        if r.get("ram_need_bytes") is None or f1 is None:
            continue
        pts.append({"key": r["key"], "family": r["family"], "status": r["status"], "ram": int(r["ram_need_bytes"]),
                    "f1": float(f1)})
    return pts


def plot_f1_vs_ram(rows: list[dict], ram_limit: int, title: str, path: str | os.PathLike) -> Path:
    """Scatter of :func:`plot_points` (colour = family, marker = status) with the MCU's RAM drawn as a red line."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7.5, 4.8))
    seen = set()
    for p in plot_points(rows):
        lab = (p["family"], p["status"])
        ax.scatter(p["ram"] / KIB, 100 * p["f1"], color=FAMILY_COLORS.get(p["family"], "black"),
                   marker=STATUS_MARKERS.get(p["status"], "o"), s=140 if p["status"] == "winner" else 30, alpha=0.85,
                   label=f"{p['family']} {p['status']}" if lab not in seen else None)
        seen.add(lab)
    ax.axvline(ram_limit / KIB, color="red", linewidth=1.2, label=f"MCU RAM {ram_limit // KIB} KiB")
    ax.set_xlabel("whole-program RAM need (KiB)")
    ax.set_ylabel("validation macro-F1 (%) (int8 in TFLM; float for eliminated candidates)")
    ax.set_title(title)
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=7, loc="center left", bbox_to_anchor=(1.01, 0.5))
    buf = io.BytesIO()
    try:
        fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    finally:
        plt.close(fig)
    atomic_write_bytes(path, buf.getvalue())
    return Path(path)


def write_leaderboard(out: Path, rows: list[dict], header: dict) -> dict[str, Path]:
    """``out/leaderboard.csv``, ``out/leaderboard.md`` and ``out/val_f1_vs_ram.png``."""
    out = Path(out)
    atomic_write_text(out / "leaderboard.csv", leaderboard_csv(rows))
    atomic_write_text(out / "leaderboard.md", leaderboard_markdown(rows, header))
    png = plot_f1_vs_ram(rows, header["target"]["ram_bytes"],
                         f"{header['dataset']} on {header['target']['name']}: validation F1 vs RAM",
                         out / "val_f1_vs_ram.png")
    return {"csv": out / "leaderboard.csv", "md": out / "leaderboard.md", "plot": png}
