"""Benchmark (issue 8, "Results"): int8 MDCSA and Mamba on real BLE (``sphere``) vs the per-window baselines.

For each RAM class (TFLM arena <= 32 KiB with flatbuffer <= 512 KiB: RL78/G13; arena <= 64 KiB with flatbuffer
<= 128 KiB: ADuCM3029) the best int8 MDCSA and Mamba **by validation macro-F1** (never test), with validation and
test macro-F1 / accuracy measured through the TFLM interpreter, arena and flatbuffer bytes, next to the int8 MLP
(per-step MLP + CRF, same convert/TFLM path) and the scikit-learn baselines (random forest / kNN / logistic
regression on per-window features, :mod:`keras_tinyloc.experiments.baselines`; their sizes are estimates, not TFLM runs).

Every row is one entry of :data:`keras_tinyloc.experiments.sphere_variants.VARIANTS` (family, H, L, training levers of
:mod:`keras_tinyloc.experiments.sphere_models`, KD teacher); the analyses and the report are
:mod:`~keras_tinyloc.experiments.sphere_analysis` and :mod:`~keras_tinyloc.experiments.sphere_report`. Runs and
their results are cached under ``--work`` (default ``runs/sphere_models``): a finished variant is not redone
(``--redo NAME`` forces it). Writes ``docs/results/sphere.{md,json,png}``.

    KERAS_BACKEND=tensorflow .venv/bin/python benchmarks/sphere_models.py   # all rows (~45 min, 2 busy cores)
    KERAS_BACKEND=tensorflow .venv/bin/python benchmarks/sphere_models.py --only classic mdcsa-H16L1   # some rows
    KERAS_BACKEND=tensorflow .venv/bin/python benchmarks/sphere_models.py --render-only   # tables from the cache
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from _bootstrap import ROOT  # noqa: E402,F401  (first: sets up the environment, see _bootstrap)

OUT_MD = ROOT / "docs" / "results" / "sphere.md"
OUT_JSON = ROOT / "docs" / "results" / "sphere.json"
OUT_PNG = ROOT / "docs" / "results" / "sphere.png"
COMMANDS = ["KERAS_BACKEND=tensorflow .venv/bin/python benchmarks/sphere_models.py",
            "# one row (cached rows are reused): --only <name> ; re-render from the cache: --render-only"]


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--work", default=str(ROOT / "runs" / "sphere_models"), help="run cache directory")
    p.add_argument("--only", nargs="*", help="variant names to run (default: all); 'classic' for scikit-learn")
    p.add_argument("--redo", nargs="*", default=[], help="variant names to retrain even if cached")
    p.add_argument("--render-only", action="store_true", help="no training: tables from the cached rows")
    a = p.parse_args(argv)
    from keras_tinyloc.data.registry import load_dataset
    from keras_tinyloc.experiments import (
        sphere_analysis,
        sphere_report,
        sphere_variants,
    )
    from keras_tinyloc.paths import (
        atomic_write_bytes,
        atomic_write_json,
        atomic_write_text,
    )

    work = Path(a.work)
    ds = load_dataset("sphere")
    data = sphere_variants.VariantData(ds, lambda: load_dataset("sphere", accelerometer=True))
    log = lambda s: print(time.strftime("%H:%M:%S"), s, flush=True)  # noqa: E731
    rows = sphere_variants.collect_rows(data, work, only=a.only, redo=a.redo, render_only=a.render_only, log=log)
    diag = sphere_analysis.diagnostics(ds)
    rendered = sphere_report.render(ds, rows, work, diag, COMMANDS)
    atomic_write_text(OUT_MD, rendered["markdown"])
    atomic_write_json(OUT_JSON, sphere_report.results_document(rows, rendered, diag))
    atomic_write_bytes(OUT_PNG, sphere_report.plot_png(ds, rows, rendered))
    log(f"wrote {OUT_MD}, {OUT_JSON}, {OUT_PNG}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
