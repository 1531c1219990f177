"""Full-int8 conversion targets (issue 4), the experiment of ``benchmarks/convert_targets.py``: the paper's under-64 KB
/ under-32 KB configurations, trained briefly, converted to full int8 and run in TFLM.

Per configuration (:data:`CONFIGS`: MDCSA H16L1, H8L1; Mamba H32L1, H16L1, H16L2, H8L1, H4L1) and dataset,
:func:`run_one`: train (few epochs, early stopping on validation F1; cached), ``convert_run`` int8 (zero float ops
required), TFLM-measured test F1 vs the float Keras model, TFLM vs ai-edge-litert agreement, flatbuffer (flash) and
minimal arena (RAM, host 64-bit) next to the paper's "size" (PyTorch weight storage, :func:`paper_lookup`); the
spread of the int8 drop over calibration samples of other seeds and with the converter's min-max ranges; and, when
int8 loses more than a point, :func:`diagnose` (per-tensor int8-vs-float error through TFLM). :func:`markdown` is
the report, :data:`NOTES` its hand-written notes (each states the measurement it rests on).

Device figures (``run_one(..., target="cortex-m4")``, ``benchmarks/convert_targets.py --add-device``): the int8 model
also measured on an emulated Cortex-M4F (``convert --target cortex-m4``: minimal M4 arena, whole-firmware flash and
RAM, exact instructions per window). :func:`attach_device` puts a retrained run's device figures beside a stored row
only when the retraining reproduced the row's float test F1 exactly (training is seeded); otherwise the retrained
run's figures are kept apart (``retrained``), never in the row's place.
"""
from __future__ import annotations

import time
from pathlib import Path
from typing import Sequence

from keras_tinyloc.paths import portable, user_cache_dir

CONFIGS = (("mdcsa", 16, 1), ("mdcsa", 8, 1), ("mamba", 32, 1), ("mamba", 16, 1), ("mamba", 16, 2),
           ("mamba", 8, 1), ("mamba", 4, 1))


def paper_lookup(paper: list[dict], dataset: str, family: str, config: str) -> dict:
    """``{technique: {"f1", "acc", "size_kb", "params", "group"}}`` of the paper-table rows of one configuration
    (``paper`` = :func:`keras_tinyloc.experiments.results.load_paper_tables`' rows)."""
    rows = [r for r in paper if r["dataset"] == dataset and r["family"] == family and r["config"] == config]
    out = {}
    for r in rows:
        out[r["technique"]] = {"f1": r["macro_f1"], "acc": r["accuracy"], "size_kb": r["size_kb"],
                               "params": r["params"], "group": r["group"]}
    return out


def cache_dir() -> Path:
    """Where the trained runs are cached: ``convert_targets`` in the user cache folder
    (:func:`keras_tinyloc.paths.user_cache_dir`: ``$KERAS_TINYLOC_CACHE``, else the platform's), never inside the
    checkout. (The committed rows name ``data/cache/convert_targets/...``: where they were measured, before.)"""
    return user_cache_dir() / "convert_targets"


def run_one(ds, dataset: str, family: str, hidden: int, layers: int, paper: list[dict], *, epochs: int = 40,
            patience: int = 10, batch_size: int = 128, seed: int = 0, retrain: bool = False,
            calib_seeds: Sequence[int] = (1, 2), compare_minmax: bool = True, target: str = "host") -> dict:
    """Train (or reuse, unless ``retrain``) one configuration on ``ds`` and measure its full-int8 conversion.

    ``calib_seeds``: further calibration-sample seeds whose int8 drop gives the spread (the row's own conversion
    uses seed 0 when ``seed`` is 0); ``compare_minmax``: also convert with the converter's min-max ranges. Returns
    one row: the convert report's figures (sizes, arena head/tail, ops, float and int8 test F1/accuracy, drop,
    TFLM = LiteRT agreement, invoke µs, RAM classes, calibration), ``paper``, ``run_dir``, ``train_seconds``,
    ``fidelity_diagnosis`` (:func:`diagnose` when |drop| > 1 point, else None), ``f1_drop_by_calibration_seed`` and
    ``f1_drop_points_minmax``; with ``target="cortex-m4"`` also ``device`` (the convert report's device section:
    :func:`keras_tinyloc.deploy.m4.measure_device`).
    """
    from keras_tinyloc.deploy.convert import ConvertConfig, convert_run
    from keras_tinyloc.training.train import TrainConfig, train

    cache = cache_dir()
    run_dir = cache / dataset / f"{family}_h{hidden}l{layers}"
    t0 = time.perf_counter()
    if retrain or not (run_dir / "model.keras").is_file():
        train(TrainConfig(dataset=dataset, model=family, hidden=hidden, layers=layers, out=str(run_dir),
                          epochs=epochs, patience=patience, batch_size=batch_size, seed=seed,
                          overwrite=True, verbose=False), dataset=ds, log=lambda s: None)
    t_train = time.perf_counter() - t0
    rep = convert_run(ConvertConfig(run_dir=str(run_dir), quant="int8", overwrite=True, target=target), dataset=ds)
    config = f"H{hidden}L{layers}"
    diagnosis = diagnose(run_dir, ds) if abs(rep["f1_drop_points"]) > 1.0 else None
    drops = {0: rep["f1_drop_points"]} if seed == 0 else {}
    if calib_seeds:
        from keras_tinyloc.deploy.convert import convert_model
        from keras_tinyloc.training.train import load_run

        tagger, _, _ = load_run(run_dir)
        for cs in calib_seeds:
            if cs not in drops:
                drops[cs] = convert_model(tagger.emitter, tagger.crf_weights(), ds, "int8", seed=cs)[1]["f1_drop_points"]
    minmax = None
    if compare_minmax:  # the converter's own min-max ranges, same windows (what the fix replaced)
        from keras_tinyloc.deploy.convert import convert_model
        from keras_tinyloc.training.train import load_run

        tagger, _, _ = load_run(run_dir)
        minmax = convert_model(tagger.emitter, tagger.crf_weights(), ds, "int8", seed=seed,
                               calibration="minmax")[1]["f1_drop_points"]
    row = {
        "dataset": dataset, "family": family, "config": config, "params": rep["params"],
        "train_seconds": round(t_train, 1), "convert_total_seconds": rep["seconds"],
        "flatbuffer_bytes": rep["flatbuffer_bytes"], "flatbuffer_bytes_with_names": rep["flatbuffer_bytes_with_names"],
        "arena_bytes": rep["arena_bytes"], "arena_head_bytes": rep["arena_head_bytes"],
        "arena_tail_bytes": rep["arena_tail_bytes"], "arena_search": rep["arena_search"], "n_ops": rep["n_ops"],
        "ops": rep["ops"], "float_ops": rep["float_ops"],
        "test_f1_float": rep["test_f1_float"], "test_f1_int8": rep["test_f1_int8"],
        "test_acc_float": rep["test_acc_float"], "test_acc_int8": rep["test_acc_int8"],
        "f1_drop_points": rep["f1_drop_points"], "share_same_prediction_as_float": rep["share_same_prediction_as_float"],
        "tflm_matches_litert": rep["tflm_matches_litert"], "invoke_us_tflm": rep["invoke_us_tflm"],
        "invoke_us_litert": rep["invoke_us_litert"], "ram_classes": rep["ram_classes"],
        "paper": paper_lookup(paper, dataset, family, config), "run_dir": portable(run_dir),
        "fidelity_diagnosis": diagnosis,
        "f1_drop_by_calibration_seed": {str(k): v for k, v in sorted(drops.items())},
        "calibration": rep["calibration"], "calibration_clipped_tensors": rep["calibration_clipped_tensors"],
        "f1_drop_points_minmax": minmax,
    }
    if rep.get("device"):
        row["device"] = rep["device"]
    return row


# the figures a retrained run is compared on, and kept apart when it does not reproduce the stored row
RETRAIN_FIELDS = ("params", "test_f1_float", "test_f1_int8", "test_acc_float", "test_acc_int8", "f1_drop_points",
                  "flatbuffer_bytes", "arena_bytes", "arena_head_bytes", "arena_tail_bytes", "n_ops", "train_seconds")


def attach_device(old: dict | None, new: dict, date: str) -> dict:
    """The stored row ``old`` with the device figures of ``new`` (the same configuration retrained and measured with
    ``target="cortex-m4"``), if ``new`` reproduced ``old``'s float test F1 exactly (the same trained model) and its
    flatbuffer and host arena bytes (the same int8 graph sizes, what the device figures depend on): ``device`` plus
    ``device_check`` (``reproduced``, the retrained run's own figures, ``date``); every stored figure is kept. If it
    did not reproduce it, the retrained run's figures and its device figures go to ``retrained`` instead
    (``device_check.reproduced`` False) and the row keeps no ``device``: two different runs are not mixed. Without
    ``old``, ``new`` itself (with ``device_check``)."""
    check = {"date": date, **{f"{k}_retrained": new.get(k) for k in RETRAIN_FIELDS}}
    if old is None or "error" in old:
        return {**new, "device_check": {**check, "reproduced": None}}
    out = {k: v for k, v in old.items() if k not in ("device", "device_check", "retrained")}
    ok = (abs(new["test_f1_float"] - old["test_f1_float"]) <= 1e-9
          and all(new[k] == old[k] for k in ("flatbuffer_bytes", "arena_bytes")))
    out["device_check"] = {**check, "reproduced": ok}
    if ok:
        out["device"] = new["device"]
    else:
        out["retrained"] = {**{k: new.get(k) for k in RETRAIN_FIELDS}, "device": new["device"]}
    return out


def diagnose(run_dir: Path, ds, n_windows: int = 100) -> dict:
    """Why did int8 lose more than 1 F1 point? Per-tensor int8-vs-float error through TFLM (tflm.int8_vs_float)."""
    import numpy as np

    from keras_tinyloc.deploy import tflm
    from keras_tinyloc.deploy.convert import convert_emitter
    from keras_tinyloc.training.train import load_run

    tagger, _, _ = load_run(run_dir)
    int8 = convert_emitter(tagger.emitter, "int8", ds.x_train)
    flt = convert_emitter(tagger.emitter, "float")
    idx = np.linspace(0, len(ds.x_test) - 1, min(n_windows, len(ds.x_test))).astype(int)
    rows = tflm.int8_vs_float(int8, flt, ds.x_test[idx])
    in_order = sorted(rows, key=lambda r: r["index"])
    first = next((r for r in in_order if r["mean_err_steps"] > 1.0), None)
    short = lambda r: {k: (round(v, 4) if isinstance(v, float) else v) for k, v in r.items()}  # noqa: E731
    return {"first_op_over_1_step": short(first) if first else None, "worst": [short(r) for r in rows[:5]],
            "output": short(in_order[-1]) if in_order else None}


def spread(r: dict) -> str:
    """``min … max (n)`` of a row's int8 drop over calibration seeds, ``–`` without any."""
    d = list((r.get("f1_drop_by_calibration_seed") or {}).values())
    return f"{min(d):+.2f} … {max(d):+.2f} ({len(d)})" if d else "–"


def markdown(rows: list[dict], meta: dict) -> str:
    """The report of the rows; ``meta`` = ``{"date", "machine", "epochs", "patience", "seed", "notes"}``. The
    target line counts the rows with zero float ops, within 1 F1 point and with TFLM = LiteRT on >= 99 % of
    windows (decided room, and bit-identical outputs)."""
    def pct(v):
        return "–" if v is None else f"{100 * v:.2f}"

    lines = [
        "# Full-int8 conversion targets (issue 4)",
        "",
        f"Generated by `benchmarks/convert_targets.py` on {meta['date']} ({meta['machine']}); training: "
        f"{meta['epochs']} epochs max, patience {meta['patience']}, seed {meta['seed']} — short runs, so absolute F1 is "
        "below the paper's; the point here is int8 vs float fidelity, TFLM execution and memory.",
        "",
        "* **F1 int8** is measured through the TFLM interpreter (tflite-micro host build) with CRF Viterbi on the "
        "dequantized emissions; **F1 float** is the Keras model with the same decoder. Drop in F1 points.",
        "* **flash** = shipped flatbuffer (tensor names stripped; converter output in brackets). **arena** = minimal "
        "working TFLM tensor arena found by bisection (host x86-64 build: head = planned tensor buffers, same as a "
        "Cortex-M build; tail = persistent/bookkeeping, larger on the 64-bit host, so arena is an upper bound).",
        "* **paper size** = the paper's static-int8 'size' for the same configuration (weights only, no activations, "
        "no interpreter).",
        "* **fits (host)** = the paper's RAM classes whose MCU holds the host arena and the flatbuffer: a lower bound "
        "of the need (no TFLM code, app, stack). The whole firmware measured on an emulated Cortex-M4F is in the "
        "section \"Device figures\" below.",
        "* **TFLM = LiteRT**: share of test windows whose int8 outputs are bit-identical / max difference in "
        "quantization steps / share of windows with the same decoded room.",
        "* **drop over calib. seeds**: min … max of the F1 drop over calibration samples drawn with different seeds "
        "(200 training windows each; the row's own conversion uses seed 0, the CLI default).",
        "* **calibration**: activation ranges of the row's conversion — `mse` (the default: each range clipped to "
        "minimise its expected squared int8 error, `keras_tinyloc/deploy/calibrate.py`; clipped tensors in brackets). "
        "**drop min-max** = the same model and windows with the converter's own min-max ranges "
        "(`--calibration minmax`).",
        "",
        "| dataset | model | params | float ops | nodes | flash B | arena B (head/tail) | paper size KB | fits (host) | "
        "F1 float | F1 int8 | drop | drop over calib. seeds | calibration | drop min-max | TFLM = LiteRT | TFLM µs |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        if "error" in r:
            lines.append(f"| {r['dataset']} | {r['family']} {r['config']} | – | – | – | – | – | – | – | – | – | – | – | – | – | "
                         f"error: {r['error']} | – |")
            continue
        fits = ", ".join(k for k, v in r["ram_classes"].items() if v) or "none"
        m = r["tflm_matches_litert"]
        paper_kb = (r["paper"].get("static_int8") or {}).get("size_kb")
        lines.append(
            f"| {r['dataset']} | {r['family']} {r['config']} | {r['params']:,} | {len(r['float_ops'])} | {r['n_ops']} | "
            f"{r['flatbuffer_bytes']:,} ({r['flatbuffer_bytes_with_names']:,}) | {r['arena_bytes']:,} "
            f"({r['arena_head_bytes']:,}/{r['arena_tail_bytes']:,}) | {paper_kb if paper_kb is not None else '–'} | "
            f"{fits} | {pct(r['test_f1_float'])} | {pct(r['test_f1_int8'])} | {r['f1_drop_points']:+.2f} | "
            f"{spread(r)} | {r.get('calibration') or 'minmax'}"
            f"{' (%d)' % r['calibration_clipped_tensors'] if r.get('calibration') == 'mse' else ''} | "
            f"{'–' if r.get('f1_drop_points_minmax') is None else '%+.2f' % r['f1_drop_points_minmax']} | "
            f"{100 * m['share_identical']:.1f} % / {m['max_diff_steps']} / {100 * m['share_same_window_prediction']:.2f} % "
            f"| {r['invoke_us_tflm']:.0f} |")
    ok = [r for r in rows if "error" not in r]
    if ok:
        worst = max(ok, key=lambda r: abs(r["f1_drop_points"]))
        lines += ["", f"Targets: {sum(len(r['float_ops']) == 0 for r in ok)}/{len(ok)} with zero float ops and running "
                  f"in TFLM; {sum(abs(r['f1_drop_points']) <= 1.0 for r in ok)}/{len(ok)} within 1.0 F1 point "
                  f"(largest |drop| {abs(worst['f1_drop_points']):.2f}, {worst['dataset']} {worst['family']} "
                  f"{worst['config']}); {sum(r['tflm_matches_litert']['share_same_window_prediction'] >= 0.99 for r in ok)}"
                  f"/{len(ok)} with TFLM and LiteRT deciding the same room on >= 99 % of windows, "
                  f"{sum(r['tflm_matches_litert']['share_identical'] >= 0.99 for r in ok)}/{len(ok)} with >= 99 % "
                  "bit-identical windows."]
    bad = [r for r in ok if r.get("fidelity_diagnosis")]
    if bad:
        lines += ["", "## Where int8 loses fidelity (|drop| > 1 point)", "",
                  "Mean |int8 − float| per activation tensor in its own quantization steps (TFLM vs the float "
                  "flatbuffer, 100 test windows); a well-quantized tensor shows ≈ 0.25–0.5 steps.", ""]
        for r in bad:
            d = r["fidelity_diagnosis"]
            f = d["first_op_over_1_step"]
            lines.append(f"* **{r['dataset']} {r['family']} {r['config']}** (drop {r['f1_drop_points']:+.2f}): "
                         + (f"first op over 1 step: #{f['index']} {f['op']} `{f['tensor'][-60:]}` "
                            f"({f['mean_err_steps']:.2f} steps, scale {f['scale']:.4g}, float range "
                            f"[{f['float_range'][0]:.3g}, {f['float_range'][1]:.3g}]); " if f else "")
                         + "worst: " + "; ".join(f"#{w['index']} {w['op']} {w['mean_err_steps']:.2f} steps"
                                                 for w in d["worst"][:3])
                         + (f"; output {d['output']['mean_err_steps']:.2f} steps" if d.get("output") else ""))
    lines += device_section(rows, meta)
    lines += ["", "## Notes", ""] + [f"* {n}" for n in meta.get("notes", [])]
    return "\n".join(lines) + "\n"


DEVICE_MCUS = ("CC2650", "STM32L4")  # the 20 KB-class and 64 KB-class MCUs (keras_tinyloc.deploy.mcu.RAM_CLASSES)


def _kib(v) -> str:
    return f"{v / 1024:.1f}"


def device_section(rows: list[dict], meta: dict) -> list[str]:
    """The device figures of the rows measured on the emulated Cortex-M4F (``device``, or ``retrained.device`` for a
    retrained run that did not reproduce its row), and the rows not re-measured with ``meta["device_not_measured"]``
    (the reason). Empty when no row has device figures."""
    measured = [r for r in rows if r.get("device") or (r.get("retrained") or {}).get("device")]
    if not measured:
        return []
    d0 = (measured[0].get("device") or measured[0]["retrained"]["device"])
    reason = meta.get("device_not_measured", "not measured")
    out = ["", "## Device figures: the firmware on an emulated Cortex-M4F", "",
           f"`benchmarks/convert_targets.py --add-device` ({meta.get('device_date', '?')}): each configuration's run "
           "trained again with the settings above (seed 0; the runs behind the rows were no longer cached)"
           + (f" — {meta['device_note']} —" if meta.get("device_note") else "") + ", converted as the rows "
           f"were, and measured by `convert --target cortex-m4`: {d0['board']}, TFLM {d0['tflm']}, the project's "
           "`tflm_app/stm32/main.cc` linked for the model with exactly its ops (-Os, --gc-sections, newlib-nano). "
           "A row gets the device figures only when the retrained run reproduced its float test F1 exactly and the "
           "conversion its flatbuffer and host arena bytes; "
           "otherwise they are shown for the retrained run, marked, and the row's figures above are left as they "
           "were. **int8 F1 now** = the same conversion's int8 test F1 through the TFLM host wheel installed today "
           "(the rows' int8 F1 above were measured with the wheel of their date).", "",
           "M4 arena = minimal working arena on the M4 (the host 64-bit figure of the same conversion in brackets); "
           "RAM = M4 arena + static data + heap + stack high-water mark (the sketch running a session); flash in "
           "KiB = TFLM + model + app + libc = whole firmware; instructions = exact count per window (QEMU TCG plugin);"
           f" latency / energy on the 64 KB-class MCU: {d0['cost_assumptions']['note']} Outputs = share of the "
           "first 64 test windows whose int8 outputs equal the host TFLM's byte for byte. Fits = MCUs of the "
           "paper's Table 1 that hold the whole firmware (RAM and flash) on a core that runs TFLM.", "",
           "| dataset | model | retrained: float F1 = row's? / int8 F1 now | M4 arena B (host) | RAM B | flash KiB | "
           "instructions / window | STM32L4 latency / energy | outputs = host TFLM | fits (device) |",
           "|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        dev = r.get("device") or (r.get("retrained") or {}).get("device")
        if not dev:
            out.append(f"| {r['dataset']} | {r['family']} {r['config']} | not re-measured: {reason} | | | | | | | |")
            continue
        c = r.get("device_check") or {}
        retr = "–"
        if c:
            same_float = abs(c["test_f1_float_retrained"] - r["test_f1_float"]) <= 1e-9
            retr = (f"{'yes' if same_float else '**no**'} ({100 * c['test_f1_float_retrained']:.2f}) / "
                    f"{100 * c['test_f1_int8_retrained']:.2f}")
            if not c.get("reproduced") and same_float:  # same trained model, another int8 graph today
                retr += (f"; **another int8 graph today**: {c['n_ops_retrained']} nodes, "
                         f"{c['flatbuffer_bytes_retrained']:,} B flatbuffer, {c['arena_bytes_retrained']:,} B host "
                         f"arena (row: {r['n_ops']}, {r['flatbuffer_bytes']:,}, {r['arena_bytes']:,}); figures of "
                         "today's graph")
        host = c.get("arena_bytes_retrained") or r.get("arena_bytes")
        sp = dev["ram_split"]
        m = dev["mcu"].get("STM32L4", {})
        lat = f"{m['latency_ms']:.2f} ms / {m['energy_uj']:.0f} µJ" if m.get("latency_ms") is not None else "–"
        fits = [k for k, v in dev["mcu"].items() if v["fits"]]
        out.append(f"| {r['dataset']} | {r['family']} {r['config']} | {retr} | {dev['arena_bytes']:,} ({host:,}) | "
                   f"{dev['ram_bytes']:,} = {sp['arena']:,} + {sp['static']:,} + {sp['heap']:,} + {sp['stack']:,} | "
                   f"{_kib(dev['flash_tflm_bytes'])} + {_kib(dev['flash_model_bytes'])} + "
                   f"{_kib(dev['flash_app_bytes'])} + {_kib(dev['flash_libc_bytes'])} = **{_kib(dev['flash_bytes'])}** "
                   f"| {dev['instructions_per_invoke']:,} | {lat} | {100 * dev['outputs_identical_share']:.0f} % of "
                   f"{dev['n_compared']} | {', '.join(fits) or 'none'} |")
    devs = [(r, r.get("device") or r["retrained"]["device"]) for r in measured]
    ratio = [d["arena_bytes"] / ((r.get("device_check") or {}).get("arena_bytes_retrained") or r["arena_bytes"])
             for r, d in devs]
    tflm_share = [d["flash_tflm_bytes"] / d["flash_bytes"] for _, d in devs]
    fits = "; ".join(f"{name} {sum(d['mcu'][name]['fits'] for _, d in devs)}" for name in DEVICE_MCUS
                     if name in d0["mcu"])
    out += ["", f"Device summary over the {len(devs)} measured rows (of {len(rows)}): whole firmware fits {fits}; "
            f"M4 arena / host arena {min(ratio):.2f}–{max(ratio):.2f}; TFLM {100 * min(tflm_share):.0f}–"
            f"{100 * max(tflm_share):.0f} % of the firmware's flash; "
            f"{sum(d['outputs_identical_share'] == 1.0 for _, d in devs)}/{len(devs)} with every compared output "
            "equal to the host TFLM's."]
    return out


NOTES: list[str] = [
    "int8 ranges: rows use MSE-clipped activation ranges (convert's default since this benchmark's 2026-11-25 "
    "12:00 run; `keras_tinyloc/deploy/calibrate.py`); with the converter's min-max ranges ('drop min-max') 31/35 rows were "
    "within 1 point (misses house-b Mamba H8L1 +3.59, house-d H8L1 +1.78, house-c H16L2 +1.18, uji-zones MDCSA H16L1 "
    "-1.25), with MSE ranges 34/35. Cause of the min-max misses: ops that need one scale on both sides (UNPACK, "
    "PACK, CONCATENATION) gave the scan's per-step tensors the whole sequence's range, and the read-out / gate / "
    "out_proj / residual tensors are heavy-tailed (a typical value ~4 int8 steps). Remaining miss: house-d Mamba "
    "H16L2 +1.29 (+0.92 … +1.29 over calibration seeds; min-max +0.91). The calibration sample alone moves the "
    "drop of one model by up to 1.4 points (house-b H8L1 +0.17 … +1.56): on the houses' test sets (smallest "
    "classes 17-18 windows) the 1-point target sits inside that spread. Quantization-aware fine-tuning was tried "
    "as the next lever: [qat.md](qat.md).",
    "TFLM vs LiteRT: the two interpreters requantize int8 results with different rounding, so bit-identical "
    "outputs cannot be expected: the TFLM wheel uses gemmlowp's double rounding, ai-edge-litert's reference kernels "
    "single rounding (TFLITE_SINGLE_ROUNDING) and its optimized kernels (used here) differ from both by one step on "
    "~0.1 % of FULLY_CONNECTED outputs — each equals an independent NumPy computation exactly "
    "(tests/deploy/test_tflm.py::test_litert_rounds_once_where_tflm_rounds_twice). With 20 x C outputs per window most "
    "windows contain a 1-step difference somewhere and Mamba's chained MULs amplify it, so the agreement that "
    "means something — the decoded room — is the one held to the >= 99 % target.",
    "Flash: the converter's fused tensor names ('a;b;c/Tensordot/MatMul') were up to 3/4 of the flatbuffer "
    "(Mamba: 89 KB of which 66 KB names); convert ships the flatbuffer with names stripped (same graph, "
    "16-byte-aligned buffers, bit-identical TFLM outputs).",
    "RAM: Mamba's arena is dominated by (1, T, E, N) int8 scan tensors (T x E x N bytes each, several alive at "
    "once: 5,120 B each for H8 at T=20) plus ~190 B of host bookkeeping per node (88 nodes for L1, 173 for L2); "
    "MDCSA's by per-node bookkeeping (tail) — its activations (head) are 3-7 KB. On a 32-bit Cortex-M the tail "
    "is smaller (toolchain facts: up to ~1.9x smaller for many-node graphs), so these host arenas are upper "
    "bounds.",
    "Paper 'size' is PyTorch weight storage (params x 1 byte for static int8): no activations, no interpreter. "
    "Our flash column is the complete deployable flatbuffer (weights, graph, quantization parameters).",
]


def add_device_rows(doc: dict, datasets: Sequence[str], configs, save=lambda d: None, log=print, **train) -> dict:
    """Device figures for the stored rows of ``doc`` (``docs/results/convert_targets.json``: ``{"meta", "rows"}``)
    of ``datasets`` x ``configs`` that have no ``device_check`` yet, in place: each configuration trained (or its
    cached run reused) and measured by :func:`run_one` with ``target="cortex-m4"`` (the extra calibration seeds and
    the min-max conversion skipped: the stored ones are kept), then :func:`attach_device`. ``train``: run_one's
    training options (epochs, patience, batch_size, seed, retrain). ``save(doc)`` after each configuration;
    ``doc["meta"]["device_date"]`` = the last one's time. The target is checked before any training."""
    from keras_tinyloc.data.registry import load_dataset
    from keras_tinyloc.deploy.convert import resolve_target
    from keras_tinyloc.experiments.results import load_paper_tables

    resolve_target("cortex-m4", "int8")
    rows = {(r["dataset"], r["family"], r["config"]): r for r in doc["rows"]}
    paper, _ = load_paper_tables()
    for dataset in datasets:
        ds = None
        for family, hidden, layers in configs:
            key = (dataset, family, f"H{hidden}L{layers}")
            old = rows.get(key)
            if old is not None and "device_check" in old:
                continue
            ds = ds or load_dataset(dataset)
            t0 = time.perf_counter()
            new = run_one(ds, dataset, family, hidden, layers, paper, calib_seeds=(), compare_minmax=False,
                          target="cortex-m4", **train)
            date = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
            doc["rows"] = merge_row(rows, attach_device(old, new, date))
            doc["meta"]["device_date"] = date
            c, d = rows[key]["device_check"], new["device"]
            log(f"{dataset} {family} H{hidden}L{layers}: {time.perf_counter() - t0:.0f} s, float F1 "
                f"{c['test_f1_float_retrained']:.4f} (row {old and old.get('test_f1_float')}; reproduced "
                f"{c['reproduced']}), M4 arena {d['arena_bytes']} B, RAM {d['ram_bytes']} B, flash {d['flash_bytes']} B")
            save(doc)
    return doc


def merge_row(rows: dict, row: dict) -> list[dict]:
    """Put ``row`` into ``rows`` (keyed by ``(dataset, family, config)``, replacing an older measurement of the same
    configuration) and return every row sorted by that key (the order of the JSON and the report)."""
    rows[(row["dataset"], row["family"], row["config"])] = row
    return sorted(rows.values(), key=lambda r: (r["dataset"], r["family"], r["config"]))


def render_meta(meta: dict) -> dict:
    """The meta of a re-render from the JSON: the stored notes of the paper tables (``paper_tables...``) followed
    by the current :data:`NOTES`."""
    return dict(meta, notes=[n for n in meta.get("notes", []) if n.startswith("paper_tables")] + NOTES)


def parse_configs(specs: Sequence[str] | None) -> tuple[tuple[str, int, int], ...]:
    """``["mamba:8:1", ...]`` -> ``(("mamba", 8, 1), ...)``; None or empty -> :data:`CONFIGS`."""
    from keras_tinyloc.errors import TinyLocError

    if not specs:
        return CONFIGS
    out = []
    for c in specs:
        parts = c.split(":")
        if len(parts) != 3 or not parts[1].isdigit() or not parts[2].isdigit():
            raise TinyLocError(f"--configs {c!r}: expected FAMILY:H:L, e.g. mamba:8:1")
        out.append((parts[0], int(parts[1]), int(parts[2])))
    return tuple(out)
