"""``python -m keras_tinyloc fit``: the most accurate localiser that provably fits the user's microcontroller.

``python -m keras_tinyloc fit --dataset NAME|PATH --mcu NAME [--ram-kb N --flash-kb N --clock-mhz F]
[--time-budget MIN] [--max-trials N] [--backend local|ray] [--seed S] --out DIR [--overwrite]``

What it does, in order (every step resumable; re-running the same command on DIR continues where it stopped):

1. **Options** are checked before any work (``FitConfig.validate``): an MCU whose core cannot run TFLM is refused
   in one line naming its core (:func:`keras_tinyloc.experiments.fit_sizes.resolve_target`).
2. **Sizes before training** (:mod:`keras_tinyloc.experiments.fit_sizes`): every architecture of the grid
   (:mod:`keras_tinyloc.experiments.search_space`: families x sizes x input power) is converted once, untrained, to
   full int8; its host TFLM arena and flatbuffer plus the app/runtime overhead (measured on the emulated Cortex-M4
   once per family, or the stated host margins) give its whole-program RAM and flash need. Candidates that cannot fit are
   never trained (``DIR/sizes.json``).
3. **Search**: the fitting candidates are trained in a seeded order (:func:`search_space.visit_order`), one Optuna
   trial each, reporting the float validation macro-F1 after every epoch to Optuna's
   :class:`~optuna.pruners.SuccessiveHalvingPruner` (asynchronous successive halving: at epochs m, m·η, m·η², a
   trial continues only if it is in the top 1/η of all trials that reached that epoch). A trial that survives to
   the end (or to early stopping on validation F1) is converted to full int8 and scored **on the validation split
   in TFLM**: that int8 validation macro-F1 is the trial's value. The study lives in ``DIR/study.db`` (SQLite).
4. **Winner**: the complete candidate with the highest int8 validation F1 (ties: fewer parameters, then the earlier
   trial) whose need fits; with ``--device cortex-m4`` it is then measured as a whole firmware on the emulated M4
   (validation windows only) and, if that does not fit, the next one is taken. Only then is the test split touched:
   ``DIR/winner/`` = the run, its int8 conversion (:func:`keras_tinyloc.deploy.convert.convert_run`: ``report.json``
   / ``report.md`` with ``mcu_fit`` and test figures) and the Arduino/STM32 sketch, plus ``winner.json``.
5. ``DIR/leaderboard.csv`` / ``.md`` and ``DIR/val_f1_vs_ram.png`` (:mod:`keras_tinyloc.experiments.fit_report`).

**Why these engines.** Optuna (``optuna`` in setup.cfg) supplies the scheduler (SuccessiveHalvingPruner), the trial
bookkeeping and the SQLite storage that makes the search resumable; Ray (the sweep's backend) runs trials in parallel
with ``--backend ray``. Chosen over Ray Tune's ASHA because Optuna's pruner is a pure function of the stored trials,
so a sequential search is exactly repeatable and a killed one can be continued from its database; Ray Tune's
experiment state is tied to its own trial runner and checkpoints. **Written by hand**: the grid and its visiting
order (a seeded permutation, not a sampler: a sampler's random state is not restored on resume), the size check
before training, the trial loop (ask -> train with per-epoch reports -> tell), and the resume rule: a trial the
killed process left RUNNING cannot be deleted from Optuna's storage and would count twice in the pruner's rung
statistics, so when one is found the finished trials are copied into a fresh study (``fit-2``, ``fit-3``, ... in the
same database) and the search continues from there: the same trials, in the same order, with the same pruning.

**Repeatability.** Local backend: the same options and seed give the same trials, the same pruning decisions and
the same winner (training is seeded; the time budget only decides how long a prefix of the same trial sequence is
run, so ``--max-trials N`` gives the same result on any machine; a resumed search equals an uninterrupted one).
Ray backend with N > 1 workers: every trial is trained exactly as locally, but trials run concurrently, so which
trials have reached a rung when another asks the pruner depends on timing: pruning decisions, and so the winner,
can differ between runs; with one worker it is the local search.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import math
import os
import shutil
import sys
import time
from pathlib import Path
from typing import Any, Callable

from keras_tinyloc import paths
from keras_tinyloc.errors import TinyLocError, check_ints, check_seed, cli_errors
from keras_tinyloc.experiments import fit_sizes, search_space

BACKENDS = ("local", "ray")
STUDY_PREFIX = "fit-"
PARAM = "candidate"
STATES = {"COMPLETE": "complete", "PRUNED": "pruned", "FAIL": "failed"}
OUTPUTS = ("fit.json", "sizes.json", "study.db", "trials", "winner", "leaderboard.csv", "leaderboard.md",
           "val_f1_vs_ram.png")
# options that define the search: a DIR is resumed only with the same values
IDENTITY = ("dataset", "data_dir", "dataset_options", "target", "device", "seed", "families", "epochs", "patience",
            "min_epochs", "reduction_factor", "batch_size")


@dataclasses.dataclass
class FitConfig:
    """One ``fit`` invocation (written to ``DIR/fit.json``).

    Attributes:
        dataset: registry name or recordings path.  out: DIR.
        mcu: a name of :mod:`keras_tinyloc.deploy.mcu`'s table, or None for a custom MCU given by
            ``ram_kb`` / ``flash_kb`` / ``clock_mhz`` (with a name, each overrides that figure).
        time_budget_min: no trial starts after this many minutes of search (None = no time limit).
        max_trials: stop after this many trials in DIR's study (None = all fitting candidates).
        backend: ``local`` (sequential, repeatable) or ``ray`` (``jobs`` trials at a time on a local Ray instance).
        seed: training seed of every candidate and the seed of the visiting order.
        families: the families searched (keys of :data:`search_space.FAMILIES`).
        epochs / patience: maximum epochs per trial and early-stopping patience on validation F1.
        min_epochs / reduction_factor: the pruner's first rung (epochs) and eta.
        device: ``auto`` | ``cortex-m4`` | ``host``: how the app/runtime overhead is known (measured on the emulated
            M4, or the stated margins) and whether the winner is measured on the M4.
        sketch: export the winner's sketch.  overwrite: start DIR afresh.  progress: tqdm bar on stderr.
        overhead_cache: a JSON file shared by several searches (e.g. a benchmark's) holding architecture sizes
            (:func:`size_cache_key`) and device overheads (:func:`overhead_cache_key`), so searches of the same
            dataset convert each architecture and measure each family once.
    """

    dataset: str
    out: str
    mcu: str | None = None
    ram_kb: float | None = None
    flash_kb: float | None = None
    clock_mhz: float | None = None
    time_budget_min: float | None = None
    max_trials: int | None = None
    backend: str = "local"
    jobs: int = 2
    seed: int = 0
    families: tuple[str, ...] = tuple(search_space.FAMILIES)
    epochs: int = 40
    patience: int = 10
    min_epochs: int = 4
    reduction_factor: int = 3
    batch_size: int = 128
    device: str = "auto"
    data_dir: str | None = None
    dataset_options: dict = dataclasses.field(default_factory=dict)
    sketch: bool = True
    overwrite: bool = False
    progress: bool = True
    overhead_cache: str | None = None

    def validate(self, in_memory: bool = False) -> tuple[fit_sizes.Target, str]:
        """Check every option before any work; returns ``(target MCU, device basis "host"|"cortex-m4")``."""
        from keras_tinyloc.data.registry import check_dataset

        target = fit_sizes.resolve_target(self.mcu, self.ram_kb, self.flash_kb, self.clock_mhz)
        if not in_memory:
            check_dataset(self.dataset, self.data_dir, self.dataset_options)
        if self.backend not in BACKENDS:
            raise TinyLocError(f"--backend {self.backend!r}: choose from {', '.join(BACKENDS)}")
        search_space.check_families(self.families)
        check_seed(self.seed)
        check_ints(1, 10_000, epochs=self.epochs, patience=self.patience, batch_size=self.batch_size)
        check_ints(1, self.epochs, min_epochs=self.min_epochs)
        check_ints(2, 10, reduction_factor=self.reduction_factor)
        check_ints(1, 64, jobs=self.jobs)
        if self.max_trials is not None:
            check_ints(1, 100_000, max_trials=self.max_trials)
        t = self.time_budget_min
        if t is not None and not (isinstance(t, (int, float)) and not isinstance(t, bool) and math.isfinite(t)
                                  and t > 0):
            raise TinyLocError(f"--time-budget {t!r}: must be a positive number of minutes")
        paths.check_output_path(self.out)
        if self.overwrite:
            paths.check_output(self.out, overwrite=True)
        else:
            check_resumable(Path(self.out))
        return target, fit_sizes.resolve_device(self.device)

    def identity(self, target: fit_sizes.Target, device: str) -> dict:
        return {"dataset": self.dataset, "data_dir": self.data_dir, "dataset_options": dict(self.dataset_options),
                "target": target.to_json(), "device": device, "seed": self.seed, "families": list(self.families),
                "epochs": self.epochs, "patience": self.patience, "min_epochs": self.min_epochs,
                "reduction_factor": self.reduction_factor, "batch_size": self.batch_size}


def check_resumable(out: Path) -> None:
    """DIR must be new, empty, or a fit folder (``fit.json``); anything else is refused (nothing is replaced)."""
    if out.is_dir() and any(out.iterdir()) and not (out / "fit.json").is_file():
        raise TinyLocError(f"--out {out}: exists, is not empty and holds no fit.json (not a fit folder; choose "
                           f"another folder, or --overwrite to replace an earlier keras_tinyloc output)")


def check_identity(out: Path, ident: dict) -> None:
    """A resumed DIR must have been started with the same search options (IDENTITY); one line naming the first."""
    meta = out / "fit.json"
    if not meta.is_file():
        return
    try:
        old = json.loads(meta.read_text())["search"]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise TinyLocError(f"{meta}: unreadable ({exc})") from None
    for k in IDENTITY:
        if json.dumps(old.get(k), sort_keys=True) != json.dumps(ident.get(k), sort_keys=True):
            raise TinyLocError(f"--out {out}: holds a search with another {k} ({old.get(k)!r}, now {ident.get(k)!r}); "
                               f"use another --out, or --overwrite to start afresh")


# ----------------------------------------------------------------------------------------------- sizes
def overhead_cache_key(ds, cand, seed: int) -> str:
    """What a device overhead depends on: the dataset's shapes and names (the app's buffers and tables), the
    measured architecture, the seed, the TFLM library and the app's sources (``tflm_app/``)."""
    import hashlib

    from keras_tinyloc.deploy import tflm_kit

    h = hashlib.sha256(json.dumps([ds.name, list(ds.input_shape), list(ds.class_names), list(ds.feature_names),
                                   cand.arch_key, seed]).encode())
    h.update(tflm_kit.library_key(tflm_kit.require_kit(), "m4").encode())
    for f in sorted(tflm_kit.APP_DIR.rglob("*")):
        if f.is_file() and f.suffix in (".c", ".cc", ".h", ".ino", ".ld", ".s", ".mk") or f.name == "Makefile":
            h.update(f.relative_to(tflm_kit.APP_DIR).as_posix().encode() + f.read_bytes())
    return h.hexdigest()[:24]


def size_cache_key(ds, cand, seed: int) -> str:
    """What an architecture's host sizes depend on: the dataset's shapes and names, the architecture, the seed and
    the host TFLM / TensorFlow versions."""
    import hashlib
    from importlib import metadata

    return hashlib.sha256(json.dumps([ds.name, list(ds.input_shape), list(ds.class_names), list(ds.feature_names),
                                      cand.arch_key, seed, metadata.version("tflite-micro"),
                                      metadata.version("tensorflow-cpu")]).encode()).hexdigest()[:24]


def _read_cache(path) -> dict:
    if not path or not Path(path).is_file():
        return {}
    try:
        return json.loads(Path(path).read_text())
    except (OSError, ValueError):
        return {}


def screen(cfg: FitConfig, ds, target, device: str, out: Path, log) -> dict:
    """Step 2: host sizes per architecture, overhead per op set, need and fit per candidate (``DIR/sizes.json``,
    extended incrementally so a killed screening resumes). Returns the sizes document."""
    doc_path = out / "sizes.json"
    doc = json.loads(doc_path.read_text()) if doc_path.is_file() else {"archs": {}, "overheads": {}}
    cands = search_space.grid(cfg.families)
    too_big: dict[tuple, str] = {}  # (family, L, power) -> why its wider sizes need no conversion
    for arch in search_space.architectures(cands):
        line = (arch.family, arch.layers, arch.power)
        if arch.arch_key not in doc["archs"] and line in too_big:
            doc["archs"][arch.arch_key] = {"arch": arch.arch_key, "family": arch.family, "params": None,
                                           "arena_bytes": None, "flatbuffer_bytes": None, "ops": [],
                                           "skipped": too_big[line]}
        elif arch.arch_key not in doc["archs"]:
            ckey = f"sizes:{size_cache_key(ds, arch, cfg.seed)}"
            cached = _read_cache(cfg.overhead_cache).get(ckey)
            doc["archs"][arch.arch_key] = cached or fit_sizes.arch_sizes(arch, ds, cfg.seed)
            if cfg.overhead_cache and not cached:
                paths.atomic_write_json(cfg.overhead_cache, {**_read_cache(cfg.overhead_cache),
                                                             ckey: doc["archs"][arch.arch_key]})
            s = doc["archs"][arch.arch_key]
            log(f"size {arch.arch_key}: arena {s['arena_bytes']} B (host), flatbuffer {s['flatbuffer_bytes']} B"
                + (" (cached)" if cached else ""))
        paths.atomic_write_json(doc_path, doc)
        s = doc["archs"][arch.arch_key]
        if "skipped" not in s and not target.fits(s["arena_bytes"], s["flatbuffer_bytes"]):
            # arena and flatbuffer grow with H at a fixed depth and input power (sizes are listed smallest first)
            over = [f"{what} alone ({v / 1024:.1f} KiB) exceeds the MCU's {lim // 1024} KiB" for what, v, lim in
                    (("arena", s["arena_bytes"], target.ram_bytes), ("flatbuffer", s["flatbuffer_bytes"],
                                                                     target.flash_bytes)) if v > lim]
            too_big[line] = f"wider than {arch.arch_key}, whose {' and '.join(over)}"
    # one overhead per family: measured on its first architecture (grid order) with the most op types among those
    # whose bare arena and flatbuffer fit (x^3 adds MUL to an MLP: its op set contains the plain one's)
    archs = search_space.architectures(cands)
    for fam in dict.fromkeys(a.family for a in archs):
        mine = [a for a in archs if a.family == fam]
        for a in mine:
            doc["archs"][a.arch_key]["overhead_key"] = fam
        if fam in doc["overheads"]:
            continue
        if device != "cortex-m4":
            doc["overheads"][fam] = fit_sizes.host_overhead(search_space.FAMILIES[fam].model)
        else:
            bare = [a for a in mine if "skipped" not in doc["archs"][a.arch_key] and target.fits(
                doc["archs"][a.arch_key]["arena_bytes"], doc["archs"][a.arch_key]["flatbuffer_bytes"])]
            if not bare:
                continue  # even without the app nothing of this family fits: no measurement needed
            pick = max(bare, key=lambda a: (len(doc["archs"][a.arch_key]["ops"]), -mine.index(a)))
            ckey = overhead_cache_key(ds, pick, cfg.seed)
            cache = _read_cache(cfg.overhead_cache)
            if ckey in cache:
                doc["overheads"][fam] = {**cache[ckey], "cached": True}
            else:
                log(f"device overhead of {fam}: measuring {pick.arch_key} (untrained) on the emulated Cortex-M4 ...")
                work = out / ".sizes-device"
                doc["overheads"][fam] = fit_sizes.device_overhead(pick, ds, work, cfg.seed)
                shutil.rmtree(work, ignore_errors=True)
                if cfg.overhead_cache:
                    paths.atomic_write_json(cfg.overhead_cache, {**_read_cache(cfg.overhead_cache),
                                                                 ckey: doc["overheads"][fam]})
            measured = set(doc["overheads"][fam]["ops"])
            doc["overheads"][fam]["ops_not_measured"] = sorted(
                set().union(*(set(doc["archs"][a.arch_key]["ops"]) - measured for a in mine)))
        paths.atomic_write_json(doc_path, doc)
    doc["candidates"] = {}
    for c in cands:
        s = doc["archs"][c.arch_key]
        ov = doc["overheads"].get(s["overhead_key"])
        if "skipped" in s:
            doc["candidates"][c.key] = {"ram_bytes": None, "flash_bytes": None, "basis": "not converted",
                                        "fits": False, "why_not": s["skipped"]}
            continue
        if ov is None:  # not measured because even the bare model exceeds the MCU
            n = {"ram_bytes": s["arena_bytes"], "flash_bytes": s["flatbuffer_bytes"],
                 "basis": "arena and flatbuffer alone (already above the MCU's limits)"}
        else:
            n = fit_sizes.need(s, ov)
        fits = target.fits(n["ram_bytes"], n["flash_bytes"])
        why = None if fits else "; ".join(
            f"{what} need {v / 1024:.1f} KiB > {lim // 1024} KiB" for what, v, lim in
            (("RAM", n["ram_bytes"], target.ram_bytes), ("flash", n["flash_bytes"], target.flash_bytes)) if v > lim)
        doc["candidates"][c.key] = {**n, "fits": fits, "why_not": why}
    paths.atomic_write_json(doc_path, doc)
    return doc


# ----------------------------------------------------------------------------------------------- one trial
def train_candidate(cand: search_space.Candidate, ds, run_dir: Path, cfg: FitConfig,
                    on_epoch: Callable[[dict], bool] | None = None):
    """Train ``cand`` on ``ds`` (early stopping on validation F1, ``on_epoch`` = the pruner's hook).

    Returns ``(tagger, fit, tcfg)``: the tagger with the best epoch's weights, ``fit_tagger``'s record and the
    run's TrainConfig. Nothing is evaluated on the test split.
    """
    from keras_tinyloc.models import build_tagger
    from keras_tinyloc.training.augment import AugmentConfig, inverse_span
    from keras_tinyloc.training.train import TrainConfig, check_labels, fit_tagger, make_optimizer
    from keras_tinyloc.training.trainer import make_trainer

    tcfg = TrainConfig(dataset=cfg.dataset, model=cand.model, hidden=cand.hidden, layers=cand.layers,
                       out=str(run_dir), epochs=cfg.epochs, patience=cfg.patience, batch_size=cfg.batch_size,
                       lr=cand.lr, seed=cfg.seed, data_dir=cfg.data_dir, overwrite=True, verbose=False,
                       model_options=cand.model_options(), dataset_options=dict(cfg.dataset_options))
    check_labels(ds)
    tagger = build_tagger(cand.model, ds.input_shape, ds.n_classes, cand.hidden, cand.layers, seed=cfg.seed,
                          **cand.model_options())
    tagger.compile(optimizer=make_optimizer(tcfg))
    trainer = tagger
    if cand.augment:
        trainer = make_trainer(tagger, inverse_span(ds.scaling.low, ds.scaling.high),
                               AugmentConfig(**cand.augment_options()), seed=cfg.seed)
        trainer.compile(optimizer=make_optimizer(tcfg))
    fit = fit_tagger(trainer, tagger, ds, tcfg, log=lambda line: None, on_epoch=on_epoch)
    return tagger, fit, tcfg


def _val_report(rep: dict) -> dict:
    """A conversion report of the validation view with its ``test_*`` keys renamed ``val_*`` (they are validation
    figures)."""
    return {(("val_" + k[5:]) if k.startswith("test_") else k): v for k, v in rep.items()}


def run_trial(trial, cand: search_space.Candidate, ds, cfg: FitConfig, trial_dir: Path) -> dict:
    """Train, (if not pruned) write and convert one candidate; report each epoch to ``trial`` (an Optuna Trial).

    Returns the trial's record: ``{"state": "complete"|"pruned", "value", ...}`` with the float validation F1 of
    the best epoch, and for complete trials the int8 validation figures in TFLM, arena, flatbuffer and host invoke
    time. A complete trial's run is written to ``trial_dir/run`` and its int8 model to ``trial_dir/int8``.
    """
    import numpy as np

    from keras_tinyloc.deploy import convert
    from keras_tinyloc.training.metrics import window_metrics
    from keras_tinyloc.training.train import count_params, run_config, write_run

    t0 = time.perf_counter()
    pruned = {"epoch": None}

    def on_epoch(rec: dict) -> bool:
        trial.report(float(rec["val_f1"]), int(rec["epoch"]))
        if trial.should_prune():
            pruned["epoch"] = int(rec["epoch"])
            return True
        return False

    tagger, fit, tcfg = train_candidate(cand, ds, trial_dir / "run", cfg, on_epoch)
    best_f1 = max((h["val_f1"] for h in fit["history"]), default=float("nan"))
    rec: dict[str, Any] = {"key": cand.key, "params": count_params(tagger), "val_f1": float(best_f1),
                           "best_epoch": fit["best_epoch"], "epochs_run": fit["epochs_run"]}
    if pruned["epoch"] is not None:
        rec.update(state="pruned", pruned_epoch=pruned["epoch"], value=float(fit["history"][-1]["val_f1"]),
                   seconds=round(time.perf_counter() - t0, 2))
        return rec
    x_val, y_val = ds.split("val")
    val = window_metrics(y_val, tagger.decode(x_val, batch_size=1024))
    metrics = {"val_f1": val["f1"], "val_acc": val["acc"], "params": rec["params"], **fit,
               "note": "fit --mcu candidate: validation only (test figures are computed for the winner alone)"}
    config = run_config(tcfg, ds, tagger)
    config["fit_candidate"] = {**cand.to_json(), "augment_options": cand.augment_options()}
    buf, rep = convert.convert_model(tagger.emitter, tagger.crf_weights(), fit_sizes.validation_view(ds), "int8",
                                     seed=cfg.seed, name=cand.key)
    rep = _val_report(rep)
    with paths.atomic_dir(trial_dir, overwrite=True) as tmp:
        write_run(tmp / "run", tagger, config, metrics, overwrite=True)
        (tmp / "int8").mkdir()
        paths.atomic_write_bytes(tmp / "int8" / "model.tflite", buf)
        paths.atomic_write_json(tmp / "int8" / "val_report.json", rep)
    rec.update(state="complete", value=float(rep["val_f1_int8"]), val_f1_keras=float(val["f1"]),
               val_f1_int8=float(rep["val_f1_int8"]), val_acc_int8=float(rep["val_acc_int8"]),
               arena_bytes=int(rep["arena_bytes"]), flatbuffer_bytes=int(rep["flatbuffer_bytes"]),
               invoke_us_host=rep.get("invoke_us_tflm"), ops=sorted(rep["ops"]),
               seconds=round(time.perf_counter() - t0, 2))
    if not np.isfinite(rec["value"]):
        raise TinyLocError(f"{cand.key}: validation F1 of the int8 model is not finite")
    return rec


# ----------------------------------------------------------------------------------------------- the study
def storage_url(out: Path) -> str:
    return f"sqlite:///{(Path(out) / 'study.db').resolve()}"


def make_pruner(cfg: FitConfig):
    import optuna

    return optuna.pruners.SuccessiveHalvingPruner(min_resource=cfg.min_epochs, reduction_factor=cfg.reduction_factor,
                                                  min_early_stopping_rate=0)


def _storage(out: Path):
    import optuna

    return optuna.storages.RDBStorage(storage_url(out), engine_kwargs={"connect_args": {"timeout": 120}})


def open_study(out: Path, cfg: FitConfig, log=print):
    """The study to continue in ``DIR/study.db`` (see the module docstring's resume rule). Returns the Study."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    storage = _storage(out)
    names = sorted((s.study_name for s in storage.get_all_studies() if s.study_name.startswith(STUDY_PREFIX)),
                   key=lambda n: int(n[len(STUDY_PREFIX):]))
    kw = dict(storage=storage, pruner=make_pruner(cfg), sampler=optuna.samplers.RandomSampler(seed=cfg.seed))
    if not names:
        return optuna.create_study(study_name=f"{STUDY_PREFIX}1", direction="maximize", **kw)
    study = optuna.load_study(study_name=names[-1], **kw)
    trials = study.get_trials(deepcopy=False)
    stale = [t for t in trials if not t.state.is_finished()]
    if not stale:
        return study
    fresh = optuna.create_study(study_name=f"{STUDY_PREFIX}{int(names[-1][len(STUDY_PREFIX):]) + 1}",
                                direction="maximize", **kw)
    fresh.add_trials([t for t in sorted(trials, key=lambda t: t.number) if t.state.is_finished()])
    log(f"resume: {len(stale)} unfinished trial(s) of {names[-1]} (killed?) dropped; {len(trials) - len(stale)} "
        f"finished trial(s) continue in {fresh.study_name}")
    return fresh


def finished_records(study) -> dict[str, dict]:
    """``{candidate key: record}`` of the study's finished trials (record = user attrs + state + trial number)."""
    out = {}
    for t in sorted(study.get_trials(deepcopy=False), key=lambda t: t.number):
        if not t.state.is_finished():
            continue
        key = t.params.get(PARAM)
        rec = dict(t.user_attrs.get("record") or {})
        rec.update(key=key, trial=t.number, state=STATES[t.state.name])
        out[key] = rec
    return out


def _ask(study, key: str, keys: list[str]):
    """A new trial of the study that runs candidate ``key`` (enqueued, so no sampler decides)."""
    study.enqueue_trial({PARAM: key})
    trial = study.ask()
    got = trial.suggest_categorical(PARAM, keys)
    if got != key:
        raise TinyLocError(f"fit: the study handed out {got!r} instead of {key!r} (DIR/study.db edited?)")
    return trial


def _tell(study, trial, rec: dict) -> None:
    """Finish ``trial`` with its record (user attribute ``record``) and state."""
    import optuna

    trial.set_user_attr("record", rec)
    if rec["state"] == "complete":
        study.tell(trial, rec["value"])
    elif rec["state"] == "pruned":
        study.tell(trial, state=optuna.trial.TrialState.PRUNED)
    else:
        study.tell(trial, state=optuna.trial.TrialState.FAIL)


def _failure(cand, exc: BaseException, t0: float) -> dict:
    msg = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    if not isinstance(exc, TinyLocError):
        msg = f"{type(exc).__name__}: {msg}"
    return {"key": cand.key, "state": "failed", "error": msg[:300], "seconds": round(time.perf_counter() - t0, 2)}


def _local_trial(study, cand, keys, ds, cfg: FitConfig, out: Path) -> dict:
    trial = _ask(study, cand.key, keys)
    t0 = time.perf_counter()
    try:
        rec = run_trial(trial, cand, ds, cfg, out / "trials" / cand.key)
    except KeyboardInterrupt:
        raise
    except Exception as exc:  # noqa: BLE001 - one failed candidate must not stop the search
        rec = _failure(cand, exc, t0)
    _tell(study, trial, rec)
    return rec


def _ray_trial(url: str, study_name: str, trial_id: int, cand_json: dict, ds, cfg_json: dict, trial_dir: str) -> dict:
    """Body of a Ray task: the same :func:`run_trial`, reporting through the shared SQLite study."""
    import optuna

    from keras_tinyloc.errors import quiet_tensorflow

    quiet_tensorflow()
    cfg = FitConfig(**{**cfg_json, "families": tuple(cfg_json["families"])})
    cand = search_space.Candidate(**{k: cand_json[k] for k in ("family", "hidden", "layers", "power", "augment")})
    storage = optuna.storages.RDBStorage(url, engine_kwargs={"connect_args": {"timeout": 120}})
    study = optuna.load_study(study_name=study_name, storage=storage, pruner=make_pruner(cfg))
    trial = optuna.trial.Trial(study, trial_id)
    t0 = time.perf_counter()
    try:
        return run_trial(trial, cand, ds, cfg, Path(trial_dir))
    except Exception as exc:  # noqa: BLE001
        return _failure(cand, exc, t0)


# ----------------------------------------------------------------------------------------------- the search
def _best(records: dict[str, dict], sizes: dict) -> dict | None:
    ok = [r for r in records.values() if r.get("state") == "complete" and sizes["candidates"][r["key"]]["fits"]]
    return max(ok, key=lambda r: (r["value"], -r.get("params", 0), -r["trial"])) if ok else None


def _bar(cfg: FitConfig, total: int, initial: int):
    if not cfg.progress:
        return None
    from tqdm import tqdm

    return tqdm(total=total, initial=initial, unit="trial", desc="fit", dynamic_ncols=True, file=sys.stderr)


def _postfix(bar, records, sizes) -> None:
    if bar is not None:
        b = _best(records, sizes)
        bar.set_postfix_str(f"best val F1 int8 {b['value']:.4f} {b['key']}" if b else "best: none yet")


def search(cfg: FitConfig, ds, sizes: dict, out: Path, log) -> dict[str, dict]:
    """Step 3: run trials of the fitting candidates in visiting order until done or out of budget."""
    study = open_study(out, cfg, log)
    order = [c for c in search_space.visit_order(search_space.grid(cfg.families), cfg.seed)
             if sizes["candidates"][c.key]["fits"]]
    keys = [c.key for c in search_space.grid(cfg.families)]
    records = finished_records(study)
    todo = [c for c in order if c.key not in records]
    if cfg.max_trials is not None:
        todo = todo[:max(0, cfg.max_trials - len(records))]
    deadline = None if cfg.time_budget_min is None else time.monotonic() + 60.0 * cfg.time_budget_min
    bar = _bar(cfg, len(order), len(records))
    _postfix(bar, records, sizes)
    try:
        if cfg.backend == "ray" and todo:
            _search_ray(cfg, study, todo, keys, ds, out, records, deadline, bar, sizes)
        else:
            for cand in todo:
                if deadline is not None and time.monotonic() >= deadline:
                    break
                _local_trial(study, cand, keys, ds, cfg, out)
                records = finished_records(study)
                if bar is not None:
                    bar.update(1)
                _postfix(bar, records, sizes)
    finally:
        if bar is not None:
            bar.close()
    return finished_records(study)


def _search_ray(cfg: FitConfig, study, todo, keys, ds, out: Path, records, deadline, bar, sizes) -> None:
    try:
        import ray
    except ImportError:
        raise TinyLocError("--backend ray: Ray is not installed (pip install 'ray[default]')") from None
    env = {"env_vars": {"KERAS_BACKEND": "tensorflow", "TF_CPP_MIN_LOG_LEVEL": "2", "OMP_NUM_THREADS": "1"}}
    try:
        ray.init(num_cpus=cfg.jobs, runtime_env=env, include_dashboard=False, log_to_driver=False,
                 ignore_reinit_error=True)
    except Exception as exc:  # noqa: BLE001
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise TinyLocError(f"--backend ray: cannot start Ray: {first[:200]}") from None
    try:
        remote = ray.remote(num_cpus=1, max_retries=0)(_ray_trial)
        ds_ref = ray.put(ds)
        cfg_json = dataclasses.asdict(cfg)
        url = storage_url(out)
        queue, pending = list(todo), {}
        while queue or pending:
            while queue and len(pending) < cfg.jobs and (deadline is None or time.monotonic() < deadline):
                cand = queue.pop(0)
                trial = _ask(study, cand.key, keys)
                ref = remote.remote(url, study.study_name, trial._trial_id, cand.to_json(), ds_ref, cfg_json,
                                    str(out / "trials" / cand.key))
                pending[ref] = (trial, cand)
            if not pending:
                break
            done, _ = ray.wait(list(pending), num_returns=1)
            trial, cand = pending.pop(done[0])
            try:
                rec = ray.get(done[0])
            except Exception as exc:  # noqa: BLE001 - the worker died
                rec = _failure(cand, exc, time.perf_counter())
            _tell(study, trial, rec)
            records.update(finished_records(study))
            if bar is not None:
                bar.update(1)
            _postfix(bar, records, sizes)
    finally:
        ray.shutdown()


# ----------------------------------------------------------------------------------------------- the winner
def device_check(cand, trial_dir: Path, ds, cfg: FitConfig, work: Path) -> dict:
    """The candidate's run converted with ``target="cortex-m4"`` on the validation view: whole-firmware RAM, flash
    and instructions per invoke on the emulated M4 (no test figure)."""
    from keras_tinyloc.deploy import convert

    rep = convert.convert_run(convert.ConvertConfig(run_dir=str(trial_dir / "run"), out=str(work), overwrite=True,
                                                    target="cortex-m4", seed=cfg.seed),
                              dataset=fit_sizes.validation_view(ds))
    dev = rep["device"]
    return {"ram_bytes": int(dev["ram_bytes"]), "flash_bytes": int(dev["flash_bytes"]),
            "arena_bytes": int(dev["arena_bytes"]), "instructions_per_invoke": int(dev["instructions_per_invoke"])}


def choose_winner(records: dict[str, dict], sizes: dict, target, device: str, cfg: FitConfig, ds, out: Path,
                  log) -> tuple[dict | None, dict]:
    """Step 4's selection: candidates in order of int8 validation F1 (ties: fewer parameters, earlier trial) whose
    need fits; with ``device == "cortex-m4"`` the first whose measured firmware fits. Returns ``(record,
    device checks by key)``; the checks are cached in ``DIR/trials/<key>/device.json``."""
    ok = sorted((r for r in records.values() if r.get("state") == "complete" and sizes["candidates"][r["key"]]["fits"]),
                key=lambda r: (-r["value"], r.get("params", 0), r["trial"]))
    checks: dict[str, dict] = {}
    for r in ok:
        if device != "cortex-m4":
            return r, checks
        tdir = out / "trials" / r["key"]
        cache = tdir / "device.json"
        if cache.is_file():
            checks[r["key"]] = json.loads(cache.read_text())
        else:
            log(f"winner check: {r['key']} (val F1 int8 {r['value']:.4f}) on the emulated Cortex-M4 ...")
            cand = _cand(r["key"], cfg)
            work = out / ".device-check"
            checks[r["key"]] = device_check(cand, tdir, ds, cfg, work)
            shutil.rmtree(work, ignore_errors=True)
            paths.atomic_write_json(cache, checks[r["key"]])
        c = checks[r["key"]]
        if target.fits(c["ram_bytes"], c["flash_bytes"]):
            return r, checks
        log(f"  {r['key']} does not fit on the device (RAM {c['ram_bytes']} B, flash {c['flash_bytes']} B): next")
    return None, checks


def _cand(key: str, cfg: FitConfig) -> search_space.Candidate:
    for c in search_space.grid(cfg.families):
        if c.key == key:
            return c
    raise TinyLocError(f"candidate {key!r} is not in the search space")


def write_winner(rec: dict, sizes: dict, target, device: str, check: dict | None, cfg: FitConfig, ds,
                 out: Path, log) -> dict:
    """``DIR/winner/``: the run, its int8 conversion on the real test split (report.json/md with mcu_fit), the
    sketch and ``winner.json``. Reused when ``winner.json`` already names this candidate."""
    from keras_tinyloc.deploy import convert

    final = out / "winner"
    if (final / "winner.json").is_file():
        old = json.loads((final / "winner.json").read_text())
        if old.get("key") == rec["key"]:
            return old
    log(f"winner: {rec['key']} (val F1 int8 {rec['value']:.4f}); converting it and computing its test figures once")
    src = out / "trials" / rec["key"] / "run"
    with paths.atomic_dir(final, overwrite=True) as tmp:
        shutil.copytree(src, tmp / "run")
        rep = convert.convert_run(convert.ConvertConfig(
            run_dir=str(tmp / "run"), out=str(tmp / "int8"), sketch=str(tmp / "sketch") if cfg.sketch else None,
            target=device, seed=cfg.seed, data_dir=cfg.data_dir), dataset=ds)
        dev = rep.get("device")
        ram = dev["ram_bytes"] if dev else sizes["candidates"][rec["key"]]["ram_bytes"] - int(
            rec["arena_bytes"]) + int(rep["arena_bytes"])
        flash = dev["flash_bytes"] if dev else sizes["candidates"][rec["key"]]["flash_bytes"] - int(
            rec["flatbuffer_bytes"]) + int(rep["flatbuffer_bytes"])
        latency = None
        if dev:
            latency = round(dev["instructions_per_invoke"] / (target.clock_mhz * 1e3), 4)
        win = {"key": rec["key"], "candidate": _cand(rec["key"], cfg).to_json(), "trial": rec["trial"],
               "selection": "highest int8 validation macro-F1 (TFLM) among the complete candidates that fit",
               "val_f1_int8": rec["val_f1_int8"], "val_acc_int8": rec["val_acc_int8"], "val_f1_float": rec["val_f1"],
               "test_f1_int8": rep["test_f1_int8"], "test_acc_int8": rep["test_acc_int8"],
               "test_f1_float": rep["test_f1_float"], "test_acc_float": rep["test_acc_float"],
               "target": target.to_json(), "ram_bytes": int(ram), "flash_bytes": int(flash),
               "fits": target.fits(ram, flash),
               "fit_basis": ("device: whole firmware measured on the emulated Cortex-M4 (winner/int8/report.md)"
                             if dev else sizes["candidates"][rec["key"]]["basis"]),
               "latency_ms": latency,
               "latency_note": (f"instructions per invoke x CPI 1.0 / {target.clock_mhz:g} MHz (a lower bound; "
                                f"deploy.mcu.COST_ASSUMPTIONS)") if dev else "host TFLM only: no device latency",
               "invoke_us_host": rep.get("invoke_us_tflm"), "arena_bytes_host": rep["arena_bytes"],
               "flatbuffer_bytes": rep["flatbuffer_bytes"], "device_check": check}
        paths.atomic_write_json(tmp / "winner.json", win)
    if not win["fits"]:
        raise TinyLocError(f"winner {rec['key']}: its final figures (RAM {win['ram_bytes']} B, flash "
                           f"{win['flash_bytes']} B) do not fit {target.name}")
    return win


# ----------------------------------------------------------------------------------------------- leaderboard rows
def leaderboard_rows(cfg: FitConfig, sizes: dict, records: dict[str, dict], winner: dict | None,
                     target) -> list[dict]:
    """One row per grid candidate (see :mod:`keras_tinyloc.experiments.fit_report`)."""
    rows = []
    for c in search_space.grid(cfg.families):
        n = sizes["candidates"][c.key]
        a = sizes["archs"][c.arch_key]
        r = records.get(c.key)
        row = {"key": c.key, "family": c.family, "hidden": c.hidden, "layers": c.layers, "levers": c.levers(),
               "params": a["params"], "arena_bytes": a["arena_bytes"], "ram_need_bytes": n["ram_bytes"],
               "flash_need_bytes": n["flash_bytes"], "fits": n["fits"], "need_basis": n["basis"]}
        if not n["fits"]:
            row.update(status="does not fit", selection=f"not trained: {n['why_not']}")
        elif r is None:
            row.update(status="not run", selection="not reached within the budget")
        else:
            row.update(trial=r.get("trial"), seconds=r.get("seconds"), val_f1=r.get("val_f1"),
                       epochs_run=r.get("epochs_run"), best_epoch=r.get("best_epoch"))
            if r["state"] == "pruned":
                row.update(status="pruned", selection=f"eliminated by successive halving at epoch "
                                                      f"{r.get('pruned_epoch')} (val F1 {r.get('value', float('nan')):.4f})")
            elif r["state"] == "failed":
                row.update(status="failed", selection=f"failed: {r.get('error')}")
            else:
                ram = n["ram_bytes"] - a["arena_bytes"] + int(r["arena_bytes"])
                flash = n["flash_bytes"] - a["flatbuffer_bytes"] + int(r["flatbuffer_bytes"])
                row.update(status="complete", selection="trained to the end; ranked by int8 val F1",
                           val_f1_int8=r["val_f1_int8"], val_acc_int8=r["val_acc_int8"], arena_bytes=r["arena_bytes"],
                           ram_need_bytes=ram, flash_need_bytes=flash, fits=target.fits(ram, flash),
                           invoke_us_host=r.get("invoke_us_host"))
                if winner is not None and winner["key"] == c.key:
                    row.update(status="winner", selection=winner["selection"], test_f1_int8=winner["test_f1_int8"],
                               test_acc_int8=winner["test_acc_int8"], ram_need_bytes=winner["ram_bytes"],
                               flash_need_bytes=winner["flash_bytes"], fits=winner["fits"],
                               need_basis=winner["fit_basis"], latency_ms=winner["latency_ms"])
        rows.append(row)
    return rows


# ----------------------------------------------------------------------------------------------- entry point
def run_fit(cfg: FitConfig, dataset=None, log: Callable[[str], None] = print) -> dict:
    """Run (or resume) a search; write DIR (see the module docstring). ``dataset``: an in-memory
    :class:`~keras_tinyloc.data.base.WindowDataset` used instead of loading ``cfg.dataset`` (tests, notebooks).
    Returns the summary written to ``DIR/fit.json`` (``winner``, ``counts``, ``files``)."""
    target, device = cfg.validate(in_memory=dataset is not None)
    out = Path(cfg.out)
    with paths.claimed_output(out, cfg.overwrite, resumable=not cfg.overwrite):
        if cfg.overwrite and out.is_dir() and any(out.iterdir()):
            paths.check_replaceable(out, True)
            for entry in out.iterdir():
                if entry.name != paths.MANIFEST:
                    shutil.rmtree(entry) if entry.is_dir() else entry.unlink()
        return _run_fit(cfg, dataset, target, device, out, log)


def _run_fit(cfg: FitConfig, dataset, target, device: str, out: Path, log) -> dict:
    from keras_tinyloc.errors import quiet_tensorflow

    quiet_tensorflow()
    ident = cfg.identity(target, device)
    check_identity(out, ident)
    out.mkdir(parents=True, exist_ok=True)
    meta = json.loads((out / "fit.json").read_text()) if (out / "fit.json").is_file() else {"search": ident,
                                                                                            "invocations": []}
    meta["invocations"].append({"time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                                "time_budget_min": cfg.time_budget_min, "max_trials": cfg.max_trials,
                                "backend": cfg.backend, "jobs": cfg.jobs if cfg.backend == "ray" else 1})
    paths.atomic_write_json(out / "fit.json", meta)
    paths.record_output(out, *OUTPUTS)
    if dataset is None:
        from keras_tinyloc.data.registry import is_recordings_path, load_dataset

        dataset = load_dataset(cfg.dataset, None if is_recordings_path(cfg.dataset) else cfg.data_dir,
                               **cfg.dataset_options)
    t0 = time.monotonic()
    sizes = screen(cfg, dataset, target, device, out, log)
    n_fit = sum(v["fits"] for v in sizes["candidates"].values())
    log(f"{n_fit} of {len(sizes['candidates'])} candidates fit {target.name} ({device} basis); searching")
    records = search(cfg, dataset, sizes, out, log)
    rec, checks = choose_winner(records, sizes, target, device, cfg, dataset, out, log)
    winner = None
    if rec is not None:
        winner = write_winner(rec, sizes, target, device, checks.get(rec["key"]), cfg, dataset, out, log)
    from keras_tinyloc.experiments import fit_report

    states = [r.get("state") for r in records.values()]
    counts = (f"{len(sizes['candidates'])} candidates ({', '.join(cfg.families)}), {n_fit} fit, {len(records)} "
              f"trained ({states.count('complete')} to the end, {states.count('pruned')} eliminated, "
              f"{states.count('failed')} failed)")
    budget = ", ".join(b for b in (f"{cfg.time_budget_min:g} min" if cfg.time_budget_min else "",
                                   f"{cfg.max_trials} trials" if cfg.max_trials else "") if b) or "none (every candidate)"
    rows = leaderboard_rows(cfg, sizes, records, winner, target)
    files = fit_report.write_leaderboard(out, rows, {
        "dataset": cfg.dataset, "target": target.to_json(), "seed": cfg.seed, "budget": budget, "counts": counts,
        "device": ("overheads measured on the emulated Cortex-M4 per family, winner measured as a whole firmware"
                   if device == "cortex-m4" else "host figures + the stated margins of fit_sizes.HOST_MARGINS")})
    meta = json.loads((out / "fit.json").read_text())
    meta.update(winner=winner, counts=counts, seconds_last_invocation=round(time.monotonic() - t0, 1),
                files={k: v.name for k, v in files.items()})
    paths.atomic_write_json(out / "fit.json", meta)
    return meta


def build_parser() -> argparse.ArgumentParser:
    from keras_tinyloc.data.registry import add_dataset_arguments

    p = argparse.ArgumentParser(prog="python -m keras_tinyloc fit",
                                description="Search families x sizes x training levers for the most accurate model "
                                            "(validation macro-F1, int8 in TFLM) whose whole program fits an MCU.")
    add_dataset_arguments(p)
    p.add_argument("--mcu", help="an MCU of the table (CC2650, ADuCM3029, STM32L4, MAX32630, EFM32; "
                                 "MSP430FR5969/ATmega328P/RL78/G13 cannot run TFLM); omit for a custom MCU")
    p.add_argument("--ram-kb", type=float, help="RAM in KiB (custom MCU, or overrides --mcu's)")
    p.add_argument("--flash-kb", type=float, help="flash in KiB (custom MCU, or overrides --mcu's)")
    p.add_argument("--clock-mhz", type=float, help="core clock in MHz for latency (custom MCU, or overrides --mcu's)")
    p.add_argument("--time-budget", type=float, dest="time_budget_min", metavar="MIN",
                   help="no trial starts after MIN minutes of search (default: no limit)")
    p.add_argument("--max-trials", type=int, help="stop after N trials in DIR's study (default: all that fit)")
    p.add_argument("--backend", default="local", choices=BACKENDS,
                   help="local (default: sequential, repeatable) or ray (--jobs trials at once on a local Ray)")
    p.add_argument("--jobs", type=int, default=2, help="parallel trials with --backend ray (default 2)")
    p.add_argument("--seed", type=int, default=0, help="training seed and visiting-order seed (default 0)")
    p.add_argument("--families", default=",".join(search_space.FAMILIES),
                   help=f"comma-separated families to search (default {','.join(search_space.FAMILIES)})")
    p.add_argument("--epochs", type=int, default=40, help="maximum epochs per trial (default 40)")
    p.add_argument("--patience", type=int, default=10, help="early-stopping patience on validation F1 (default 10)")
    p.add_argument("--min-epochs", type=int, default=4, help="successive halving: first rung in epochs (default 4)")
    p.add_argument("--reduction-factor", type=int, default=3, help="successive halving: eta (default 3)")
    p.add_argument("--batch-size", type=int, default=128, help="training batch size (default 128)")
    p.add_argument("--device", default="auto", choices=fit_sizes.DEVICES,
                   help="cortex-m4 = measure app/runtime overheads and the winner on the emulated M4; host = host "
                        "figures + stated margins; auto (default) = cortex-m4 when the TFLM kit and tools are here")
    p.add_argument("--no-sketch", dest="sketch", action="store_false", help="do not export the winner's sketch")
    p.add_argument("--out", required=True, metavar="DIR", help="the search folder (re-run to resume)")
    p.add_argument("--overwrite", action="store_true", help="start DIR afresh (deletes the earlier search)")
    p.add_argument("--no-progress", dest="progress", action="store_false", help="no progress bar")
    return p


@cli_errors
def main(argv: list[str] | None = None) -> int:
    from keras_tinyloc.data.registry import dataset_options

    a = build_parser().parse_args(argv)
    cfg = FitConfig(dataset=a.dataset, out=a.out, mcu=a.mcu, ram_kb=a.ram_kb, flash_kb=a.flash_kb,
                    clock_mhz=a.clock_mhz, time_budget_min=a.time_budget_min, max_trials=a.max_trials,
                    backend=a.backend, jobs=a.jobs, seed=a.seed,
                    families=tuple(f.strip() for f in a.families.split(",") if f.strip()), epochs=a.epochs,
                    patience=a.patience, min_epochs=a.min_epochs, reduction_factor=a.reduction_factor,
                    batch_size=a.batch_size, device=a.device, data_dir=a.data_dir, dataset_options=dataset_options(a),
                    sketch=a.sketch, overwrite=a.overwrite, progress=a.progress)
    cfg.validate()  # before TensorFlow is imported or data loaded
    summary = run_fit(cfg, log=lambda line: print(line, file=sys.stderr, flush=True))
    w = summary.get("winner")
    if w is None:
        print(f"{cfg.out}: no candidate fits {summary['search']['target']['name']} and finished training "
              f"({summary['counts']})")
        return 1
    print(f"{cfg.out}/winner: {w['key']} — val F1 int8 {100 * w['val_f1_int8']:.2f}, test F1 int8 "
          f"{100 * w['test_f1_int8']:.2f} (acc {100 * w['test_acc_int8']:.2f} %), RAM {w['ram_bytes']} B, flash "
          f"{w['flash_bytes']} B on {w['target']['name']} ({w['fit_basis'].split(':')[0]})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
