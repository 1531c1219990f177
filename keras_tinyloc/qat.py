"""Quantization-aware fine-tuning (QAT) of a trained run, for Keras 3 emitters (``python -m keras_tinyloc qat``).

The legacy ``tensorflow-model-optimization`` toolkit cannot wrap Keras 3 models, so this module simulates the int8
graph itself. Every tensor that the full-int8 TFLite model stores as int8 is passed through :func:`fq` in the float
forward pass; outside QAT ``fq`` is the identity (no graph op, saved models unchanged). Inside :func:`simulating`,
each such tensor ``v`` becomes its int8 round trip with a straight-through gradient (Jacob et al. 2018, "Quantization
and Training of Neural Networks for Efficient Integer-Arithmetic-Only Inference", sec. 3; Bengio et al. 2013 STE)::

    fq(v) = clamp(v, lo_q, hi_q) + stop_gradient(round(clamp(v, lo_q, hi_q) / s) * s - clamp(v, lo_q, hi_q))
    s = (hi - lo) / 255,  z = round(-128 - lo / s),  [lo_q, hi_q] = [(-128 - z) s, (127 - z) s]

so the loss sees int8 rounding and saturation while gradients pass unchanged inside the range and stop outside it.
Ranges ``[lo, hi]`` per tensor key come from an observation pass over representative training windows and are set
with the same MSE criterion the converter uses (:mod:`keras_tinyloc.calibrate`), or are the fixed output ranges of
LOGISTIC ([0, 255/256]) and L2_NORMALIZATION ([-1, 127/128]). Which tensors are simulated:

* every layer output of the functional emitter (embedding, Dense, the emission layer, MDCSA's layers) — through
  ``keras.models.clone_model(..., call_function=...)`` sharing the original layers and weights;
* inside :class:`~keras_tinyloc.models.mamba.MambaBlock` / ``SelectiveScan`` / ``RMSNorm`` / ``silu``: every
  intermediate the int8 graph keeps (in_proj, conv, SiLU halves, x_proj, dt_proj, the powers ``a^n``, ``1 - P``,
  ``U``, each step's ``P g`` and ``g``, the read-out, gate, out_proj and residual).

Not simulated: weight quantization (the converter's per-channel int8 weights; small next to activation error here)
and MDCSA's internal ops below the layer level. After fine-tuning the model is an ordinary float model: convert it
with ``convert`` (post-training int8 with MSE ranges, recalibrated on the fine-tuned weights).

Fine-tuning: Adam (``lr`` 3e-4 by default, 1/10 of training's), up to ``epochs`` with early stopping on the
**simulated-int8** validation macro-F1, starting from the trained weights; the CRF is trained too.
"""
from __future__ import annotations

import argparse
import contextlib
import dataclasses
import itertools
import sys
import time
import types
from pathlib import Path
from typing import Any, Callable

import numpy as np

from keras_tinyloc.calibrate import CALIBRATIONS
from keras_tinyloc.errors import TinyLocError, check_positive_ints, cli_errors

LOGISTIC_RANGE = (0.0, 255.0 / 256.0)  # TFLite int8 LOGISTIC output: scale 1/256, zero point -128
L2NORM_RANGE = (-1.0, 127.0 / 128.0)  # TFLite int8 L2_NORMALIZATION output: scale 1/128, zero point 0
MAX_SAMPLES = 200_000  # values kept per tensor key in the observation pass

_SIM: "QuantSim | None" = None
_TAPS = itertools.count()  # unique names of the fake-quant tap layers


def fq(x, key: str, fixed: tuple[float, float] | None = None):
    """Identity, unless a :class:`QuantSim` is active: then the int8 round trip of ``x`` (any shape) under ``key``.

    ``fixed``: the tensor's range is set by the int8 kernel (LOGISTIC, L2_NORMALIZATION), not by calibration.
    """
    sim = _SIM
    return x if sim is None else sim.apply(x, key, fixed)


@contextlib.contextmanager
def simulating(sim: "QuantSim"):
    """Make :func:`fq` simulate int8 with ``sim`` while the block runs (trace models inside it)."""
    global _SIM
    previous, _SIM = _SIM, sim
    try:
        yield sim
    finally:
        _SIM = previous


def fake_quant_ste(x, lo: float, hi: float):
    """``fq(v)`` of the module docstring on a Keras tensor: int8 round trip, straight-through gradient."""
    from keras import ops

    lo, hi = min(float(lo), 0.0), max(float(hi), 0.0)
    s = (hi - lo) / 255.0
    if s <= 0:
        return x
    z = float(np.round(-128.0 - lo / s))
    xc = ops.clip(x, (-128.0 - z) * s, (127.0 - z) * s)
    return ops.add(xc, ops.stop_gradient(ops.subtract(ops.multiply(ops.round(ops.divide(xc, s)), s), xc)))


class QuantSim:
    """Per-key int8 ranges, filled by an observation pass, then applied as fake quantization.

    ``observing`` (eager calls only): record a subsample of each key's values; :meth:`finish_observation` turns them
    into ranges (MSE clip or min-max). ``ranges``: ``{key: (lo, hi)}``.
    """

    def __init__(self, method: str = "mse", seed: int = 0):
        if method not in CALIBRATIONS:
            raise TinyLocError(f"--calibration {method!r}: choose from {', '.join(CALIBRATIONS)}")
        self.method = method
        self.ranges: dict[str, tuple[float, float]] = {}
        self.fixed: dict[str, tuple[float, float]] = {}
        self.observing = False
        self._values: dict[str, list[np.ndarray]] = {}
        self._rng = np.random.default_rng(seed)

    def apply(self, x, key: str, fixed=None):
        if fixed is not None:
            self.fixed[key] = fixed
        if self.observing:
            v = np.asarray(x, np.float32).ravel()  # eager tensor -> values
            if v.size > MAX_SAMPLES // 20:
                v = self._rng.choice(v, MAX_SAMPLES // 20, replace=False)
            self._values.setdefault(key, []).append(v)
            return x
        rng = fixed if fixed is not None else self.ranges.get(key)
        if rng is None:
            raise TinyLocError(f"QAT: tensor {key!r} was not seen in the observation pass")
        return fake_quant_ste(x, *rng)

    def finish_observation(self) -> None:
        from keras_tinyloc.calibrate import BINS, mse_alpha

        self.observing = False
        for key, parts in self._values.items():
            if key in self.fixed:
                self.ranges[key] = self.fixed[key]
                continue
            v = np.concatenate(parts)
            if len(v) > MAX_SAMPLES:
                v = self._rng.choice(v, MAX_SAMPLES, replace=False)
            lo, hi = min(float(v.min()), 0.0), max(float(v.max()), 0.0)
            if hi <= lo:
                self.ranges[key] = (lo, lo + 1e-6)
                continue
            alpha = 1.0
            if self.method == "mse":
                counts, edges = np.histogram(v, bins=BINS, range=(lo, hi))
                alpha, _ = mse_alpha(0.5 * (edges[:-1] + edges[1:]), counts, lo, hi)
            self.ranges[key] = (lo * alpha, hi * alpha)
        self._values.clear()


def _tap_layer(key: str):
    """A layer whose call is ``fq(x, key)`` at run time (the clone is built while no simulation is active)."""
    import keras

    class FakeQuantTap(keras.layers.Layer):
        def call(self, x):
            return fq(x, key)

        def compute_output_shape(self, input_shape):
            return input_shape

    return FakeQuantTap(name=f"fq_tap_{next(_TAPS)}")


def simulated_emitter(emitter):
    """A functional view of ``emitter`` (same layer objects and weights) whose every layer output passes :func:`fq`.

    Key of a layer output: the layer's name (``name#k`` for its k-th call when a layer is called more than once).
    """
    import keras

    calls: dict[str, int] = {}

    def call_function(layer, *args, **kwargs):
        out = layer(*args, **kwargs)
        k = calls.get(layer.name, 0)
        calls[layer.name] = k + 1
        key = layer.name if k == 0 else f"{layer.name}#{k}"
        return keras.tree.map_structure(lambda t: _tap_layer(key)(t), out)

    return keras.models.clone_model(emitter, clone_function=lambda layer: layer, call_function=call_function)


def observe(sim: QuantSim, model, x: np.ndarray, batch_size: int = 256) -> None:
    """Run ``model`` eagerly on windows ``x`` (B,T,F) with ``sim`` observing, then fix the ranges."""
    sim.observing = True
    with simulating(sim):
        for i in range(0, len(x), batch_size):
            model(np.asarray(x[i : i + batch_size], np.float32), training=False)
    sim.finish_observation()


@dataclasses.dataclass
class QATConfig:
    """One quantization-aware fine-tuning run.

    Attributes:
        run_dir: the trained RUN_DIR to start from (``train`` / ``distill`` output).
        out: the RUN_DIR to write (same files as ``train``; config.json gains ``qat``).
        epochs: maximum fine-tuning epochs.  patience: early stopping on simulated-int8 validation F1.
        lr: Adam learning rate.  batch_size: training batch size.  seed: shuffling and observation subsample.
        n_calibration: training windows of the observation pass (ranges).  calibration: ``mse`` or ``minmax``.
        overwrite: replace an existing non-empty ``out``.  data_dir: override the run's data directory.
        verbose: one line per epoch.
        simulate: False = the control experiment: the same fine-tuning without simulated int8 (plain float
            training from the trained weights, early stopping on float validation F1), to separate the effect of
            quantization awareness from that of extra training.
    """

    run_dir: str
    out: str
    epochs: int = 10
    patience: int = 5
    lr: float = 3e-4
    batch_size: int = 128
    seed: int = 0
    n_calibration: int = 200
    calibration: str = "mse"
    overwrite: bool = False
    data_dir: str | None = None
    verbose: bool = False
    simulate: bool = True

    def validate(self) -> None:
        check_positive_ints(**{n: getattr(self, n) for n in ("epochs", "patience", "batch_size", "n_calibration")})
        if not (isinstance(self.lr, (int, float)) and 0 < float(self.lr) < 1):
            raise TinyLocError(f"--lr {self.lr!r}: must be in (0, 1)")
        if Path(self.out).resolve() == Path(self.run_dir).resolve():
            raise TinyLocError(f"--out {self.out}: must differ from RUN_DIR (the trained run is kept)")


def qat_finetune(cfg: QATConfig, dataset=None, log: Callable[[str], None] = print) -> dict[str, Any]:
    """Fine-tune ``cfg.run_dir``'s tagger with simulated int8 (module docstring) and write ``cfg.out``.

    Returns the metrics written to ``metrics.json``: float val/test F1 and accuracy of the fine-tuned model,
    ``sim_int8_{val,test}_f1`` (simulated int8, Keras), the starting run's ``start_test_f1``, and the fit record.
    """
    import keras

    from keras_tinyloc.convert import load_run_dataset
    from keras_tinyloc.metrics import window_metrics
    from keras_tinyloc.models.tagger import CRFTagger
    from keras_tinyloc.quantize import representative_sample
    from keras_tinyloc.train import (check_out_dir, count_params, evaluate, fit_tagger, load_run, make_optimizer,
                                     write_run)

    cfg.validate()
    check_out_dir(cfg.out, cfg.overwrite)
    tagger, config, start_metrics = load_run(cfg.run_dir)
    ds = dataset if dataset is not None else load_run_dataset(config, cfg.data_dir)
    t0 = time.perf_counter()
    sim = QuantSim(cfg.calibration, seed=cfg.seed)
    sim_emitter = simulated_emitter(tagger.emitter)
    if cfg.simulate:
        observe(sim, sim_emitter, representative_sample(ds.x_train, n=cfg.n_calibration, seed=cfg.seed))
    keras.utils.set_random_seed(cfg.seed)
    with simulating(sim) if cfg.simulate else contextlib.nullcontext():
        sim_tagger = CRFTagger(sim_emitter, name="qat_tagger")
        sim_tagger.crf.set_weights(tagger.crf.get_weights())
        fit_cfg = types.SimpleNamespace(**dataclasses.asdict(cfg), ap_dropout=0.0, weight_decay=0.0)
        sim_tagger.compile(optimizer=make_optimizer(fit_cfg))
        fit = fit_tagger(sim_tagger, sim_tagger, ds, fit_cfg, log=log)
        sim_scores = {f"sim_int8_{s}_f1": window_metrics(ds.split(s)[1], sim_tagger.decode(ds.split(s)[0]))["f1"]
                      if cfg.simulate else None for s in ("val", "test")}
    tagger.crf.set_weights(sim_tagger.crf.get_weights())  # emitter weights are shared already
    tagger._decode_fn = None  # noqa: SLF001 - a decode traced before would hold the old CRF
    metrics = {**evaluate(tagger, ds), **sim_scores, "params": count_params(tagger),
               "start_test_f1": start_metrics.get("test_f1"), "qat_seconds": round(time.perf_counter() - t0, 2),
               **fit}
    new_config = dict(config)
    new_config.update(out=str(cfg.out), crf=tagger.crf_weights(),
                      qat={"from": str(cfg.run_dir), "epochs": cfg.epochs, "patience": cfg.patience, "lr": cfg.lr,
                           "batch_size": cfg.batch_size, "seed": cfg.seed, "n_calibration": cfg.n_calibration,
                           "calibration": cfg.calibration, "simulate": cfg.simulate,
                           "simulated_tensors": len(sim.ranges)})
    write_run(cfg.out, tagger, new_config, metrics, cfg.overwrite)
    if cfg.verbose:
        sim_f1 = metrics["sim_int8_test_f1"]
        log(f"{'QAT' if cfg.simulate else 'float fine-tuning (control)'} {cfg.run_dir} -> {cfg.out}: "
            f"{len(sim.ranges)} simulated int8 tensors, best epoch {fit['best_epoch']}, float test F1 "
            f"{start_metrics.get('test_f1', float('nan')):.4f} -> {metrics['test_f1']:.4f}"
            + ("" if sim_f1 is None else f", simulated int8 {sim_f1:.4f}"))
    return metrics


# ----------------------------------------------------------------------------------------------- CLI
def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m keras_tinyloc qat",
        description="Quantization-aware fine-tuning of a trained run: simulated int8 (straight-through) in the "
                    "forward pass, early stopping on simulated-int8 validation F1; writes a new RUN_DIR to convert.")
    p.add_argument("run_dir", metavar="RUN_DIR", help="trained run (train/distill output)")
    p.add_argument("--out", required=True, metavar="RUN_DIR", help="run directory to write")
    p.add_argument("--epochs", type=int, default=10, help="maximum fine-tuning epochs (10)")
    p.add_argument("--patience", type=int, default=5, help="early-stopping patience in epochs (5)")
    p.add_argument("--lr", type=float, default=3e-4, help="Adam learning rate (3e-4)")
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--n-calibration", type=int, default=200, help="training windows that set the int8 ranges")
    p.add_argument("--calibration", choices=CALIBRATIONS, default="mse", help="range setting (mse)")
    p.add_argument("--data-dir", help="override the run's data directory")
    p.add_argument("--overwrite", action="store_true", help="replace an existing output directory")
    p.add_argument("--no-simulation", dest="simulate", action="store_false",
                   help="control experiment: the same fine-tuning in plain float (no simulated int8)")
    p.add_argument("-q", "--quiet", action="store_true", help="no per-epoch lines")
    return p


@cli_errors
def main(argv: list[str] | None = None) -> int:
    a = build_parser().parse_args(argv)
    cfg = QATConfig(run_dir=a.run_dir, out=a.out, epochs=a.epochs, patience=a.patience, lr=a.lr,
                    batch_size=a.batch_size, seed=a.seed, n_calibration=a.n_calibration, calibration=a.calibration,
                    overwrite=a.overwrite, data_dir=a.data_dir, verbose=not a.quiet, simulate=a.simulate)
    metrics = qat_finetune(cfg)
    if a.quiet:  # the verbose run already printed its summary line
        sim = metrics["sim_int8_test_f1"]
        print(f"{cfg.out}: test F1 float {100 * metrics['test_f1']:.2f}"
              + ("" if sim is None else f", simulated int8 {100 * sim:.2f}")
              + f"; next: python -m keras_tinyloc convert {cfg.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
