"""How close is the house simulator to a real house?  SPHERE vs the SPHERE-like simulated house, side by side.

Writes ``docs/results/simulator_realism.md``, ``docs/results/simulator_realism.json`` and
``docs/results/simulator_realism.png``. The measurements (channel and mobility statistics, cross-domain random
forests, single-step vs windowed separability, the alternative radio, the verdict) are
:func:`keras_tinyloc.experiments.realism.measure`; the report is :mod:`keras_tinyloc.experiments.realism_report`.

Usage: ``python benchmarks/simulator_realism.py [--seed 0] [--scale 1.0] [--out docs/results]``
(about a minute on 2 cores).
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from _bootstrap import ROOT  # noqa: E402,F401  (first: sets up the environment, see _bootstrap)

from keras_tinyloc import paths  # noqa: E402
from keras_tinyloc.data import sphere  # noqa: E402
from keras_tinyloc.experiments import realism, realism_report  # noqa: E402


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--scale", type=float, default=1.0)
    ap.add_argument("--out", default=str(ROOT / "docs" / "results"))
    ap.add_argument("--sphere-dir", default=None, help="folder holding public_data/ (default: the workplace copy)")
    args = ap.parse_args(argv)
    t_start = time.time()
    public = sphere.find_public_dir(args.sphere_dir)
    res = realism.measure(public, args.seed, args.scale, started=t_start)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    slim = realism.drop_hist(res)
    paths.atomic_write_json(out / "simulator_realism.json", slim)
    paths.atomic_write_text(out / "simulator_realism.md", realism_report.markdown(res))
    paths.atomic_write_bytes(out / "simulator_realism.png", realism_report.plot_png(res))
    print(json.dumps({k: slim[k] for k in ("cross_domain", "separability")}, indent=1))
    print(f"wrote {out / 'simulator_realism.md'} in {res['seconds']:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
