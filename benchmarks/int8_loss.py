"""Benchmark: the float -> int8 loss of existing runs under the two activation-range settings (min-max vs MSE clip).
Writes docs/results/int8_loss.{json,md}.

Every run directory matching ``--runs`` (default: the issue-7 UJIIndoorLoc rows written by
``benchmarks/beyond_uji.py`` under ``runs/beyond/*/*``) is converted to full int8 twice and measured through TFLM
on the test split (:func:`keras_tinyloc.experiments.int8_loss.run_one`).

    .venv/bin/python benchmarks/int8_loss.py [--runs 'runs/beyond/*/*'] [--markdown-only]
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

from _bootstrap import ROOT  # noqa: E402,F401  (first: sets up the environment, see _bootstrap)

from keras_tinyloc.errors import TinyLocError, cli_errors  # noqa: E402
from keras_tinyloc.experiments import int8_loss  # noqa: E402


@cli_errors
def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--runs", default=str(ROOT / "runs" / "beyond" / "*" / "*"), help="glob of run directories")
    p.add_argument("--out", default=str(ROOT / "docs" / "results"))
    p.add_argument("--markdown-only", action="store_true")
    args = p.parse_args(argv)
    from keras_tinyloc.paths import atomic_write_json, atomic_write_text

    out = Path(args.out)
    if args.markdown_only:
        doc = json.loads((out / "int8_loss.json").read_text())
        atomic_write_text(out / "int8_loss.md", int8_loss.markdown(doc["rows"], doc["meta"]))
        return 0
    run_dirs = int8_loss.run_dirs(args.runs)
    if not run_dirs:
        raise TinyLocError(f"no run directory matches {args.runs}")
    rows = []
    meta = {"runs": os.path.relpath(args.runs, ROOT) if args.runs.startswith(str(ROOT)) else args.runs,
            "machine": f"{os.cpu_count()} CPU cores, TFLM host build"}
    for d in run_dirs:
        t0 = time.perf_counter()
        rows.append(int8_loss.run_one(d))
        r = rows[-1]
        print(f"{d}: {time.perf_counter() - t0:.0f} s, loss min-max {r['minmax']['f1_loss_points']:+.2f}, "
              f"MSE {r['mse']['f1_loss_points']:+.2f}", flush=True)
        meta["date"] = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
        atomic_write_json(out / "int8_loss.json", {"meta": meta, "rows": rows})
        atomic_write_text(out / "int8_loss.md", int8_loss.markdown(rows, meta))
    return 0


if __name__ == "__main__":
    sys.exit(main())
