"""The SPHERE model catalogue (issue 8, "Results"): every row of ``docs/results/sphere.md`` is one :class:`Variant`,
trained (or distilled), converted to full int8 and measured in TFLM by :func:`run_variant`, or one scikit-learn
baseline row of :func:`run_classic`; :func:`collect_rows` runs or re-reads the whole catalogue.

Why a catalogue of frozen dataclasses: a row's name is its cache key (``WORK/<name>/row.json``), so a finished row is
never retrained and the table can be re-rendered from the cache alone (``benchmarks/sphere_models.py
--render-only``). The training itself is the library's (:func:`keras_tinyloc.training.train.train`,
:func:`keras_tinyloc.training.distill.distill`), the training-set levers and the int8/TFLM evaluation are
:mod:`keras_tinyloc.experiments.sphere_models`; nothing is re-implemented here.

Data: ``x`` ``(B,T,F)`` scaled RSSI (F = 4 APs, or 7 with the accelerometer), ``y`` ``(B,T)`` room labels, -1 =
unlabelled step. Selection of what goes into the tables (by validation only) is in
:mod:`keras_tinyloc.experiments.sphere_analysis`.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import time
import traceback
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from keras_tinyloc.data.base import WindowDataset
from keras_tinyloc.experiments import sphere_models as sm
from keras_tinyloc.paths import REPO_ROOT, atomic_write_json

SEED = 0


@dataclasses.dataclass(frozen=True)
class Variant:
    """One trained + int8-converted model.

    name: cache key and row label.  family/hidden/layers: the emitter.  absent: (copies, p) of whole-AP drop-out
    (:func:`sphere_models.absent_ap_augment`), None = off; absent_features: the AP indices it may silence (None =
    all).  balance: power of class-balanced oversampling, 0 = off.
    ap_dropout: ``train``'s per-reading drop-out.  teacher: name of another variant to distil from (hard labels,
    alpha 0.1, the paper's KD).  float_only: a teacher that is not a deployment candidate (no int8 row).
    accelerometer: train on the loader's F = 7 features (RSSI + mean acceleration).  mask: AP indices silenced in
    every split (:func:`sphere_models.mask_features`).
    """

    name: str
    family: str
    hidden: int
    layers: int
    absent: tuple[int, float] | None = None
    absent_features: tuple[int, ...] | None = None
    balance: float = 0.0
    ap_dropout: float = 0.0
    lr: float = 3e-3
    epochs: int = 150
    patience: int = 30
    weight_decay: float = 0.0
    teacher: str | None = None
    model_options: tuple = ()
    seed: int = SEED
    float_only: bool = False
    accelerometer: bool = False
    mask: tuple[int, ...] | None = None

    @property
    def levers(self) -> str:
        """The row's training levers in words (``"none"`` for a plain run): the ``levers`` column of the report."""
        parts = []
        if self.absent:
            which = "any AP" if self.absent_features is None else "APs " + "+".join(map(str, self.absent_features))
            parts.append(f"absent-AP aug ({which}; {self.absent[0]} copies, p={self.absent[1]})")
        if self.balance:
            parts.append(f"balanced sampling (power {self.balance})")
        if self.ap_dropout:
            parts.append(f"reading drop-out {self.ap_dropout}")
        if self.teacher:
            parts.append(f"KD from {self.teacher}")
        if self.weight_decay:
            parts.append(f"weight decay {self.weight_decay}")
        if self.model_options:
            parts.append(", ".join(f"{k}={v}" for k, v in self.model_options))
        if self.mask:
            parts.append("only the APs present in every recording (masked: " + "+".join(map(str, self.mask)) + ")")
        if self.accelerometer:
            parts.append("+ accelerometer input (F = 7; not in the device pipeline)")
        if self.seed != SEED:
            parts.append(f"seed {self.seed}")
        if (self.epochs, self.patience) != (150, 30):
            parts.append(f"up to {self.epochs} epochs, patience {self.patience}")
        if self.lr != 3e-3:
            parts.append(f"lr {self.lr:g}")
        return "; ".join(parts) or "none"


AB = (2, 0.3)  # two whole-AP drop-out copies, p = 0.3
LS = (1, 3)  # Lounge_AP and Study_AP: the two APs that are missing from some recordings (see the loader)
VARIANTS: tuple[Variant, ...] = (
    # (listed in the order they run: the most informative first)
    # the per-step int8 MLP baseline (+ CRF), plain and with levers
    Variant("mlp-H16L1", "mlp", 16, 1),
    Variant("mlp-H64L1", "mlp", 64, 1),
    Variant("mlp-H64L1-absent-bal", "mlp", 64, 1, absent=AB, balance=0.5),
    # MDCSA plain; whole-AP drop-out of any AP
    Variant("mdcsa-H16L1", "mdcsa", 16, 1),
    Variant("mdcsa-H16L1-absent", "mdcsa", 16, 1, absent=AB),
    # Mamba (lr 1e-2: the train module's note for small Mambas)
    Variant("mamba-H8L1", "mamba", 8, 1, lr=1e-2),
    Variant("mamba-H4L1", "mamba", 4, 1, lr=1e-2),
    # whole-AP drop-out only of the two APs that are absent from some recordings
    Variant("mdcsa-H16L1-absentLS", "mdcsa", 16, 1, absent=AB, absent_features=LS),
    # KD from a larger MDCSA teacher (float; not a deployment candidate itself)
    Variant("teacher-mdcsa-H64L1", "mdcsa", 64, 1, lr=1e-3, float_only=True),
    Variant("mdcsa-H16L1-kd", "mdcsa", 16, 1, teacher="teacher-mdcsa-H64L1"),
    Variant("mamba-H8L1-kd", "mamba", 8, 1, lr=1e-2, teacher="teacher-mdcsa-H64L1"),
    # class-balanced sampling; sizes around the limits
    Variant("mdcsa-H16L1-bal", "mdcsa", 16, 1, balance=0.5),
    Variant("mdcsa-H32L1", "mdcsa", 32, 1),
    Variant("mdcsa-H8L1", "mdcsa", 8, 1),
    Variant("mamba-H8L1-absentLS", "mamba", 8, 1, absent=AB, absent_features=LS, lr=1e-2),
    Variant("mamba-H16L1", "mamba", 16, 1, lr=1e-2),
    Variant("mdcsa-H16L1-wd", "mdcsa", 16, 1, weight_decay=1e-2),
    # only the two APs installed in every recording (Kitchen_AP, Upstairs_AP): Lounge_AP/Study_AP masked everywhere
    Variant("mlp-H16L1-commonAPs", "mlp", 16, 1, mask=LS),
    Variant("mdcsa-H16L1-commonAPs", "mdcsa", 16, 1, mask=LS),
    # beyond RSSI: the loader's optional accelerometer features (reported apart, never selected for the tables)
    Variant("mdcsa-H16L1-acc", "mdcsa", 16, 1, accelerometer=True),
    Variant("mlp-H16L1-acc", "mlp", 16, 1, accelerometer=True),
    # longer training; a Mamba with a smaller state (N = 4) to fit 32 KiB
    Variant("mdcsa-H16L1-long", "mdcsa", 16, 1, epochs=300, patience=60),
    Variant("mamba-H8L1-N4", "mamba", 8, 1, lr=1e-2, model_options=(("d_state", 4),)),
    Variant("mamba-H8L1-long", "mamba", 8, 1, lr=1e-2, epochs=300, patience=60),
    # seed spread of the plain models (how much of the differences above is training noise)
    Variant("mlp-H16L1-s1", "mlp", 16, 1, seed=1),
    Variant("mlp-H16L1-s2", "mlp", 16, 1, seed=2),
    Variant("mdcsa-H16L1-s1", "mdcsa", 16, 1, seed=1),
    Variant("mdcsa-H16L1-s2", "mdcsa", 16, 1, seed=2),
    Variant("mdcsa-H16L1-kd-s1", "mdcsa", 16, 1, teacher="teacher-mdcsa-H64L1", seed=1),
    Variant("mdcsa-H16L1-kd-s2", "mdcsa", 16, 1, teacher="teacher-mdcsa-H64L1", seed=2),
    Variant("mamba-H8L1-kd-s1", "mamba", 8, 1, lr=1e-2, teacher="teacher-mdcsa-H64L1", seed=1),
    Variant("mamba-H8L1-kd-s2", "mamba", 8, 1, lr=1e-2, teacher="teacher-mdcsa-H64L1", seed=2),
)
CLASSIC = ("rf-window", "classic")  # names of the scikit-learn entries
# the random forest trained on the absent-AP + balanced training set (a pseudo-variant: only its levers are used)
RF_LEVERS = Variant("x", "rf", 0, 0, absent=AB, balance=0.5)


def training_data(ds: WindowDataset, v: Variant) -> WindowDataset:
    """The dataset a variant trains on: its whole-AP drop-out, then its class balancing, applied to the training
    split only (``x_train`` ``(B',T,F)``; validation and test untouched)."""
    if v.absent:
        ds = sm.absent_ap_augment(ds, copies=v.absent[0], p=v.absent[1], seed=v.seed, features=v.absent_features)
    if v.balance:
        ds = sm.balance_oversample(ds, power=v.balance)
    return ds


class VariantData:
    """The evaluation dataset of each variant, from the RSSI-only ``ds``: with its masked APs silenced everywhere,
    or the loader's accelerometer version (F = 7, loaded once, on first use, by ``load_accelerometer()``), which
    must hold the same validation and test windows."""

    def __init__(self, ds: WindowDataset, load_accelerometer: Callable[[], WindowDataset]):
        self.ds, self._load, self._acc = ds, load_accelerometer, None

    def __call__(self, v: Variant) -> WindowDataset:
        if v.mask:
            return sm.mask_features(self.ds, v.mask)
        if not v.accelerometer:
            return self.ds
        if self._acc is None:
            acc = self._load()
            if not (np.array_equal(acc.y_test, self.ds.y_test) and np.array_equal(acc.y_val, self.ds.y_val)):
                raise RuntimeError("sphere with accelerometer: windows differ from the RSSI-only ones")
            self._acc = acc
        return self._acc


MODEL_FILES = ("keras_tinyloc/models/layers.py", "keras_tinyloc/models/mdcsa.py", "keras_tinyloc/models/mamba.py")


def model_code_md5(root: Path = REPO_ROOT) -> str:
    """First 10 hex digits of the md5 of :data:`MODEL_FILES` (read under ``root``) concatenated: a row measured
    with other model code is flagged in the report."""
    h = hashlib.md5()
    for f in MODEL_FILES:
        h.update((Path(root) / f).read_bytes())
    return h.hexdigest()[:10]


def mamba_int8(work: Path, name: str, ds: WindowDataset) -> dict:
    """Convert a Mamba run twice — with and without ``calibrate_state_scales`` (strength 0.5) — and keep the one
    with the better **validation** F1 (both measured in TFLM; a tie keeps the calibrated one); the other's figures
    are kept for the record under ``mamba_int8_choice``."""
    runs = {}
    for calib in (True, False):
        tag = "calib" if calib else "nocalib"
        runs[tag] = sm.evaluate_int8(work / name / "run", ds, out=work / name / f"tflite-int8-{tag}",
                                     calibrate_mamba=calib)
    pick = pick_by_validation(runs)
    other = "nocalib" if pick == "calib" else "calib"
    return {**runs[pick], "quant": "int8 (TFLM)", "tflite_dir": f"tflite-int8-{pick}", "mamba_int8_choice": {
        "chosen": pick, "by": "validation macro-F1",
        **{k: {f: runs[k][f] for f in ("val_f1", "test_f1", "val_acc", "test_acc")} for k in runs}},
        "mamba_int8_other": other}


def pick_by_validation(runs: dict[str, dict]) -> str:
    """The key of ``{"calib": row, "nocalib": row}`` with the higher ``val_f1``; ties go to ``"calib"``."""
    return max(runs, key=lambda k: (runs[k]["val_f1"], k == "calib"))


def run_variant(ds: WindowDataset, v: Variant, work: Path, redo: bool, log: Callable[[str], None]) -> dict:
    """Train (or distil) one variant, convert it to int8, evaluate in TFLM; cached in ``work/<name>/row.json``.

    ``ds`` is the variant's evaluation dataset (:class:`VariantData`); the training set gets the variant's levers
    (:func:`training_data`). A cached row is returned as is unless ``redo`` (a Mamba row from before the calibration
    choice is re-converted once). Returns the row: the :func:`sphere_models.evaluate_int8` figures plus name,
    family, config, levers, variant, n_train_windows, model_code_md5, seconds.
    """
    from keras_tinyloc.training.distill import DistillConfig, distill
    from keras_tinyloc.training.train import TrainConfig, train

    cached = sm.load_json(work / v.name / "row.json")
    if cached is not None and not redo:
        if v.family == "mamba" and "mamba_int8_choice" not in cached and (work / v.name / "run").is_dir():
            cached.update(mamba_int8(work, v.name, ds))  # rows from before the calibration choice: re-convert
            atomic_write_json(work / v.name / "row.json", cached)
        return cached
    t0 = time.perf_counter()
    run_dir = work / v.name / "run"
    tds = training_data(ds, v)
    base = dict(dataset="sphere", model=v.family, hidden=v.hidden, layers=v.layers, out=str(run_dir),
                epochs=v.epochs, patience=v.patience, lr=v.lr, weight_decay=v.weight_decay, ap_dropout=v.ap_dropout,
                seed=v.seed, overwrite=True, verbose=False, model_options=dict(v.model_options),
                dataset_options={"accelerometer": True} if v.accelerometer else {})
    if v.teacher:
        teacher_dir = work / v.teacher / "run"
        if not (teacher_dir / "model.keras").is_file():
            raise RuntimeError(f"{v.name}: teacher {v.teacher} has not been trained (run it first)")
        distill(DistillConfig(**base, teacher=str(teacher_dir)), dataset=tds, log=lambda s: None)
    else:
        train(TrainConfig(**base), dataset=tds, log=lambda s: None)
    metrics = json.loads((run_dir / "metrics.json").read_text())
    row = {"name": v.name, "family": v.family, "config": f"H{v.hidden}L{v.layers}", "levers": v.levers,
           "variant": dataclasses.asdict(v), "n_train_windows": int(len(tds.x_train)),
           "model_code_md5": model_code_md5()}
    if v.float_only:
        row.update({k: metrics.get(k) for k in ("val_f1", "val_acc", "test_f1", "test_acc", "params")},
                   quant="float (Keras)", arena_bytes=None, flatbuffer_bytes=None)
    elif v.family == "mamba":
        row.update(mamba_int8(work, v.name, ds))
    else:
        row.update(sm.evaluate_int8(run_dir, ds, out=work / v.name / "tflite-int8"), quant="int8 (TFLM)")
    row["seconds"] = round(time.perf_counter() - t0, 1)
    atomic_write_json(work / v.name / "row.json", row)
    log(f"{v.name}: val F1 {row['val_f1']:.4f} test F1 {row['test_f1']:.4f} acc {row['test_acc']:.4f} "
        f"arena {row.get('arena_bytes')} flat {row.get('flatbuffer_bytes')} ({row['seconds']} s)")
    return row


def rf_window_row(ds: WindowDataset, tds: WindowDataset, label: str, levers: str) -> dict:
    """A 100-tree random forest (seed :data:`SEED`, one job) on uint8-quantized ``"window"`` features of the
    windows of ``tds``'s training split whose last step is labelled, scored on the last step of ``ds``'s validation
    and test windows (unlabelled last steps predicted -1 and left out by :func:`sphere_models.per_class_report`).
    Sizes are :mod:`~keras_tinyloc.experiments.baselines`' estimates (flash from the node count, RAM from the input
    and class count), not TFLM runs."""
    from sklearn.ensemble import RandomForestClassifier

    from keras_tinyloc.experiments import baselines

    xtr, ytr = baselines.labelled_windows(*tds.split("train"))
    model = RandomForestClassifier(n_estimators=100, random_state=SEED, n_jobs=1).fit(
        baselines.quantize_u8(baselines.window_features(xtr, "window")), ytr)
    nodes = sum(int(e.tree_.node_count) for e in model.estimators_)
    out = {"name": label, "family": "rf", "config": "100 trees, depth any", "features": "window",
           "levers": levers, "quant": "int8 features", "params": nodes, "flatbuffer_bytes": baselines.rf_bytes(nodes),
           "arena_bytes": baselines.rf_ram(baselines.input_bytes("window", ds.window, ds.n_features), ds.n_classes),
           "arena_source": "estimate"}
    for split in ("val", "test"):
        x, y = ds.split(split)
        pred = np.full(len(y), -1)
        keep = y[:, -1] >= 0
        pred[keep] = model.predict(baselines.quantize_u8(baselines.window_features(x[keep], "window")))
        rep = sm.per_class_report(y[:, -1], np.where(keep, pred, -1), list(ds.class_names))
        out[f"{split}_f1"], out[f"{split}_acc"] = rep["macro_f1"], rep["acc"]
        out[f"per_class_{split}"] = rep
        out[f"{split}_pred_last"] = np.where(keep, pred, -1).astype(int).tolist()
    return out


def run_classic(ds: WindowDataset, work: Path, redo: bool, log: Callable[[str], None]) -> list[dict]:
    """scikit-learn baselines (every setting one row, sizes estimated), plus the RF on window features with its
    per-class report, plain and trained on the absent-AP/balanced training set; cached in
    ``work/classic/rows.json``."""
    from threadpoolctl import threadpool_limits

    from keras_tinyloc.experiments import baselines

    cached = sm.load_json(work / "classic" / "rows.json")
    if cached is not None and not redo:
        return cached
    t0 = time.perf_counter()
    with threadpool_limits(1):
        rows = baselines.sklearn_rows(ds, baselines.BaselineConfig(seed=SEED))
        for r in rows:
            r.update(name=f"{r['family']}-{r['features']}-{r['config']}", levers="none", quant="int8 features")
        extra = [rf_window_row(ds, ds, "rf-window", "none"),
                 rf_window_row(ds, training_data(ds, RF_LEVERS), "rf-window-absent-bal", RF_LEVERS.levers)]
    rows = rows + extra
    atomic_write_json(work / "classic" / "rows.json", rows)
    log(f"classic baselines: {len(rows)} rows ({time.perf_counter() - t0:.1f} s)")
    return rows


def collect_rows(data: VariantData, work: Path, only: Sequence[str] | None = None, redo: Sequence[str] = (),
                 render_only: bool = False, log: Callable[[str], None] = print,
                 variants: Sequence[Variant] = VARIANTS) -> list[dict]:
    """Every row of the report: the classic rows, then each variant's, in catalogue order.

    A row runs (:func:`run_classic` / :func:`run_variant`, cached) when it is in ``only`` (None = all) and
    ``render_only`` is off; otherwise its cached row is read (missing ones are left out). A variant that fails is
    logged with its traceback and left out, so one failure does not lose the others. Every variant row gets the
    current wording of its levers (rows cached by an older version keep their figures).
    """
    rows: list[dict] = []
    if not render_only and (not only or "classic" in only):
        rows += run_classic(data.ds, work, "classic" in redo, log)
    else:
        rows += sm.load_json(work / "classic" / "rows.json") or []
    for v in variants:
        if render_only or (only and v.name not in only):
            row = sm.load_json(work / v.name / "row.json")
        else:
            try:
                row = run_variant(data(v), v, work, v.name in redo, log)
            except Exception as exc:  # noqa: BLE001 - one failed variant must not lose the others
                log(f"{v.name}: FAILED {type(exc).__name__}: {exc}")
                traceback.print_exc()
                row = None
        if row is not None:
            row["levers"] = v.levers  # rows cached by an older version of this script keep the current wording
            rows.append(row)
    return rows
