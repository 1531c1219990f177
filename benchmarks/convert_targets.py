"""Benchmark: the paper's under-64 KB / under-32 KB configurations, trained briefly, converted to full int8 and run in
TFLM. Writes docs/results/convert_targets.{json,md}.

Per configuration (MDCSA H16L1, H8L1; Mamba H32L1, H16L1, H16L2, H8L1, H4L1) and dataset: train (few epochs,
early stopping on validation F1), ``convert_run`` int8 (zero float ops required), TFLM-measured test F1 vs the
float Keras model, TFLM vs ai-edge-litert agreement, flatbuffer (flash) and minimal arena (RAM, host 64-bit) next
to the paper's "size" (PyTorch weight storage).

    .venv/bin/python benchmarks/convert_targets.py [--datasets house-a uji-zones] [--epochs 40]

Runs are cached under ``$KERAS_TINYLOC_CACHE/convert_targets`` (reused unless ``--retrain``).
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
import traceback
from pathlib import Path

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

CONFIGS = (("mdcsa", 16, 1), ("mdcsa", 8, 1), ("mamba", 32, 1), ("mamba", 16, 1), ("mamba", 16, 2),
           ("mamba", 8, 1), ("mamba", 4, 1))


def paper_lookup(paper: list[dict], dataset: str, family: str, config: str) -> dict:
    rows = [r for r in paper if r["dataset"] == dataset and r["family"] == family and r["config"] == config]
    out = {}
    for r in rows:
        out[r["technique"]] = {"f1": r["macro_f1"], "acc": r["accuracy"], "size_kb": r["size_kb"],
                               "params": r["params"], "group": r["group"]}
    return out


def run_one(ds, dataset: str, family: str, hidden: int, layers: int, args, paper: list[dict]) -> dict:
    from keras_tinyloc.deploy.convert import ConvertConfig, convert_run
    from keras_tinyloc.training.train import TrainConfig, train

    cache = Path(os.environ.get("KERAS_TINYLOC_CACHE", ROOT / "data" / "cache")) / "convert_targets"
    run_dir = cache / dataset / f"{family}_h{hidden}l{layers}"
    t0 = time.perf_counter()
    if args.retrain or not (run_dir / "model.keras").is_file():
        train(TrainConfig(dataset=dataset, model=family, hidden=hidden, layers=layers, out=str(run_dir),
                          epochs=args.epochs, patience=args.patience, batch_size=args.batch_size, seed=args.seed,
                          overwrite=True, verbose=False), dataset=ds, log=lambda s: None)
    t_train = time.perf_counter() - t0
    rep = convert_run(ConvertConfig(run_dir=str(run_dir), quant="int8", overwrite=True), dataset=ds)
    config = f"H{hidden}L{layers}"
    diagnosis = diagnose(run_dir, ds) if abs(rep["f1_drop_points"]) > 1.0 else None
    drops = {0: rep["f1_drop_points"]} if args.seed == 0 else {}
    if args.calib_seeds:
        from keras_tinyloc.deploy.convert import convert_model
        from keras_tinyloc.training.train import load_run

        tagger, _, _ = load_run(run_dir)
        for cs in args.calib_seeds:
            if cs not in drops:
                drops[cs] = convert_model(tagger.emitter, tagger.crf_weights(), ds, "int8", seed=cs)[1]["f1_drop_points"]
    minmax = None
    if args.compare_minmax:  # the converter's own min-max ranges, same windows (what the fix replaced)
        from keras_tinyloc.deploy.convert import convert_model
        from keras_tinyloc.training.train import load_run

        tagger, _, _ = load_run(run_dir)
        minmax = convert_model(tagger.emitter, tagger.crf_weights(), ds, "int8", seed=args.seed,
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
        "paper": paper_lookup(paper, dataset, family, config), "run_dir": str(run_dir),
        "fidelity_diagnosis": diagnosis,
        "f1_drop_by_calibration_seed": {str(k): v for k, v in sorted(drops.items())},
        "calibration": rep["calibration"], "calibration_clipped_tensors": rep["calibration_clipped_tensors"],
        "f1_drop_points_minmax": minmax,
    }
    return row


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
    d = list((r.get("f1_drop_by_calibration_seed") or {}).values())
    return f"{min(d):+.2f} … {max(d):+.2f} ({len(d)})" if d else "–"


def markdown(rows: list[dict], meta: dict) -> str:
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
        "* **TFLM = LiteRT**: share of test windows whose int8 outputs are bit-identical / max difference in "
        "quantization steps / share of windows with the same decoded room.",
        "* **drop over calib. seeds**: min … max of the F1 drop over calibration samples drawn with different seeds "
        "(200 training windows each; the row's own conversion uses seed 0, the CLI default).",
        "* **calibration**: activation ranges of the row's conversion — `mse` (the default: each range clipped to "
        "minimise its expected squared int8 error, `keras_tinyloc/deploy/calibrate.py`; clipped tensors in brackets). "
        "**drop min-max** = the same model and windows with the converter's own min-max ranges "
        "(`--calibration minmax`).",
        "",
        "| dataset | model | params | float ops | nodes | flash B | arena B (head/tail) | paper size KB | fits | "
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
    lines += ["", "## Notes", ""] + [f"* {n}" for n in meta.get("notes", [])]
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--datasets", nargs="+", default=["house-a"])
    p.add_argument("--configs", nargs="+", default=None, help="e.g. mamba:8:1 mdcsa:16:1 (default: all seven)")
    p.add_argument("--epochs", type=int, default=40)
    p.add_argument("--patience", type=int, default=10)
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--retrain", action="store_true")
    p.add_argument("--calib-seeds", type=int, nargs="*", default=[1, 2],
                   help="extra calibration-sample seeds to measure the spread of the int8 drop (seed 0 = the row)")
    p.add_argument("--no-compare-minmax", dest="compare_minmax", action="store_false",
                   help="skip the second conversion with the converter's min-max ranges")
    p.add_argument("--out", default=str(ROOT / "docs" / "results"))
    p.add_argument("--render-only", action="store_true", help="rewrite the .md from the existing .json")
    args = p.parse_args(argv)
    if args.render_only:
        from keras_tinyloc.paths import atomic_write_text

        doc = json.loads((Path(args.out) / "convert_targets.json").read_text())
        meta = dict(doc["meta"], notes=[n for n in doc["meta"].get("notes", []) if n.startswith("paper_tables")]
                    + NOTES)
        atomic_write_text(Path(args.out) / "convert_targets.md", markdown(doc["rows"], meta))
        return 0

    from keras_tinyloc.data.registry import load_dataset
    from keras_tinyloc.paths import atomic_write_json, atomic_write_text
    from keras_tinyloc.experiments.results import load_paper_tables

    configs = CONFIGS if not args.configs else tuple(
        (c.split(":")[0], int(c.split(":")[1]), int(c.split(":")[2])) for c in args.configs)
    paper, paper_notes = load_paper_tables()
    out = Path(args.out)
    json_path = out / "convert_targets.json"
    old = json.loads(json_path.read_text()) if json_path.is_file() else {"rows": []}
    rows = {(r["dataset"], r["family"], r["config"]): r for r in old.get("rows", [])}
    for dataset in args.datasets:
        ds = load_dataset(dataset)
        for family, hidden, layers in configs:
            key = (dataset, family, f"H{hidden}L{layers}")
            t0 = time.perf_counter()
            try:
                rows[key] = run_one(ds, dataset, family, hidden, layers, args, paper)
            except Exception as exc:  # record and go on: one failing configuration must not hide the others
                traceback.print_exc()
                rows[key] = {"dataset": dataset, "family": family, "config": key[2],
                             "error": f"{type(exc).__name__}: {str(exc)[:300]}"}
            r = rows[key]
            print(f"{dataset} {family} {key[2]}: {time.perf_counter() - t0:.1f} s "
                  + (r.get("error") or f"F1 {r['test_f1_float']:.4f} -> {r['test_f1_int8']:.4f}, "
                     f"flash {r['flatbuffer_bytes']} B, arena {r['arena_bytes']} B"), flush=True)
            meta = {"date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
                    "machine": f"{os.cpu_count()} CPU cores, TFLM host build", "epochs": args.epochs,
                    "patience": args.patience, "seed": args.seed, "notes": paper_notes + NOTES}
            ordered = sorted(rows.values(), key=lambda r: (r["dataset"], r["family"], r["config"]))
            atomic_write_json(json_path, {"meta": meta, "rows": ordered})
            atomic_write_text(out / "convert_targets.md", markdown(ordered, meta))
    return 0


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

if __name__ == "__main__":
    sys.exit(main())
