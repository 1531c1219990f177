"""Benchmark: does quantization-aware fine-tuning (``keras_tinyloc.training.qat``) close the int8 gap left by post-training
quantization? Writes docs/results/qat.{json,md}.

For every trained run of ``benchmarks/convert_targets.py`` (cached under ``$KERAS_TINYLOC_CACHE/convert_targets``;
run that benchmark first): :func:`keras_tinyloc.experiments.qat_vs_ptq.run_one` (fine-tune with simulated int8,
convert with calibration seeds 0, 1, 2, test macro-F1 through TFLM), beside the post-training figures of the same
run from convert_targets.json; ``--control`` adds :func:`~keras_tinyloc.experiments.qat_vs_ptq.run_control`.

    .venv/bin/python benchmarks/qat.py [--datasets house-a ...] [--configs mamba:8:1 ...] [--markdown-only]
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

from _bootstrap import ROOT  # noqa: E402,F401  (first: sets up the environment, see _bootstrap)

from keras_tinyloc.errors import cli_errors  # noqa: E402
from keras_tinyloc.experiments import qat_vs_ptq as qp  # noqa: E402


@cli_errors
def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--datasets", nargs="+", default=None, help="default: every dataset in convert_targets.json")
    p.add_argument("--configs", nargs="+", default=None, help="e.g. mamba:8:1 (default: all)")
    p.add_argument("--out", default=str(ROOT / "docs" / "results"))
    p.add_argument("--markdown-only", action="store_true", help="rewrite the .md from the existing .json")
    p.add_argument("--control", action="store_true",
                   help="add the control (float fine-tuning + PTQ) to the rows of the existing qat.json")
    args = p.parse_args(argv)
    from keras_tinyloc.paths import atomic_write_json, atomic_write_text

    out = Path(args.out)
    json_path = out / "qat.json"
    if args.markdown_only:
        doc = json.loads(json_path.read_text())
        atomic_write_text(out / "qat.md", qp.markdown(doc["rows"], doc["meta"]))
        return 0
    from keras_tinyloc.data.registry import load_dataset

    datasets = {}
    if args.control:
        doc = json.loads(json_path.read_text())
        for r in doc["rows"]:
            if r.get("control"):
                continue
            t0 = time.perf_counter()
            ds = datasets.setdefault(r["dataset"], load_dataset(r["dataset"]))
            r["control"] = qp.run_control(r, ds, qp.cache_dir("qat-control"))
            print(f"control {r['dataset']} {r['family']} {r['config']}: {time.perf_counter() - t0:.0f} s", flush=True)
            atomic_write_json(json_path, doc)
            atomic_write_text(out / "qat.md", qp.markdown(doc["rows"], doc["meta"]))
        return 0
    ptq_rows = qp.select_ptq_rows(json.loads((out / "convert_targets.json").read_text())["rows"], args.datasets,
                                  args.configs)
    old = json.loads(json_path.read_text()) if json_path.is_file() else {"rows": []}
    rows = {(r["dataset"], r["family"], r["config"]): r for r in old["rows"]}
    for ptq in ptq_rows:
        ds = datasets.setdefault(ptq["dataset"], load_dataset(ptq["dataset"]))
        t0 = time.perf_counter()
        r = qp.run_one(ptq, ds, qp.cache_dir("qat"))
        rows[(r["dataset"], r["family"], r["config"])] = r
        print(f"{r['dataset']} {r['family']} {r['config']}: {time.perf_counter() - t0:.0f} s, float "
              f"{r['f1_float_start']:.4f} -> QAT int8 {r['f1_int8_qat']}", flush=True)
        meta = {"date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
                "machine": f"{os.cpu_count()} CPU cores, TFLM host build"}
        ordered = sorted(rows.values(), key=lambda r: (r["dataset"], r["family"], r["config"]))
        atomic_write_json(json_path, {"meta": meta, "rows": ordered})
        atomic_write_text(out / "qat.md", qp.markdown(ordered, meta))
    return 0


if __name__ == "__main__":
    sys.exit(main())
