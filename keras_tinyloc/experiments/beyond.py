"""Issue 7 on UJIIndoorLoc: small int8 MLPs with AP selection, robust training and distillation, measured in TFLM.

One **row** = one :class:`BeyondConfig`: select access points on the training split (:mod:`keras_tinyloc.experiments.apselect`),
train an MLP emitter + CRF (with ``T = 1`` the CRF reduces to a softmax over ``emissions + start + end``) with optional
training-time augmentation (:mod:`keras_tinyloc.training.augment`), hidden dropout and distillation from teacher runs, write a
normal RUN_DIR (``train``'s format: ``config.json`` keeps ``dataset_options={"features": [...]}`` so ``convert``
reloads the same columns), convert it to full int8 and evaluate it **through TFLM** (:func:`keras_tinyloc.deploy.convert.
convert_run`), and add ``kFeatureIndex`` (which raw AP each input reads) to ``model_settings.h``.

Early stopping selects the epoch by **validation** macro-F1 (``train.fit_tagger``); nothing here looks at the test set
to choose anything. Distillation: ``L = alpha * NLL + (1 - alpha) * tau² * CE(q, p_S)`` where ``q`` is the mean of the
teachers' tempered CRF marginals on the same (augmented) batch (Hinton et al. 2015), ``p_S`` the student's.

CLI::

    python -m keras_tinyloc beyond uji-zones --row aug-h64 --out runs/beyond     # one named row (ROWS)
    python -m keras_tinyloc beyond uji --all --out runs/beyond                     # every row, in order
    python -m keras_tinyloc beyond uji-zones --hidden 32 --layers 1 --ap heard:0.01 --p-drop 0.2 --out runs/x

Shapes: windows ``(B,T,F)`` with ``T = 1`` on UJIIndoorLoc, emissions ``(B,T,C)``.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import time
from pathlib import Path
from typing import Any, Callable

from keras_tinyloc import paths
from keras_tinyloc.errors import TinyLocError, check_ints, check_positive_ints, check_seed, cli_errors
from keras_tinyloc.models import mlp
from keras_tinyloc.training.augment import AugmentConfig
from keras_tinyloc.training.train import MAX_HIDDEN, MAX_LAYERS
from keras_tinyloc.training.trainer import make_trainer

DATASETS = ("uji", "uji-zones")
VALIDATIONS = ("random", "phones")
HOLDOUT_SHARE = 0.2
ARENA_BUDGET = 20 * 1024  # CC2650 class: 20 KiB RAM
FLASH_BUDGET = 128 * 1024  # and 128 KiB flash


@dataclasses.dataclass
class BeyondConfig:
    """One ablation row.

    Attributes:
        dataset: ``uji`` (13 building-floors) or ``uji-zones`` (59 zones).
        name: the row's name (RUN_DIR = ``out/<dataset>/<name>``).
        hidden: H.  layers: L (Dense+ReLU layers).  dropout: after each hidden layer (training only).
        power: k >= 1: the model's first op raises each scaled input to the k-th power (``x**k``, k-1 int8 MULs in
            TFLM): the "powed" representation of Torres-Sospedra et al. (2015) with their beta = e rounded to 3,
            which shrinks weak, unreliable readings towards "not heard".
        ap: access-point selection rule (:func:`keras_tinyloc.experiments.apselect.parse_spec`).
        p_drop, offset_db, noise_db: :class:`~keras_tinyloc.training.augment.AugmentConfig`.
        teachers: names of earlier rows (same dataset and ``ap``) whose runs are the distillation teachers.
        alpha, temperature: distillation weights (used only with ``teachers``).
        members: names of earlier rows (same dataset, ``ap`` and ``power``) deployed together as one int8 model
            that averages their scores (:func:`keras_tinyloc.models.mlp.build_ensemble_emitter`); nothing is trained.
        floor_weight: lambda > 0 trains a **hierarchical head** (``uji-zones`` only, :func:`keras_tinyloc.models.mlp.build_hier_emitter`): a
            building-floor head beside the zone head, zone score = zone head + its building-floor's score, loss =
            CRF NLL on zones + lambda * cross-entropy on building-floors; folded into one Dense before saving.
        epochs, patience, batch_size, lr, seed: training (early stopping on validation macro-F1).
        validation: ``random`` = the loader's validation split (25 % of trainingData, same phones as training);
            ``phones`` = :func:`phone_holdout` (validation = whole phones unseen in training, like the test set;
            used to choose a recipe, RUN_DIR ``<name>@phones``).
        out: root directory of the runs.  overwrite: replace existing runs.
        target: ``host`` (default) or ``cortex-m4``: also measure the int8 model on the emulated Cortex-M4F
            (``convert --target cortex-m4``); the row then holds ``device`` (whole firmware: M4 arena, RAM, flash,
            instructions, MCU fit) and ``device_within_budget`` (whole-firmware RAM <= 20 KiB and flash <= 128 KiB).
    """

    dataset: str
    name: str = "row"
    hidden: int = 64
    layers: int = 1
    dropout: float = 0.0
    power: int = 1
    ap: str = "all"
    p_drop: float = 0.0
    offset_db: float = 0.0
    noise_db: float = 0.0
    teachers: tuple[str, ...] = ()
    floor_weight: float = 0.0
    members: tuple[str, ...] = ()
    alpha: float = 0.1
    temperature: float = 2.0
    epochs: int = 40
    patience: int = 10
    batch_size: int = 128
    lr: float = 3e-3
    seed: int = 0
    validation: str = "random"
    out: str = "runs/beyond"
    overwrite: bool = False
    target: str = "host"

    def validate(self) -> None:
        from keras_tinyloc.deploy.convert import resolve_target
        from keras_tinyloc.experiments import apselect

        if self.target not in ("host", "cortex-m4"):
            raise TinyLocError(f"--target {self.target!r}: choose from host, cortex-m4")
        resolve_target(self.target, "int8")  # cortex-m4: the TFLM kit, Arm toolchain and QEMU are here

        if self.dataset not in DATASETS:
            raise TinyLocError(f"dataset {self.dataset!r}: choose from {', '.join(DATASETS)}")
        apselect.parse_spec(self.ap)
        if self.validation not in VALIDATIONS:
            raise TinyLocError(f"--validation {self.validation!r}: choose from {', '.join(VALIDATIONS)}")
        self.augment()
        if not 0.0 <= float(self.dropout) < 1.0:
            raise TinyLocError(f"--dropout {self.dropout!r}: must be in [0, 1)")
        if not 0.0 <= float(self.alpha) <= 1.0:
            raise TinyLocError(f"--alpha {self.alpha!r}: must be in [0, 1]")
        if not float(self.temperature) > 0:
            raise TinyLocError(f"--temperature {self.temperature!r}: must be > 0")
        if not float(self.floor_weight) >= 0:
            raise TinyLocError(f"--floor-weight {self.floor_weight!r}: must be >= 0")
        if self.floor_weight and self.dataset != "uji-zones":
            raise TinyLocError(f"--floor-weight needs uji-zones (zones grouped by building-floor), got {self.dataset}")
        if isinstance(self.power, int) and self.power > 4:
            raise TinyLocError(f"--power {self.power!r}: at most 4 (x**k of a [0, 1] int8 input loses the weak readings)")
        check_positive_ints(**{n: getattr(self, n) for n in ("epochs", "patience", "batch_size", "power")})
        check_ints(1, MAX_HIDDEN, hidden=self.hidden)
        check_ints(1, MAX_LAYERS, layers=self.layers)
        check_seed(self.seed)
        paths.check_output_path(self.out)

    def augment(self) -> AugmentConfig:
        return AugmentConfig(p_drop=self.p_drop, offset_db=self.offset_db, noise_db=self.noise_db)

    def run_dir(self) -> Path:
        suffix = "" if self.validation == "random" else f"@{self.validation}"
        return Path(self.out) / self.dataset / f"{self.name}{suffix}"

    def technique(self) -> str:
        """A short human label of the levers this row uses."""
        parts = [f"AP {self.ap}"]
        if self.power > 1:
            parts.append(f"powed x^{self.power}")
        if self.augment().active:
            parts.append(f"aug(drop {self.p_drop:g}, offset ±{self.offset_db:g} dB"
                         + (f", noise {self.noise_db:g} dB" if self.noise_db else "") + ")")
        if self.dropout:
            parts.append(f"dropout {self.dropout:g}")
        if self.members:
            parts.append(f"ensemble of {len(self.members)} runs in one model")
        if self.floor_weight:
            parts.append(f"hierarchical head (building-floor, lambda {self.floor_weight:g})")
        if self.teachers:
            parts.append(f"KD from {len(self.teachers)}-run ensemble (tau {self.temperature:g}, alpha {self.alpha:g})")
        return ", ".join(parts) if len(parts) > 1 or self.ap != "all" else "plain"


# The ablation, in dependency order (teachers before their students). Fixed a priori, not tuned on the test set.
_AUG = dict(p_drop=0.2, offset_db=8.0, dropout=0.2)
_AUG2 = dict(p_drop=0.3, offset_db=12.0, dropout=0.3)
_POW = dict(ap="heard:0.01", power=3)
_POW_TEACHERS = ("pow3-teacher-h256l2-s0", "pow3-teacher-h256l2-s1")
ROWS: dict[str, dict[str, Any]] = {
    "plain-h16": dict(hidden=16, layers=1, ap="all"),
    "plain-h64": dict(hidden=64, layers=1, ap="all"),
    "ap-heard-h64": dict(hidden=64, layers=1, ap="heard:0.01"),
    "ap-mi200-h64": dict(hidden=64, layers=1, ap="mi:200"),
    "aug-h16": dict(hidden=16, layers=1, ap="heard:0.01", **_AUG),
    "aug-h64": dict(hidden=64, layers=1, ap="heard:0.01", **_AUG),
    "aug-h128": dict(hidden=128, layers=1, ap="heard:0.01", **_AUG),
    "aug-h128l2": dict(hidden=128, layers=2, ap="heard:0.01", **_AUG),
    "aug-noise-h64": dict(hidden=64, layers=1, ap="heard:0.01", noise_db=3.0, **_AUG),
    "teacher-h256l2-s0": dict(hidden=256, layers=2, ap="heard:0.01", seed=0, p_drop=0.2, offset_db=8.0, dropout=0.3),
    "teacher-h256l2-s1": dict(hidden=256, layers=2, ap="heard:0.01", seed=1, p_drop=0.2, offset_db=8.0, dropout=0.3),
    "kd-h64": dict(hidden=64, layers=1, ap="heard:0.01", teachers=("teacher-h256l2-s0", "teacher-h256l2-s1")),
    "kd-aug-h64": dict(hidden=64, layers=1, ap="heard:0.01", teachers=("teacher-h256l2-s0", "teacher-h256l2-s1"),
                       **_AUG),
    "pow3-h64": dict(hidden=64, layers=1, **_POW),
    "pow3-aug-h16": dict(hidden=16, layers=1, **_POW, **_AUG),
    "pow3-aug-h32": dict(hidden=32, layers=1, **_POW, **_AUG),
    "pow3-aug-h64": dict(hidden=64, layers=1, **_POW, **_AUG),
    "pow3-aug-h128": dict(hidden=128, layers=1, **_POW, **_AUG),
    "pow3-aug-h128l2": dict(hidden=128, layers=2, **_POW, **_AUG),
    "pow3-teacher-h256l2-s0": dict(hidden=256, layers=2, seed=0, p_drop=0.2, offset_db=8.0, dropout=0.3, **_POW),
    "pow3-teacher-h256l2-s1": dict(hidden=256, layers=2, seed=1, p_drop=0.2, offset_db=8.0, dropout=0.3, **_POW),
    "pow3-kd-aug-h64": dict(hidden=64, layers=1, teachers=_POW_TEACHERS, **_POW, **_AUG),
    # stronger augmentation and other powers (chosen between on held-out phones, RECIPES)
    "pow2-aug-h64": dict(hidden=64, layers=1, **{**_POW, "power": 2}, **_AUG),
    "pow4-aug-h64": dict(hidden=64, layers=1, **{**_POW, "power": 4}, **_AUG),
    "pow3-aug2-h64": dict(hidden=64, layers=1, **_POW, **_AUG2),
    "pow3-aug2-h128": dict(hidden=128, layers=1, **_POW, **_AUG2),
    # seed spread of the plain baseline and of the robust recipe
    "pow3-aug-hier-h64": dict(hidden=64, layers=1, floor_weight=1.0, **_POW, **_AUG),
    "pow3-aug-hier-h64-s1": dict(hidden=64, layers=1, floor_weight=1.0, seed=1, **_POW, **_AUG),
    "pow3-aug-hier-h64-s2": dict(hidden=64, layers=1, floor_weight=1.0, seed=2, **_POW, **_AUG),
    "plain-h64-s1": dict(hidden=64, layers=1, ap="all", seed=1),
    "plain-h64-s2": dict(hidden=64, layers=1, ap="all", seed=2),
    "pow3-aug-h64-s1": dict(hidden=64, layers=1, seed=1, **_POW, **_AUG),
    "pow3-aug-h64-s2": dict(hidden=64, layers=1, seed=2, **_POW, **_AUG),
    "pow3-aug-h64-ens3": dict(hidden=64, layers=1, members=("pow3-aug-h64", "pow3-aug-h64-s1", "pow3-aug-h64-s2"),
                              **_POW, **_AUG),
}
# Recipes compared on held-out phones (validation="phones") to choose one without the test set.
RECIPES = ("plain-h64", "ap-heard-h64", "aug-h64", "aug-noise-h64", "pow3-h64", "pow3-aug-h16", "pow3-aug-h64",
           "pow3-aug-h128", "pow2-aug-h64", "pow4-aug-h64", "pow3-aug2-h64", "pow3-aug2-h128")


def rows_for(dataset: str) -> list[str]:
    """The rows ``--all`` runs on ``dataset``, in order: every row of :data:`ROWS` that applies to it (hierarchical
    heads only on ``uji-zones``)."""
    return [n for n in ROWS if dataset == "uji-zones" or not ROWS[n].get("floor_weight")]


def row_config(dataset: str, name: str, **overrides) -> BeyondConfig:
    """The :class:`BeyondConfig` of a named row of :data:`ROWS` (``overrides`` e.g. ``out``, ``epochs``)."""
    if name not in ROWS:
        raise TinyLocError(f"--row {name!r}: choose from {', '.join(ROWS)}")
    return BeyondConfig(dataset=dataset, name=name, **{**ROWS[name], **overrides})


# ---------------------------------------------------------------------------------------------- models


def zone_groups(class_names) -> tuple[list[str], list[int]]:
    """Building-floor groups of zone classes named ``B<b>-F<f>-Z<z>``: ``(group names (G,), group of each class (C,))``."""
    groups: list[str] = []
    of_class = []
    for name in class_names:
        parts = str(name).split("-")
        if len(parts) != 3 or not parts[0].startswith("B") or not parts[1].startswith("F"):
            raise TinyLocError(f"class {name!r}: a hierarchical head needs zone names 'B<b>-F<f>-Z<z>'")
        g = f"{parts[0]}-{parts[1]}"
        if g not in groups:
            groups.append(g)
        of_class.append(groups.index(g))
    return groups, of_class


# ---------------------------------------------------------------------------------------------- validation
def phone_holdout(ds, data_dir=None, share: float = HOLDOUT_SHARE):
    """Re-split UJIIndoorLoc's trainingData so that validation = whole phones never seen in training.

    The test set (validationData) is mostly phones absent from trainingData, so the loader's random 75/25 split
    (same phones on both sides) cannot see the shift that costs most of the test error. Rule: pool the loader's
    train and validation rows; walk the phones in ascending PHONEID and hold a phone out if every building-floor it
    visited is still covered by the phones kept, until the held-out rows are at least ``share`` of the pool
    (the real data: phones 1, 3, 6, 7 = 4,096 of 19,937 rows). The test split and the scaling are unchanged
    (the scaling was fit on the loader's training split, which includes some held-out rows: min/max only).

    Args:
        ds: the loader's ``uji`` or ``uji-zones`` dataset (all APs).
    Returns:
        A :class:`~keras_tinyloc.data.base.WindowDataset` with the new train/val split, ``meta["holdout_phones"]``.
    Raises:
        TinyLocError if the loader's split cannot be reproduced row for row from the source CSVs.
    """
    import io

    import numpy as np
    import pandas as pd
    from sklearn.model_selection import train_test_split

    from keras_tinyloc.data import uji

    src = uji.find_source(data_dir)
    tables = uji._load_tables(src, src.md5())  # the parsed RSSI, shared with the loader (its cache)
    raw = src.read_bytes()[uji.TRAIN_CSV]
    meta_cols = pd.read_csv(io.BytesIO(raw[1]), usecols=["BUILDINGID", "FLOOR", "PHONEID"], skipinitialspace=True)
    bf_pairs = list(zip(meta_cols.BUILDINGID.astype(int), meta_cols.FLOOR.astype(int)))
    index = {p: i for i, p in enumerate(sorted(set(bf_pairs)))}
    bf = np.array([index[p] for p in bf_pairs])
    strat = bf if np.bincount(bf).min() >= 2 else None
    i_tr, i_va = train_test_split(np.arange(len(bf)), test_size=0.25, random_state=int(ds.meta.get("seed", 0)),
                                  stratify=strat)
    i_tr, i_va = np.sort(i_tr), np.sort(i_va)
    rssi = tables["train_rssi"]
    filled = np.where(rssi == uji.NOT_DETECTED, ds.fill_value, rssi).astype(np.float32)
    if len(i_tr) != len(ds.x_train) or not np.array_equal(ds.scaling.transform(filled[i_tr]), ds.x_train[:, 0, :]):
        raise TinyLocError(f"{raw[0]}: cannot reproduce the loader's train/validation split (seed "
                           f"{ds.meta.get('seed')}): phone hold-out needs the same rows")
    order = np.concatenate([i_tr, i_va])
    phone = meta_cols.PHONEID.to_numpy()[order]
    rows_bf = bf[order]
    x = np.concatenate([ds.x_train, ds.x_val])
    y = np.concatenate([ds.y_train, ds.y_val])
    held: list[int] = []
    for p in sorted(set(phone.tolist())):
        if (np.isin(phone, held)).sum() >= share * len(phone):
            break
        kept = ~np.isin(phone, held + [p])
        if set(rows_bf[phone == p].tolist()) <= set(rows_bf[kept].tolist()):
            held.append(int(p))
    val = np.isin(phone, held)
    return dataclasses.replace(ds, x_train=x[~val], y_train=y[~val], x_val=x[val], y_val=y[val],
                               meta={**ds.meta, "holdout_phones": held, "validation": "phones"})


# ---------------------------------------------------------------------------------------------- one row
def load_selected(dataset: str, ap: str, data_dir=None, base=None):
    """``(dataset with the selected APs, feature names)``; ``base`` = the full dataset if already loaded."""
    from keras_tinyloc.experiments import apselect
    from keras_tinyloc.data.registry import load_dataset, select_features

    full = base if base is not None else load_dataset(dataset, data_dir)
    names = apselect.select_features(full, ap)
    return select_features(full, names), names


def run_row(cfg: BeyondConfig, base=None, data_dir=None, log: Callable[[str], None] = print) -> dict[str, Any]:
    """Train, convert (int8, TFLM) and measure one row; returns the row dict (also ``RUN_DIR/row.json``).

    ``base``: the full (all-AP) dataset of ``cfg.dataset`` if already in memory. An existing RUN_DIR with a
    ``row.json`` is reused unless ``cfg.overwrite``.
    """
    import keras

    from keras_tinyloc.training.augment import inverse_span
    from keras_tinyloc.models.tagger import CRFTagger
    from keras_tinyloc.training.train import TrainConfig, check_labels, fit_tagger

    cfg.validate()
    run_dir = cfg.run_dir()
    if (run_dir / "row.json").is_file() and not cfg.overwrite:
        return json.loads((run_dir / "row.json").read_text())
    if cfg.validation == "phones" and (base is None or base.meta.get("validation") != "phones"):
        from keras_tinyloc.data.registry import load_dataset

        base = phone_holdout(base if base is not None else load_dataset(cfg.dataset, data_dir), data_dir)
    ds, names = load_selected(cfg.dataset, cfg.ap, data_dir, base)
    check_labels(ds)
    opts = {} if cfg.ap == "all" else {"features": names}
    tcfg = TrainConfig(dataset=cfg.dataset, model="mlp", hidden=cfg.hidden, layers=cfg.layers, out=str(run_dir),
                       epochs=cfg.epochs, patience=cfg.patience, batch_size=cfg.batch_size, lr=cfg.lr, seed=cfg.seed,
                       data_dir=None if data_dir is None else str(data_dir), overwrite=True, verbose=False,
                       dataset_options=opts)
    tcfg.validate()
    teachers = [tagger_t for tagger_t, _ in _row_runs(cfg, cfg.teachers, ds, "teacher")]
    keras.utils.set_random_seed(cfg.seed)
    if cfg.members:  # no training: the members' runs averaged in one model
        return _ensemble_row(cfg, ds, tcfg, log)
    floor_aux = None
    if cfg.floor_weight:
        _, group_of_class = zone_groups(ds.class_names)
        emitter, floor_model = mlp.build_hier_emitter(ds.input_shape, ds.n_classes, group_of_class, cfg.hidden,
                                                  cfg.layers, cfg.dropout, cfg.power)
        floor_aux = (floor_model, group_of_class, cfg.floor_weight)
    else:
        emitter = mlp.build_mlp_emitter(ds.input_shape, ds.n_classes, cfg.hidden, cfg.layers, cfg.dropout, cfg.power)
    tagger = CRFTagger(emitter, name=f"mlp_h{cfg.hidden}l{cfg.layers}_crf")
    trainer = make_trainer(tagger, inverse_span(ds.scaling.low, ds.scaling.high), cfg.augment(), teachers,
                           cfg.alpha, cfg.temperature, cfg.seed, floor_aux=floor_aux)
    trainer.compile(optimizer=keras.optimizers.Adam(cfg.lr))
    t0 = time.perf_counter()
    fit = fit_tagger(trainer, tagger, ds, tcfg, log=log)
    if cfg.floor_weight:  # ship the exact one-Dense equivalent: a plain MLP run, same flash as a flat row
        folded = CRFTagger(mlp.fold_hier_emitter(emitter, ds.input_shape, ds.n_classes, cfg.hidden, cfg.layers,
                                             cfg.power), name=tagger.name)
        folded.crf.set_weights(tagger.crf.get_weights())
        tagger = folded
    t_train = time.perf_counter() - t0
    return _finish_row(cfg, ds, tcfg, tagger, fit, t_train, log)


def _row_runs(cfg: BeyondConfig, names, ds, role: str) -> list[tuple[Any, dict]]:
    """``[(tagger, config)]`` of earlier rows ``names`` (teachers, ensemble members); they must read ``ds``'s APs."""
    from keras_tinyloc.training.train import load_run

    out = []
    for name in names:
        run_dir = dataclasses.replace(cfg, name=name).run_dir()
        tagger, config, _ = load_run(run_dir)
        if list(config.get("feature_names", [])) != list(ds.feature_names):
            raise TinyLocError(f"{run_dir}: {role} reads other APs than row {cfg.name!r} ({cfg.ap})")
        out.append((tagger, config))
    return out


def _ensemble_row(cfg: BeyondConfig, ds, tcfg, log) -> dict[str, Any]:
    """:func:`run_row` for ``cfg.members``: average the member runs' scores in one emitter, then convert/measure."""
    import numpy as np

    from keras_tinyloc.models.tagger import CRFTagger

    t0 = time.perf_counter()
    members = []
    for tagger_m, mconf in _row_runs(cfg, cfg.members, ds, "ensemble member"):
        if int(mconf.get("beyond", {}).get("power", 1)) != cfg.power:
            raise TinyLocError(f"{cfg.run_dir().parent}: ensemble member {mconf.get('beyond', {}).get('name')!r} "
                               f"has another --power than row {cfg.name!r}")
        members.append(tagger_m)
    tagger = CRFTagger(mlp.build_ensemble_emitter(members, ds.input_shape, ds.n_classes, cfg.power),
                       name=f"mlp_ensemble{len(members)}_crf")
    tagger.crf.set_weights([np.zeros_like(w) for w in tagger.crf.get_weights()])
    fit = {"best_epoch": 0, "epochs_run": 0, "train_seconds": 0.0, "epoch_seconds": float("nan"), "history": []}
    return _finish_row(cfg, ds, tcfg, tagger, fit, time.perf_counter() - t0, log)


def _finish_row(cfg: BeyondConfig, ds, tcfg, tagger, fit: dict, t_train: float, log) -> dict[str, Any]:
    """Write the run, convert it to int8 (TFLM), add kFeatureIndex, write and return ``row.json``."""
    import numpy as np

    from keras_tinyloc.deploy import convert, export_c
    from keras_tinyloc.training.train import count_params, evaluate, run_config, write_run

    run_dir = cfg.run_dir()
    t0 = time.perf_counter() - t_train
    metrics = {**evaluate(tagger, ds), "params": count_params(tagger), **fit}
    config = run_config(tcfg, ds, tagger)
    config["beyond"] = {**dataclasses.asdict(cfg), "feature_index": ds.meta["feature_index"]}
    write_run(run_dir, tagger, config, metrics, overwrite=True)
    rep = convert.convert_run(convert.ConvertConfig(run_dir=str(run_dir), quant="int8", overwrite=True,
                                                    target=cfg.target), dataset=ds)
    tfl = run_dir / "tflite-int8"
    settings = export_c.read_device_settings(tfl)
    export_c.write_model_settings(tfl, dataclasses.replace(settings, feature_index=list(ds.meta["feature_index"])))
    row = {
        "dataset": cfg.dataset, "name": cfg.name, "family": "mlp", "H": cfg.hidden, "L": cfg.layers,
        "technique": cfg.technique(), "ap": cfg.ap, "n_features": ds.n_features, "params": metrics["params"],
        "val_f1": metrics["val_f1"], "val_acc": metrics["val_acc"],
        "test_f1_float": rep["test_f1_float"], "test_acc_float": rep["test_acc_float"],
        "test_f1_int8": rep["test_f1_int8"], "test_acc_int8": rep["test_acc_int8"],
        "int8_loss_points": round(100.0 * (rep["test_f1_float"] - rep["test_f1_int8"]), 3),
        "arena_bytes": rep["arena_bytes"], "flatbuffer_bytes": rep["flatbuffer_bytes"],
        "within_budget": bool(rep["arena_bytes"] <= ARENA_BUDGET and rep["flatbuffer_bytes"] <= FLASH_BUDGET),
        "tflm_same_prediction_as_litert": rep["tflm_matches_litert"]["share_same_window_prediction"],
        "best_epoch": fit["best_epoch"], "epochs_run": fit["epochs_run"],
        "validation": cfg.validation, "holdout_phones": ds.meta.get("holdout_phones"),
        "seconds": round(time.perf_counter() - t0, 1), "run_dir": paths.portable(run_dir),
        "config": {**dataclasses.asdict(cfg), "out": paths.portable(cfg.out)},
    }
    if rep.get("device"):  # the whole firmware on the emulated Cortex-M4F (convert --target cortex-m4)
        dev = rep["device"]
        row["device"] = dev
        row["device_within_budget"] = bool(dev["ram_bytes"] <= ARENA_BUDGET and dev["flash_bytes"] <= FLASH_BUDGET)
    if not np.isclose(row["test_f1_float"], metrics["test_f1"], atol=1e-6):
        row["note"] = f"Keras decode test F1 {metrics['test_f1']:.4f} differs from convert's float F1"
    paths.atomic_write_json(run_dir / "row.json", row)
    log(f"{cfg.dataset} {run_dir.name}: val F1 {row['val_f1']:.4f}, test F1 float {row['test_f1_float']:.4f} -> int8 "
        f"(TFLM) {row['test_f1_int8']:.4f}, acc {row['test_acc_int8']:.4f}, arena {row['arena_bytes']} B, "
        f"flatbuffer {row['flatbuffer_bytes']} B, {row['seconds']} s")
    return row


def run_rows(dataset: str, names=None, log: Callable[[str], None] = print, **overrides) -> list[dict[str, Any]]:
    """Run the named rows of :data:`ROWS` (all by default) in order on one dataset, sharing the loaded data."""
    from keras_tinyloc.data.registry import load_dataset

    names = rows_for(dataset) if names is None else list(names)
    data_dir = overrides.get("data_dir")
    base = load_dataset(dataset, data_dir)
    if overrides.get("validation") == "phones":
        base = phone_holdout(base, data_dir)  # run_row sees meta["validation"] and does not re-split
    kw = {k: v for k, v in overrides.items() if k != "data_dir"}
    return [run_row(row_config(dataset, n, **kw), base=base, data_dir=data_dir, log=log) for n in names]


def best_row(rows: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The row within the CC2650 budget with the highest **validation** F1 (ties: fewer parameters)."""
    ok = [r for r in rows if r["within_budget"]]
    return max(ok, key=lambda r: (r["val_f1"], -r["params"])) if ok else None


# ---------------------------------------------------------------------------------------------- device figures
# The rows README.md, docs/results/beyond.md and the summary of beyond_uji.md cite as the 20 KB (CC2650) results:
# the building-floor recipe x 3 seeds, the best zones row, the zones recipe x 3 seeds and their one-model ensemble,
# and the rows the random-split validation selects.
DEVICE_ROWS = ("uji:pow3-aug-h64", "uji:pow3-aug-h64-s1", "uji:pow3-aug-h64-s2", "uji:pow2-aug-h64",
               "uji-zones:pow3-aug2-h64", "uji-zones:pow3-aug-h64", "uji-zones:pow3-aug-h64-s1",
               "uji-zones:pow3-aug-h64-s2", "uji-zones:pow3-aug-h64-ens3", "uji-zones:plain-h64-s1")
# What a retrained row must reproduce exactly to be the committed row: the trained model (validation F1 and float
# test F1) and the int8 model's sizes (what the device figures depend on).
DEVICE_SAME = ("val_f1", "test_f1_float", "arena_bytes", "flatbuffer_bytes")
# Recorded beside the row's: the int8 test figures of today's conversion and TFLM wheel.
DEVICE_NOW = ("test_f1_int8", "test_acc_int8")


def attach_device(old: dict[str, Any], new: dict[str, Any], date: str) -> dict[str, Any]:
    """``old`` (a committed row) with the device figures of ``new`` (the same row trained again with
    ``target="cortex-m4"``) when ``new`` reproduced every figure of :data:`DEVICE_SAME`; otherwise ``new``'s figures
    and device figures go under ``retrained`` and ``old`` gets no ``device``: two runs are never mixed.
    ``device_check`` = ``{"date", "reproduced", "differences": {name: [old, new]}}`` plus :data:`DEVICE_NOW` of both
    (``<name>_now`` / ``<name>_row``). Every other figure of ``old`` is kept."""
    out = {k: v for k, v in old.items() if k not in ("device", "device_within_budget", "device_check", "retrained")}
    diff = {k: [old.get(k), new.get(k)] for k in DEVICE_SAME if old.get(k) != new.get(k)}
    out["device_check"] = {"date": date, "reproduced": not diff, "differences": diff,
                           **{f"{k}_now": new.get(k) for k in DEVICE_NOW}, **{f"{k}_row": old.get(k) for k in DEVICE_NOW}}
    if diff:
        out["retrained"] = {**{k: new.get(k) for k in DEVICE_SAME + DEVICE_NOW + ("test_acc_float", "params")},
                            "device": new["device"], "device_within_budget": new["device_within_budget"]}
    else:
        out["device"], out["device_within_budget"] = new["device"], new["device_within_budget"]
    return out


def add_device_rows(doc: dict[str, Any], specs, out: str, save: Callable[[dict], None] = lambda d: None,
                    log: Callable[[str], None] = print) -> dict[str, Any]:
    """Device figures for the committed rows ``specs`` (``"<dataset>:<row>"``) of a result document ``doc``
    (``docs/results/beyond_uji.json``: ``{"rows": {dataset: [row]}, ...}``), in place: each row trained again into
    ``out`` with ``target="cortex-m4"`` (a stored run there without device figures is replaced) and attached with
    :func:`attach_device`; rows that already have a ``device_check`` are skipped. ``save(doc)`` after each row."""
    for spec in specs:
        ds, _, name = spec.partition(":")
        index = {r["name"]: i for i, r in enumerate(doc["rows"].get(ds, []))}
        if name not in index:
            raise TinyLocError(f"device row {spec}: no committed row {name!r} of {ds}")
        old = doc["rows"][ds][index[name]]
        if "device_check" in old:
            continue
        cfg = row_config(ds, name, out=out, target="cortex-m4")
        stored = cfg.run_dir() / "row.json"
        stale = stored.is_file() and "device" not in json.loads(stored.read_text())
        new = run_row(dataclasses.replace(cfg, overwrite=stale), log=log)
        doc["rows"][ds][index[name]] = attach_device(old, new, time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()))
        c = doc["rows"][ds][index[name]]["device_check"]
        log(f"{ds} {name}: reproduced {c['reproduced']} {c['differences'] or ''}; whole firmware RAM "
            f"{new['device']['ram_bytes']} B, flash {new['device']['flash_bytes']} B")
        save(doc)
    return doc


# ---------------------------------------------------------------------------------------------- error analysis
def breakdown(y_true, y_pred, class_names, positions=None, centres=None) -> dict[str, Any]:
    """Where the errors are: wrong building, wrong floor, or (zones) the right floor but another zone.

    Args:
        y_true, y_pred: ``(B,)`` class indices; class names ``B<b>-F<f>`` or ``B<b>-F<f>-Z<zz>``.
        positions: ``(B, 2)`` true (LONGITUDE, LATITUDE) in metres; centres: ``{"B0-F0": [[lon, lat], ...]}``
            (the zone model), both only for zones.
    Returns:
        counts ``n``, ``errors``, ``wrong_building``, ``wrong_floor`` (right building), and for zones
        ``wrong_zone_same_floor``, ``second_nearest_zone`` (the predicted centre is the 2nd nearest to the true
        position), ``median_margin_m`` (distance to the predicted centre minus distance to the true centre) and
        ``median_zone_spacing_m`` (distance between each centre and its nearest neighbour on the same floor).
    """
    import numpy as np

    y_true, y_pred = np.asarray(y_true), np.asarray(y_pred)
    names = [str(c) for c in class_names]
    bf_of = [n[:5] for n in names]
    wrong = y_true != y_pred
    out: dict[str, Any] = {"n": int(len(y_true)), "errors": int(wrong.sum())}
    wb = np.array([bf_of[t][:2] != bf_of[p][:2] for t, p in zip(y_true, y_pred)], bool)
    wf = np.array([bf_of[t] != bf_of[p] for t, p in zip(y_true, y_pred)], bool) & ~wb
    out.update(wrong_building=int(wb.sum()), wrong_floor=int(wf.sum()))
    if positions is None or centres is None:
        return out
    same = wrong & ~wb & ~wf
    out["wrong_zone_same_floor"] = int(same.sum())
    cen = []
    for n in names:
        bf, z = n[:5], int(n.rsplit("Z", 1)[1])
        cen.append(centres[bf][z])
    cen = np.asarray(cen, np.float64)
    second, margins = 0, []
    for i in np.flatnonzero(same):
        group = [j for j, b in enumerate(bf_of) if b == bf_of[y_true[i]]]
        d = np.linalg.norm(cen[group] - positions[i], axis=1)
        rank = int(np.argsort(np.argsort(d))[group.index(int(y_pred[i]))])
        second += rank == 1
        margins.append(d[group.index(int(y_pred[i]))] - d[group.index(int(y_true[i]))])
    spacing = []
    for bf in sorted(set(bf_of)):
        c = cen[[j for j, b in enumerate(bf_of) if b == bf]]
        if len(c) > 1:
            dd = np.linalg.norm(c[:, None] - c[None], axis=-1) + np.eye(len(c)) * 1e12
            spacing += dd.min(1).tolist()
    out.update(second_nearest_zone=int(second),
               median_margin_m=float(np.median(margins)) if margins else None,
               median_zone_spacing_m=float(np.median(spacing)) if spacing else None)
    return out


def run_breakdown(run_dir, data_dir=None) -> dict[str, Any]:
    """:func:`breakdown` of a row's **int8 TFLM** test predictions (re-run from its ``tflite-int8/model.tflite``)."""
    import numpy as np

    from keras_tinyloc.deploy import tflm
    from keras_tinyloc.deploy.convert import decode_metrics
    from keras_tinyloc.training.train import load_run_dataset
    from keras_tinyloc.data import uji
    from keras_tinyloc.deploy.quantize import dequantize, quantize
    from keras_tinyloc.deploy.tflite_inspect import inspect_tflite
    from keras_tinyloc.training.train import load_run

    run_dir = paths.from_portable(run_dir)  # rows record portable paths (relative to the checkout)
    _, config, _ = load_run(run_dir)
    ds = load_run_dataset(config, data_dir)
    buf = (run_dir / "tflite-int8" / "model.tflite").read_bytes()
    rep = json.loads((run_dir / "tflite-int8" / "report.json").read_text())
    info = inspect_tflite(buf)
    q, _ = tflm.run_tflm(buf, quantize(ds.x_test, info.input().scale, info.input().zero_point), rep["arena_bytes"])
    _, pred = decode_metrics(dequantize(q, info.output().scale, info.output().zero_point), ds.y_test, config["crf"])
    positions = centres = None
    if config["dataset"] == "uji-zones":
        src = uji.find_source(data_dir or config.get("data_dir"))
        t = uji._load_tables(src, src.md5())
        positions = np.stack([t["test_lon"], t["test_lat"]], 1)
        centres = json.loads(Path(ds.meta["zone_model"]).read_text())["centres"]
    return breakdown(ds.y_test[:, -1], pred[:, -1], ds.class_names, positions, centres)


# ---------------------------------------------------------------------------------------------- CLI
def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m keras_tinyloc beyond",
                                description="UJIIndoorLoc beyond the paper: one ablation row (or all) through int8 TFLM.",
                                epilog="A custom row: give no --row/--all and set the options below; results go to "
                                       "OUT/<dataset>/<name>/ and docs/results/beyond_uji.md explains every row.")
    p.add_argument("dataset", choices=DATASETS, help="uji (13 building-floors) or uji-zones (59 coordinate zones)")
    g = p.add_mutually_exclusive_group()
    g.add_argument("--row", choices=list(ROWS), help="run one named ablation row (its settings override the options)")
    g.add_argument("--all", action="store_true", help="run every named row, in order")
    p.add_argument("--name", default="custom", help="row name of a custom configuration (default: %(default)s)")
    p.add_argument("--hidden", type=int, default=64, help="hidden size H of the int8 MLP (default: %(default)s)")
    p.add_argument("--layers", type=int, default=1, help="hidden Dense+ReLU layers L (default: %(default)s)")
    p.add_argument("--dropout", type=float, default=0.0,
                   help="dropout after each hidden layer, training only (default: %(default)s)")
    p.add_argument("--power", type=int, default=1,
                   help="powed input x**k of the scaled RSSI (k-1 int8 MULs in the model; default: %(default)s)")
    p.add_argument("--ap", default="all", help="access points: all, heard:P (heard in a share >= P of the training "
                                               "scans) or mi:K (K by mutual information); default: %(default)s")
    p.add_argument("--p-drop", type=float, default=0.0,
                   help="augmentation: probability of turning a heard AP into 'not heard' (default: %(default)s)")
    p.add_argument("--offset-db", type=float, default=0.0,
                   help="augmentation: one uniform ±dB offset per scan, a phone's gain (default: %(default)s)")
    p.add_argument("--noise-db", type=float, default=0.0,
                   help="augmentation: Gaussian noise per reading, standard deviation in dB (default: %(default)s)")
    p.add_argument("--teachers", nargs="*", default=[],
                   help="names of earlier rows (same dataset and --ap) to distil from (default: none)")
    p.add_argument("--floor-weight", type=float, default=0.0,
                   help="hierarchical head (uji-zones): weight of the building-floor loss (0 = flat head)")
    p.add_argument("--alpha", type=float, default=0.1,
                   help="distillation: weight of the student's own CRF loss (default: %(default)s)")
    p.add_argument("--temperature", type=float, default=2.0,
                   help="distillation: temperature of the teachers' soft targets (default: %(default)s)")
    p.add_argument("--epochs", type=int, default=40, help="maximum training epochs (default: %(default)s)")
    p.add_argument("--patience", type=int, default=10,
                   help="early stopping: epochs without a better validation macro-F1 (default: %(default)s)")
    p.add_argument("--seed", type=int, default=0, help="random seed of initialisation and shuffling (default: 0)")
    p.add_argument("--validation", choices=VALIDATIONS, default="random",
                   help="random (the loader's split) or phones (validation = held-out phones)")
    p.add_argument("--out", default="runs/beyond", help="root folder of the runs (default: %(default)s)")
    p.add_argument("--data-dir", help="UJIIndoorLoc's raw files (default: $KERAS_TINYLOC_DATA, data/raw/, the "
                                      "workplace copy)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing row's run folder")
    p.add_argument("--target", choices=("host", "cortex-m4"), default="host",
                   help="host (default) = int8 figures from the host TFLM; cortex-m4 = also the whole firmware on an "
                        "emulated Cortex-M4F (M4 arena, RAM, flash, instructions; ~30 s more per row)")
    return p


@cli_errors
def main(argv: list[str] | None = None) -> int:
    a = build_parser().parse_args(argv)
    log = lambda line: print(line, flush=True)  # noqa: E731
    common = dict(out=a.out, overwrite=a.overwrite, epochs=a.epochs, patience=a.patience, validation=a.validation,
                  target=a.target)
    if a.all or a.row:
        rows = run_rows(a.dataset, None if a.all else [a.row], log=log, data_dir=a.data_dir, **common)
    else:
        cfg = BeyondConfig(dataset=a.dataset, name=a.name, hidden=a.hidden, layers=a.layers, dropout=a.dropout,
                           power=a.power,
                           ap=a.ap, p_drop=a.p_drop, offset_db=a.offset_db, noise_db=a.noise_db,
                           teachers=tuple(a.teachers), alpha=a.alpha, temperature=a.temperature, seed=a.seed,
                           floor_weight=a.floor_weight,
                           **common)
        cfg.validate()
        rows = [run_row(cfg, data_dir=a.data_dir, log=log)]
    print(json.dumps([{k: r[k] for k in ("name", "val_f1", "test_f1_float", "test_f1_int8", "test_acc_int8",
                                         "arena_bytes", "flatbuffer_bytes")} for r in rows]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
