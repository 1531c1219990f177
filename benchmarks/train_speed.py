"""Training speed: seconds per epoch of MDCSA H16L1 and Mamba H8L1 on house-a and uji, XLA jit_compile on vs off.

For each (dataset, model, batch size, jit) the script builds the tagger exactly as ``train`` does (same tf.data
pipeline, Adam, CRF NLL train step), runs ``--epochs`` epochs and records

* ``first_epoch_s``: the first epoch, which includes tracing (and XLA compilation when jit is on);
* ``epoch_s``: the median of the later epochs (steady state);
* ``decode_s``: one Viterbi decode of the validation split (what early stopping adds per epoch);
* ``loss``: the training loss after the last epoch (jit must not change what is learnt).

The machine is shared (2 cores, other jobs running): the load average before and after each measurement is stored
so noisy rows can be recognised. Writes ``docs/results/train_speed.json`` and ``docs/results/train_speed.md``.

    KERAS_BACKEND=tensorflow python benchmarks/train_speed.py [--datasets house-a uji] [--epochs 4]
"""
from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time
from pathlib import Path

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run from a checkout without installing

from keras_tinyloc import paths  # noqa: E402
from keras_tinyloc.errors import TinyLocError, cli_errors  # noqa: E402

MODELS = (("mdcsa", 16, 1), ("mamba", 8, 1))
RESULTS = paths.REPO_ROOT / "docs" / "results"


def measure(dataset, family: str, hidden: int, layers: int, batch_size: int, jit: bool, epochs: int, seed: int = 0):
    """Time ``epochs`` epochs of one configuration; returns one result row (dict)."""
    import keras

    from keras_tinyloc.models import build_tagger
    from keras_tinyloc.training.train import count_params, make_dataset

    tagger = build_tagger(family, dataset.input_shape, dataset.n_classes, hidden, layers, seed=seed)
    tagger.compile(optimizer=keras.optimizers.Adam(3e-3), jit_compile=jit)
    train_ds = make_dataset(dataset.x_train, dataset.y_train, batch_size, shuffle=True, seed=seed)
    times: list[float] = []

    class _Timer(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            self.t0 = time.perf_counter()

        def on_epoch_end(self, epoch, logs=None):
            times.append(time.perf_counter() - self.t0)

    load_before = os.getloadavg()[0]
    hist = tagger.fit(train_ds, epochs=epochs, verbose=0, shuffle=False, callbacks=[_Timer()])
    t0 = time.perf_counter()
    tagger.decode(dataset.x_val, batch_size=max(batch_size, 1024))  # first call traces
    t1 = time.perf_counter()
    tagger.decode(dataset.x_val, batch_size=max(batch_size, 1024))
    decode_s = time.perf_counter() - t1
    return {
        "dataset": dataset.name,
        "model": f"{family} H{hidden}L{layers}",
        "params": count_params(tagger),
        "n_train": int(len(dataset.x_train)),
        "input_shape": list(dataset.input_shape),
        "batch_size": batch_size,
        "steps_per_epoch": -(-len(dataset.x_train) // batch_size),
        "jit_compile": jit,
        "first_epoch_s": times[0],
        "epoch_s": statistics.median(times[1:]) if len(times) > 1 else times[0],
        "decode_first_s": t1 - t0,
        "decode_s": decode_s,
        "loss": float(hist.history["loss"][-1]),
        "loadavg_before": load_before,
        "loadavg_after": os.getloadavg()[0],
    }


def to_markdown(rows: list[dict], meta: dict) -> str:
    lines = [
        "# Training speed (per-epoch seconds, jit_compile on vs off)",
        "",
        f"Produced by `{meta['command']}` on {meta['date']} ({meta['machine']}, {meta['cpus']} CPUs, "
        f"TensorFlow {meta['tensorflow']}, Keras {meta['keras']}). Adam 3e-3, the `train` pipeline; "
        f"{meta['epochs']} epochs per row: `first` includes tracing (and XLA compilation with jit), `epoch` is the "
        "median of the later epochs, `decode` one Viterbi pass over the validation split (early stopping runs it "
        "every epoch). The machine is shared by other jobs; the 1-minute load average is shown per row.",
        "",
        "| dataset | model | params | batch | steps/epoch | jit | first epoch s | epoch s | decode val s | loss | load |",
        "|---|---|---:|---:|---:|---|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        lines.append(
            f"| {r['dataset']} | {r['model']} | {r['params']:,} | {r['batch_size']} | {r['steps_per_epoch']} | "
            f"{'on' if r['jit_compile'] else 'off'} | {r['first_epoch_s']:.2f} | {r['epoch_s']:.3f} | "
            f"{r['decode_s']:.3f} | {r['loss']:.4f} | {r['loadavg_before']:.1f} |"
        )
    lines += ["", "## Reading", ""]
    for ds in sorted({r["dataset"] for r in rows}):
        for model in sorted({r["model"] for r in rows if r["dataset"] == ds}):
            for bs in sorted({r["batch_size"] for r in rows if r["dataset"] == ds}):
                pair = {r["jit_compile"]: r for r in rows if (r["dataset"], r["model"], r["batch_size"]) == (ds, model, bs)}
                if True in pair and False in pair:
                    on, off = pair[True], pair[False]
                    saved = off["epoch_s"] - on["epoch_s"]
                    extra = on["first_epoch_s"] - off["first_epoch_s"]
                    breakeven = f"{extra / saved:.0f} epochs" if saved > 0 else "never"
                    lines.append(
                        f"- {ds}, {model}, batch {bs}: jit {off['epoch_s'] / on['epoch_s']:.2f}× per epoch "
                        f"({off['epoch_s']:.3f} s → {on['epoch_s']:.3f} s); compilation costs {extra:+.1f} s once, "
                        f"paid back after {breakeven}."
                    )
    pairs = [
        (on, off) for on in rows for off in rows
        if on["jit_compile"] and not off["jit_compile"]
        and (on["dataset"], on["model"], on["batch_size"]) == (off["dataset"], off["model"], off["batch_size"])
    ]
    faster = [on for on, off in pairs if on["epoch_s"] < off["epoch_s"]]
    worth = [on for on, off in pairs if on["first_epoch_s"] + 99 * on["epoch_s"] < off["first_epoch_s"] + 99 * off["epoch_s"]]
    lines += [
        "",
        "## Decision",
        "",
        f"jit_compile made the steady-state epoch faster in {len(faster)} of {len(pairs)} configurations and a "
        f"100-epoch run (first epoch + 99 more) faster in {len(worth)} of {len(pairs)}; `train` therefore compiles "
        "without XLA by default (`--jit` turns it on). Per-epoch times are well under a second without XLA, so a "
        "run is dominated by tracing the first epoch and by early stopping's epochs, not by the step itself.",
        "",
    ]
    return "\n".join(lines)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--datasets", nargs="+", default=["house-a", "uji"])
    parser.add_argument("--batch-sizes", nargs="+", type=int, default=[128])
    parser.add_argument("--epochs", type=int, default=4, help="epochs per configuration (>= 2)")
    parser.add_argument("--data-dir", default=None)
    parser.add_argument("--out-dir", default=str(RESULTS))
    return parser


@cli_errors
def main(argv: list[str] | None = None) -> int:
    ns = build_parser().parse_args(argv)
    if ns.epochs < 2:
        raise TinyLocError(f"--epochs {ns.epochs}: need at least 2 (the first one includes compilation)")
    import keras
    import tensorflow as tf

    from keras_tinyloc.data.registry import load_dataset

    rows = []
    for name in ns.datasets:
        dataset = load_dataset(name, ns.data_dir)
        for family, hidden, layers in MODELS:
            for bs in ns.batch_sizes:
                for jit in (False, True):
                    row = measure(dataset, family, hidden, layers, bs, jit, ns.epochs)
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
    paths.atomic_write_text(out / "train_speed.md", to_markdown(rows, meta))
    print(f"wrote {out / 'train_speed.md'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
