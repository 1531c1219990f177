"""Benchmark (issue 7, UJIIndoorLoc): the ablation of :mod:`keras_tinyloc.experiments.beyond`, every row trained, converted to
full int8 and evaluated through TFLM on the real test set. Writes docs/results/beyond_uji.{json,md}.

    .venv/bin/python benchmarks/beyond_uji.py [--datasets uji-zones uji] [--rows aug-h64 ...] [--out runs/beyond]

Each row is ``python -m keras_tinyloc beyond <dataset> --row <name> --out <out>``; finished rows are reused from
``<out>/<dataset>/<row>/row.json`` (``--overwrite`` retrains). ``--report-only`` rebuilds the tables from them. The
report is :mod:`keras_tinyloc.experiments.beyond_report`.
"""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def main(argv=None) -> int:
    from keras_tinyloc.experiments import beyond, beyond_report
    from keras_tinyloc.paths import atomic_write_json, atomic_write_text

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--datasets", nargs="+", default=["uji-zones", "uji"], choices=beyond.DATASETS)
    p.add_argument("--rows", nargs="+", default=list(beyond.ROWS), choices=list(beyond.ROWS))
    p.add_argument("--recipes", nargs="*", default=list(beyond.RECIPES), choices=list(beyond.ROWS),
                   help="rows retrained with held-out-phone validation to choose a recipe")
    p.add_argument("--out", default=str(ROOT / "runs" / "beyond"))
    p.add_argument("--overwrite", action="store_true")
    p.add_argument("--report-only", action="store_true")
    p.add_argument("--results", default=str(ROOT / "docs" / "results" / "beyond_uji"))
    a = p.parse_args(argv)
    results: dict[str, list[dict]] = {}
    phones: dict[str, list[dict]] = {}
    for ds in a.datasets:
        if a.report_only:
            results[ds] = beyond_report.stored_rows(a.out, ds, a.rows)
            phones[ds] = beyond_report.stored_rows(a.out, ds, a.recipes, "@phones")
        else:
            results[ds] = beyond.run_rows(ds, a.rows, out=a.out, overwrite=a.overwrite)
            phones[ds] = beyond.run_rows(ds, a.recipes, out=a.out, overwrite=a.overwrite, validation="phones")
    md = beyond_report.markdown(results, phones)
    atomic_write_json(Path(a.results + ".json"), {"rows": results, "phone_validation_rows": phones,
                                                   "command": " ".join(sys.argv)})
    atomic_write_text(Path(a.results + ".md"), md)
    print(md)
    return 0


if __name__ == "__main__":
    sys.exit(main())
