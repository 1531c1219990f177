"""Benchmark: the paper's under-64 KB / under-32 KB configurations, trained briefly, converted to full int8 and run in
TFLM. Writes docs/results/convert_targets.{json,md}.

Per configuration (MDCSA H16L1, H8L1; Mamba H32L1, H16L1, H16L2, H8L1, H4L1) and dataset:
:func:`keras_tinyloc.experiments.convert_targets.run_one` (train, ``convert_run`` int8, TFLM vs float and vs
ai-edge-litert, flash and arena next to the paper's "size"); the report is
:func:`keras_tinyloc.experiments.convert_targets.markdown`.

    .venv/bin/python benchmarks/convert_targets.py [--datasets house-a uji-zones] [--epochs 40]

Runs are cached under ``$KERAS_TINYLOC_CACHE/convert_targets`` (reused unless ``--retrain``).

    .venv/bin/python benchmarks/convert_targets.py --add-device --datasets house-a uji-zones

``--add-device`` measures each configuration of ``--datasets`` / ``--configs`` whose stored row has no device figures
on the emulated Cortex-M4F (its run trained again if not cached; the extra calibration seeds and the min-max
conversion are skipped) and attaches them with :func:`keras_tinyloc.experiments.convert_targets.attach_device`: only to
a row whose float test F1 the run reproduced; every stored figure is kept. ``--not-measured-reason`` is the text the
report gives for the rows without device figures.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
import traceback
from pathlib import Path

from _bootstrap import ROOT  # noqa: E402,F401  (first: sets up the environment, see _bootstrap)

from keras_tinyloc.errors import cli_errors  # noqa: E402
from keras_tinyloc.experiments import convert_targets as ct  # noqa: E402


@cli_errors
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
    p.add_argument("--add-device", action="store_true",
                   help="add device figures (emulated Cortex-M4) to the stored rows of --datasets/--configs lacking them")
    p.add_argument("--not-measured-reason", default=None,
                   help="with --add-device: why the other rows have no device figures (shown in the report)")
    p.add_argument("--device-note", default=None,
                   help="with --add-device: a note on where the runs came from (shown in the report)")
    args = p.parse_args(argv)
    from keras_tinyloc.paths import atomic_write_json, atomic_write_text

    out = Path(args.out)
    json_path = out / "convert_targets.json"
    if args.render_only:
        doc = json.loads(json_path.read_text())
        atomic_write_text(out / "convert_targets.md", ct.markdown(doc["rows"], ct.render_meta(doc["meta"])))
        return 0
    configs = ct.parse_configs(args.configs)
    if args.add_device:
        return add_device(args, json_path, out, configs)

    from keras_tinyloc.data.registry import load_dataset
    from keras_tinyloc.experiments.results import load_paper_tables

    paper, paper_notes = load_paper_tables()
    old = json.loads(json_path.read_text()) if json_path.is_file() else {"rows": []}
    rows = {(r["dataset"], r["family"], r["config"]): r for r in old.get("rows", [])}
    for dataset in args.datasets:
        ds = load_dataset(dataset)
        for family, hidden, layers in configs:
            config = f"H{hidden}L{layers}"
            t0 = time.perf_counter()
            try:
                r = ct.run_one(ds, dataset, family, hidden, layers, paper, epochs=args.epochs,
                               patience=args.patience, batch_size=args.batch_size, seed=args.seed,
                               retrain=args.retrain, calib_seeds=args.calib_seeds, compare_minmax=args.compare_minmax)
            except Exception as exc:  # record and go on: one failing configuration must not hide the others
                traceback.print_exc()
                r = {"dataset": dataset, "family": family, "config": config,
                     "error": f"{type(exc).__name__}: {str(exc)[:300]}"}
            ordered = ct.merge_row(rows, r)
            print(f"{dataset} {family} {config}: {time.perf_counter() - t0:.1f} s "
                  + (r.get("error") or f"F1 {r['test_f1_float']:.4f} -> {r['test_f1_int8']:.4f}, "
                     f"flash {r['flatbuffer_bytes']} B, arena {r['arena_bytes']} B"), flush=True)
            meta = {"date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
                    "machine": f"{os.cpu_count()} CPU cores, TFLM host build", "epochs": args.epochs,
                    "patience": args.patience, "seed": args.seed, "notes": paper_notes + ct.NOTES}
            atomic_write_json(json_path, {"meta": meta, "rows": ordered})
            atomic_write_text(out / "convert_targets.md", ct.markdown(ordered, meta))
    return 0


def add_device(args, json_path: Path, out: Path, configs) -> int:
    """``--add-device``: see the module docstring. The JSON and the report are rewritten after every configuration."""
    from keras_tinyloc.paths import atomic_write_json, atomic_write_text

    doc = json.loads(json_path.read_text())
    doc["meta"].update({k: v for k, v in (("device_not_measured", args.not_measured_reason),
                                          ("device_note", args.device_note)) if v})

    def save(d):
        atomic_write_json(json_path, d)
        atomic_write_text(out / "convert_targets.md", ct.markdown(d["rows"], ct.render_meta(d["meta"])))

    ct.add_device_rows(doc, args.datasets, configs, save=save, epochs=args.epochs, patience=args.patience,
                       batch_size=args.batch_size, seed=args.seed, retrain=args.retrain)
    return 0


if __name__ == "__main__":
    sys.exit(main())
