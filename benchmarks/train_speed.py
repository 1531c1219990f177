"""Training speed: seconds per epoch of MDCSA H16L1 and Mamba H8L1 on house-a and uji, XLA jit_compile on vs off.

Each (dataset, model, batch size, jit) is timed by :func:`keras_tinyloc.experiments.train_speed.measure` (the ``train``
pipeline for ``--epochs`` epochs: first epoch, steady-state epoch, validation decode, final loss, load average); the
report and its decision are :func:`keras_tinyloc.experiments.train_speed.markdown`. Writes
``docs/results/train_speed.json`` and ``docs/results/train_speed.md``.

    KERAS_BACKEND=tensorflow python benchmarks/train_speed.py [--datasets house-a uji] [--epochs 4]
    python benchmarks/train_speed.py --markdown-only   # rewrite the .md from the existing .json
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

from _bootstrap import ROOT  # noqa: E402,F401  (first: sets up the environment, see _bootstrap)

from keras_tinyloc import paths  # noqa: E402
from keras_tinyloc.errors import TinyLocError, cli_errors  # noqa: E402
from keras_tinyloc.experiments import train_speed  # noqa: E402

RESULTS = paths.REPO_ROOT / "docs" / "results"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--datasets", nargs="+", default=["house-a", "uji"])
    parser.add_argument("--batch-sizes", nargs="+", type=int, default=[128])
    parser.add_argument("--epochs", type=int, default=4, help="epochs per configuration (>= 2)")
    parser.add_argument("--data-dir", default=None)
    parser.add_argument("--out-dir", default=str(RESULTS))
    parser.add_argument("--markdown-only", action="store_true", help="rewrite the .md from the existing .json")
    return parser


@cli_errors
def main(argv: list[str] | None = None) -> int:
    ns = build_parser().parse_args(argv)
    if ns.markdown_only:
        doc = json.loads((Path(ns.out_dir) / "train_speed.json").read_text())
        paths.atomic_write_text(Path(ns.out_dir) / "train_speed.md", train_speed.markdown(doc["rows"], doc["meta"]))
        return 0
    if ns.epochs < 2:
        raise TinyLocError(f"--epochs {ns.epochs}: need at least 2 (the first one includes compilation)")
    import keras
    import tensorflow as tf

    from keras_tinyloc.data.registry import load_dataset

    rows = []
    for name in ns.datasets:
        dataset = load_dataset(name, ns.data_dir)
        for family, hidden, layers in train_speed.MODELS:
            for bs in ns.batch_sizes:
                for jit in (False, True):
                    row = train_speed.measure(dataset, family, hidden, layers, bs, jit, ns.epochs)
                    print(
                        f"{name:8s} {row['model']:12s} batch {bs:4d} jit {'on ' if jit else 'off'}: first "
                        f"{row['first_epoch_s']:.2f}s epoch {row['epoch_s']:.3f}s decode {row['decode_s']:.3f}s "
                        f"(load {row['loadavg_before']:.1f})",
                        flush=True,
                    )
                    rows.append(row)
    meta = {
        "command": "python benchmarks/train_speed.py " + " ".join(argv if argv is not None else sys.argv[1:]),
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "machine": platform.processor() or platform.machine(),
        "cpus": os.cpu_count(),
        "tensorflow": tf.__version__,
        "keras": keras.__version__,
        "epochs": ns.epochs,
    }
    out = Path(ns.out_dir)
    paths.atomic_write_json(out / "train_speed.json", {"meta": meta, "rows": rows})
    paths.atomic_write_text(out / "train_speed.md", train_speed.markdown(rows, meta))
    print(f"wrote {out / 'train_speed.md'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
