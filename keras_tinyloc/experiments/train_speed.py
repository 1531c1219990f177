"""Training speed: seconds per epoch with XLA ``jit_compile`` on vs off, the experiment of
``benchmarks/train_speed.py``.

:func:`measure` builds the tagger exactly as ``train`` does (same tf.data pipeline, Adam 3e-3, CRF NLL train step),
runs a few epochs and records

* ``first_epoch_s``: the first epoch, which includes tracing (and XLA compilation when jit is on);
* ``epoch_s``: the median of the later epochs (steady state);
* ``decode_s``: one Viterbi decode of the validation split (what early stopping adds per epoch);
* ``loss``: the training loss after the last epoch (jit must not change what is learnt).

The machine may be shared: the 1-minute load average before and after each measurement is stored so noisy rows can
be recognised. :func:`jit_pairs` matches the jit-on and jit-off rows of one configuration; :func:`markdown` is the
report with its decision (counts of configurations where jit is faster per epoch, and over a 100-epoch run).
"""
from __future__ import annotations

import os
import statistics
import time

MODELS = (("mdcsa", 16, 1), ("mamba", 8, 1))


def measure(dataset, family: str, hidden: int, layers: int, batch_size: int, jit: bool, epochs: int, seed: int = 0):
    """Time ``epochs`` epochs of one configuration on a WindowDataset; returns one result row: ``dataset, model,
    params, n_train, input_shape, batch_size, steps_per_epoch, jit_compile, first_epoch_s, epoch_s`` (median of the
    later epochs), ``decode_first_s, decode_s, loss, loadavg_before, loadavg_after``."""
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


def jit_pairs(rows: list[dict]) -> list[tuple[dict, dict]]:
    """``[(jit on, jit off)]``: every pair of rows of the same dataset, model and batch size."""
    return [
        (on, off) for on in rows for off in rows
        if on["jit_compile"] and not off["jit_compile"]
        and (on["dataset"], on["model"], on["batch_size"]) == (off["dataset"], off["model"], off["batch_size"])
    ]


def jit_gain(on: dict, off: dict) -> tuple[float, float, float | None]:
    """``(speed-up per epoch, extra seconds of the first epoch, epochs to pay it back or None)``: off/on steady
    epoch time; jit's first epoch minus the plain one; extra / seconds saved per epoch (None if jit saves nothing)."""
    saved = off["epoch_s"] - on["epoch_s"]
    extra = on["first_epoch_s"] - off["first_epoch_s"]
    return off["epoch_s"] / on["epoch_s"], extra, (extra / saved if saved > 0 else None)


def decision(rows: list[dict]) -> tuple[int, int, int]:
    """``(faster, worth, pairs)``: of the :func:`jit_pairs`, how many have a faster steady-state epoch with jit and
    how many a faster 100-epoch run (first epoch + 99 more)."""
    pairs = jit_pairs(rows)
    faster = [on for on, off in pairs if on["epoch_s"] < off["epoch_s"]]
    worth = [on for on, off in pairs if on["first_epoch_s"] + 99 * on["epoch_s"] < off["first_epoch_s"] + 99 * off["epoch_s"]]
    return len(faster), len(worth), len(pairs)


def markdown(rows: list[dict], meta: dict) -> str:
    """The report of the rows (``meta``: command, date, machine, cpus, tensorflow, keras, epochs)."""
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
                    speedup, extra, payback = jit_gain(on, off)
                    breakeven = f"{payback:.0f} epochs" if payback is not None else "never"
                    lines.append(
                        f"- {ds}, {model}, batch {bs}: jit {speedup:.2f}× per epoch "
                        f"({off['epoch_s']:.3f} s → {on['epoch_s']:.3f} s); compilation costs {extra:+.1f} s once, "
                        f"paid back after {breakeven}."
                    )
    lines += ["", "## Decision", "", decision_text(rows), ""]
    return "\n".join(lines)


def train_jit_default() -> bool:
    """Whether ``train`` compiles with XLA when ``--jit`` is not given (``TrainConfig.jit_compile``'s default)."""
    import dataclasses

    from keras_tinyloc.training.train import TrainConfig

    return next(f.default for f in dataclasses.fields(TrainConfig) if f.name == "jit_compile")


def decision_text(rows: list[dict]) -> str:
    """The decision paragraph, worded from the counts (:func:`decision`) and the rows: "therefore" only when the
    counts support ``train``'s actual default (:func:`train_jit_default`) — jit off when at most half the
    configurations run 100 epochs faster with it, on otherwise; then the jit-off epoch and first-epoch times and how
    many steady-state epochs the first one costs."""
    n_faster, n_worth, n_pairs = decision(rows)
    text = (f"jit_compile made the steady-state epoch faster in {n_faster} of {n_pairs} configurations and a "
            f"100-epoch run (first epoch + 99 more) faster in {n_worth} of {n_pairs}; ")
    default_on = train_jit_default()
    supported = (2 * n_worth > n_pairs) == default_on
    mode = "with XLA by default (`--no-jit` turns it off)" if default_on else "without XLA by default (`--jit` turns it on)"
    text += f"`train` {'therefore' if supported else 'nevertheless'} compiles {mode}"
    text += "." if supported else ": these counts do not support that default."
    off = [r for r in rows if not r["jit_compile"]]
    if off:
        epoch = [r["epoch_s"] for r in off]
        first = [r["first_epoch_s"] for r in off]
        ratio = [r["first_epoch_s"] / r["epoch_s"] for r in off]
        text += (f" Without XLA a steady-state epoch took {min(epoch):.3f}–{max(epoch):.3f} s and the first epoch "
                 f"(tracing) {min(first):.2f}–{max(first):.2f} s, as long as {min(ratio):.0f}–{max(ratio):.0f} "
                 "steady-state epochs.")
    return text
