"""Does quantization-aware fine-tuning (:mod:`keras_tinyloc.training.qat`) close the int8 gap left by post-training
quantization? The experiment of ``benchmarks/qat.py``.

For every trained run of :mod:`keras_tinyloc.experiments.convert_targets` (its rows carry ``run_dir``),
:func:`run_one` fine-tunes with simulated int8 (``QATConfig`` defaults: 10 epochs max, patience 5, lr 3e-4, MSE
ranges), converts the fine-tuned model to full int8 (MSE ranges) with calibration seeds :data:`SEEDS` and measures
test macro-F1 through TFLM; :func:`run_control` does the same fine-tuning in plain float (``--no-simulation``) then
the same post-training quantization, to separate quantization awareness from extra training. Drops are in F1 points
against the float F1 of the run the fine-tuning started from (``drop_vs_start``) and against the fine-tuned model's
own float F1 (``drop_vs_own_float``). :func:`markdown` is the report.
"""
from __future__ import annotations

import time
from pathlib import Path
from typing import Sequence

from keras_tinyloc.paths import from_portable, portable, user_cache_dir

SEEDS = (0, 1, 2)


def cache_dir(name: str = "qat") -> Path:
    """Where the fine-tuned runs are cached: ``<name>`` in the user cache folder
    (:func:`keras_tinyloc.paths.user_cache_dir`: ``$KERAS_TINYLOC_CACHE``, else the platform's), never inside the
    checkout (``qat``; the control runs in ``qat-control``). (The committed rows name ``data/cache/...``: where they
    were measured, before.)"""
    return user_cache_dir() / name


def finetune_and_convert(run_dir: Path, out: Path, ds, simulate: bool):
    """Fine-tune ``run_dir`` into ``out`` (cached), convert with each calibration seed of SEEDS; returns
    ``(config, metrics, test F1 float, {seed: test F1 int8 through TFLM})``."""
    from keras_tinyloc.deploy.convert import convert_model
    from keras_tinyloc.training.qat import QATConfig, qat_finetune
    from keras_tinyloc.training.train import load_run

    if not (out / "model.keras").is_file():
        qat_finetune(QATConfig(run_dir=str(run_dir), out=str(out), overwrite=True, simulate=simulate), dataset=ds,
                     log=lambda s: None)
    tagger, config, metrics = load_run(out)
    f1_int8, f1_float = {}, None
    for seed in SEEDS:
        _, rep = convert_model(tagger.emitter, tagger.crf_weights(), ds, "int8", seed=seed)
        f1_int8[str(seed)], f1_float = rep["test_f1_int8"], rep["test_f1_float"]
    return config, metrics, f1_float, f1_int8


def run_one(ptq: dict, ds, cache: Path) -> dict:
    """QAT of one post-training row ``ptq`` (a convert_targets row: ``run_dir``, ``test_f1_float``,
    ``f1_drop_points``, ``f1_drop_by_calibration_seed``) into ``cache/<dataset>/<run name>``. Returns the row:
    ``f1_float_start``, ``f1_float_qat``, ``f1_int8_qat`` / ``drop_vs_start`` / ``drop_vs_own_float`` per
    calibration seed, ``ptq_drops`` (seed 0 first), ``simulated_tensors``, ``sim_int8_test_f1``, timing."""
    run_dir = from_portable(ptq["run_dir"])
    out = cache / ptq["dataset"] / run_dir.name
    t0 = time.perf_counter()
    config, metrics, f1_float, f1_int8 = finetune_and_convert(run_dir, out, ds, simulate=True)
    t_qat = time.perf_counter() - t0
    start = ptq["test_f1_float"]
    ptq_drops = [ptq["f1_drop_points"]] + [v for k, v in (ptq.get("f1_drop_by_calibration_seed") or {}).items()
                                           if k != "0"]
    return {"dataset": ptq["dataset"], "family": ptq["family"], "config": ptq["config"], "run_dir": portable(run_dir),
            "qat_run_dir": portable(out), "qat_seconds": round(t_qat, 1), "qat_best_epoch": metrics.get("best_epoch"),
            "simulated_tensors": config["qat"]["simulated_tensors"],
            "f1_float_start": start, "f1_float_qat": f1_float, "f1_int8_qat": f1_int8,
            "sim_int8_test_f1": metrics.get("sim_int8_test_f1"),
            "drop_vs_start": {k: round(100 * (start - v), 3) for k, v in f1_int8.items()},
            "drop_vs_own_float": {k: round(100 * (f1_float - v), 3) for k, v in f1_int8.items()},
            "ptq_drops": ptq_drops}


def run_control(row: dict, ds, cache: Path) -> dict:
    """The control: the same fine-tuning in plain float (``--no-simulation``) from the same run, then PTQ (MSE)."""
    out = cache / row["dataset"] / Path(row["run_dir"]).name
    _, metrics, f1_float, f1_int8 = finetune_and_convert(from_portable(row["run_dir"]), out, ds, simulate=False)
    start = row["f1_float_start"]
    return {"run_dir": portable(out), "best_epoch": metrics.get("best_epoch"), "f1_float": f1_float, "f1_int8": f1_int8,
            "drop_vs_start": {k: round(100 * (start - v), 3) for k, v in f1_int8.items()},
            "drop_vs_own_float": {k: round(100 * (f1_float - v), 3) for k, v in f1_int8.items()}}


def rng(vals) -> str:
    """``min … max`` with signs and two decimals, ``–`` for none."""
    vals = list(vals)
    return f"{min(vals):+.2f} … {max(vals):+.2f}" if vals else "–"


def markdown(rows: list[dict], meta: dict) -> str:
    """The report of the rows (``meta``: ``date``, ``machine``). The summary counts, over every calibration seed,
    the runs whose int8 stays within 1 point of its own float model and those losing at most 0.5 points against
    the starting float F1 — for PTQ, QAT and (where measured) the control."""
    lines = [
        "# Quantization-aware fine-tuning vs post-training int8 (issues 4 and 7)",
        "",
        f"Generated by `benchmarks/qat.py` on {meta['date']} ({meta['machine']}). Starting points: the trained runs of "
        "[convert_targets.md](convert_targets.md). QAT = `python -m keras_tinyloc qat RUN_DIR --out QAT_DIR` "
        "(simulated int8 with straight-through gradients on every int8 tensor of the Mamba graph and every layer "
        "output, 10 epochs max, early stopping on simulated-int8 validation F1, lr 3e-4), then `convert` "
        "(MSE ranges). All int8 figures are test macro-F1 through TFLM; drops in F1 points over calibration seeds "
        "0, 1, 2 (min … max).",
        "",
        "* **PTQ drop**: int8 vs float of the trained run (post-training, MSE ranges; convert_targets.json).",
        "* **QAT drop vs start**: int8 of the fine-tuned run vs the float F1 of the run it started from — the "
        "figure that decides whether QAT closes the gap (negative = int8 better than the starting float model).",
        "",
        "* **control**: the same fine-tuning in plain float (`qat --no-simulation`: same epochs, lr, early stopping "
        "on float validation F1), then the same PTQ — it separates quantization awareness from extra training.",
        "",
        "| dataset | model | float start | PTQ drop | QAT float | QAT drop vs start | QAT drop vs own float | "
        "control float | control drop vs start | control drop vs own float | QAT best epoch |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        c = r.get("control")
        ctl = (f"{100 * c['f1_float']:.2f} | {rng(c['drop_vs_start'].values())} | {rng(c['drop_vs_own_float'].values())}"
               if c else "– | – | –")
        lines.append(
            f"| {r['dataset']} | {r['family']} {r['config']} | {100 * r['f1_float_start']:.2f} | {rng(r['ptq_drops'])} | "
            f"{100 * r['f1_float_qat']:.2f} | {rng(r['drop_vs_start'].values())} | "
            f"{rng(r['drop_vs_own_float'].values())} | {ctl} | {r['qat_best_epoch']} |")
    if rows:
        n = len(rows)
        ptq_fid = sum(max(abs(v) for v in r["ptq_drops"]) <= 1.0 for r in rows)
        qat_fid = sum(max(abs(v) for v in r["drop_vs_own_float"].values()) <= 1.0 for r in rows)
        ptq_loss = sum(max(r["ptq_drops"]) <= 0.5 for r in rows)
        qat_loss = sum(max(r["drop_vs_start"].values()) <= 0.5 for r in rows)
        lines += ["", f"Summary over {n} runs (every calibration seed): int8 within 1 point of its own float model — "
                  f"PTQ {ptq_fid}/{n}, QAT {qat_fid}/{n}; int8 losing at most 0.5 points against the trained run's "
                  f"float F1 (gains allowed) — PTQ {ptq_loss}/{n}, QAT {qat_loss}/{n}"]
        ctl = [r for r in rows if r.get("control")]
        if ctl:
            m = len(ctl)
            lines[-1] += (f"; control (float fine-tuning + PTQ): within 1 point of its own float "
                          f"{sum(max(abs(v) for v in r['control']['drop_vs_own_float'].values()) <= 1.0 for r in ctl)}"
                          f"/{m}, losing ≤ 0.5 against the start "
                          f"{sum(max(r['control']['drop_vs_start'].values()) <= 0.5 for r in ctl)}/{m}")
        lines[-1] += "."
    return "\n".join(lines) + "\n"


def select_ptq_rows(rows: Sequence[dict], datasets: Sequence[str] | None = None,
                    configs: Sequence[str] | None = None) -> list[dict]:
    """The convert_targets rows to fine-tune: without failed rows, restricted to ``datasets`` and to ``configs``
    (``"family:H:L"``) when given."""
    from keras_tinyloc.experiments.convert_targets import parse_configs

    out = [r for r in rows if "error" not in r]
    if datasets:
        out = [r for r in out if r["dataset"] in datasets]
    if configs:
        want = {(f, f"H{h}L{l}") for f, h, l in parse_configs(configs)}
        out = [r for r in out if (r["family"], r["config"]) in want]
    return out
