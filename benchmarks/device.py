"""Benchmark (issue 12, "Device truth"): each model family's firmware on an emulated Cortex-M4F, the flash diet
(build flags and TFLM options), and where the streaming step model's arena goes. Writes docs/results/device.{json,md}.

Per model (:func:`keras_tinyloc.experiments.device_budget.build_cases`: Mamba H8L1 and MDCSA H16L1 on house-a, the
Mamba's streaming step model plain and folded, the UJI MLP of beyond_uji): device figures, every variant of
:data:`keras_tinyloc.deploy.flash_diet.VARIANTS`, and for step models the RecordingMicroAllocator breakdown; the report
is :func:`keras_tinyloc.experiments.device_budget.markdown`. Needs the TFLM kit, the Arm toolchain and QEMU; the -O2
and stripped-strings variants build two more TFLM libraries (minutes each, cached).

    .venv/bin/python benchmarks/device.py [--cases mamba-h8l1 uji-mlp] [--variants default diet] [--epochs 10]
"""
from __future__ import annotations

import argparse
import datetime
import json
import sys
import time
from pathlib import Path

from _bootstrap import ROOT  # noqa: E402,F401  (first: sets up the environment, see _bootstrap)

from keras_tinyloc.errors import TinyLocError, cli_errors  # noqa: E402
from keras_tinyloc.experiments import device_budget as db  # noqa: E402


@cli_errors
def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--cases", nargs="+", default=list(db.CASE_NAMES), choices=db.CASE_NAMES)
    p.add_argument("--variants", nargs="+", default=None, help="flash-diet variants (default: all)")
    p.add_argument("--epochs", type=int, default=10)
    p.add_argument("--out", default=str(ROOT / "docs" / "results"))
    p.add_argument("--markdown-only", action="store_true", help="rewrite the .md from the existing .json")
    args = p.parse_args(argv)
    from keras_tinyloc import paths
    from keras_tinyloc.deploy import flash_diet, m4, tflm_kit

    out = Path(args.out)
    json_path = out / "device.json"
    if args.markdown_only:  # findings recomputed from the stored measurements
        doc = json.loads(json_path.read_text())
        doc["notes"] = db.notes(doc["cases"])
        paths.atomic_write_json(json_path, doc)
        paths.atomic_write_text(out / "device.md", db.markdown(doc))
        return 0
    variants = [flash_diet.get_variant(v) for v in (args.variants or [v.name for v in flash_diet.VARIANTS])]
    missing = m4.tools_missing_reason()
    if missing:
        raise TinyLocError(f"benchmarks/device.py: {missing}")
    t0 = time.monotonic()
    work = paths.user_cache_dir() / "device_bench" / f"epochs{args.epochs}"  # trained models, reused per --epochs
    cases = db.build_cases(work, args.cases, epochs=args.epochs)
    results = []
    for case in cases:
        results.append(db.measure_case(case, variants))
        print(f"{case.name}: done in {results[-1]['seconds']} s", flush=True)
    compiler = tflm_kit.compiler_version("m4").splitlines()[0].split()[-1]
    doc = {"meta": {"command": "python benchmarks/device.py " + " ".join(argv if argv is not None else sys.argv[1:]),
                    "date": datetime.date.today().isoformat(), "seconds": round(time.monotonic() - t0, 1),
                    "compiler": compiler, "epochs": args.epochs},
           "cases": results, "notes": db.notes(results)}
    paths.atomic_write_json(json_path, doc)
    paths.atomic_write_text(out / "device.md", db.markdown(doc))
    print(f"wrote {json_path} and device.md")
    return 0


if __name__ == "__main__":
    sys.exit(main())
