"""MDCSA and Mamba on ``uji-zones`` with the robust UJIIndoorLoc recipe (issue 3 quality target), the experiment of
``benchmarks/uji_families.py``.

Issue 3: "the best unconstrained float model of each family must at least match the random forest on both
labelings" (RF on the real test set: zones macro-F1 0.779 / acc 0.852; building-floor 0.888 / 0.904). With the
plain recipe MDCSA H16L1 reached 0.760 and Mamba H32L1 0.753 zones F1. :func:`run_row` retrains both families with
the robust recipe of :mod:`keras_tinyloc.experiments.beyond` (found on MLPs): AP selection ``heard:0.01``, per-scan
±8 dB offset + AP drop-out 0.2 (:mod:`keras_tinyloc.training.augment`, a fresh draw every batch, via
``training.trainer.make_trainer``) and optionally the "powed" input ``x**3`` (:func:`keras_tinyloc.models.powed_emitter`).
Early stopping on the random-split validation F1 (``train.fit_tagger``); a second run of the same recipe with
validation = held-out phones (``beyond.phone_holdout``) gives the recipe-selection score. Nothing is chosen on the
test set: :func:`seed_groups` and :func:`family_selection` choose by validation only. :func:`markdown` is the report.

No library default is changed: this only composes ``models.build_emitter``, ``make_trainer`` and
``train.fit_tagger``. Rows (one JSON dict each, ``<out>/<row>[@phones]/row.json``) carry ``name, family, H, L,
recipe, seed, validation, params, val_f1, val_acc, test_f1, test_acc, matches_rf, best_epoch, epochs_run,
seconds`` and, once converted (:func:`convert_row`), ``test_f1_int8, test_acc_int8, arena_bytes,
flatbuffer_bytes``.
"""
from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Callable, Sequence

from keras_tinyloc.errors import TinyLocError

RF = {"f1": 0.779, "acc": 0.852}  # random forest, uji-zones, real test set (issue 3)
DATASET = "uji-zones"
AUG = dict(p_drop=0.2, offset_db=8.0)
RECIPES = {
    "plain": dict(ap="all", power=1, p_drop=0.0, offset_db=0.0),
    "aug": dict(ap="heard:0.01", power=1, **AUG),
    "pow3-aug": dict(ap="heard:0.01", power=3, **AUG),
    "pow3": dict(ap="heard:0.01", power=3, p_drop=0.0, offset_db=0.0),
}
# name -> (family, H, L, recipe, lr[, seed])
ROWS = {
    "mdcsa-h16-plain": ("mdcsa", 16, 1, "plain", 3e-3),
    "mdcsa-h16-aug": ("mdcsa", 16, 1, "aug", 3e-3),
    "mdcsa-h16-pow3-aug": ("mdcsa", 16, 1, "pow3-aug", 3e-3),
    "mdcsa-h32-pow3-aug": ("mdcsa", 32, 1, "pow3-aug", 3e-3),
    "mamba-h32-plain": ("mamba", 32, 1, "plain", 3e-3),
    "mamba-h32-aug": ("mamba", 32, 1, "aug", 3e-3),
    "mamba-h32-pow3-aug": ("mamba", 32, 1, "pow3-aug", 3e-3),
    "mamba-h16-pow3-aug": ("mamba", 16, 1, "pow3-aug", 3e-3),
    "mamba-h8-pow3-aug": ("mamba", 8, 1, "pow3-aug", 3e-3),
    "mdcsa-h32-pow3": ("mdcsa", 32, 1, "pow3", 3e-3),
    "mamba-h32-pow3": ("mamba", 32, 1, "pow3", 3e-3),
    # seed spread of the pow3-aug rows of the issue-3 sizes (seed = last field)
    "mdcsa-h16-pow3-aug-s1": ("mdcsa", 16, 1, "pow3-aug", 3e-3, 1),
    "mdcsa-h16-pow3-aug-s2": ("mdcsa", 16, 1, "pow3-aug", 3e-3, 2),
    "mamba-h32-pow3-aug-s1": ("mamba", 32, 1, "pow3-aug", 3e-3, 1),
    "mamba-h32-pow3-aug-s2": ("mamba", 32, 1, "pow3-aug", 3e-3, 2),
    "mdcsa-h16-aug-s1": ("mdcsa", 16, 1, "aug", 3e-3, 1),
    "mdcsa-h16-aug-s2": ("mdcsa", 16, 1, "aug", 3e-3, 2),
    "mamba-h32-aug-s1": ("mamba", 32, 1, "aug", 3e-3, 1),
    "mamba-h32-aug-s2": ("mamba", 32, 1, "aug", 3e-3, 2),
    "mdcsa-h16-pow3": ("mdcsa", 16, 1, "pow3", 3e-3),
    "mdcsa-h16-pow3-s1": ("mdcsa", 16, 1, "pow3", 3e-3, 1),
    "mdcsa-h16-pow3-s2": ("mdcsa", 16, 1, "pow3", 3e-3, 2),
    "mamba-h32-pow3-s1": ("mamba", 32, 1, "pow3", 3e-3, 1),
    "mamba-h32-pow3-s2": ("mamba", 32, 1, "pow3", 3e-3, 2),
    "mdcsa-h16-plain-s1": ("mdcsa", 16, 1, "plain", 3e-3, 1),
    "mdcsa-h16-plain-s2": ("mdcsa", 16, 1, "plain", 3e-3, 2),
    "mamba-h32-plain-s1": ("mamba", 32, 1, "plain", 3e-3, 1),
    "mamba-h32-plain-s2": ("mamba", 32, 1, "plain", 3e-3, 2),
}
SEED_ROWS = tuple(n for n, v in ROWS.items() if len(v) > 5)
EPOCHS, PATIENCE = 40, 10


def row_spec(name: str) -> tuple[str, int, int, str, float, int]:
    """``(family, H, L, recipe, lr, seed)`` of a row of :data:`ROWS` (seed 0 unless given)."""
    family, hidden, layers, recipe, lr = ROWS[name][:5]
    seed = ROWS[name][5] if len(ROWS[name]) > 5 else 0
    return family, hidden, layers, recipe, lr, seed


def run_row(name: str, base, phones_base, out: Path, validation: str = "random", log: Callable[[str], None] = print,
            overwrite: bool = False) -> dict:
    """Train one row of :data:`ROWS` with its recipe (module doc) and evaluate it in float on ``uji-zones``.

    Args:
        base: the ``uji-zones`` WindowDataset (random validation split); phones_base: the same with held-out-phone
            validation (``beyond.phone_holdout``), used when ``validation == "phones"``.
        out: runs go to ``out/<name>`` (``out/<name>@phones``): a RUN_DIR plus ``row.json``; a finished row is
            read back unless ``overwrite``.
    Returns:
        The row dict (module doc).
    """
    import keras

    from keras_tinyloc.training.augment import AugmentConfig, inverse_span
    from keras_tinyloc.experiments.beyond import load_selected
    from keras_tinyloc.training.trainer import make_trainer
    from keras_tinyloc.models import build_emitter, powed_emitter
    from keras_tinyloc.models.tagger import CRFTagger
    from keras_tinyloc.training.train import (TrainConfig, check_labels, count_params, evaluate, fit_tagger, run_config,
                                     write_run)

    family, hidden, layers, recipe, lr, seed = row_spec(name)
    rc = RECIPES[recipe]
    run_dir = out / (name + ("" if validation == "random" else f"@{validation}"))
    if (run_dir / "row.json").is_file() and not overwrite:
        return json.loads((run_dir / "row.json").read_text())
    ds, names = load_selected(DATASET, rc["ap"], base=base if validation == "random" else phones_base)
    check_labels(ds)
    tcfg = TrainConfig(dataset=DATASET, model=family, hidden=hidden, layers=layers, out=str(run_dir),
                       epochs=EPOCHS, patience=PATIENCE, lr=lr, seed=seed, overwrite=True, verbose=False,
                       dataset_options={} if rc["ap"] == "all" else {"features": names})
    keras.utils.set_random_seed(seed)
    emitter = powed_emitter(build_emitter(family, ds.input_shape, ds.n_classes, hidden, layers), ds.input_shape,
                            rc["power"])
    tagger = CRFTagger(emitter, name=f"{family}_h{hidden}l{layers}_crf")
    aug = AugmentConfig(p_drop=rc["p_drop"], offset_db=rc["offset_db"])
    trainer = make_trainer(tagger, inverse_span(ds.scaling.low, ds.scaling.high), aug, seed=seed)
    trainer.compile(optimizer=keras.optimizers.Adam(lr))
    t0 = time.perf_counter()
    fit = fit_tagger(trainer, tagger, ds, tcfg, log=log)
    m = evaluate(tagger, ds)
    row = {
        "name": name, "family": family, "H": hidden, "L": layers, "recipe": recipe, "recipe_detail": rc, "lr": lr,
        "seed": seed, "validation": validation, "holdout_phones": ds.meta.get("holdout_phones"),
        "n_features": ds.n_features, "params": count_params(tagger),
        "val_f1": m["val_f1"], "val_acc": m["val_acc"], "test_f1": m["test_f1"], "test_acc": m["test_acc"],
        "matches_rf": bool(m["test_f1"] >= RF["f1"]),
        "best_epoch": fit["best_epoch"], "epochs_run": fit["epochs_run"],
        "seconds": round(time.perf_counter() - t0, 1),
    }
    config = run_config(tcfg, ds, tagger)
    config["uji_families"] = {"row": name, "recipe": recipe, **rc}
    write_run(run_dir, tagger, config, {**m, "params": row["params"], **fit}, overwrite=True)
    (run_dir / "row.json").write_text(json.dumps(row, indent=1))
    log(f"{run_dir.name}: val F1 {row['val_f1']:.4f} test F1 {row['test_f1']:.4f} acc {row['test_acc']:.4f} "
        f"best epoch {row['best_epoch']}/{row['epochs_run']} {row['seconds']} s")
    return row


def convert_row(name: str, base, out: Path, log: Callable[[str], None] = print) -> dict:
    """Full-int8 conversion of a row's run, measured through TFLM on the test set; adds ``test_f1_int8`` etc."""
    from keras_tinyloc.deploy import convert
    from keras_tinyloc.experiments.beyond import load_selected

    run_dir = out / name
    row = json.loads((run_dir / "row.json").read_text())
    if not (run_dir / "model.keras").is_file():
        raise TinyLocError(f"{run_dir}: no model.keras (rerun the row with --overwrite)")
    ds, _ = load_selected(DATASET, RECIPES[row["recipe"]]["ap"], base=base)
    rep = convert.convert_run(convert.ConvertConfig(run_dir=str(run_dir), quant="int8", overwrite=True), dataset=ds)
    row.update({k: rep[k] for k in ("test_f1_float", "test_f1_int8", "test_acc_int8", "arena_bytes",
                                    "flatbuffer_bytes")})
    (run_dir / "row.json").write_text(json.dumps(row, indent=1))
    log(f"{name}: int8 TFLM test F1 {row['test_f1_int8']:.4f} acc {row['test_acc_int8']:.4f} "
        f"arena {row['arena_bytes']} B flatbuffer {row['flatbuffer_bytes']} B")
    return row


SUMMARY = """## Summary

* **Target met for both families, float and int8** with the powed input (+ augmentation): every powed row
  (`pow3`, `pow3-aug`; 16 runs over MDCSA H16/H32, Mamba H8/H16/H32, seeds 0/1/2) has test macro-F1 ≥ 0.779. The recipe
  with the best mean held-out-phone validation F1 over 3 seeds is `pow3-aug` for both families: MDCSA H16L1 test F1
  0.8144 (0.8037–0.8335), Mamba H32L1 0.8384 (0.8372–0.8404), 3/3 seeds ≥ RF each, test accuracy 0.89 (RF 0.852).
  int8 in TFLM: MDCSA H16L1 0.8281, MDCSA H32L1 0.8402, Mamba H32L1 0.8464.
* The plain recipe (issue 3's) misses on every seed (MDCSA H16 0.742–0.770, Mamba H32 0.722–0.731); augmentation
  without the powed input is not enough (MDCSA 0/3, Mamba 1/3 seeds); the powed input alone already meets it
  (MDCSA H16 0.813–0.829, Mamba H32 0.784–0.806); augmentation on top adds ~4 points to Mamba and nothing to
  MDCSA H16 (0.814 vs 0.822 mean, within seed spread).
* **How much the validation tells (honestly: little).** The random split ranks `plain` first for MDCSA (it would pick
  a model that misses RF) and `pow3` for Mamba. Held-out phones put `pow3-aug` first for both families (means: MDCSA
  pow3-aug 0.8185 / aug 0.8177 / pow3 0.8148 / plain 0.8117; Mamba 0.8218 / pow3 0.8210 / aug 0.8126 / plain 0.8115),
  but the gaps between recipe means (0.001–0.01) are smaller than the seed spread (≈ 0.02), so it cannot really
  *resolve* the recipes; what makes the target robust is that every powed configuration meets it. The powed
  input and the ±8 dB / 0.2 augmentation were taken over from the MLP work (`docs/results/beyond_uji.md`), whose
  recipe was fixed after an exploratory run that looked at MLP test figures; nothing here was tuned on the test set,
  but the recipe itself is not a blind choice.
"""

# Measured by hand with the two commands it shows (2026-11-25); kept in the report so that a re-render keeps it.
TRAIN_COMMAND_SECTION = """## The same recipe through the `train` command (all 520 APs, seed 0)

`train` now has opt-in `--input-power K` (x**K inside the model: K−1 int8 MULs, the device still feeds min-max scaled
RSSI) and `--offset-db D` (one uniform ±D dB offset per training window, drawn every batch); `--ap-dropout` already
existed. Without the AP selection of the rows above, one run each (2026-11-25, this machine):

| command | test macro-F1 float | test acc | int8 in TFLM |
|---|---|---|---|
| `python -m keras_tinyloc train --dataset uji-zones --model mamba --hidden 32 --layers 1 --input-power 3 --offset-db 8 --ap-dropout 0.2 --epochs 40 --patience 10 --out R` | 0.8245 | 0.8740 | 0.8182 (`python -m keras_tinyloc convert R`: 16,320 B arena, 45,072 B flatbuffer) |
| `python -m keras_tinyloc train --dataset uji-zones --model mdcsa --hidden 16 --layers 1 --input-power 3 --offset-db 8 --ap-dropout 0.2 --epochs 40 --patience 10 --out R` | 0.7969 | 0.8767 | — |

Both are above the random forest's 0.779 (one seed each; the three-seed rows above give the spread).
"""


def load_rows(out: Path) -> list[dict]:
    """Every ``out/*/row.json``: the random-validation rows first, each group in :data:`ROWS` order (unknown rows
    last)."""
    rows = [json.loads(p.read_text()) for p in sorted(Path(out).glob("*/row.json"))]
    order = {n: i for i, n in enumerate(ROWS)}
    rows.sort(key=lambda r: (r["validation"] != "random", order.get(r["name"], 99)))
    return rows


def split_rows(rows: Sequence[dict]) -> tuple[list[dict], dict[str, dict]]:
    """``(random-validation rows, {name: held-out-phone row})``."""
    rand = [r for r in rows if r["validation"] == "random"]
    ph = {r["name"]: r for r in rows if r["validation"] == "phones"}
    return rand, ph


def seed_groups(rows: Sequence[dict]) -> list[tuple[str, int, int, str, list[dict], list[float]]]:
    """``[(family, H, L, recipe, runs, phone val F1s)]`` of the random-validation rows grouped by configuration and
    recipe, in first-seen order, for the groups with at least three runs (seeds); the phone list holds the
    held-out-phone validation F1 of those runs that have a phone row."""
    rand, ph = split_rows(rows)
    groups: dict = {}
    for r in rand:
        groups.setdefault((r["family"], r["H"], r["L"], r["recipe"]), []).append(r)
    out = []
    for (fam, h, l, rec), rs in groups.items():
        if len(rs) < 3:
            continue
        out.append((fam, h, l, rec, rs, [ph[r["name"]]["val_f1"] for r in rs if r["name"] in ph]))
    return out


def family_selection(rows: Sequence[dict], family: str) -> dict | None:
    """The choices of one family, by validation only (None if it has no seed-0 row).

    Returns ``{"by_random"``: the seed-0 row (not in :data:`SEED_ROWS`) with the best random-split val F1,
    ``"by_phones"``: the one whose held-out-phone twin has the best val F1 (None without phone rows),
    ``"phone_val"``: that twin's val F1, ``"recipes"``: ``[(label, group)]`` — the :func:`seed_groups` group with
    the best mean random-split val F1 and the one with the best mean phone val F1, among the family's groups whose
    every run has a phone row (empty when none)}``.
    """
    rand, ph = split_rows(rows)
    fr = [r for r in rand if r["family"] == family and r["name"] not in SEED_ROWS]
    if not fr:
        return None
    by_rand = max(fr, key=lambda r: r["val_f1"])
    fp = [r for r in fr if r["name"] in ph]
    by_ph = max(fp, key=lambda r: ph[r["name"]]["val_f1"]) if fp else None
    cand = [g for g in seed_groups(rows) if g[0] == family and len(g[5]) == len(g[4])]
    recipes = []
    if cand:
        for key, label in ((lambda g: sum(r["val_f1"] for r in g[4]) / len(g[4]), "random-split"),
                           (lambda g: sum(g[5]) / len(g[5]), "held-out-phone")):
            recipes.append((label, max(cand, key=key)))
    return {"by_random": by_rand, "by_phones": by_ph, "phone_val": by_ph and ph[by_ph["name"]]["val_f1"],
            "recipes": recipes}


def mean_range(v: Sequence[float]) -> str:
    """``mean (min–max)`` with four decimals."""
    return f"{sum(v) / len(v):.4f} ({min(v):.4f}–{max(v):.4f})"


def markdown(rows: list[dict]) -> str:
    """The report ``docs/results/uji_families.md`` of the rows (:func:`load_rows` order)."""
    rand, ph = split_rows(rows)
    lines = [
        "# MDCSA and Mamba on `uji-zones` with the robust recipe (issue 3 quality target)",
        "",
        "Generated by `benchmarks/uji_families.py` (`.venv/bin/python benchmarks/uji_families.py`; "
        "`--report-only` rebuilds this file from `runs/uji_families/*/row.json`). Target: float test macro-F1 ≥ "
        f"{RF['f1']} (random forest; its accuracy {RF['acc']}) on the real `validationData.csv` (1,111 scans). "
        f"Training: Adam, batch 128, up to {EPOCHS} epochs, patience {PATIENCE}, early stopping on the random-split "
        "validation F1, seed 0 unless the row name ends in -sN, one run per row, 2 shared CPU cores. Recipes: `plain` = all 520 APs, no augmentation "
        "(the issue-3 recipe); `aug` = APs heard in ≥ 1 % of training scans (273), per-scan ±8 dB offset + AP drop-out "
        "0.2 (`keras_tinyloc.training.augment`, via `beyond.make_trainer`); `pow3-aug` = `aug` + powed input x³ in front of the "
        "emitter (two `Multiply` layers); `pow3` = the same AP selection and powed input without augmentation. \"val F1 phones\" = the same recipe retrained with validation = held-out phones 1, 3, 6, 7 "
        "(`beyond.phone_holdout`), the selection score closer to the test set's new-phone shift.",
        "",
        SUMMARY,
        "## Every run (validation = the loader's random split unless stated)",
        "",
        "| row | family | H | L | recipe | params | val F1 (random) | val F1 (phones) | test F1 | test acc | "
        "≥ RF F1 0.779 | best epoch / run | seconds |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rand:
        p = ph.get(r["name"])
        lines.append(
            f"| {r['name']} | {r['family']} | {r['H']} | {r['L']} | {r['recipe']} | {r['params']:,} | "
            f"{r['val_f1']:.4f} | {p['val_f1']:.4f} |" if p else
            f"| {r['name']} | {r['family']} | {r['H']} | {r['L']} | {r['recipe']} | {r['params']:,} | "
            f"{r['val_f1']:.4f} | – |")
        lines[-1] += (f" {r['test_f1']:.4f} | {r['test_acc']:.4f} | {'yes' if r['matches_rf'] else 'no'} | "
                      f"{r['best_epoch']} / {r['epochs_run']} | {r['seconds']} |")
    lines += ["", "## Recipe selection at the issue-3 sizes, seeds 0/1/2 (never on the test set)", "",
              "Mean (min–max) over the seeds; \"val phones\" = the same recipe and seed retrained with held-out-phone "
              "validation.", "",
              "| family | H | L | recipe | seeds | val F1 random | val F1 phones | test F1 | test acc | "
              "seeds ≥ RF F1 |", "|---|---|---|---|---|---|---|---|---|---|"]
    fmt = mean_range
    for fam, h, l, rec, rs, pv in seed_groups(rows):
        lines.append(f"| {fam} | {h} | {l} | {rec} | {len(rs)} | {fmt([r['val_f1'] for r in rs])} | "
                     f"{fmt(pv) if pv else '–'} | {fmt([r['test_f1'] for r in rs])} | "
                     f"{fmt([r['test_acc'] for r in rs])} | {sum(r['matches_rf'] for r in rs)}/{len(rs)} |")
    lines += ["", "## Selection per family", ""]
    for fam in ("mdcsa", "mamba"):
        sel = family_selection(rows, fam)
        if sel is None:
            continue
        by_rand, by_ph = sel["by_random"], sel["by_phones"]
        s = (f"* **{fam}**, one run per configuration (seed 0): best random-split val F1 → `{by_rand['name']}` "
             f"(test F1 {by_rand['test_f1']:.4f}, {'meets' if by_rand['matches_rf'] else 'misses'} RF)")
        if by_ph is not None:
            s += (f"; best held-out-phone val F1 → `{by_ph['name']}` (val {sel['phone_val']:.4f}, "
                  f"test F1 {by_ph['test_f1']:.4f}, {'meets' if by_ph['matches_rf'] else 'misses'} RF)")
        lines.append(s + ".")
        for label, (_, h, l, rec, rs, _pv) in sel["recipes"]:
            tf = [r["test_f1"] for r in rs]
            lines.append(f"  Recipe with the best mean {label} val F1 over seeds (H{h}L{l}): `{rec}` → test F1 "
                         f"{fmt(tf)}, {sum(r['matches_rf'] for r in rs)}/{len(rs)} seeds ≥ RF.")
    conv = [r for r in rand if "test_f1_int8" in r]
    if conv:
        lines += ["", "## int8 in TFLM (full-int8 flatbuffer, host TFLM build, test set)", "",
                  "| row | test F1 float | test F1 int8 | test acc int8 | int8 ≥ RF F1 | arena B | flatbuffer B |",
                  "|---|---|---|---|---|---|---|"]
        for r in conv:
            lines.append(f"| {r['name']} | {r['test_f1_float']:.4f} | {r['test_f1_int8']:.4f} | "
                         f"{r['test_acc_int8']:.4f} | {'yes' if r['test_f1_int8'] >= RF['f1'] else 'no'} | "
                         f"{r['arena_bytes']:,} | {r['flatbuffer_bytes']:,} |")
    lines += ["", "## Commands", "", "```",
              ".venv/bin/python benchmarks/uji_families.py --validation random phones   # every row, both validations",
              ".venv/bin/python benchmarks/uji_families.py --rows ROW ... --overwrite       # retrain rows",
              ".venv/bin/python benchmarks/uji_families.py --rows ROW --convert ROW         # + int8 TFLM of a row",
              ".venv/bin/python benchmarks/uji_families.py --report-only                    # rebuild this file",
              "```", "", TRAIN_COMMAND_SECTION.rstrip("\n")]
    return "\n".join(lines) + "\n"


def results_json(rows: list[dict]) -> str:
    """The text of ``docs/results/uji_families.json``: the RF reference and every row."""
    return json.dumps({"rf": RF, "rows": rows}, indent=1)
