"""The study behind ``benchmarks/fit.py``: ``fit --mcu`` on four datasets and three RAM classes, against the
committed hand-picked rows and the scikit-learn baselines (``docs/results/fit.md``).

Cases (:data:`CASES`): ``uji`` (13 building-floors), ``uji-zones``, ``sphere`` and the simulated ``house-a``, each on
the CC2650 (20 KiB RAM / 128 KiB flash, the paper's 20 KB class) and the STM32L4 (64 KiB / 256 KiB); ``sphere``
also on a custom 32 KiB / 512 KiB MCU at 32 MHz (the RL78/G13's budget — that part cannot run TFLM itself), where
the issue sets its target.

Comparison rows (:func:`hand_picked_rows`) are read from the committed results: ``docs/results/sweep/results.csv``
(every dataset: the paper's techniques, int8 rows, and kNN / random forest / logistic regression on uint8
features), ``beyond_uji.json`` (UJIIndoorLoc int8 MLP ablation) and ``sphere.json`` (SPHERE levers). A committed
row "fits" a class when its host arena <= the MCU's RAM and its flatbuffer (model bytes) <= its flash — the basis
those studies used, which leaves out the app and the TFLM runtime that ``fit`` counts, so the comparison favours
the committed rows. "Best hand-picked" = the highest **test** macro-F1 among the fitting int8 neural rows (chosen
with hindsight: the ceiling a person reached by looking at test figures); the baselines' row is the one with the
best validation F1. ``fit``'s winner is chosen by validation alone.
"""
from __future__ import annotations

import csv
import dataclasses
import json
from pathlib import Path

from keras_tinyloc.experiments import fit

KIB = 1024
SKLEARN = ("knn", "rf", "lr")


# Training limits per kind of data: UJIIndoorLoc (T = 1, ~15k scans) converges within 10-25 epochs
# (docs/results/uji_families.md); the 5 Hz BLE windows need far longer (SPHERE's MLP H16L1 peaked at epoch 128 of 150,
# docs/results/sphere.md), so they get SPHERE study's limits (150 epochs, patience 30) and a later first rung.
UJI_TRAINING = (("epochs", 40), ("patience", 10), ("min_epochs", 4))
BLE_TRAINING = (("epochs", 150), ("patience", 30), ("min_epochs", 10))


@dataclasses.dataclass(frozen=True)
class Case:
    """One ``fit`` run of the benchmark: ``mcu`` (table name) or ``custom`` = (RAM KiB, flash KiB, clock MHz);
    ``training`` = FitConfig's epochs / patience / min_epochs for this kind of data."""

    name: str
    dataset: str
    ram_class: str
    mcu: str | None = None
    custom: tuple[int, int, float] | None = None
    target_note: str = ""
    training: tuple[tuple[str, int], ...] = UJI_TRAINING

    def fit_config(self, out: Path, **kw) -> fit.FitConfig:
        ram, flash, clock = self.custom if self.custom else (None, None, None)
        return fit.FitConfig(dataset=self.dataset, out=str(out / self.name), mcu=self.mcu, ram_kb=ram,
                             flash_kb=flash, clock_mhz=clock, **{**dict(self.training), **kw})


CASES: tuple[Case, ...] = (
    Case("uji-cc2650", "uji", "20 KB", mcu="CC2650", target_note="building-floor accuracy >= 95 % in 20 KB"),
    Case("uji-zones-cc2650", "uji-zones", "20 KB", mcu="CC2650", target_note="macro-F1 >= 85 in 20 KB"),
    Case("sphere-cc2650", "sphere", "20 KB", mcu="CC2650", training=BLE_TRAINING),
    Case("house-a-cc2650", "house-a", "20 KB", mcu="CC2650", training=BLE_TRAINING),
    Case("uji-stm32l4", "uji", "64 KB", mcu="STM32L4"),
    Case("uji-zones-stm32l4", "uji-zones", "64 KB", mcu="STM32L4"),
    Case("sphere-stm32l4", "sphere", "64 KB", mcu="STM32L4", training=BLE_TRAINING),
    Case("house-a-stm32l4", "house-a", "64 KB", mcu="STM32L4", training=BLE_TRAINING),
    Case("sphere-32k", "sphere", "32 KB", custom=(32, 512, 32.0), target_note="macro-F1 >= 82 in 32 KB",
         training=BLE_TRAINING),
)
TARGETS = {  # case name -> (metric, threshold) of issue 16
    "uji-cc2650": ("test_acc_int8", 0.95),
    "uji-zones-cc2650": ("test_f1_int8", 0.85),
    "sphere-32k": ("test_f1_int8", 0.82),
}


def _f(v):
    return None if v in (None, "") else float(v)


def hand_picked_rows(results: Path, dataset: str) -> list[dict]:
    """The committed deployable rows of ``dataset``: ``{"source", "name", "kind" ("nn"|"sklearn"), "val_f1",
    "test_f1", "test_acc", "arena_bytes", "flatbuffer_bytes"}`` (int8 neural rows measured in TFLM, and the
    scikit-learn rows with their estimated RAM and model bytes)."""
    rows = []
    with open(results / "sweep" / "results.csv") as fh:
        for r in csv.DictReader(fh):
            if r["dataset"] != dataset or r["status"] != "ok":
                continue
            if r["family"] in SKLEARN or r["technique"] in ("static_int8", "kd_static_int8"):
                rows.append({"source": "sweep", "name": f"{r['family']} {r['config']} {r['technique']}",
                             "kind": "sklearn" if r["family"] in SKLEARN else "nn", "val_f1": _f(r["val_f1"]),
                             "test_f1": _f(r["test_f1"]), "test_acc": _f(r["test_acc"]),
                             "arena_bytes": _f(r["arena_bytes"]), "flatbuffer_bytes": _f(r["flatbuffer_bytes"])})
    if dataset in ("uji", "uji-zones"):
        for r in json.loads((results / "beyond_uji.json").read_text())["rows"].get(dataset, []):
            rows.append({"source": "beyond_uji", "name": f"mlp {r['name']}", "kind": "nn", "val_f1": r["val_f1"],
                         "test_f1": r["test_f1_int8"], "test_acc": r["test_acc_int8"],
                         "arena_bytes": r["arena_bytes"], "flatbuffer_bytes": r["flatbuffer_bytes"]})
    if dataset == "sphere":
        for r in json.loads((results / "sphere.json").read_text())["rows"]:
            if r.get("status", "ok") != "ok" or r.get("quant", "").startswith("float"):
                continue
            rows.append({"source": "sphere", "name": r["name"], "kind": "sklearn" if r["family"] in SKLEARN else "nn",
                         "val_f1": r["val_f1"], "test_f1": r["test_f1"], "test_acc": r["test_acc"],
                         "arena_bytes": r["arena_bytes"], "flatbuffer_bytes": r["flatbuffer_bytes"]})
    return [r for r in rows if r["test_f1"] is not None and r["arena_bytes"] is not None]


def fitting(rows: list[dict], ram_bytes: int, flash_bytes: int) -> list[dict]:
    return [r for r in rows if r["arena_bytes"] <= ram_bytes and r["flatbuffer_bytes"] <= flash_bytes]


def limits(leaderboard_csv: Path) -> dict:
    """What bounded a search, from its ``leaderboard.csv``: per family the candidates that fit and, for a family of
    which none fits, its smallest RAM / flash need; how many fitting candidates were trained, eliminated, or not
    reached within the budget."""
    with open(leaderboard_csv) as fh:
        rows = list(csv.DictReader(fh))
    fams: dict[str, dict] = {}
    for r in rows:
        f = fams.setdefault(r["family"], {"candidates": 0, "fit": 0, "min_ram_need": None, "min_flash_need": None,
                                          "bare": False})
        f["candidates"] += 1
        f["fit"] += r["fits"] == "True"
        f["bare"] |= r["need_basis"].startswith("arena and flatbuffer alone")
        for k, col in (("min_ram_need", "ram_need_bytes"), ("min_flash_need", "flash_need_bytes")):
            if r[col]:
                f[k] = int(float(r[col])) if f[k] is None else min(f[k], int(float(r[col])))
    status = [r["status"] for r in rows]
    levered = [r for r in rows if r["levers"].startswith(("x^", "aug"))]
    pruned_at = {r["key"]: _pruned_epoch(r) for r in rows if r["status"] == "pruned"}
    first = min(pruned_at.values(), default=None)
    return {"families": fams, "trained": sum(s in ("winner", "complete", "pruned", "failed") for s in status),
            "complete": sum(s in ("winner", "complete") for s in status), "pruned": status.count("pruned"),
            "not_run": status.count("not run"), "does_not_fit": status.count("does not fit"), "first_rung": first,
            "levers_trained": sum(r["status"] in ("winner", "complete", "pruned") for r in levered),
            "levers_first_rung": sum(pruned_at.get(r["key"]) == first for r in levered if first is not None)}


def _pruned_epoch(row: dict) -> int:
    """The epoch named in a pruned row's selection text ("eliminated by successive halving at epoch E (...)")."""
    return int(row["selection"].split(" at epoch ")[1].split(" ")[0])


def refresh_limits(doc: dict, runs: Path) -> dict:
    """Recompute every case's ``limits`` from ``runs/<case>/leaderboard.csv`` where the search folder is present."""
    for c in doc["cases"]:
        lb = Path(runs) / c["case"] / "leaderboard.csv"
        if lb.is_file():
            c["limits"] = limits(lb)
    return doc


def limit_notes(c: dict) -> list[str]:
    """Readable lines of :func:`limits` for one case."""
    lim, t = c.get("limits"), c["target"]
    if not lim:
        return []
    notes = []
    for fam, f in lim["families"].items():
        if f["fit"] == 0:
            ram = "–" if f["min_ram_need"] is None else f"{f['min_ram_need'] / KIB:.1f}"
            flash = "–" if f["min_flash_need"] is None else f"{f['min_flash_need'] / KIB:.1f}"
            what = ("smallest model alone, before any app RAM or TFLM code: arena {} KiB / flatbuffer {} KiB" if f.get("bare")
                    else "smallest whole-program need {} KiB RAM / {} KiB flash").format(ram, flash)
            notes.append(f"no {fam} fits the {t['ram_bytes'] // KIB} KiB / {t['flash_bytes'] // KIB} KiB ({what})")
    notes.append(f"{lim['trained']} trained ({lim['complete']} to the end, {lim['pruned']} eliminated), "
                 f"{lim['not_run']} fitting candidates not reached within the budget")
    if lim.get("levers_trained"):
        notes.append(f"of the {lim['levers_trained']} trained candidates with x^3 or augmentation, "
                     f"{lim['levers_first_rung']} were eliminated at the first rung (epoch {lim['first_rung']})")
    w = c.get("winner")
    if w:
        notes.append(f"winner's validation F1 {100 * w['val_f1_int8']:.2f} vs test F1 {100 * w['test_f1_int8']:.2f}")
    return notes


def compare(case: Case, summary: dict, results: Path) -> dict:
    """The case's row of the report: the winner's figures, the best fitting hand-picked NN row (by test F1), the
    validation-selected baseline, and the issue's target."""
    t = summary["search"]["target"]
    rows = fitting(hand_picked_rows(results, case.dataset), t["ram_bytes"], t["flash_bytes"])
    nn = [r for r in rows if r["kind"] == "nn"]
    sk = [r for r in rows if r["kind"] == "sklearn"]
    w = summary.get("winner")
    s = summary["search"]
    out = {"case": case.name, "dataset": case.dataset, "ram_class": case.ram_class, "target": t,
           "counts": summary.get("counts"), "winner": w,
           "training": {k: s[k] for k in ("epochs", "patience", "min_epochs", "reduction_factor")},
           "hand_picked_best": max(nn, key=lambda r: r["test_f1"]) if nn else None,
           "baseline_by_val": max(sk, key=lambda r: r["val_f1"]) if sk else None,
           "n_hand_picked_fitting": len(nn)}
    if case.name in TARGETS:
        metric, thr = TARGETS[case.name]
        got = None if w is None else w[metric]
        out["issue_target"] = {"metric": metric, "threshold": thr, "value": got,
                               "reached": got is not None and got >= thr, "note": case.target_note}
    hp = out["hand_picked_best"]
    out["reaches_hand_picked"] = None if (w is None or hp is None) else w["test_f1_int8"] >= hp["test_f1"]
    return out


def _pct(v) -> str:
    return "–" if v is None else f"{100 * v:.2f}"


def markdown(doc: dict) -> str:
    """docs/results/fit.md from the benchmark's JSON."""
    m = doc["meta"]
    lines = [
        "# `fit --mcu`: the best model that provably fits the MCU, found by validation alone (issue 16)", "",
        f"Generated by `benchmarks/fit.py` ({m['command']}); {m['machine']}. Each case is one "
        f"`python -m keras_tinyloc fit --dataset D --mcu M --time-budget {m['time_budget_min']:g} --epochs E "
        f"--patience P --min-epochs R --seed {m['seed']} --out runs/fit/<case>` (`{m['device']}` basis; E/P/R per "
        f"case in the table: UJIIndoorLoc 40/10/4, the BLE windows 150/30/10). The search: families MLP, "
        f"MDCSA, Mamba x sizes x input power x augmentation (48 candidates), screened by whole-program RAM and flash "
        f"before training, trained in a seeded order with Optuna's successive halving on the float validation "
        f"macro-F1 (rungs at R, 3R, 9R epochs: eta 3), each survivor converted to "
        f"full int8 and scored on the **validation** split in TFLM; the winner = best int8 validation F1 among those "
        f"that fit, measured as a whole firmware on the emulated Cortex-M4 when the basis is the device; test figures "
        f"are computed for the winner only, after selection.", "",
        "Committed rows (\"best hand-picked\"): the highest test macro-F1 among the int8 neural rows of "
        "`docs/results/` (sweep, beyond_uji, sphere) whose host arena and flatbuffer fit the MCU — chosen with "
        "hindsight and fitted without the app and TFLM runtime that `fit` counts; baselines: the scikit-learn row "
        "(kNN / random forest / logistic regression on uint8 features, estimated RAM) with the best validation F1.", "",
        "| case | MCU (RAM / flash) | winner | val F1 int8 | **test F1 int8** | test acc | RAM / flash need (basis) "
        "| search | best hand-picked (test F1) | baseline by val (test F1) | reaches hand-picked |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for c in doc["cases"]:
        t, w, hp, bl = c["target"], c["winner"], c["hand_picked_best"], c["baseline_by_val"]
        win = "none fits" if w is None else f"{w['key']}"
        need = "–" if w is None else (f"{w['ram_bytes'] / KIB:.1f} / {w['flash_bytes'] / KIB:.1f} KiB "
                                       f"({w['fit_basis'].split(':')[0]})")
        hp_s = "–" if hp is None else f"{hp['name']} ({_pct(hp['test_f1'])})"
        bl_s = "–" if bl is None else f"{bl['name']} ({_pct(bl['test_f1'])})"
        reach = {None: "–", True: "yes", False: "no"}[c["reaches_hand_picked"]]
        tr = "/".join(str(c.get("training", {}).get(k, "?")) for k in ("epochs", "patience", "min_epochs"))
        lines.append(
            f"| {c['case']} | {t['name']} ({t['ram_bytes'] // KIB} / {t['flash_bytes'] // KIB} KiB) | {win} "
            f"| {_pct(w and w['val_f1_int8'])} | **{_pct(w and w['test_f1_int8'])}** | {_pct(w and w['test_acc_int8'])} "
            f"| {need} | {c['counts']}; E/P/R {tr} | {hp_s} | {bl_s} | {reach} |")
    runs = {}
    for c in doc["cases"]:
        runs.setdefault(c.get("command", m["command"]), []).append(c["case"])
    if len(runs) > 1:
        lines += ["", "Cases by invocation: " + "; ".join(f"{', '.join(v)}: {k}" for k, v in runs.items()) + "."]
    lines += ["", "## The issue's targets", ""]
    for c in doc["cases"]:
        it = c.get("issue_target")
        if it:
            lines.append(f"* {c['case']} ({it['note']}): {it['metric']} = {_pct(it['value'])} — "
                         f"**{'reached' if it['reached'] else 'not reached'}**.")
    lines += ["", "## Reading the results", "",
              "* **Validation is the only judge, and on UJIIndoorLoc it is a poor one.** Its validation split is 25 % "
              "of trainingData (the same phones and users as training) while the test set is mostly phones never seen "
              "in training: validation F1 96-99.5 against test 74-90 (see each case below). On that split the powed "
              "(x^3) and augmented recipes score *lower* than plain ones although they are better on the test set "
              "(docs/results/beyond_uji.md), so a validation-only search picks plain MLPs; the hand-picked rows it is "
              "compared with were chosen after looking at test figures.",
              "* **Successive halving favours fast starters.** A candidate is compared with the others at its first "
              "rung (a few epochs); slower-learning recipes (x^3, augmentation, the sequence models) are eliminated "
              "there more often (counts below). Raising --min-epochs trades candidates for epochs.",
              "* **Whole-program fit removes the sequence models from small MCUs.** TFLM with a Mamba's or MDCSA's "
              "kernels plus the app and libc take most of a 128 KiB flash, and a windowed Mamba's arena alone exceeds "
              "20 KiB (the committed rows were fitted on arena and flatbuffer only)."]
    lines += ["", "## What bounded each search", ""]
    for c in doc["cases"]:
        if limit_notes(c):
            lines.append(f"* **{c['case']}**: " + "; ".join(limit_notes(c)) + ".")
    if doc.get("notes"):
        lines += ["", "## What limits it", ""] + [f"* {n}" for n in doc["notes"]]
    if doc.get("not_run"):
        lines += ["", "## Not run", ""] + [f"* {n}" for n in doc["not_run"]]
    return "\n".join(lines) + "\n"
