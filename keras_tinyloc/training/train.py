"""``python -m keras_tinyloc train``: train an emitter + CRF tagger with early stopping on validation macro-F1.

Writes ``RUN_DIR/{model.keras, config.json, metrics.json}`` atomically (see docs/design.md). :func:`train` is the
function the sweep and notebooks call; :func:`load_run` reads a run back for conversion, distillation and the sweep.

Training recipe (chosen for convergence in few epochs on 2 CPU cores, not copied from the paper): Adam, lr 3e-3,
batch 128, up to 100 epochs, early stopping with patience 20 on the validation macro-F1 of the decoded last step, best
weights restored, XLA off by default. The paper used RAdam + Lookahead at lr 1e-4 with batch 1024 for up to 300 epochs
(patience 30): with ~900 training windows per house that is one update per epoch, far too slow here. Measured on the
simulated house-a (seed 0, 2 busy cores): MDCSA H16L1 reaches val F1 0.969 at epoch 11 (0.12 s/epoch); Mamba H8L1
0.955 at epoch 30 (0.16 s/epoch; lr 1e-2 gives 0.961 at epoch 33, so ``--lr`` is worth raising for small Mambas);
on uji both reach val F1 > 0.985 within 4 epochs (0.3-0.6 s/epoch). XLA (``--jit``) costs 11-15 s of compilation
and did not make epochs faster here (docs/results/train_speed.md). ``--weight-decay`` and ``--ap-dropout`` (randomly
turning heard APs into "not heard") are available; on uji-zones (seed 0) they did not reliably help: Mamba H32L1 test
F1 0.753 plain, 0.732 with ap-dropout 0.2, 0.763 with 0.4; MLP H256L2 0.770 plain, 0.749 with ap-dropout 0.4 + wd 1e-3.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import math
import os
import sys
import time
from pathlib import Path
from typing import Any, Callable

from keras_tinyloc import paths
from keras_tinyloc.data.registry import add_dataset_arguments, dataset_options
from keras_tinyloc.errors import TinyLocError, check_ints, check_positive_ints, check_seed, cli_errors

RUN_FILES = ("model.keras", "config.json", "metrics.json")
MAX_HIDDEN, MAX_LAYERS = 2048, 32  # far above any MCU model; a typo (--hidden 100000) fails in one line, not in OOM


@dataclasses.dataclass
class TrainConfig:
    """Everything one training run depends on (written to ``config.json``).

    Attributes:
        dataset: registry name (``uji``, ``uji-zones``, ``house-a`` … ``house-d``, ``sphere``) or the path of a
            recordings file/folder (docs/recordings-format.md).
        model: emitter family (``mdcsa``, ``mamba``, ``mlp``).
        hidden: H.  layers: L.
        out: RUN_DIR to write.
        epochs: maximum number of epochs.  patience: epochs without a better validation F1 before stopping.
        batch_size: training batch size.  lr: Adam learning rate.  seed: seeds init, shuffling and dropout.
        weight_decay: decoupled weight decay of Adam (0 = none).
        ap_dropout: training augmentation, probability of turning a heard reading into "not heard" (0 = none).
        offset_db: training augmentation, one uniform ±offset_db dB RSSI offset per window (an unknown phone's
            gain; :mod:`keras_tinyloc.training.augment`), 0 = none.
        data_dir: ``--data-dir`` for the loader (None = default search).
        overwrite: replace an existing non-empty RUN_DIR.
        jit_compile: compile the train step with XLA.
        verbose: print one line per epoch.
        model_options: extra keyword arguments of the emitter builder (e.g. ``{"d_state": 16}``).
        dataset_options: extra keyword arguments of the dataset loader (e.g. ``{"n_zones": 59}``; a recordings
            path's ``--rate-hz`` etc.), recorded so that convert/distill/qat rebuild the same windows.
    """

    dataset: str
    model: str
    hidden: int
    layers: int
    out: str
    epochs: int = 100
    patience: int = 20
    batch_size: int = 128
    lr: float = 3e-3
    weight_decay: float = 0.0
    ap_dropout: float = 0.0
    offset_db: float = 0.0
    seed: int = 0
    data_dir: str | None = None
    overwrite: bool = False
    jit_compile: bool = False
    verbose: bool = True
    model_options: dict = dataclasses.field(default_factory=dict)
    dataset_options: dict = dataclasses.field(default_factory=dict)

    def validate(self) -> None:
        """Raise TinyLocError for a bad model name, a non-positive size or an occupied RUN_DIR."""
        from keras_tinyloc.models import FAMILIES

        if self.model not in FAMILIES:
            raise TinyLocError(f"unknown model {self.model!r} (choose from {', '.join(FAMILIES)})")
        check_positive_ints(**{n: getattr(self, n) for n in ("epochs", "patience", "batch_size")})
        check_ints(1, MAX_HIDDEN, hidden=self.hidden)
        check_ints(1, MAX_LAYERS, layers=self.layers)
        check_seed(self.seed)
        if not (isinstance(self.lr, (int, float)) and math.isfinite(self.lr) and self.lr > 0):
            raise TinyLocError(f"--lr {self.lr!r}: must be a positive number")
        if not (isinstance(self.weight_decay, (int, float)) and 0 <= self.weight_decay < math.inf):
            raise TinyLocError(f"--weight-decay {self.weight_decay!r}: must be a non-negative number")
        if not (isinstance(self.ap_dropout, (int, float)) and 0 <= self.ap_dropout < 1):
            raise TinyLocError(f"--ap-dropout {self.ap_dropout!r}: must be in [0, 1)")
        if not (isinstance(self.offset_db, (int, float)) and 0 <= self.offset_db < math.inf):
            raise TinyLocError(f"--offset-db {self.offset_db!r}: must be a non-negative number")
        paths.check_output(self.out, self.overwrite)


def check_labels(dataset) -> None:
    """Every label must be -1 or a class index 0..C-1."""
    import numpy as np

    for split in ("train", "val", "test"):
        y = dataset.split(split)[1]
        bad = y[(y < -1) | (y >= dataset.n_classes)]
        if bad.size:
            raise TinyLocError(
                f"{dataset.name}: y_{split} has label {int(bad[0])} outside -1..{dataset.n_classes - 1}"
            )
        if split == "train" and not np.any(y >= 0):
            raise TinyLocError(f"{dataset.name}: the train split has no labelled step")
        if split != "train" and not np.any(y[:, -1] >= 0):
            raise TinyLocError(f"{dataset.name}: the {split} split has no window with a labelled last step")


# ---------------------------------------------------------------------------------------------- training loop
def make_dataset(x, y, batch_size: int, shuffle: bool, seed: int, ap_dropout: float = 0.0, floor=None):
    """``tf.data`` pipeline of ``(x (B,T,F), y (B,T))`` batches, reshuffled each epoch with a fixed seed.

    With ``ap_dropout`` p > 0 (training augmentation) every heard reading (``x > floor``) is independently replaced
    by ``floor`` ``(F,)`` — the scaled "not heard" value — with probability p, freshly drawn each epoch: it simulates
    access points missing from a scan, the main difference between UJIIndoorLoc's training and test phones.
    """
    import numpy as np
    import tensorflow as tf

    ds = tf.data.Dataset.from_tensor_slices((x, y))
    if shuffle:
        ds = ds.shuffle(len(x), seed=seed, reshuffle_each_iteration=True)
    ds = ds.batch(batch_size)
    if ap_dropout > 0:
        floor_t = tf.constant(np.asarray(floor, np.float32))

        def drop(xb, yb):
            hit = tf.random.uniform(tf.shape(xb), seed=seed) < ap_dropout
            return tf.where(tf.logical_and(hit, xb > floor_t), floor_t, xb), yb

        ds = ds.map(drop, num_parallel_calls=1, deterministic=True)
    return ds.prefetch(tf.data.AUTOTUNE)


def scaled_floor(dataset):
    """``(F,)`` the scaled value of ``dataset.fill_value`` ("not heard") per feature."""
    import numpy as np

    return dataset.scaling.transform(np.full((1, dataset.n_features), dataset.fill_value, np.float32))[0]


def fit_tagger(trainer, tagger, dataset, cfg, log: Callable[[str], None] = print,
               on_epoch: Callable[[dict], bool] | None = None) -> dict[str, Any]:
    """Fit ``trainer`` (the tagger itself, or a Distiller wrapping it) with early stopping on validation F1.

    After each epoch the tagger decodes the validation windows; the weights of the epoch with the best validation
    macro-F1 (ties: the earlier epoch) are kept and restored at the end. A non-finite loss stops training with a
    TinyLocError. ``trainer`` must already be compiled. ``on_epoch``: called with each epoch's history record
    (``{"epoch", "loss", "val_f1", "val_acc", "seconds"}``); returning True stops training after that epoch
    (a scheduler's early elimination, e.g. ``fit --mcu``'s successive halving).

    Returns:
        ``{"best_epoch", "epochs_run", "train_seconds", "epoch_seconds", "history"}``.
    """
    import keras
    import numpy as np

    from keras_tinyloc.training.metrics import window_metrics

    x_val, y_val = dataset.split("val")
    state = {"best_f1": -1.0, "best_epoch": 0, "weights": None, "nan_epoch": None, "history": [], "t0": 0.0}

    class _EarlyStopF1(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            state["t0"] = time.perf_counter()

        def on_epoch_end(self, epoch, logs=None):
            seconds = time.perf_counter() - state["t0"]
            loss = float((logs or {}).get("loss", float("nan")))
            if not math.isfinite(loss):
                state["nan_epoch"] = epoch + 1
                self.model.stop_training = True
                return
            m = window_metrics(y_val, tagger.decode(x_val, batch_size=max(cfg.batch_size, 1024)))
            state["history"].append(
                {"epoch": epoch + 1, "loss": loss, "val_f1": m["f1"], "val_acc": m["acc"], "seconds": seconds}
            )
            better = m["f1"] > state["best_f1"]
            if better:
                state.update(best_f1=m["f1"], best_epoch=epoch + 1, weights=tagger.get_weights())
            if cfg.verbose:
                log(
                    f"epoch {epoch + 1:3d}/{cfg.epochs}  loss {loss:.4f}  val_f1 {m['f1']:.4f}  "
                    f"val_acc {m['acc']:.4f}  {seconds:.2f}s{'  *' if better else ''}"
                )
            if epoch + 1 - state["best_epoch"] >= cfg.patience:
                self.model.stop_training = True
            if on_epoch is not None and on_epoch(dict(state["history"][-1])):
                self.model.stop_training = True

    x_train, y_train = dataset.split("train")
    train_ds = make_dataset(
        x_train, y_train, cfg.batch_size, shuffle=True, seed=cfg.seed, ap_dropout=cfg.ap_dropout,
        floor=scaled_floor(dataset),
    )
    start = time.perf_counter()
    trainer.fit(train_ds, epochs=cfg.epochs, verbose=0, shuffle=False, callbacks=[_EarlyStopF1()])
    train_seconds = time.perf_counter() - start
    if state["nan_epoch"] is not None:
        raise TinyLocError(
            f"training loss became NaN/inf in epoch {state['nan_epoch']} (lr {cfg.lr}): stopped, nothing written"
        )
    if state["weights"] is not None:
        tagger.set_weights(state["weights"])
    secs = [h["seconds"] for h in state["history"]]
    return {
        "best_epoch": state["best_epoch"],
        "epochs_run": len(state["history"]),
        "train_seconds": train_seconds,
        "epoch_seconds": float(np.median(secs)) if secs else float("nan"),
        "history": state["history"],
    }


def make_optimizer(cfg):
    """Adam with ``cfg.lr`` and, if ``cfg.weight_decay`` > 0, decoupled weight decay."""
    import keras

    return keras.optimizers.Adam(cfg.lr, weight_decay=cfg.weight_decay or None)


def evaluate(tagger, dataset, batch_size: int = 1024) -> dict[str, float]:
    """``{"val_f1", "val_acc", "test_f1", "test_acc"}`` of the decoded last step."""
    from keras_tinyloc.training.metrics import window_metrics

    out = {}
    for split in ("val", "test"):
        x, y = dataset.split(split)
        m = window_metrics(y, tagger.decode(x, batch_size=batch_size))
        out[f"{split}_f1"], out[f"{split}_acc"] = m["f1"], m["acc"]
    return out


def count_params(tagger) -> int:
    """All weights of the tagger, trainable and frozen (emitter + CRF C² + 2C), as the paper counts them."""
    from keras_tinyloc.models.params import count_params as _count

    return int(_count(tagger)["total"])


def run_config(cfg, dataset, tagger) -> dict[str, Any]:
    """The ``config.json`` of a run: the config dataclass fields + what deployment needs to rebuild the input."""
    config = dataclasses.asdict(cfg)
    config.update(
        {
            "input_shape": list(dataset.input_shape),
            "n_classes": dataset.n_classes,
            "class_names": list(dataset.class_names),
            "feature_names": list(dataset.feature_names),
            "scaling": dataset.scaling.to_dict(),
            "fill_value": float(dataset.fill_value),
            "crf": tagger.crf_weights(),
        }
    )
    return config


def write_run(out, tagger, config: dict, metrics: dict, overwrite: bool) -> Path:
    """Write ``model.keras``, ``config.json``, ``metrics.json`` to ``out`` atomically (all three or nothing)."""
    with paths.atomic_dir(out, overwrite=overwrite) as tmp:
        tagger.save(tmp / "model.keras")
        paths.atomic_write_json(tmp / "config.json", config)
        paths.atomic_write_json(tmp / "metrics.json", metrics)
    return Path(out)


def load_training_data(cfg):
    """Load ``cfg.dataset`` through the registry."""
    from keras_tinyloc.data.registry import load_dataset

    return load_dataset(cfg.dataset, cfg.data_dir, **cfg.dataset_options)


def train(cfg: TrainConfig, dataset=None, log: Callable[[str], None] = print) -> dict[str, Any]:
    """Train one tagger and write its RUN_DIR.

    Args:
        cfg: the run's :class:`TrainConfig`.
        dataset: a :class:`~keras_tinyloc.data.base.WindowDataset` to use instead of loading ``cfg.dataset``
            (tests, notebooks, the sweep's in-memory cache).
        log: where the per-epoch lines go.
    Returns:
        The metrics written to ``metrics.json``.
    """
    cfg.validate()
    with paths.claimed_output(cfg.out, cfg.overwrite):  # locked until written: one writer per RUN_DIR
        return _train(cfg, dataset, log)


def _train(cfg: TrainConfig, dataset, log: Callable[[str], None]) -> dict[str, Any]:
    from keras_tinyloc.models import build_tagger

    if dataset is None:
        dataset = load_training_data(cfg)
    check_labels(dataset)
    tagger = build_tagger(
        cfg.model, dataset.input_shape, dataset.n_classes, cfg.hidden, cfg.layers, seed=cfg.seed, **cfg.model_options
    )
    tagger.compile(optimizer=make_optimizer(cfg), jit_compile=cfg.jit_compile)
    trainer = tagger
    if cfg.offset_db > 0:  # per-window offsets drawn afresh every batch inside the train step
        from keras_tinyloc.training.augment import AugmentConfig, inverse_span
        from keras_tinyloc.training.trainer import make_trainer

        trainer = make_trainer(tagger, inverse_span(dataset.scaling.low, dataset.scaling.high),
                               AugmentConfig(offset_db=float(cfg.offset_db)), seed=cfg.seed)
        trainer.compile(optimizer=make_optimizer(cfg), jit_compile=cfg.jit_compile)
    if cfg.verbose:
        log(
            f"train {cfg.model} H{cfg.hidden}L{cfg.layers} on {dataset.name}: {len(dataset.x_train)} train / "
            f"{len(dataset.x_val)} val / {len(dataset.x_test)} test windows, input {dataset.input_shape}, "
            f"{dataset.n_classes} classes, {count_params(tagger)} params"
        )
    fit = fit_tagger(trainer, tagger, dataset, cfg, log=log)
    metrics = {**evaluate(tagger, dataset), "params": count_params(tagger), **fit}
    write_run(cfg.out, tagger, run_config(cfg, dataset, tagger), metrics, cfg.overwrite)
    if cfg.verbose:
        log(
            f"best epoch {fit['best_epoch']}: val_f1 {metrics['val_f1']:.4f} val_acc {metrics['val_acc']:.4f} "
            f"test_f1 {metrics['test_f1']:.4f} test_acc {metrics['test_acc']:.4f} -> {cfg.out}"
        )
    return metrics


# ---------------------------------------------------------------------------------------------- reading a run
def load_run(run_dir: str | os.PathLike):
    """Read a RUN_DIR written by ``train`` or ``distill``.

    Returns:
        ``(tagger, config, metrics)``: the :class:`~keras_tinyloc.models.tagger.CRFTagger` (not compiled), and the
        ``config.json`` / ``metrics.json`` dictionaries.
    Raises:
        TinyLocError naming the missing or unreadable file.
    """
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise TinyLocError(f"{run_dir}: no such run directory")
    docs = {}
    for name in ("config.json", "metrics.json"):
        path = run_dir / name
        if not path.is_file():
            raise TinyLocError(f"{path}: missing (not a run directory written by train/distill?)")
        try:
            docs[name] = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise TinyLocError(f"{path}: cannot read JSON ({exc})") from None
        if not isinstance(docs[name], dict):
            raise TinyLocError(f"{path}: not a JSON object (found {type(docs[name]).__name__})")
    model_path = run_dir / "model.keras"
    if not model_path.is_file():
        raise TinyLocError(f"{model_path}: missing (not a run directory written by train/distill?)")
    tagger = _load_tagger(model_path, docs["config.json"].get("model"))
    return tagger, docs["config.json"], docs["metrics.json"]


def load_run_dataset(config: dict, data_dir: str | None = None, run: str = "RUN_DIR"):
    """The dataset a run was trained on (``config["dataset"]``, its data_dir and loader options), checked against
    the run's feature contract (:func:`check_run_contract`; ``run`` names the run in the error)."""
    from keras_tinyloc.data.registry import load_dataset

    name = config.get("dataset")
    if not name:
        raise TinyLocError(f"{run}/config.json: no 'dataset' field")
    opts = dict(config.get("dataset_options") or {})
    ds = load_dataset(name, data_dir=data_dir or config.get("data_dir"), **opts)
    check_run_contract(config, ds, run)
    return ds


def _differences(what: str, ours: list, theirs: list) -> str:
    """One phrase saying how two name lists differ (count, members, or order)."""
    if len(ours) != len(theirs) or set(ours) != set(theirs):
        missing = [n for n in ours if n not in theirs]
        extra = [n for n in theirs if n not in ours]
        parts = [f"the run has {len(ours)} {what}, the data {len(theirs)}"]
        if missing:
            parts.append(f"missing from the data: {', '.join(map(str, missing[:6]))}{' ...' if len(missing) > 6 else ''}")
        if extra:
            parts.append(f"not in the run: {', '.join(map(str, extra[:6]))}{' ...' if len(extra) > 6 else ''}")
        return "; ".join(parts)
    i = next(k for k, (a, b) in enumerate(zip(ours, theirs)) if a != b)
    return f"same {what} in another order (position {i}: the run has {ours[i]!r}, the data {theirs[i]!r})"


def check_run_contract(config: dict, ds, run: str = "RUN_DIR") -> None:
    """The feature contract: ``ds`` must feed the model what it was trained on — the window length T, the access
    points (names **and order**: input f reads AP ``feature_names[f]``), their min-max scaling and fill value, and the
    rooms (class ``c`` is ``class_names[c]``). Raises one :class:`TinyLocError` saying which differ, so a model is never
    evaluated, converted or deployed reading the wrong beacons. Fields a run does not record are not checked."""
    import numpy as np

    problems = []
    shape = config.get("input_shape")
    if shape is not None and int(shape[0]) != int(ds.window):
        problems.append(f"window T: the run has {int(shape[0])} steps, the data {int(ds.window)}")
    feats = config.get("feature_names")
    if feats is not None and list(feats) != list(ds.feature_names):
        problems.append("access points: " + _differences("access points", list(feats), list(ds.feature_names)))
    elif shape is not None and int(shape[1]) != int(ds.n_features):
        problems.append(f"access points: the run has {int(shape[1])}, the data {int(ds.n_features)}")
    rooms = config.get("class_names")
    if rooms is not None and list(rooms) != list(ds.class_names):
        problems.append("rooms: " + _differences("rooms", list(rooms), list(ds.class_names)))
    scaling = config.get("scaling")
    if scaling is not None and not problems:
        for key in ("low", "high"):
            a, b = np.asarray(scaling.get(key), np.float64), np.asarray(getattr(ds.scaling, key), np.float64)
            if a.shape != b.shape or not np.allclose(a, b, rtol=0, atol=1e-6):
                k = int(np.argmax(np.abs(a - b))) if a.shape == b.shape else 0
                problems.append(f"scaling: the data's min-max {key} differs (AP {ds.feature_names[k]!r}: the run "
                                f"{a.ravel()[k]:g} dBm, the data {b.ravel()[k]:g} dBm)")
                break
    fill = config.get("fill_value")
    if fill is not None and not problems and float(fill) != float(ds.fill_value):
        problems.append(f"fill value: the run {float(fill):g} dBm, the data {float(ds.fill_value):g} dBm")
    if problems:
        raise TinyLocError(f"{run}: the data does not match what the model was trained on — {'; '.join(problems)}")


def _load_tagger(model_path: Path, family: str | None):
    import importlib

    import keras

    from keras_tinyloc.models.tagger import CRFTagger

    # the emitter's custom layers register themselves when their module is imported
    modules = ["keras_tinyloc.models.layers"]
    if family in ("mdcsa", "mamba"):
        modules.append(f"keras_tinyloc.models.{family}")
    for module in modules:
        try:
            importlib.import_module(module)
        except ImportError:
            pass
    try:
        tagger = keras.models.load_model(model_path, compile=False)
    except Exception as exc:  # noqa: BLE001 - any failure inside Keras means the file is unusable
        first = str(exc).strip().splitlines()[0][:200] if str(exc).strip() else ""
        raise TinyLocError(f"{model_path}: cannot load the model ({type(exc).__name__}: {first})") from None
    if not isinstance(tagger, CRFTagger):
        raise TinyLocError(f"{model_path}: holds a {type(tagger).__name__}, not a CRFTagger")
    return tagger


# ---------------------------------------------------------------------------------------------- CLI
def add_common_arguments(parser: argparse.ArgumentParser) -> None:
    """Options shared by ``train`` and ``distill``."""
    add_dataset_arguments(parser)  # --dataset NAME|PATH, --data-dir and the recordings options
    parser.add_argument("--model", required=True, help="emitter family: mdcsa, mamba or mlp")
    parser.add_argument("--hidden", type=int, required=True, help="hidden size H")
    parser.add_argument("--layers", type=int, required=True, help="layers / branches L")
    parser.add_argument("--out", required=True, help="RUN_DIR to write (model.keras, config.json, metrics.json)")
    parser.add_argument("--epochs", type=int, default=100, help="maximum epochs (default 100)")
    parser.add_argument("--patience", type=int, default=20, help="early-stopping patience in epochs (default 20)")
    parser.add_argument("--batch-size", type=int, default=128, help="training batch size (default 128)")
    parser.add_argument("--lr", type=float, default=3e-3, help="Adam learning rate (default 3e-3)")
    parser.add_argument("--weight-decay", type=float, default=0.0, help="decoupled weight decay (default 0)")
    parser.add_argument(
        "--ap-dropout", type=float, default=0.0,
        help="augmentation: probability of dropping each heard AP reading to 'not heard' (default 0)",
    )
    parser.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    parser.add_argument("--overwrite", action="store_true", help="replace a non-empty RUN_DIR")
    parser.add_argument("--offset-db", type=float, default=0.0,
                        help="augmentation: one uniform ±dB offset per training window, a phone's gain (default 0)")
    parser.add_argument("--input-power", type=int, default=1,
                        help="feed x**K of the scaled RSSI to the model (K-1 int8 MULs in the model; default 1)")
    parser.add_argument(
        "--jit", dest="jit_compile", action=argparse.BooleanOptionalAction, default=False,
        help="XLA-compile the train step (default off: see docs/results/train_speed.md)",
    )
    parser.add_argument("--quiet", action="store_true", help="no per-epoch lines")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m keras_tinyloc train",
        description="Train an emitter + CRF tagger with early stopping on validation macro-F1; write RUN_DIR.",
    )
    add_common_arguments(parser)
    return parser


def config_kwargs(ns: argparse.Namespace) -> dict[str, Any]:
    return {
        "dataset": ns.dataset, "model": ns.model, "hidden": ns.hidden, "layers": ns.layers, "out": ns.out,
        "epochs": ns.epochs, "patience": ns.patience, "batch_size": ns.batch_size, "lr": ns.lr,
        "weight_decay": ns.weight_decay, "ap_dropout": ns.ap_dropout, "offset_db": ns.offset_db,
        "seed": ns.seed, "model_options": {"input_power": ns.input_power} if ns.input_power != 1 else {},
        "data_dir": ns.data_dir, "dataset_options": dataset_options(ns), "overwrite": ns.overwrite,
        "jit_compile": ns.jit_compile, "verbose": not ns.quiet,
    }


@cli_errors
def main(argv: list[str] | None = None) -> int:
    ns = build_parser().parse_args(argv)
    cfg = TrainConfig(**config_kwargs(ns))
    cfg.validate()  # fail before importing TensorFlow or loading data
    metrics = train(cfg, log=lambda line: print(line, flush=True))
    print(json.dumps({k: metrics[k] for k in ("val_f1", "val_acc", "test_f1", "test_acc", "params", "epochs_run")}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
