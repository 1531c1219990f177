"""Sweep results: one row per dataset x model x H x L x technique -> ``results.csv`` and ``tables.md``.

A **row** is a flat dict with the keys of :data:`ROW_FIELDS` (missing keys read as empty). F1 and accuracy
are fractions (0..1) in rows and CSV, percentages in ``tables.md`` (the paper's unit).

``tables.md`` follows the paper's Tables 4-8: per dataset and RAM class, the best configuration of each family
*that fits the class* (selected by **validation** macro-F1, never test), shown with all its techniques, and the
paper's row for the same family / class / technique in adjacent columns. A row fits a class when its memory need
fits the class's MCU (:data:`keras_tinyloc.deploy.mcu.RAM_CLASSES`): the **device** figures when the row has them
(``device_ram_bytes`` / ``device_flash_bytes``: the whole firmware's RAM and flash, measured on the emulated
Cortex-M4 by :mod:`keras_tinyloc.deploy.m4`, e.g. by ``sweep --target cortex-m4``; ``device_arena_bytes`` and
``device_instructions`` per invoke are carried to results.csv), else the **host** figures (TFLM arena from the 64-bit host, flatbuffer;
for the scikit-learn baselines their deployable model bytes) — a lower bound of the need (:func:`row_need`).

The paper's figures come from ``paper_tables.csv``; :func:`load_paper_tables` drops rows that are copies of
another dataset's rows (the shared CSV labels House B's and House D's tables a second time as House A and
House C) and says so in the tables' notes.
"""
from __future__ import annotations

import csv
import io
import json
import math
import os
from pathlib import Path
from typing import Iterable

from keras_tinyloc.deploy import mcu
from keras_tinyloc.errors import TinyLocError
from keras_tinyloc.paths import atomic_write_text, shared_data_dir

ROW_FIELDS: tuple[str, ...] = (
    "dataset", "family", "config", "hidden", "layers", "technique", "features",
    "val_f1", "val_acc", "test_f1", "test_acc",
    "params", "flatbuffer_bytes", "arena_bytes", "arena_source", "size_kb",
    "seconds", "status", "error", "teacher", "run_dir", "device_ram_bytes", "device_flash_bytes",
    "device_arena_bytes", "device_instructions",
)
NUMERIC_FIELDS = ("hidden", "layers", "val_f1", "val_acc", "test_f1", "test_acc", "params",
                  "flatbuffer_bytes", "arena_bytes", "size_kb", "seconds", "device_ram_bytes", "device_flash_bytes",
                  "device_arena_bytes", "device_instructions")
INT_FIELDS = ("hidden", "layers", "params", "flatbuffer_bytes", "arena_bytes", "device_ram_bytes", "device_flash_bytes",
              "device_arena_bytes", "device_instructions")
TECHNIQUES: tuple[str, ...] = ("baseline", "static_int8", "dynamic", "kd", "kd_static_int8")
# The order families appear in the tables: the paper's two, then the baselines.
FAMILY_ORDER: tuple[str, ...] = ("mdcsa", "mamba", "mlp", "knn", "rf", "lr")
# RAM classes reported, largest first; "20 KB" has no paper column (the paper did not use it).
TABLE_CLASSES: tuple[str, ...] = ("64 KB", "32 KB", "20 KB")
# The paper's row groups per class ("Exceed 64 KB" = rows the paper printed in its 64 KB table while over budget).
PAPER_GROUPS = {"64 KB": ("Under 64 KB", "Exceed 64 KB"), "32 KB": ("Under 32 KB",), "20 KB": ()}
# Bytes per parameter of the paper's "size" (PyTorch weight storage): float32, or int8 weights after quantization.
PAPER_BYTES_PER_PARAM = {"baseline": 4, "kd": 4, "static_int8": 1, "dynamic": 1, "kd_static_int8": 1}


# ----------------------------------------------------------------------------------------------------- rows
def paper_size_kb(params: int | None, technique: str) -> float | None:
    """The paper's size convention: weights only, ``params x bytes/param / 1024`` (no activations, no runtime)."""
    if params is None or technique not in PAPER_BYTES_PER_PARAM:
        return None
    return round(params * PAPER_BYTES_PER_PARAM[technique] / 1024.0, 1)


def normalize_row(row: dict) -> dict:
    """A row with every :data:`ROW_FIELDS` key; numbers as int/float, absent values as None."""
    out = {}
    for key in ROW_FIELDS:
        val = row.get(key)
        if val == "" or (isinstance(val, float) and math.isnan(val)):
            val = None
        if key in NUMERIC_FIELDS and val is not None:
            try:
                num = float(val)
            except (TypeError, ValueError):
                raise TinyLocError(f"result row {row.get('run_dir') or row}: {key}={val!r} is not a number") from None
            val = int(num) if key in INT_FIELDS else num
        out[key] = val
    if out["status"] is None:
        out["status"] = "ok"
    return out


def row_need(row: dict) -> tuple[int | None, int | None, str]:
    """``(ram, flash, basis)`` a row needs: ``device`` figures (whole firmware, emulated Cortex-M4) when it has both,
    else ``host`` figures (arena, flatbuffer)."""
    if row.get("device_ram_bytes") is not None and row.get("device_flash_bytes") is not None:
        return int(row["device_ram_bytes"]), int(row["device_flash_bytes"]), "device"
    ram, flash = row.get("arena_bytes"), row.get("flatbuffer_bytes")
    return (None if ram is None else int(ram)), (None if flash is None else int(flash)), "host"


def fits_class(row: dict, ram_class: str) -> bool:
    """Whether a finished row's memory need (:func:`row_need`) fits the MCU that defines ``ram_class``."""
    ram, flash, _ = row_need(row)
    if row.get("status") != "ok" or ram is None or flash is None:
        return False
    return bool(mcu.ram_classes(ram, flash)[ram_class])


def rows_to_csv(rows: Iterable[dict]) -> str:
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=list(ROW_FIELDS), lineterminator="\n")
    writer.writeheader()
    for row in rows:
        r = normalize_row(row)
        writer.writerow({k: ("" if v is None else v) for k, v in r.items()})
    return buf.getvalue()


def read_results_csv(path: str | os.PathLike) -> list[dict]:
    path = Path(path)
    if not path.is_file():
        raise TinyLocError(f"{path}: no such results file")
    with path.open(newline="") as fh:
        reader = csv.DictReader(fh)
        missing = [f for f in ("dataset", "family", "technique") if f not in (reader.fieldnames or [])]
        if missing:
            raise TinyLocError(f"{path}: missing column(s) {', '.join(missing)}")
        return [normalize_row(r) for r in reader]


def collect_rows(sweep_dir: str | os.PathLike) -> list[dict]:
    """Every finished run's rows under ``sweep_dir/runs`` (each run dir has ``result.json``: ``{"rows": [...]}``)."""
    rows = []
    for path in sorted(Path(sweep_dir, "runs").glob("**/result.json")):
        if any(part.startswith(".") for part in path.relative_to(sweep_dir).parts):
            continue  # inside an interrupted run's temporary directory
        try:
            data = json.loads(path.read_text())
        except (OSError, json.JSONDecodeError) as exc:
            raise TinyLocError(f"{path}: unreadable result ({exc})") from None
        for row in data.get("rows", []):
            rows.append(normalize_row({**row, "run_dir": str(path.parent.relative_to(sweep_dir))}))
    return sort_rows(rows)


def sort_rows(rows: list[dict]) -> list[dict]:
    fam = {f: i for i, f in enumerate(FAMILY_ORDER)}
    tech = {t: i for i, t in enumerate(TECHNIQUES)}

    def key(r):
        return (r["dataset"] or "", fam.get(r["family"], 99), r["family"] or "", -(r["hidden"] or 0),
                -(r["layers"] or 0), r["config"] or "", tech.get(r["technique"], 99), r["technique"] or "",
                r["features"] or "")

    return sorted((normalize_row(r) for r in rows), key=key)


# ------------------------------------------------------------------------------------------- paper figures
def default_paper_csv() -> Path | None:
    base = shared_data_dir()
    path = base / "paper_tables.csv" if base else None
    return path if path and path.is_file() else None


def load_paper_tables(path: str | os.PathLike | None = None) -> tuple[list[dict], list[str]]:
    """Read ``paper_tables.csv`` -> (rows, notes); rows copied from another dataset are dropped.

    A row is a *copy* when another dataset holds a row with identical group, family, config, params,
    technique and figures. It is dropped from a dataset that also has its own (non-copied) row for the same
    group, family and technique, and kept where it is that dataset's only row. F1/accuracy stay in percent.
    """
    path = Path(path) if path else default_paper_csv()
    if path is None:
        return [], ["paper_tables.csv not found: no paper columns"]
    if not path.is_file():
        raise TinyLocError(f"{path}: no such paper tables file")
    with path.open(newline="") as fh:
        reader = csv.DictReader(fh)
        need = ("dataset", "group", "family", "config", "params", "technique", "macro_f1", "accuracy", "size_kb")
        missing = [c for c in need if c not in (reader.fieldnames or [])]
        if missing:
            raise TinyLocError(f"{path}: missing column(s) {', '.join(missing)}")
        raw = list(reader)
    rows = []
    for i, r in enumerate(raw, start=2):
        try:
            rows.append({
                "dataset": r["dataset"], "group": r["group"], "family": r["family"], "config": r["config"],
                "params": int(r["params"]), "technique": r["technique"], "macro_f1": float(r["macro_f1"]),
                "accuracy": float(r["accuracy"]), "size_kb": float(r["size_kb"]),
                "over_budget": str(r.get("over_budget_mark", "")).strip().lower() == "true", "line": i,
            })
        except ValueError as exc:
            raise TinyLocError(f"{path}: line {i}: {exc}") from None

    def content(r):
        return (r["group"], r["family"], r["config"], r["params"], r["technique"], r["macro_f1"], r["accuracy"],
                r["size_kb"])

    holders: dict[tuple, set[str]] = {}
    for r in rows:
        holders.setdefault(content(r), set()).add(r["dataset"])
    copied = [r for r in rows if len(holders[content(r)]) > 1]
    own_slots = {(r["dataset"], r["group"], r["family"], r["technique"]) for r in rows
                 if len(holders[content(r)]) == 1}
    drop = {id(r) for r in copied if (r["dataset"], r["group"], r["family"], r["technique"]) in own_slots}
    notes = []
    by_pair: dict[tuple[str, str], list[int]] = {}
    for r in copied:
        if id(r) in drop:
            other = sorted(holders[content(r)] - {r["dataset"]})
            by_pair.setdefault((r["dataset"], ", ".join(other)), []).append(r["line"])
    for (ds, other), lines in sorted(by_pair.items()):
        notes.append(f"{path.name}: {len(lines)} rows labelled {ds} (lines {min(lines)}-{max(lines)}) repeat "
                     f"{other}'s rows exactly; they are treated as {other}'s and left out of {ds}")
    return [r for r in rows if id(r) not in drop], notes


def paper_config(paper: list[dict], dataset: str, ram_class: str, family: str) -> tuple[str, str] | None:
    """The paper's (group, config) for a family in a class: where a table lists several configurations, the one
    with the best F1 among rows the paper did not mark over budget (else the best overall)."""
    groups = PAPER_GROUPS.get(ram_class, ())
    cands = [r for r in paper if r["dataset"] == dataset and r["family"] == family and r["group"] in groups]
    if not cands:
        return None
    best = max(cands, key=lambda r: (not r["over_budget"], r["macro_f1"]))
    return best["group"], best["config"]


def paper_row(paper: list[dict], dataset: str, ram_class: str, family: str, technique: str) -> dict | None:
    """The paper's row for this dataset / class / family / technique (None if the paper has none)."""
    chosen = paper_config(paper, dataset, ram_class, family)
    if chosen is None:
        return None
    for r in paper:
        if (r["dataset"], r["family"], r["technique"], (r["group"], r["config"])) == (
                dataset, family, technique, chosen):
            return r
    return None


# ------------------------------------------------------------------------------------------------- tables
def best_config(rows: list[dict], dataset: str, family: str, ram_class: str) -> dict | None:
    """The fitting row of ``family`` on ``dataset`` with the highest validation F1 (ties: fewer params)."""
    cands = [r for r in rows if r["dataset"] == dataset and r["family"] == family and fits_class(r, ram_class)
             and r["val_f1"] is not None]
    if not cands:
        return None
    return max(cands, key=lambda r: (r["val_f1"], -(r["params"] or 0), -(r["arena_bytes"] or 0)))


def _config_key(r: dict) -> tuple:
    return (r["dataset"], r["family"], r["config"], r["features"])


def class_table(rows: list[dict], paper: list[dict], dataset: str, ram_class: str) -> list[dict]:
    """Table lines for one dataset and class: per family, the selected configuration's rows (all techniques)."""
    lines = []
    families = [f for f in FAMILY_ORDER if any(r["family"] == f and r["dataset"] == dataset for r in rows)]
    families += sorted({r["family"] for r in rows if r["dataset"] == dataset} - set(families))
    for fam in families:
        best = best_config(rows, dataset, fam, ram_class)
        if best is None:
            lines.append({"family": fam, "row": None, "paper": None, "selected": False, "fits": False})
            continue
        siblings = [r for r in rows if _config_key(r) == _config_key(best)]
        for r in sort_rows(siblings):
            lines.append({
                "family": fam, "row": r, "selected": r["technique"] == best["technique"],
                "fits": fits_class(r, ram_class), "paper": paper_row(paper, dataset, ram_class, fam, r["technique"]),
            })
    return lines


def _pct(v) -> str:
    return "" if v is None else f"{100.0 * v:.2f}"


def _kib(v) -> str:
    return "" if v is None else f"{v / 1024.0:.1f}"


def render_tables(rows: list[dict], paper: list[dict] | None = None, notes: Iterable[str] = ()) -> str:
    """``tables.md``: per dataset and RAM class, the best configuration of each family (paper's layout)."""
    rows = sort_rows(rows)
    paper = paper or []
    out = ["# Results: best model of each family per RAM class", "",
           "Selection: the configuration with the highest **validation** macro-F1 among those whose memory need "
           "fits the class's MCU; all its techniques are listed, the selected one in bold. Test figures "
           "are reported, never used to select. F1 and accuracy in %. Arena: measured in the host TFLM interpreter "
           "(an upper bound for a Cortex-M build); for kNN / RF / LR the deployable model bytes and an estimated "
           "working RAM (`arena source` = estimate). `size KB (paper-style)` = weights only, as the paper counts "
           "(4 bytes/param float, 1 byte/param int8); the paper's size column uses that convention too. "
           "`fit on`: `device` = the whole firmware's RAM and flash measured on the emulated Cortex-M4 (TFLM + model "
           "+ app + libc; arena + static data + stack), `host` = arena and flatbuffer only, a lower bound of the "
           "need.", ""]
    datasets = sorted({r["dataset"] for r in rows})
    for ds in datasets:
        out += [f"## {ds}", ""]
        for cls in TABLE_CLASSES:
            m = mcu.get_mcu(mcu.RAM_CLASSES[cls])
            out += [f"### {cls} class ({m.name}: RAM ≤ {m.ram_kb} KiB, flash ≤ {m.flash_kb} KiB)", ""]
            header = ["family", "config", "technique", "val F1", "test F1", "test acc", "params", "arena KiB",
                      "arena source", "flatbuffer KiB", "size KB (paper-style)", "device RAM KiB",
                      "device flash KiB", "fit on", "fits"]
            has_paper = bool(PAPER_GROUPS.get(cls)) and any(p["dataset"] == ds for p in paper)
            if has_paper:
                header += ["paper config", "paper F1", "paper acc", "paper size KB"]
            out.append("| " + " | ".join(header) + " |")
            out.append("|" + "---|" * len(header))
            for line in class_table(rows, paper, ds, cls):
                r, p = line["row"], line["paper"]
                if r is None:
                    cells = [line["family"], "none fits"] + [""] * (len(header) - 2 - (4 if has_paper else 0))
                else:
                    tech = r["technique"] + (f" ({r['features']})" if r["features"] else "")
                    if line["selected"] and line["fits"]:
                        tech = f"**{tech}**"
                    cells = [r["family"], r["config"] or "", tech, _pct(r["val_f1"]), _pct(r["test_f1"]),
                             _pct(r["test_acc"]), "" if r["params"] is None else str(r["params"]),
                             _kib(r["arena_bytes"]), r["arena_source"] or "", _kib(r["flatbuffer_bytes"]),
                             "" if r["size_kb"] is None else f"{r['size_kb']:.1f}",
                             _kib(r["device_ram_bytes"]), _kib(r["device_flash_bytes"]), row_need(r)[2],
                             "yes" if line["fits"] else ("failed" if r["status"] != "ok" else "no")]
                if has_paper:
                    cells += ([p["config"], f"{p['macro_f1']:.2f}", f"{p['accuracy']:.2f}",
                               f"{p['size_kb']:g}" + (" (over)" if p["over_budget"] else "")] if p else
                              ["", "", "", ""])
                out.append("| " + " | ".join(cells) + " |")
            out.append("")
    failed = [r for r in rows if r["status"] != "ok"]
    if failed:
        out += ["## Failed runs", ""]
        for r in failed:
            out.append(f"- {r['dataset']} {r['family']} {r['config'] or ''} {r['technique']}: {r['error']}")
        out.append("")
    notes = list(notes)
    if notes:
        out += ["## Notes", ""] + [f"- {n}" for n in notes] + [""]
    return "\n".join(out)


def write_results(rows: list[dict], out_dir: str | os.PathLike,
                  paper_csv: str | os.PathLike | None = None) -> dict[str, Path]:
    """Write ``results.csv`` and ``tables.md`` into ``out_dir`` (atomically); return their paths."""
    out_dir = Path(out_dir)
    rows = sort_rows(rows)
    paper, notes = load_paper_tables(paper_csv)
    csv_path, md_path = out_dir / "results.csv", out_dir / "tables.md"
    atomic_write_text(csv_path, rows_to_csv(rows))
    atomic_write_text(md_path, render_tables(rows, paper, notes))
    return {"results_csv": csv_path, "tables_md": md_path}
