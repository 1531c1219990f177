"""Quantization-aware fine-tuning (QAT) of a trained run, for Keras 3 emitters (``python -m keras_tinyloc qat``).

The int8 simulation itself is :mod:`keras_tinyloc.models.fake_quant` (the ``fq`` taps, straight-through int8 round
trips, observed ranges); this module is the training loop around it. Which tensors are simulated:

* every layer output of the functional emitter (embedding, Dense, the emission layer, MDCSA's layers) — through
  :func:`~keras_tinyloc.models.fake_quant.simulated_emitter`, sharing the original layers and weights;
* inside :class:`~keras_tinyloc.models.mamba.MambaBlock` / ``SelectiveScan`` / ``RMSNorm`` / ``silu``: every
  intermediate the int8 graph keeps (in_proj, conv, SiLU halves, x_proj, dt_proj, the powers ``a^n``, ``1 - P``,
  ``U``, each step's ``P g`` and ``g``, the read-out, gate, out_proj and residual).

Ranges come from an observation pass over representative training windows with the same MSE criterion the converter
uses (:mod:`keras_tinyloc.deploy.calibrate`), or are the fixed output ranges of LOGISTIC and L2_NORMALIZATION.
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
import sys
import time
import types
from pathlib import Path
from typing import Any, Callable


from keras_tinyloc import paths
from keras_tinyloc.errors import TinyLocError, check_positive_ints, check_seed, cli_errors
from keras_tinyloc.models.fake_quant import CALIBRATIONS, QuantSim, observe, simulated_emitter, simulating


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
        check_seed(self.seed)
        if self.calibration not in CALIBRATIONS:
            raise TinyLocError(f"--calibration {self.calibration!r}: choose from {', '.join(CALIBRATIONS)}")
        if str(self.out).strip() and Path(self.out).resolve() == Path(self.run_dir).resolve():
            raise TinyLocError(f"--out {self.out}: must differ from RUN_DIR (the trained run is kept)")
        paths.check_output(self.out, self.overwrite)


def qat_finetune(cfg: QATConfig, dataset=None, log: Callable[[str], None] = print) -> dict[str, Any]:
    """Fine-tune ``cfg.run_dir``'s tagger with simulated int8 (module docstring) and write ``cfg.out``.

    Returns the metrics written to ``metrics.json``: float val/test F1 and accuracy of the fine-tuned model,
    ``sim_int8_{val,test}_f1`` (simulated int8, Keras), the starting run's ``start_test_f1``, and the fit record.
    """
    cfg.validate()
    with paths.claimed_output(cfg.out, cfg.overwrite):  # locked until written: one writer per RUN_DIR
        return _qat_finetune(cfg, dataset, log)


def _qat_finetune(cfg: QATConfig, dataset, log: Callable[[str], None]) -> dict[str, Any]:
    import keras

    from keras_tinyloc.data.windows import representative_sample
    from keras_tinyloc.models.tagger import CRFTagger
    from keras_tinyloc.training.metrics import window_metrics
    from keras_tinyloc.training.train import (check_run_contract, count_params, evaluate, fit_tagger, load_run,
                                              load_run_dataset, make_optimizer, write_run)

    tagger, config, start_metrics = load_run(cfg.run_dir)
    ds = dataset if dataset is not None else load_run_dataset(config, cfg.data_dir, str(cfg.run_dir))
    check_run_contract(config, ds, str(cfg.run_dir))
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
    p.add_argument("--batch-size", type=int, default=128, help="fine-tuning batch size (default: %(default)s)")
    p.add_argument("--seed", type=int, default=0, help="random seed of shuffling and the range observation sample (default: 0)")
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
