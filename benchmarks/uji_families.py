"""Benchmark (issue 3 quality target on ``uji-zones``): MDCSA and Mamba trained with the robust UJIIndoorLoc recipe.

The rows, recipes, training, int8 conversion, selection (by validation only) and the report are
:mod:`keras_tinyloc.experiments.uji_families`; this script runs the chosen rows and writes the files.

    .venv/bin/python benchmarks/uji_families.py [--rows NAME ...] [--out runs/uji_families] [--report-only]

Writes ``docs/results/uji_families.{md,json}``; each row's result is cached in ``<out>/<row>[@phones]/row.json``.
"""
from __future__ import annotations

import argparse
import sys

from _bootstrap import ROOT  # noqa: E402,F401  (first: sets up the environment, see _bootstrap)

from keras_tinyloc.errors import cli_errors  # noqa: E402
from keras_tinyloc.experiments import uji_families as uf  # noqa: E402


@cli_errors
def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", nargs="*", default=list(uf.ROWS))
    ap.add_argument("--validation", nargs="*", default=["random"], choices=["random", "phones"])
    ap.add_argument("--out", default="runs/uji_families")
    ap.add_argument("--report-only", action="store_true")
    ap.add_argument("--overwrite", action="store_true", help="retrain rows that already have a row.json")
    ap.add_argument("--convert", nargs="*", default=[], help="rows to convert to int8 and run through TFLM")
    a = ap.parse_args(argv)
    from keras_tinyloc.paths import atomic_write_text

    out = ROOT / a.out
    if not a.report_only:
        from keras_tinyloc.data.registry import load_dataset
        from keras_tinyloc.experiments.beyond import phone_holdout

        base = load_dataset(uf.DATASET)
        phones = phone_holdout(base) if "phones" in a.validation else None
        for v in a.validation:
            for n in a.rows:
                uf.run_row(n, base, phones, out, validation=v, log=lambda s: print(s, flush=True),
                           overwrite=a.overwrite)
        for n in a.convert:
            uf.convert_row(n, base, out, log=lambda s: print(s, flush=True))
    rows = uf.load_rows(out)
    atomic_write_text(ROOT / "docs/results/uji_families.md", uf.markdown(rows))
    atomic_write_text(ROOT / "docs/results/uji_families.json", uf.results_json(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
