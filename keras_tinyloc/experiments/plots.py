"""PNG plots of a sweep (matplotlib, Agg backend): F1 against memory per dataset, and which MCU each result fits.

* ``f1_vs_arena_<dataset>.png`` / ``f1_vs_flatbuffer_<dataset>.png``: test macro-F1 of every configuration and
  technique (colour = family, marker = technique) against the measured TFLM arena / flatbuffer bytes (log scale),
  with the 32 KiB and 64 KiB lines (and the class MCUs' flash limits on the flatbuffer plot), and the paper's
  points (hollow, at the paper's size = weights only: not an arena, so they sit where the paper put them).
* ``f1_vs_device_ram_<dataset>.png`` / ``f1_vs_device_flash_<dataset>.png`` (only for datasets with rows measured on
  the emulated Cortex-M4, e.g. ``sweep --target cortex-m4``): the same against the **device** figures — whole-firmware
  RAM (arena + static data + stack) and flash (TFLM + model + app + libc) — with the class MCUs' RAM / flash limits.
* ``mcu_fit.png``: per dataset (one panel), per MCU of the paper's Table 1 and per family, the test macro-F1 of the
  family's best model (selected by validation F1) that fits the MCU (:func:`keras_tinyloc.deploy.mcu.fit`: RAM, flash,
  and, for the TFLM families, a core that runs TFLM) — on the row's device figures (whole firmware, emulated Cortex-M4) when it has them,
  else on its host arena and flatbuffer (:func:`keras_tinyloc.experiments.results.row_need`); the title says which.

The numbers drawn come from :func:`f1_size_points` and :func:`mcu_fit_table` (pure functions, tested).
"""
from __future__ import annotations

import io
import os
from pathlib import Path

from keras_tinyloc.deploy import mcu
from keras_tinyloc.experiments.results import row_need
from keras_tinyloc.paths import atomic_write_bytes

KIB = 1024
FAMILY_COLORS = {"mdcsa": "tab:blue", "mamba": "tab:orange", "mlp": "tab:green", "knn": "tab:gray",
                 "rf": "tab:brown", "lr": "tab:purple"}
NON_TFLM_FAMILIES = ("knn", "rf", "lr")  # scikit-learn baselines: their own code, no TFLM (any core)
TECHNIQUE_MARKERS = {"baseline": "o", "static_int8": "s", "dynamic": "^", "kd": "D", "kd_static_int8": "P",
                     "int8": "x"}


# x axis of each scatter: what was measured, and where
X_LABELS = {"arena_bytes": "TFLM arena bytes (host)", "flatbuffer_bytes": "flatbuffer / model bytes",
            "device_ram_bytes": "whole-firmware RAM bytes (device: emulated Cortex-M4)",
            "device_flash_bytes": "whole-firmware flash bytes (device: emulated Cortex-M4)"}
X_SHORT = {"arena_bytes": "arena", "flatbuffer_bytes": "flatbuffer", "device_ram_bytes": "device_ram",
           "device_flash_bytes": "device_flash"}


def f1_size_points(rows: list[dict], dataset: str, x_field: str) -> list[dict]:
    """``[{"family", "technique", "config", "x", "f1"}]`` of the finished rows of ``dataset`` with ``x_field`` set."""
    if x_field not in X_LABELS:
        raise ValueError(f"x_field {x_field!r}")
    pts = []
    for r in rows:
        if r.get("dataset") != dataset or r.get("status", "ok") != "ok":
            continue
        if r.get(x_field) is None or r.get("test_f1") is None:
            continue
        pts.append({"family": r["family"], "technique": r["technique"], "config": r.get("config"),
                    "x": int(r[x_field]), "f1": float(r["test_f1"])})
    return pts


def mcu_fit_table(rows: list[dict]) -> dict[str, dict[str, dict[str, dict | None]]]:
    """``{dataset: {family: {mcu name: best fitting row (by validation F1) or None}}}``."""
    table: dict[str, dict[str, dict[str, dict | None]]] = {}
    for ds in sorted({r["dataset"] for r in rows}):
        fams = [f for f in FAMILY_COLORS if any(r["dataset"] == ds and r["family"] == f for r in rows)]
        fams += sorted({r["family"] for r in rows if r["dataset"] == ds} - set(fams))
        table[ds] = {}
        for fam in fams:
            table[ds][fam] = {}
            for m in mcu.MCUS:
                fits = [r for r in rows if r["dataset"] == ds and r["family"] == fam
                        and r.get("status", "ok") == "ok" and r.get("val_f1") is not None
                        and None not in row_need(r)[:2]
                        and mcu.fit(*row_need(r)[:2], needs_tflm=fam not in NON_TFLM_FAMILIES)[m.name]["fits"]]
                table[ds][fam][m.name] = max(fits, key=lambda r: (r["val_f1"], -(r.get("params") or 0))) \
                    if fits else None
    return table


def _figure():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(fig, path: Path) -> Path:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    atomic_write_bytes(path, buf.getvalue())
    return path


def plot_f1_vs_size(rows: list[dict], paper: list[dict], dataset: str, x_field: str, path: str | os.PathLike) -> Path:
    """One scatter (see module doc) written to ``path``."""
    plt = _figure()
    pts = f1_size_points(rows, dataset, x_field)
    fig, ax = plt.subplots(figsize=(7.5, 4.8))
    seen = set()
    for p in pts:
        key = (p["family"], p["technique"])
        ax.scatter(p["x"], 100 * p["f1"], color=FAMILY_COLORS.get(p["family"], "black"),
                   marker=TECHNIQUE_MARKERS.get(p["technique"], "o"), s=28, alpha=0.8,
                   label=f"{p['family']} {p['technique']}" if key not in seen else None)
        seen.add(key)
    pp = [q for q in paper if q["dataset"] == dataset]
    for q in pp:
        ax.scatter(q["size_kb"] * KIB, q["macro_f1"], facecolors="none",
                   edgecolors=FAMILY_COLORS.get(q["family"], "black"), marker=TECHNIQUE_MARKERS.get(q["technique"], "o"),
                   s=40, label=None)
    if pp:
        ax.scatter([], [], facecolors="none", edgecolors="black", label="paper (its size: weights only)")
    for kb, style in ((32, "--"), (64, "-.")):
        ax.axvline(kb * KIB, color="red", linestyle=style, linewidth=1, label=f"{kb} KiB")
    if x_field in ("flatbuffer_bytes", "device_flash_bytes"):
        names = ("ADuCM3029", "RL78/G13") if x_field == "flatbuffer_bytes" else ("CC2650", "STM32L4")
        for name in names:
            m = mcu.get_mcu(name)
            ax.axvline(m.flash_bytes, color="gray", linestyle=":", linewidth=1, label=f"{name} flash {m.flash_kb} KiB")
    if x_field == "device_ram_bytes":
        m = mcu.get_mcu("CC2650")
        ax.axvline(m.ram_bytes, color="gray", linestyle=":", linewidth=1, label=f"{m.name} RAM {m.ram_kb} KiB")
    ax.set_xscale("log")
    ax.set_xlabel(X_LABELS[x_field])
    ax.set_ylabel("test macro-F1 (%)")
    ax.set_title(f"{dataset}: macro-F1 vs {X_SHORT[x_field].replace('_', ' ')}")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=7, loc="center left", bbox_to_anchor=(1.01, 0.5))
    try:
        return _save(fig, Path(path))
    finally:
        plt.close(fig)


def plot_mcu_fit(rows: list[dict], path: str | os.PathLike) -> Path:
    """One panel per dataset; per MCU, one bar per family: test F1 of its best fitting model ('none' if none fits)."""
    import numpy as np

    plt = _figure()
    table = mcu_fit_table(rows)
    datasets = list(table)
    names = [m.name for m in mcu.MCUS]
    fig, axes = plt.subplots(len(datasets), 1, figsize=(10, 2.8 * len(datasets) + 0.8), squeeze=False)
    for ax, ds in zip(axes[:, 0], datasets):
        fams = list(table[ds])
        width = 0.8 / max(len(fams), 1)
        for i, fam in enumerate(fams):
            vals = [100 * table[ds][fam][n]["test_f1"] if table[ds][fam][n] else 0.0 for n in names]
            xs = np.arange(len(names)) + i * width
            ax.bar(xs, vals, width=width, label=fam, color=FAMILY_COLORS.get(fam))
            for x, n in zip(xs, names):
                if table[ds][fam][n] is None:
                    ax.text(x, 1, "none", rotation=90, ha="center", va="bottom", fontsize=5)
        ax.set_xticks(np.arange(len(names)) + 0.4 - width / 2,
                      [f"{m.name}\n{m.ram_kb}/{m.flash_kb} KB" + ("" if m.runs_tflm else "\nno TFLM") for m in mcu.MCUS],
                      fontsize=7)
        ax.set_ylim(0, 100)
        ax.set_ylabel("test macro-F1 (%)", fontsize=8)
        bases = sorted({row_need(r)[2] for r in rows if r.get("dataset") == ds})
        on = {("device",): "device figures (whole firmware, emulated Cortex-M4)",
              ("host",): "host figures (arena + flatbuffer: a lower bound)"}.get(tuple(bases),
                                                                             "device figures where measured, else host")
        ax.set_title(f"{ds}: best model per family (by validation F1) that fits each MCU (RAM, flash, runs TFLM) "
                     f"on {on}", fontsize=8)
        ax.legend(fontsize=6, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    fig.tight_layout()
    try:
        return _save(fig, Path(path))
    finally:
        plt.close(fig)


def write_plots(rows: list[dict], out_dir: str | os.PathLike, paper_csv: str | os.PathLike | None = None
                ) -> dict[str, Path]:
    """Every plot of the module doc into ``out_dir``; returns ``{name: path}``."""
    from keras_tinyloc.experiments.results import load_paper_tables, normalize_row

    rows = [normalize_row(r) for r in rows]
    paper, _ = load_paper_tables(paper_csv)
    out_dir = Path(out_dir)
    files: dict[str, Path] = {}
    for ds in sorted({r["dataset"] for r in rows}):
        fields = ["arena_bytes", "flatbuffer_bytes"]
        if any(r["dataset"] == ds and r.get("device_ram_bytes") is not None for r in rows):
            fields += ["device_ram_bytes", "device_flash_bytes"]
        for x_field in fields:
            name = f"f1_vs_{X_SHORT[x_field]}_{ds}"
            files[name] = plot_f1_vs_size(rows, paper if x_field in ("arena_bytes", "flatbuffer_bytes") else [], ds,
                                          x_field, out_dir / f"{name}.png")
    if rows:
        files["mcu_fit"] = plot_mcu_fit(rows, out_dir / "mcu_fit.png")
    return files
