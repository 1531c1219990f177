"""Benchmark (issue 16): what the TFLM-friendly Mamba costs — A frozen at -n vs learned, ZOH vs Euler input term.

The variants, setups, training, paired statistics and the report are :mod:`keras_tinyloc.experiments.mamba_fidelity`;
this script runs the chosen setups x variants x seeds and writes the files.

    .venv/bin/python benchmarks/mamba_fidelity.py [--setups NAME ...] [--seeds 0 1 2 3 4]   # ~1.5 h, 2 busy cores
    .venv/bin/python benchmarks/mamba_fidelity.py --report-only      # rebuild the report from the cached rows

Writes ``docs/results/mamba_fidelity.{md,json}``; each run is cached in ``<out>/<setup>/<variant>-s<seed>/``
(``row.json`` + the RUN_DIR files), so an interrupted run resumes.
"""
from __future__ import annotations

import argparse
import sys
import time

from _bootstrap import ROOT  # noqa: E402,F401  (first: sets up the environment, see _bootstrap)

from keras_tinyloc.errors import cli_errors  # noqa: E402
from keras_tinyloc.experiments import mamba_fidelity as mf  # noqa: E402


@cli_errors
def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--setups", nargs="*", default=list(mf.SETUPS), help="dataset-size setups (default: all)")
    ap.add_argument("--variants", nargs="*", default=list(mf.VARIANTS), help="scan variants (default: all four)")
    ap.add_argument("--seeds", nargs="*", type=int, default=list(mf.SEEDS), help="training seeds (default 0 1 2 3 4)")
    ap.add_argument("--out", default="runs/mamba_fidelity", help="run cache folder (relative to the repository)")
    ap.add_argument("--results", default="docs/results", help="where mamba_fidelity.{md,json} go")
    ap.add_argument("--epochs", type=int, default=None, help="override every setup's epochs (development only)")
    ap.add_argument("--patience", type=int, default=None, help="override every setup's patience (development only)")
    ap.add_argument("--report-only", action="store_true", help="no training: the report from the cached rows")
    a = ap.parse_args(argv)
    mf.check_names(a.setups, a.variants, a.seeds)
    from keras_tinyloc.paths import atomic_write_text

    out = ROOT / a.out
    log = lambda s: print(time.strftime("%H:%M:%S"), s, flush=True)  # noqa: E731
    if not a.report_only:
        from keras_tinyloc.data.registry import load_dataset

        bases = {d: load_dataset(d) for d in dict.fromkeys(mf.SETUPS[n].dataset for n in a.setups)}
        for seed in a.seeds:  # seed-major: an interrupted run leaves every setup with the same seeds
            for name in a.setups:
                for variant in a.variants:
                    mf.run_one(mf.SETUPS[name], variant, seed, bases[mf.SETUPS[name].dataset], out, log=log,
                               epochs=a.epochs, patience=a.patience)
    mf.add_a_drift(out)  # where training took A, read from the learned-A runs' saved models
    rows = mf.load_rows(out)
    args = [v for v in (argv if argv is not None else sys.argv[1:]) if v != "--report-only"]
    this = " ".join([".venv/bin/python benchmarks/mamba_fidelity.py", *args])
    md, js = mf.report_files(rows, None if a.report_only and not args else [this])
    results = ROOT / a.results
    atomic_write_text(results / "mamba_fidelity.md", md)
    atomic_write_text(results / "mamba_fidelity.json", js)
    log(f"wrote {a.results}/mamba_fidelity.md and .json ({len(rows)} runs)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
