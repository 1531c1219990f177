"""Benchmark (issue 8, "Results"): int8 MDCSA and Mamba on real BLE (``sphere``) vs the per-window baselines.

For each RAM class (TFLM arena <= 32 KiB with flatbuffer <= 512 KiB: RL78/G13; arena <= 64 KiB with flatbuffer
<= 128 KiB: ADuCM3029) the best int8 MDCSA and Mamba **by validation macro-F1** (never test), with validation and
test macro-F1 / accuracy measured through the TFLM interpreter, arena and flatbuffer bytes, next to the int8 MLP
(per-step MLP + CRF, same convert/TFLM path) and the scikit-learn baselines (random forest / kNN / logistic
regression on per-window features, :mod:`keras_tinyloc.experiments.baselines`; their sizes are estimates, not TFLM runs).

Every row is one entry of :data:`VARIANTS` (family, H, L, training levers of :mod:`keras_tinyloc.experiments.sphere_models`,
KD teacher). Runs and their results are cached under ``--work`` (default ``runs/sphere_models``): a finished variant
is not redone (``--redo NAME`` forces it). Writes ``docs/results/sphere.{md,json,png}``.

    KERAS_BACKEND=tensorflow .venv/bin/python benchmarks/sphere_models.py   # all rows (~45 min, 2 busy cores)
    KERAS_BACKEND=tensorflow .venv/bin/python benchmarks/sphere_models.py --only classic mdcsa-H16L1   # some rows
    KERAS_BACKEND=tensorflow .venv/bin/python benchmarks/sphere_models.py --render-only   # tables from the cache
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
import time
import traceback
from pathlib import Path

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402

from keras_tinyloc.experiments import sphere_models as sm  # noqa: E402

OUT_MD = ROOT / "docs" / "results" / "sphere.md"
OUT_JSON = ROOT / "docs" / "results" / "sphere.json"
OUT_PNG = ROOT / "docs" / "results" / "sphere.png"
SEED = 0


@dataclasses.dataclass(frozen=True)
class Variant:
    """One trained + int8-converted model.

    name: cache key and row label.  family/hidden/layers: the emitter.  absent: (copies, p) of whole-AP drop-out
    (:func:`sphere_models.absent_ap_augment`), None = off; absent_features: the AP indices it may silence (None =
    all).  balance: power of class-balanced oversampling, 0 = off.
    ap_dropout: ``train``'s per-reading drop-out.  teacher: name of another variant to distil from (hard labels,
    alpha 0.1, the paper's KD).  float_only: a teacher that is not a deployment candidate (no int8 row).
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


def training_data(ds, v: Variant):
    """The dataset a variant trains on: the levers applied to the training split only."""
    if v.absent:
        ds = sm.absent_ap_augment(ds, copies=v.absent[0], p=v.absent[1], seed=v.seed, features=v.absent_features)
    if v.balance:
        ds = sm.balance_oversample(ds, power=v.balance)
    return ds


MODEL_FILES = ("keras_tinyloc/models/layers.py", "keras_tinyloc/models/mdcsa.py", "keras_tinyloc/models/mamba.py")


def model_code_md5() -> str:
    """md5 of the model source files (the MDCSA / Mamba owners are still changing them): a row measured with other
    model code is flagged in the report."""
    import hashlib

    h = hashlib.md5()
    for f in MODEL_FILES:
        h.update((ROOT / f).read_bytes())
    return h.hexdigest()[:10]


def mamba_int8(work: Path, name: str, ds) -> dict:
    """Convert a Mamba run twice — with and without ``calibrate_state_scales`` (strength 0.5) — and keep the one
    with the better **validation** F1 (both measured in TFLM); the other's figures are kept for the record."""
    runs = {}
    for calib in (True, False):
        tag = "calib" if calib else "nocalib"
        runs[tag] = sm.evaluate_int8(work / name / "run", ds, out=work / name / f"tflite-int8-{tag}",
                                     calibrate_mamba=calib)
    pick = max(runs, key=lambda k: (runs[k]["val_f1"], k == "calib"))
    other = "nocalib" if pick == "calib" else "calib"
    return {**runs[pick], "quant": "int8 (TFLM)", "tflite_dir": f"tflite-int8-{pick}", "mamba_int8_choice": {
        "chosen": pick, "by": "validation macro-F1",
        **{k: {f: runs[k][f] for f in ("val_f1", "test_f1", "val_acc", "test_acc")} for k in runs}},
        "mamba_int8_other": other}


def run_variant(ds, v: Variant, work: Path, redo: bool, log) -> dict:
    """Train (or distil) one variant, convert it to int8, evaluate in TFLM; cached in ``work/<name>/row.json``."""
    from keras_tinyloc.training.distill import DistillConfig, distill
    from keras_tinyloc.training.train import TrainConfig, train

    cached = sm.load_json(work / v.name / "row.json")
    if cached is not None and not redo:
        if v.family == "mamba" and "mamba_int8_choice" not in cached and (work / v.name / "run").is_dir():
            cached.update(mamba_int8(work, v.name, ds))  # rows from before the calibration choice: re-convert
            from keras_tinyloc.paths import atomic_write_json

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
    from keras_tinyloc.paths import atomic_write_json

    atomic_write_json(work / v.name / "row.json", row)
    log(f"{v.name}: val F1 {row['val_f1']:.4f} test F1 {row['test_f1']:.4f} acc {row['test_acc']:.4f} "
        f"arena {row.get('arena_bytes')} flat {row.get('flatbuffer_bytes')} ({row['seconds']} s)")
    return row


def run_classic(ds, work: Path, redo: bool, log) -> list[dict]:
    """scikit-learn baselines (every setting one row, sizes estimated), plus the RF on window features with its
    per-class report, plain and trained on the absent-AP/balanced training set."""
    from threadpoolctl import threadpool_limits

    from keras_tinyloc.experiments import baselines
    from keras_tinyloc.paths import atomic_write_json

    cached = sm.load_json(work / "classic" / "rows.json")
    if cached is not None and not redo:
        return cached
    t0 = time.perf_counter()
    with threadpool_limits(1):
        rows = baselines.sklearn_rows(ds, baselines.BaselineConfig(seed=SEED))
        for r in rows:
            r.update(name=f"{r['family']}-{r['features']}-{r['config']}", levers="none", quant="int8 features")
        from sklearn.ensemble import RandomForestClassifier

        extra = []
        for label, tds in (("rf-window", ds), ("rf-window-absent-bal",
                                                training_data(ds, Variant("x", "rf", 0, 0, absent=AB, balance=0.5)))):
            feats = {s: baselines.labelled_windows(*tds.split(s)) for s in ("train",)}
            xtr, ytr = feats["train"]
            model = RandomForestClassifier(n_estimators=100, random_state=SEED, n_jobs=1).fit(
                baselines.quantize_u8(baselines.window_features(xtr, "window")), ytr)
            nodes = sum(int(e.tree_.node_count) for e in model.estimators_)
            out = {"name": label, "family": "rf", "config": "100 trees, depth any", "features": "window",
                   "levers": ("none" if label == "rf-window"
                              else Variant("x", "rf", 0, 0, absent=AB, balance=0.5).levers),
                   "quant": "int8 features", "params": nodes, "flatbuffer_bytes": baselines.rf_bytes(nodes),
                   "arena_bytes": baselines.rf_ram(baselines.input_bytes("window", ds.window, ds.n_features),
                                                   ds.n_classes), "arena_source": "estimate"}
            for split in ("val", "test"):
                x, y = ds.split(split)
                pred = np.full(len(y), -1)
                keep = y[:, -1] >= 0
                pred[keep] = model.predict(baselines.quantize_u8(baselines.window_features(x[keep], "window")))
                rep = sm.per_class_report(y[:, -1], np.where(keep, pred, -1), list(ds.class_names))
                out[f"{split}_f1"], out[f"{split}_acc"] = rep["macro_f1"], rep["acc"]
                out[f"per_class_{split}"] = rep
                out[f"{split}_pred_last"] = np.where(keep, pred, -1).astype(int).tolist()
            extra.append(out)
    rows = rows + extra
    atomic_write_json(work / "classic" / "rows.json", rows)
    log(f"classic baselines: {len(rows)} rows ({time.perf_counter() - t0:.1f} s)")
    return rows


# ------------------------------------------------------------------------------------------------ diagnostics
def diagnostics(ds) -> dict:
    """Data facts that bound what any model can do on this split (no model involved)."""
    floor = sm.scaled_floor(ds)
    out = {"aps": list(ds.feature_names), "classes": list(ds.class_names)}
    heard = {}
    for split in ("train", "val", "test"):
        x, y = ds.split(split)
        h = (x > floor[None, None, :] + 1e-6).any(axis=1)
        heard[split] = {ap: float(h[:, i].mean()) for i, ap in enumerate(ds.feature_names)}
        last = y[:, -1]
        out[f"class_counts_{split}"] = np.bincount(last[last >= 0], minlength=ds.n_classes).astype(int).tolist()
    out["share_windows_ap_heard"] = heard
    lo, hi = np.asarray(ds.scaling.low), np.asarray(ds.scaling.high)
    per_class = {}
    for split in ("train", "test"):
        x, y = ds.split(split)
        raw = x[:, -1, :] * (hi - lo) + lo  # last step, dBm
        h = x[:, -1, :] > floor[None, :] + 1e-6
        last = y[:, -1]
        per_class[split] = {
            c: [{"heard": float(h[last == ci, i].mean()) if np.any(last == ci) else None,
                 "mean_dbm": float(raw[(last == ci) & h[:, i], i].mean()) if np.any((last == ci) & h[:, i]) else None}
                for i in range(ds.n_features)]
            for ci, c in enumerate(ds.class_names)}
    out["per_class_last_step_rssi"] = per_class
    seqs = ds.meta.get("sequences", {})
    out["test_sequences"] = [(s, int(v["windows"]["test"])) for s, v in seqs.items() if "test" in v["windows"]]
    out["aps_heard_per_sequence"] = {s: v.get("aps_heard") for s, v in seqs.items()}
    return out


def per_sequence_f1(ds, pred_last: list[int], test_sequences) -> dict:
    """Macro-F1 / accuracy per test sequence (test windows are stored in sequence order)."""
    from keras_tinyloc.training.metrics import window_metrics

    y = ds.y_test[:, -1]
    pred = np.asarray(pred_last)
    out, start = {}, 0
    if sum(n for _, n in test_sequences) != len(y):
        return out
    for seq, n in test_sequences:
        m = window_metrics(y[start:start + n], pred[start:start + n])
        out[seq] = {"f1": m["f1"], "acc": m["acc"], "n": m["n"]}
        start += n
    return out


def predictions(ds, row: dict, work: Path, split: str) -> np.ndarray | None:
    """``(B,)`` decoded last-step labels of ``split`` (-1 = unlabelled): from the row, else re-run the cached int8
    model in TFLM (rows cached before the row kept them)."""
    from keras_tinyloc.deploy import convert
    from keras_tinyloc.training.train import load_run

    if row.get(f"{split}_pred_last") is not None:
        return np.asarray(row[f"{split}_pred_last"])
    tfl = work / row["name"] / row.get("tflite_dir", "tflite-int8") / "model.tflite"
    if not tfl.is_file():
        return None
    x, y = ds.split(split)
    rep = json.loads((tfl.parent / "report.json").read_text())
    tagger, _, _ = load_run(work / row["name"] / "run")
    _, pred = convert.decode_metrics(sm._tflm_emissions(tfl.read_bytes(), rep, x), y, tagger.crf_weights())
    return np.where(y[:, -1] >= 0, pred[:, -1], -1)


def ds_for_row(ds, row: dict):
    """The evaluation dataset of a row (masked APs applied; accelerometer rows are not analysed)."""
    mask = (row.get("variant") or {}).get("mask")
    return sm.mask_features(ds, mask) if mask else ds


def split_analysis(ds, pred_val, pred_test, diag) -> dict:
    """Validation F1 by sequence group (Lounge_AP heard: 00001-00005; absent as in every test sequence: 00006-00007)
    and test accuracy / F1 on windows without vs with a room change inside the window."""
    from keras_tinyloc.training.metrics import window_metrics

    out = {}
    seqs = ds.meta.get("sequences", {})
    val_counts = [(s, v["windows"].get("val", 0)) for s, v in seqs.items() if "val" in v["windows"]]
    if pred_val is not None and sum(n for _, n in val_counts) == len(ds.y_val):
        group = np.concatenate([np.full(n, s in ("00006", "00007")) for s, n in val_counts])
        for name, mask in (("val_lounge_heard", ~group), ("val_lounge_absent", group)):
            m = window_metrics(ds.y_val[mask][:, -1], pred_val[mask])
            out[name] = {"f1": m["f1"], "acc": m["acc"], "n": m["n"]}
    if pred_test is not None:
        trans = sm.transition_windows(ds.y_test)
        for name, mask in (("test_steady", ~trans), ("test_transition", trans)):
            m = window_metrics(ds.y_test[mask][:, -1], pred_test[mask])
            out[name] = {"f1": m["f1"], "acc": m["acc"], "n": m["n"]}
        out["per_sequence"] = per_sequence_f1(ds, pred_test, diag["test_sequences"])
    return out


# ------------------------------------------------------------------------------------------------ report
def pct(v) -> str:
    return "–" if v is None else f"{100 * v:.1f}"


def kib(v) -> str:
    return "–" if v is None else f"{v / 1024:.1f}"


def is_acc(row: dict) -> bool:
    return bool((row.get("variant") or {}).get("accelerometer"))


def choose(rows: list[dict]) -> dict:
    """Per RAM class: the best row of each family by validation F1 (``sphere_models.select_best``)."""
    nn = [r for r in rows if r.get("quant") == "int8 (TFLM)" and not is_acc(r)]
    classic = [r for r in rows if r.get("quant") == "int8 features"]
    out = {}
    for cls in sm.RAM_CLASSES:
        out[cls] = {
            "mdcsa": sm.select_best(nn, cls, lambda r: r["family"] == "mdcsa"),
            "mamba": sm.select_best(nn, cls, lambda r: r["family"] == "mamba"),
            "mlp": sm.select_best(nn, cls, lambda r: r["family"] == "mlp"),
            "rf": sm.select_best(classic, cls, lambda r: r["family"] == "rf"),
            "knn": sm.select_best(classic, cls, lambda r: r["family"] == "knn"),
            "lr": sm.select_best(classic, cls, lambda r: r["family"] == "lr"),
        }
    return out


def render(ds, rows: list[dict], work: Path, diag: dict, commands: list[str]) -> dict:
    best = choose(rows)
    # the best int8 sequence model overall (by validation F1) inside the 32 KiB class
    seq32 = sm.select_best([r for r in rows if r.get("quant") == "int8 (TFLM)" and not is_acc(r)], "32 KiB (RL78/G13)",
                           lambda r: r["family"] in ("mdcsa", "mamba"))
    rf_ref = next((r for r in rows if r["name"] == "rf-window"), None)
    extra = {}
    for r in [seq32] + [best[c][f] for c in best for f in ("mdcsa", "mamba", "mlp", "rf")] + [rf_ref]:
        if r is None or r["name"] in extra:
            continue
        d = ds_for_row(ds, r)
        extra[r["name"]] = split_analysis(ds, predictions(d, r, work, "val"), predictions(d, r, work, "test"), diag)

    L = ["# Real BLE (SPHERE house): int8 sequence models vs per-window baselines", "",
         "Dataset `sphere` (issue 8): 4 APs, 9 rooms, T = 20 steps of 0.2 s, hop 10; sequences 00001–00007 train "
         "/ validation (75/25 by 60 s blocks), 00008–00010 test. Windows are scored on their last step "
         "(macro-F1 over the classes present, accuracy). **Every selection below is by validation macro-F1; the test "
         "columns are reported, never used to choose.** Neural rows: full-int8 `.tflite` run in the TFLM interpreter "
         "(host build) on both validation and test windows, CRF Viterbi on the dequantized emissions; arena = "
         "minimal working TFLM arena (host 64-bit, an upper bound for a Cortex-M build); flatbuffer = the shipped "
         "model (tensor names stripped). scikit-learn rows: features quantized to uint8, sizes are the package's "
         "estimates (no TFLM run). One training seed (0) per row.", "",
         "Reproduce (from the repository root):", "", "```"] + commands + ["```", ""]
    verdicts = {}
    summary_at = len(L)
    summary = ["## Summary", ""]
    for cls, b in best.items():
        arena, flash = sm.RAM_CLASSES[cls]
        L += [f"## RAM class {cls}: arena ≤ {arena // 1024} KiB, flatbuffer ≤ {flash // 1024} KiB", "",
              "| family | selected row | levers | val F1 | **test F1** | test acc | arena KiB | flatbuffer KiB | params |",
              "|---|---|---|---|---|---|---|---|---|"]
        for fam in ("mdcsa", "mamba", "mlp", "rf", "knn", "lr"):
            r = b[fam]
            if r is None:
                L.append(f"| {fam} | none fits | | | | | | | |")
                continue
            L.append(f"| {fam} | {r['name']} ({r['quant']}) | {r['levers']} | {pct(r['val_f1'])} | "
                     f"**{pct(r['test_f1'])}** | {pct(r['test_acc'])} | {kib(r['arena_bytes'])}"
                     f"{' (est.)' if r.get('arena_source') == 'estimate' else ''} | {kib(r['flatbuffer_bytes'])} | "
                     f"{r.get('params') or '–'} |")
        seqs = [b[f] for f in ("mdcsa", "mamba") if b[f]]
        per_window = [b[f] for f in ("mlp", "rf", "knn", "lr") if b[f]]
        top_seq = max(seqs, key=lambda r: r["test_f1"]) if seqs else None
        top_pw = max(per_window, key=lambda r: r["test_f1"]) if per_window else None
        beats = bool(top_seq and top_pw and top_seq["test_f1"] > top_pw["test_f1"])
        verdicts[cls] = {"best_sequence": top_seq and top_seq["name"], "best_per_window": top_pw and top_pw["name"],
                         "sequence_beats_per_window": beats}
        if top_seq and top_pw:
            L += ["", f"**Verdict ({cls}):** the sequence models "
                  f"{'beat' if beats else 'do NOT beat'} the per-window baselines on test macro-F1: best selected "
                  f"sequence model {top_seq['name']} {pct(top_seq['test_f1'])} vs best selected per-window baseline "
                  f"{top_pw['name']} {pct(top_pw['test_f1'])} "
                  f"({'+' if top_seq['test_f1'] >= top_pw['test_f1'] else ''}"
                  f"{100 * (top_seq['test_f1'] - top_pw['test_f1']):.1f} points; on validation "
                  f"{pct(top_seq['val_f1'])} vs {pct(top_pw['val_f1'])}). Compared: the best test figure among the "
                  "validation-selected MDCSA/Mamba rows vs among the validation-selected MLP/RF/kNN/LR rows.", ""]
            summary.append(f"* **{cls}**: sequence models {'beat' if beats else 'do NOT beat'} the per-window "
                           f"baselines — {top_seq['name']} {pct(top_seq['test_f1'])} vs {top_pw['name']} "
                           f"{pct(top_pw['test_f1'])} test macro-F1 (int8; selected by validation).")
        else:
            L += [""]

    L += ["## Target: int8 sequence model in TFLM, arena ≤ 32 KiB, ≥ 82 test macro-F1 (never below RF's 75.5)", ""]
    if seq32:
        reached = seq32["test_f1"] >= 0.82
        L += [f"Selected by validation F1 among every int8 MDCSA/Mamba row that fits 32 KiB: **{seq32['name']}** "
              f"(levers: {seq32['levers']}): val {pct(seq32['val_f1'])}, **test {pct(seq32['test_f1'])}** macro-F1, "
              f"test accuracy {pct(seq32['test_acc'])} %, arena {seq32['arena_bytes']:,} B, flatbuffer "
              f"{seq32['flatbuffer_bytes']:,} B. Target **{'reached' if reached else 'NOT reached'}**"
              + ("" if reached else f"; RF reference (issue 8) 75.5 — this model is "
                 f"{'above' if seq32['test_f1'] >= 0.755 else 'below'} it") + ".", ""]
        fit32 = [r for r in rows if r.get("quant") == "int8 (TFLM)" and not is_acc(r) and r["family"] != "mlp"
                 and sm.fits(r, "32 KiB (RL78/G13)")]
        top = max(fit32, key=lambda r: r["test_f1"])
        L += [f"Ceiling check (not a selection): the highest test macro-F1 of **any** of the {len(fit32)} int8 "
              f"MDCSA/Mamba rows that fit 32 KiB is {pct(top['test_f1'])} ({top['name']}, validation "
              f"{pct(top['val_f1'])}), so no lever tried here reaches 82 even when picked with hindsight.", ""]
    verdicts["target_32k"] = {"row": seq32 and seq32["name"], "test_f1": seq32 and seq32["test_f1"],
                              "reached": bool(seq32 and seq32["test_f1"] >= 0.82)}
    if seq32:
        summary.append(f"* **Target** (int8 sequence model, arena ≤ 32 KiB, ≥ 82 test macro-F1): "
                       f"{'reached' if seq32['test_f1'] >= 0.82 else 'NOT reached'} — the validation-selected "
                       f"{seq32['name']} scores {pct(seq32['test_f1'])} "
                       f"({'above' if seq32['test_f1'] >= 0.755 else 'below'} the random forest's 75.5 of issue 8). "
                       "What limits it: see 'What limits the sequence models here'.")
    L[summary_at:summary_at] = summary + [""]

    # levers vs their plain twin
    nn_rows = [r for r in rows if r.get("quant") == "int8 (TFLM)"]
    plain_of = {(r["family"], r["config"]): r for r in nn_rows if r.get("levers") in ("none", "lr 0.01")}
    lever_rows = [(r, plain_of[(r["family"], r["config"])]) for r in nn_rows
                  if (r["family"], r["config"]) in plain_of and plain_of[(r["family"], r["config"])] is not r]
    if lever_rows:
        L += ["### Levers, each against its plain twin (same family and size, int8 in TFLM)", "",
              "| row | levers | val F1 (Δ) | test F1 (Δ) | test acc (Δ) | best epoch / run |",
              "|---|---|---|---|---|---|"]
        for r, t in lever_rows:
            d = lambda k: f"{pct(r[k])} ({100 * (r[k] - t[k]):+.1f})"  # noqa: E731
            L.append(f"| {r['name']} | {r['levers']} | {d('val_f1')} | {d('test_f1')} | {d('test_acc')} | "
                     f"{r.get('best_epoch')} / {r.get('epochs_run')} |")
        L += ["", "Plain twins (no lever): " + "; ".join(
            f"{t['name']}: val {pct(t['val_f1'])}, test {pct(t['test_f1'])}, best epoch {t.get('best_epoch')} of "
            f"{t.get('epochs_run')} (early stopping, patience 30, max 150)"
            for t in {id(t): t for _, t in lever_rows}.values()) + ".", ""]

    # per-class F1
    show = [r for r in (seq32, best["32 KiB (RL78/G13)"]["mlp"], rf_ref) if r]
    if show:
        L += ["### Per-class test F1 (int8 in TFLM for the sequence model)", "",
              "| class | train windows | val windows | test windows | " + " | ".join(r["name"] for r in show) + " |",
              "|---|---|---|---|" + "---|" * len(show)]
        for ci, c in enumerate(ds.class_names):
            L.append(f"| {c} | {diag['class_counts_train'][ci]} | {diag['class_counts_val'][ci]} | "
                     f"{diag['class_counts_test'][ci]} | "
                     + " | ".join(pct(r["per_class_test"]["classes"][c]["f1"]) for r in show) + " |")
        L.append("")
        if seq32:
            cm = np.asarray(seq32["per_class_test"]["confusion"])
            L += [f"Confusion matrix of {seq32['name']} on test (rows = true, columns = predicted; "
                  f"{', '.join(ds.class_names)}):", "", "```"]
            L += ["      " + " ".join(f"{c[:6]:>7}" for c in ds.class_names)]
            L += [f"{c[:6]:>6}" + " ".join(f"{v:7d}" for v in row) for c, row in zip(ds.class_names, cm)]
            L += ["```", ""]

    # what limits it
    L += ["## What limits the sequence models here", ""]
    h = diag["share_windows_ap_heard"]
    L += ["Share of windows in which each AP is heard at least once:", "",
          "| split | " + " | ".join(diag["aps"]) + " |", "|---|" + "---|" * len(diag["aps"])]
    for split in ("train", "val", "test"):
        L.append(f"| {split} | " + " | ".join(f"{100 * h[split][ap]:.0f} %" for ap in diag["aps"]) + " |")
    L += ["", "Per room, the last step of each window: share of windows in which each AP is heard / its mean RSSI when "
          "heard (dBm), train vs test:", "",
          "| room | " + " | ".join(f"{ap} train | {ap} test" for ap in diag["aps"]) + " |",
          "|---|" + "---|---|" * len(diag["aps"])]
    pc = diag["per_class_last_step_rssi"]
    cell = lambda d: "–" if d["heard"] is None else (  # noqa: E731
        f"{100 * d['heard']:.0f} % / {d['mean_dbm']:.0f}" if d["mean_dbm"] is not None else "0 %")
    for c in ds.class_names:
        L.append(f"| {c} | " + " | ".join(f"{cell(pc['train'][c][i])} | {cell(pc['test'][c][i])}"
                                          for i in range(len(diag["aps"]))) + " |")
    L += ["", "APs heard per sequence: " + "; ".join(f"{s}: {', '.join(a or [])}"
                                                   for s, a in diag["aps_heard_per_sequence"].items()) + ".", ""]
    L += ["Validation F1 split by sequence group (Lounge_AP heard in 00001–00005; absent in 00006–00007, as in every "
          "test sequence), test F1 per test sequence, and test accuracy on windows with one room throughout (steady) "
          "vs windows with a room change inside the 4 s window (transition):", "",
          "| row | val F1 | val F1 Lounge heard | val F1 Lounge absent | test F1 | " +
          " | ".join(f"test {s}" for s, _ in diag["test_sequences"]) +
          " | test acc steady (n) | test acc transition (n) | test F1 steady |",
          "|---|---|---|---|---|" + "---|" * len(diag["test_sequences"]) + "---|---|---|"]
    for name, e in extra.items():
        r = next(x for x in rows if x["name"] == name)
        g = lambda k, f="f1": e.get(k, {}).get(f)  # noqa: E731
        L.append(f"| {name} | {pct(r['val_f1'])} | {pct(g('val_lounge_heard'))} | {pct(g('val_lounge_absent'))} | "
                 f"{pct(r['test_f1'])} | " +
                 " | ".join(pct(e.get("per_sequence", {}).get(s, {}).get("f1")) for s, _ in diag["test_sequences"]) +
                 f" | {pct(g('test_steady', 'acc'))} ({g('test_steady', 'n')}) | "
                 f"{pct(g('test_transition', 'acc'))} ({g('test_transition', 'n')}) | {pct(g('test_steady'))} |")
    L.append("")

    # how well validation predicts test, seed spread, the main confusions
    from scipy.stats import spearmanr

    cand = [r for r in rows if r.get("quant") == "int8 (TFLM)" and not is_acc(r)]
    if len(cand) >= 4:
        rho = spearmanr([r["val_f1"] for r in cand], [r["test_f1"] for r in cand]).statistic
        sub = []
        for r in cand:
            e = extra.get(r["name"]) or split_analysis(ds, predictions(ds_for_row(ds, r), r, work, "val"), None, diag)
            if e.get("val_lounge_absent"):
                sub.append((e["val_lounge_absent"]["f1"], r["test_f1"]))
        rho_sub = spearmanr(*zip(*sub)).statistic if len(sub) >= 4 else float("nan")
        L += [f"* **Validation is a weak guide here.** Over the {len(cand)} int8 MDCSA/Mamba/MLP rows, the Spearman "
              f"rank correlation of validation and test macro-F1 is {rho:.2f}; restricted to the validation windows of "
              f"00006–00007 (Lounge_AP absent, like the test sequences) it is {rho_sub:.2f} ({len(sub)} rows; a "
              "diagnostic, not used to select). The validation split holds "
              + ", ".join(f"{c} {n}" for c, n in zip(ds.class_names, diag["class_counts_val"]) if n < 50)
              + " windows (study: none, so validation macro-F1 averages 8 classes and test 9)."]
    seed_lines = []
    for base in ("mlp-H16L1", "mdcsa-H16L1", "mdcsa-H16L1-kd", "mamba-H8L1-kd"):
        reps = [r for r in rows if r["name"] == base
                or (r["name"].startswith(base + "-s") and r["name"][len(base) + 2:].isdigit())]
        if len(reps) >= 2:
            v, t = np.array([100 * r["val_f1"] for r in reps]), np.array([100 * r["test_f1"] for r in reps])
            seed_lines.append(f"| {base} | {len(reps)} | {v.mean():.1f} ({v.min():.1f}–{v.max():.1f}) | "
                              f"{t.mean():.1f} ({t.min():.1f}–{t.max():.1f}) |")
    if seed_lines:
        L += ["* **Seed spread** (same data and recipe, training seeds 0, 1, 2; int8 in TFLM) is as large as every "
              "difference between families and levers above:", "",
              "| model | seeds | val F1 mean (min–max) | test F1 mean (min–max) |", "|---|---|---|---|",
              *seed_lines, ""]
    if seq32:
        cm = np.asarray(seq32["per_class_test"]["confusion"])
        off = [(cm[i, j], ds.class_names[i], ds.class_names[j])
               for i in range(len(cm)) for j in range(len(cm)) if i != j]
        off.sort(reverse=True)
        L.append(f"* **Where {seq32['name']} errs** (test, true → predicted windows): "
                 + ", ".join(f"{a} → {b} {n}" for n, a, b in off[:5])
                 + f" of {int(cm.sum() - np.trace(cm))} errors. The per-room table above shows why: bath, bed1, "
                 "bed2, stairs and toilet are told apart mainly by the level of Upstairs_AP; living and bed2 lose "
                 "their strongest training AP (Lounge_AP) in every test sequence; Study_AP, heard in 11 % of "
                 "training windows (one sequence, 00007), is heard in 68 % of test windows and in rooms where "
                 "training rarely saw it (living, hall, bed1). Room changes inside a window are not the problem: "
                 "such windows are 4 % of the test set (steady / transition columns).")
    L.append("")

    mrows = [r for r in rows if r.get("mamba_int8_choice")]
    if mrows:
        L += ["## Mamba int8: with or without `calibrate_state_scales`", "",
              "Each Mamba run is converted twice (state-scale equalisation of `models.mamba.calibrate_state_scales`, "
              "strength 0.5, on / off); the row keeps the conversion with the better **validation** F1. Float = "
              "Keras model before conversion.", "",
              "| row | float val / test | int8 calibrated val / test | int8 uncalibrated val / test | kept |",
              "|---|---|---|---|---|"]
        for r in mrows:
            c = r["mamba_int8_choice"]
            L.append(f"| {r['name']} | {pct(r.get('val_f1_float'))} / {pct(r.get('test_f1_float'))} | "
                     f"{pct(c['calib']['val_f1'])} / {pct(c['calib']['test_f1'])} | "
                     f"{pct(c['nocalib']['val_f1'])} / {pct(c['nocalib']['test_f1'])} | {c['chosen']} |")
        L.append("")

    acc_rows = [r for r in rows if is_acc(r)]
    if acc_rows:
        L += ["## Beyond RSSI: adding the accelerometer (not part of the comparison above)", "",
              "The loader's optional `accelerometer=True` adds per-step mean acceleration (x, y, z) to the 4 APs "
              "(F = 7). The device pipeline (`tflm_app/core`) does not compute these features, so these rows are "
              "not deployable end-to-end today and are never selected in the tables above; same split, same windows.",
              "", "| row | val F1 | test F1 | test acc | arena B | flatbuffer B | RSSI-only twin: val / test F1 |",
              "|---|---|---|---|---|---|---|"]
        for r in acc_rows:
            twin = next((x for x in rows if x["name"] == r["name"].removesuffix("-acc")), None)
            L.append(f"| {r['name']} | {pct(r['val_f1'])} | {pct(r['test_f1'])} | {pct(r['test_acc'])} | "
                     f"{r.get('arena_bytes')} | {r.get('flatbuffer_bytes')} | "
                     f"{pct(twin and twin['val_f1'])} / {pct(twin and twin['test_f1'])} |")
        L.append("")

    # every row
    stale = [r["name"] for r in rows if r.get("quant") == "int8 (TFLM)" and r["family"] == "mdcsa"
             and "L2_NORMALIZATION" not in (r.get("ops") or [])]
    L += ["## Every row", "",
          "MDCSA rows use the current `Int8LayerNorm(method='l2norm')` (L2_NORMALIZATION in the int8 graph) "
          + (f"except {', '.join(stale)} (measured before that change; re-run with `--redo`)." if stale else
             "throughout."), "",
          "| row | family | config | levers | quant | val F1 | test F1 | test acc | float val F1 | float test F1 | "
          "arena B | flatbuffer B | params | s |", "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in sorted(rows, key=lambda r: (r["family"], r["name"])):
        L.append(f"| {r['name']} | {r['family']} | {r.get('config')} | {r.get('levers')} | {r.get('quant')} | "
                 f"{pct(r['val_f1'])} | {pct(r['test_f1'])} | {pct(r['test_acc'])} | {pct(r.get('val_f1_float'))} | "
                 f"{pct(r.get('test_f1_float'))} | {r.get('arena_bytes') if r.get('arena_bytes') is not None else '–'}"
                 f"{' (est.)' if r.get('arena_source') == 'estimate' else ''} | "
                 f"{r.get('flatbuffer_bytes') if r.get('flatbuffer_bytes') is not None else '–'} | "
                 f"{r.get('params') or '–'} | {r.get('seconds', '–')} |")
    L.append("")
    L += ["![validation vs test macro-F1 and arena; per-class F1](sphere.png)", ""]
    return {"markdown": "\n".join(L), "verdicts": verdicts, "extra": extra, "best": {
        c: {f: (r and r["name"]) for f, r in b.items()} for c, b in best.items()}}


def plot(ds, rows: list[dict], rendered: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (a1, a2) = plt.subplots(1, 2, figsize=(13, 5))
    colors = {"mdcsa": "tab:blue", "mamba": "tab:orange", "mlp": "tab:green", "rf": "tab:red", "knn": "tab:purple",
              "lr": "tab:brown"}
    for r in rows:
        if r.get("arena_bytes") is None or is_acc(r):
            continue
        a1.scatter(r["arena_bytes"] / 1024, 100 * r["test_f1"], color=colors.get(r["family"], "k"),
                   marker="o" if r.get("quant") == "int8 (TFLM)" else "x", s=30)
        a1.plot([r["arena_bytes"] / 1024] * 2, [100 * r["val_f1"], 100 * r["test_f1"]],
                color=colors.get(r["family"], "k"), alpha=0.3, lw=1)
    for fam, c in colors.items():
        a1.scatter([], [], color=c, label=fam)
    for x in (32, 64):
        a1.axvline(x, color="grey", ls="--", lw=1)
    a1.axhline(82, color="k", ls=":", lw=1, label="target 82")
    a1.axhline(75.5, color="tab:red", ls=":", lw=1, label="RF (issue 8) 75.5")
    a1.set_xscale("log")
    a1.set_xlabel("arena KiB (TFLM host; x = estimate for scikit-learn)")
    a1.set_ylabel("test macro-F1 % (line: to validation F1)")
    a1.set_title("sphere: int8 test macro-F1 vs RAM (RSSI only)")
    a1.legend(fontsize=7)
    names = [n for n in (rendered["verdicts"]["target_32k"]["row"], rendered["best"]["32 KiB (RL78/G13)"]["mlp"],
                         "rf-window") if n]
    show = [next(r for r in rows if r["name"] == n) for n in names]
    idx = np.arange(len(ds.class_names))
    w = 0.8 / max(len(show), 1)
    for k, r in enumerate(show):
        a2.bar(idx + k * w, [100 * r["per_class_test"]["classes"][c]["f1"] for c in ds.class_names], w, label=r["name"])
    a2.set_xticks(idx + w * (len(show) - 1) / 2, ds.class_names, rotation=30)
    a2.set_ylabel("test F1 %")
    a2.set_title("per-class test F1")
    a2.legend(fontsize=7)
    fig.tight_layout()
    from keras_tinyloc.paths import atomic_write_bytes
    import io

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110)
    plt.close(fig)
    atomic_write_bytes(path, buf.getvalue())


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--work", default=str(ROOT / "runs" / "sphere_models"), help="run cache directory")
    p.add_argument("--only", nargs="*", help="variant names to run (default: all); 'classic' for scikit-learn")
    p.add_argument("--redo", nargs="*", default=[], help="variant names to retrain even if cached")
    p.add_argument("--render-only", action="store_true", help="no training: tables from the cached rows")
    a = p.parse_args(argv)
    from keras_tinyloc.data.registry import load_dataset
    from keras_tinyloc.paths import atomic_write_json, atomic_write_text

    work = Path(a.work)
    ds = load_dataset("sphere")
    ds_acc = None

    def data_for(v: Variant):
        nonlocal ds_acc
        if v.mask:
            return sm.mask_features(ds, v.mask)
        if not v.accelerometer:
            return ds
        if ds_acc is None:
            ds_acc = load_dataset("sphere", accelerometer=True)
            if not (np.array_equal(ds_acc.y_test, ds.y_test) and np.array_equal(ds_acc.y_val, ds.y_val)):
                raise RuntimeError("sphere with accelerometer: windows differ from the RSSI-only ones")
        return ds_acc
    log = lambda s: print(time.strftime("%H:%M:%S"), s, flush=True)  # noqa: E731
    rows: list[dict] = []
    if not a.render_only and (not a.only or "classic" in a.only):
        rows += run_classic(ds, work, "classic" in a.redo, log)
    else:
        rows += sm.load_json(work / "classic" / "rows.json") or []
    for v in VARIANTS:
        if a.render_only or (a.only and v.name not in a.only):
            row = sm.load_json(work / v.name / "row.json")
        else:
            try:
                row = run_variant(data_for(v), v, work, v.name in a.redo, log)
            except Exception as exc:  # noqa: BLE001 - one failed variant must not lose the others
                log(f"{v.name}: FAILED {type(exc).__name__}: {exc}")
                traceback.print_exc()
                row = None
        if row is not None:
            row["levers"] = v.levers  # rows cached by an older version of this script keep the current wording
            rows.append(row)
    diag = diagnostics(ds)
    commands = ["KERAS_BACKEND=tensorflow .venv/bin/python benchmarks/sphere_models.py",
                "# one row (cached rows are reused): --only <name> ; re-render from the cache: --render-only"]
    rendered = render(ds, rows, work, diag, commands)
    atomic_write_text(OUT_MD, rendered["markdown"])
    slim = [{k: v for k, v in r.items() if not k.endswith("_pred_last")} for r in rows]
    atomic_write_json(OUT_JSON, {"dataset": "sphere", "selection": "validation macro-F1 (never test)",
                                 "ram_classes": {k: {"arena_bytes": v[0], "flatbuffer_bytes": v[1]}
                                                 for k, v in sm.RAM_CLASSES.items()},
                                 "verdicts": rendered["verdicts"], "best": rendered["best"],
                                 "diagnostics": diag, "per_sequence_and_lounge": rendered["extra"], "rows": slim})
    plot(ds, rows, rendered, OUT_PNG)
    log(f"wrote {OUT_MD}, {OUT_JSON}, {OUT_PNG}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
