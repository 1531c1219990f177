"""``python -m keras_tinyloc sweep``: the resumable experiment sweep that regenerates the paper's tables.

``python -m keras_tinyloc sweep --profile {quick,paper} [--datasets ...] [--models ...] [--hidden ...] [--layers ...]
[--techniques ...] [--epochs N] [--jobs N] [--backend {local,ray}] [--address ADDR] --out DIR``

**Runs.** One run per dataset x family x H x L x technique, in ``DIR/runs/<dataset>/<family>-H<h>L<l>/<technique>/``,
plus one ``DIR/runs/<dataset>/classic/`` (kNN / random forest / logistic regression, :mod:`keras_tinyloc.experiments.baselines`).
Techniques and what each run does:

* ``baseline``: train (:func:`keras_tinyloc.training.train.train`) -> ``run/``; float TFLite through TFLM for the sizes.
* ``static_int8`` / ``dynamic``: convert the baseline run (full int8 through TFLM / dynamic range through LiteRT).
* ``kd``: distil (:func:`keras_tinyloc.training.distill.distill`) from the family's best ``baseline`` run on that dataset by
  **validation** F1 (so KD runs form a second phase), then float TFLite for the sizes.
* ``kd_static_int8``: convert the ``kd`` run to full int8.

Every run's row has validation **and** test figures of the model as deployed (quantized runs are evaluated with
their quantized model on both splits), so the tables can select on validation and report test.

**Resumable.** A run is written into a temporary directory and renamed when complete (``result.json`` last): a
finished run is never repeated; a temporary directory left by an interrupted sweep is deleted and that run redone
from scratch. A run that fails records ``status = failed`` and its one-line error (repeat it with
``--retry-failed``). ``DIR/sweep.json`` holds the profile: a directory of another profile is refused.

**Parallel.** ``--jobs N``: N worker processes (spawn; TensorFlow limited to ``--threads`` threads each).
``--backend ray``: the same runs as Ray tasks (``--address`` of a cluster; none = a local Ray instance with N CPUs).
Ray workers need not share a filesystem: each task gets its dataset and its parent run as bytes and sends its run
directory back, which the driver writes atomically.

**Device figures.** ``--target cortex-m4`` measures every full-int8 model (``static_int8``, ``kd_static_int8``) on the
emulated Cortex-M4F as well (:func:`keras_tinyloc.deploy.convert.add_device_figures`: minimal M4 arena, whole-firmware
flash and RAM, exact instructions per invoke; ~10-40 s per model): the run's ``report.json`` gets the ``device``
section and its row ``device_ram_bytes`` / ``device_flash_bytes`` / ``device_arena_bytes`` /
``device_instructions``, which the tables and the MCU plot then fit on (``fit on`` = ``device``). The default,
``host``, measures none (the sweep's own tests and quick runs do not pay for the emulator); the target is checked
(TFLM kit, Arm toolchain, QEMU) before any run starts. Resuming a sweep with ``--target cortex-m4`` redoes the
finished int8 runs that have no device figures (their conversion only; the trained runs are reused).

Outputs (rewritten after every phase): ``DIR/results.csv``, ``DIR/tables.md`` (:mod:`keras_tinyloc.experiments.results`) and
``DIR/plots/*.png`` (:mod:`keras_tinyloc.experiments.plots`).
"""
from __future__ import annotations

import argparse
import dataclasses
import io
import json
import os
import shutil
import socket
import sys
import tarfile
import tempfile
import time
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator

from keras_tinyloc import paths
from keras_tinyloc.errors import TinyLocError, check_seed, cli_errors
from keras_tinyloc.experiments import baselines

PROFILES = ("quick", "paper")
BACKENDS = ("local", "ray")
TARGETS = ("host", "cortex-m4")  # where the int8 models are measured: host TFLM only, or also the emulated M4
FAMILIES = ("mdcsa", "mamba", "mlp")
TECHNIQUES = ("baseline", "static_int8", "dynamic", "kd", "kd_static_int8")
TECHNIQUE_ALIASES = {"static": "static_int8", "int8": "static_int8", "static-int8": "static_int8",
                     "dynamic-range": "dynamic", "kd+int8": "kd_static_int8", "kd-static-int8": "kd_static_int8",
                     "kd+static_int8": "kd_static_int8"}
CLASSIC = "classic"  # the scikit-learn baselines of one dataset (one run, several rows)
# Which run a technique starts from ("teacher" = chosen after the baselines, by validation F1).
PARENT = {"static_int8": "baseline", "dynamic": "baseline", "kd": "teacher", "kd_static_int8": "kd"}
PHASE = {CLASSIC: 0, "baseline": 0, "static_int8": 1, "dynamic": 1, "kd": 1, "kd_static_int8": 2}
QUANT = {"baseline": "float", "kd": "float", "static_int8": "int8", "kd_static_int8": "int8", "dynamic": "dynamic"}


@dataclasses.dataclass(frozen=True)
class Profile:
    """A named sweep: datasets, per-family (H values, L values), techniques, epochs, loader options."""

    datasets: tuple[str, ...]
    grids: dict[str, tuple[tuple[int, ...], tuple[int, ...]]]
    techniques: tuple[str, ...]
    epochs: int
    patience: int
    dataset_options: dict[str, dict]
    baselines: dict[str, Any]


PROFILE_SPECS: dict[str, Profile] = {
    "paper": Profile(
        datasets=("house-a", "house-b", "house-c", "house-d", "uji-zones", "uji", "sphere"),
        grids={"mdcsa": ((256, 128, 64, 32, 16, 8, 4, 2), (3, 1)),
               "mamba": ((1, 2, 4, 8, 16, 32, 64, 128), (1, 2, 4)),
               "mlp": ((8, 16, 32, 64, 128), (1, 2))},
        techniques=TECHNIQUES, epochs=100, patience=10, dataset_options={},
        baselines={"knn_k": (1, 3, 5), "rf": ((100, None), (30, 12), (10, 8)), "lr_c": (1.0,)},
    ),
    # CI-sized: one small simulated house, one tiny configuration per family, a few epochs.
    "quick": Profile(
        datasets=("house-a",),
        grids={"mdcsa": ((4,), (1,)), "mamba": ((2,), (1,)), "mlp": ((8,), (1,))},
        techniques=TECHNIQUES, epochs=3, patience=3, dataset_options={"house-a": {"scale": 0.25}},
        baselines={"knn_k": (3,), "rf": ((10, 8),), "lr_c": (1.0,)},
    ),
}


@dataclasses.dataclass
class SweepConfig:
    """One sweep (written to ``DIR/sweep.json``). ``None`` = the profile's value.

    Attributes:
        profile: ``quick`` or ``paper``.  out: the sweep directory.
        datasets / models / techniques: narrow the profile's lists (``models=()``: only the classic baselines).
        hidden / layers: replace every selected family's H / L values (a slice of the grid, or new values).
        epochs: maximum epochs per training run.  seed: training seed.
        jobs: parallel runs.  backend: ``local`` or ``ray``.  address: Ray cluster address (``ray`` only).
        threads: TensorFlow threads per worker process (when jobs > 1 or with Ray).
        classic: also run the kNN / random forest / logistic regression baselines.
        retry_failed: redo runs recorded as failed.  data_dir: raw data directory for the loaders.
        progress: show the tqdm progress bar.  plots: write ``plots/*.png`` at the end.
        recording_options: ``--rate-hz`` etc. for the datasets given as recordings paths (docs/recordings-format.md).
        target: ``host`` (default) or ``cortex-m4``: also measure every full-int8 model on the emulated Cortex-M4F
            (device figures in its row; see the module docstring).
    """

    profile: str
    out: str
    datasets: tuple[str, ...] | None = None
    models: tuple[str, ...] | None = None
    hidden: tuple[int, ...] | None = None
    layers: tuple[int, ...] | None = None
    techniques: tuple[str, ...] | None = None
    epochs: int | None = None
    seed: int = 0
    jobs: int = 1
    backend: str = "local"
    address: str | None = None
    threads: int = 1
    classic: bool = True
    retry_failed: bool = False
    data_dir: str | None = None
    progress: bool = True
    plots: bool = True
    recording_options: dict = dataclasses.field(default_factory=dict)
    target: str = "host"

    def validate(self, extra_datasets: Iterable[str] = ()) -> None:
        """Raise TinyLocError for a bad value (``extra_datasets``: in-memory datasets given by name)."""
        from keras_tinyloc.data.registry import DATASETS, check_dataset, is_recordings_path

        known = (*DATASETS, *extra_datasets)
        if self.profile not in PROFILES:
            raise TinyLocError(f"--profile {self.profile!r}: choose from {', '.join(PROFILES)}")
        if self.backend not in BACKENDS:
            raise TinyLocError(f"--backend {self.backend!r}: choose from {', '.join(BACKENDS)}")
        for name in ("jobs", "threads"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise TinyLocError(f"--{name} {value!r}: must be an integer >= 1")
        if self.epochs is not None and (not isinstance(self.epochs, int) or self.epochs < 1):
            raise TinyLocError(f"--epochs {self.epochs!r}: must be an integer >= 1")
        if self.address and self.backend != "ray":
            raise TinyLocError(f"--address {self.address}: only with --backend ray")
        if self.target not in TARGETS:
            raise TinyLocError(f"--target {self.target!r}: choose from {', '.join(TARGETS)}")
        if self.target == "cortex-m4":
            from keras_tinyloc.deploy import m4

            missing = m4.tools_missing_reason()
            if missing:
                raise TinyLocError(f"--target cortex-m4: {missing}")
        check_seed(self.seed)
        for d in self.datasets or ():
            if d not in known and not is_recordings_path(d):
                raise TinyLocError(f"--datasets: unknown dataset {d!r} (choose from {', '.join(known)}, or give "
                                   f"the path of a recordings file or folder)")
            if d not in known:
                check_dataset(d, None, self.recording_options)
        if self.recording_options and not any(d not in known for d in self.datasets or ()):
            flag = "--" + next(iter(self.recording_options)).replace("_", "-")
            raise TinyLocError(f"{flag}: only for recordings paths in --datasets")
        for m in self.models or ():
            if m not in FAMILIES:
                raise TinyLocError(f"--models: unknown model {m!r} (choose from {', '.join(FAMILIES)})")
        for t in self.techniques or ():
            if canonical_technique(t) not in TECHNIQUES:
                raise TinyLocError(f"--techniques: unknown technique {t!r} (choose from {', '.join(TECHNIQUES)})")
        for name in ("hidden", "layers"):
            for v in getattr(self, name) or ():
                if not isinstance(v, int) or v < 1:
                    raise TinyLocError(f"--{name} {v!r}: must be positive integers")

    # ------------------------------------------------------------------ resolved settings
    @property
    def spec(self) -> Profile:
        return PROFILE_SPECS[self.profile]

    def resolved_datasets(self) -> tuple[str, ...]:
        return tuple(self.datasets) if self.datasets else self.spec.datasets

    def resolved_techniques(self) -> tuple[str, ...]:
        if not self.techniques:
            return self.spec.techniques
        chosen = {canonical_technique(t) for t in self.techniques}
        return tuple(t for t in TECHNIQUES if t in chosen)

    def grid(self) -> dict[str, tuple[tuple[int, ...], tuple[int, ...]]]:
        fams = tuple(self.models) if self.models is not None else tuple(self.spec.grids)
        out = {}
        for fam in fams:
            hs, ls = self.spec.grids.get(fam, ((8,), (1,)))
            out[fam] = (tuple(self.hidden) if self.hidden else hs, tuple(self.layers) if self.layers else ls)
        return out

    def train_options(self) -> dict[str, Any]:
        return {"epochs": self.epochs or self.spec.epochs, "patience": self.spec.patience, "seed": self.seed,
                "data_dir": self.data_dir, "target": self.target}

    def dataset_options(self, name: str) -> dict:
        from keras_tinyloc.data.registry import is_recordings_path

        if name not in self.spec.dataset_options and is_recordings_path(name):
            return dict(self.recording_options)
        return dict(self.spec.dataset_options.get(name, {}))

    def to_json(self) -> dict:
        return {**dataclasses.asdict(self), "resolved": {
            "datasets": list(self.resolved_datasets()), "techniques": list(self.resolved_techniques()),
            "grid": {k: [list(h), list(l)] for k, (h, l) in self.grid().items()}, **self.train_options()}}


def canonical_technique(name: str) -> str:
    return TECHNIQUE_ALIASES.get(name, name)


def dataset_dir(name: str) -> str:
    """The folder of a dataset under ``DIR/runs/``: a built-in name as it is; a recordings path (which may hold
    slashes or be absolute) as ``<file stem>-<6 hex digits of its sha1>``, so every run stays inside the sweep."""
    from keras_tinyloc.data.registry import is_recordings_path

    if not is_recordings_path(name):
        return name
    import hashlib
    import re

    stem = re.sub(r"[^A-Za-z0-9_.-]+", "_", Path(name).stem).strip("._") or "recordings"
    return f"{stem}-{hashlib.sha1(str(name).encode()).hexdigest()[:6]}"


# ---------------------------------------------------------------------------------------------------- tasks
@dataclasses.dataclass(frozen=True)
class Task:
    """One run of the sweep (see the module docstring); ``family`` = ``classic`` for the scikit-learn baselines."""

    dataset: str
    family: str
    hidden: int = 0
    layers: int = 0
    technique: str = "baseline"

    @property
    def config(self) -> str:
        return f"H{self.hidden}L{self.layers}"

    @property
    def rel(self) -> Path:
        if self.family == CLASSIC:
            return Path("runs", dataset_dir(self.dataset), CLASSIC)
        return Path("runs", dataset_dir(self.dataset), f"{self.family}-{self.config}", self.technique)

    @property
    def phase(self) -> int:
        return PHASE[CLASSIC if self.family == CLASSIC else self.technique]

    def parent(self) -> "Task | None":
        """The run this one starts from (the teacher of ``kd`` is chosen later: None here)."""
        src = PARENT.get(self.technique)
        if self.family == CLASSIC or src in (None, "teacher"):
            return None
        return dataclasses.replace(self, technique=src)

    def label(self) -> str:
        return f"{self.dataset} classic" if self.family == CLASSIC else \
            f"{self.dataset} {self.family} {self.config} {self.technique}"


def plan(cfg: SweepConfig) -> list[Task]:
    """Every run of the sweep, in phase order (classic + baselines, then int8/dynamic/KD, then KD + int8)."""
    techniques = cfg.resolved_techniques()
    tasks = []
    for ds in cfg.resolved_datasets():
        if cfg.classic:
            tasks.append(Task(ds, CLASSIC, technique="classic"))
        for fam, (hs, ls) in cfg.grid().items():
            for h in hs:
                for l in ls:
                    for t in techniques:
                        tasks.append(Task(ds, fam, int(h), int(l), t))
    return sorted(tasks, key=lambda t: t.phase)


def lacks_device(task: Task, target: str, data: dict | None) -> bool:
    """True when ``target`` is ``cortex-m4``, ``task`` converts to full int8 and its finished result ``data`` holds no
    device figures (measured by an earlier ``--target host`` invocation): such a run is redone, not reused."""
    if target != "cortex-m4" or QUANT.get(task.technique) != "int8" or not data or data.get("status") != "ok":
        return False
    return any(r.get("device_ram_bytes") is None for r in data.get("rows", []))


def is_done(out: Path, task: Task, retry_failed: bool = False, target: str = "host") -> bool:
    result = out / task.rel / "result.json"
    if not result.is_file():
        return False
    if retry_failed or target != "host":
        try:
            data = json.loads(result.read_text())
        except (OSError, ValueError):
            return False
        if lacks_device(task, target, data):
            return False
        return data.get("status") == "ok" if retry_failed else True
    return True


def read_result(out: Path, task: Task) -> dict | None:
    path = out / task.rel / "result.json"
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def clean_interrupted(final: Path) -> int:
    """Delete temporary directories an interrupted run left beside ``final``; return how many."""
    n = 0
    if final.parent.is_dir():
        for tmp in final.parent.glob(f".{final.name}.tmp-*"):
            shutil.rmtree(tmp, ignore_errors=True)
            n += 1
    return n


def choose_teacher(out: Path, dataset: str, family: str) -> tuple[Path, dict] | None:
    """The family's finished ``baseline`` run on ``dataset`` with the best validation F1: (run dir, row)."""
    best = None
    for res in sorted((out / "runs" / dataset_dir(dataset)).glob(f"{family}-H*L*/baseline/result.json")):
        try:
            data = json.loads(res.read_text())
        except (OSError, ValueError):
            continue
        if data.get("status") != "ok":
            continue
        row = data["rows"][0]
        key = (row["val_f1"], -(row.get("params") or 0))
        if best is None or key > best[0]:
            best = (key, res.parent / "run", row)
    return None if best is None else (best[1], best[2])


# ---------------------------------------------------------------------------------------------- one run
def nn_row(task: Task, val: dict, test: dict, params: int, report: dict | None, seconds: float,
           teacher: str | None = None) -> dict:
    """One result row (:data:`keras_tinyloc.experiments.results.ROW_FIELDS`); the ``device_*`` figures come from the
    report's ``device`` section (whole firmware on the emulated Cortex-M4), None without one."""
    from keras_tinyloc.experiments.results import paper_size_kb

    dev = (report or {}).get("device") or {}
    return {"dataset": task.dataset, "family": task.family, "config": task.config, "hidden": task.hidden,
            "layers": task.layers, "technique": task.technique, "features": None,
            "val_f1": val["f1"], "val_acc": val["acc"], "test_f1": test["f1"], "test_acc": test["acc"],
            "params": int(params), "flatbuffer_bytes": report and report.get("flatbuffer_bytes"),
            "arena_bytes": report and report.get("arena_bytes"),
            "arena_source": (("tflm-host" if report.get("arena_bytes") else "not deployable in TFLM")
                             if report else None),
            "size_kb": paper_size_kb(int(params), task.technique), "seconds": round(seconds, 2),
            "status": "ok", "teacher": teacher,
            "device_ram_bytes": dev.get("ram_bytes"), "device_flash_bytes": dev.get("flash_bytes"),
            "device_arena_bytes": dev.get("arena_bytes"), "device_instructions": dev.get("instructions_per_invoke")}


def convert_and_evaluate(run_dir: Path, quant: str, ds, out: Path, target: str = "host"
                         ) -> tuple[dict, dict, dict, int]:
    """Convert a run's emitter with :func:`keras_tinyloc.deploy.convert.convert_model`; evaluate the converted model on
    the validation split too (same interpreter as convert uses on test). ``target="cortex-m4"`` (int8 only) also
    measures the flatbuffer on the emulated Cortex-M4F (:func:`keras_tinyloc.deploy.convert.add_device_figures`, its
    output compared with the host TFLM on the first test windows): the report's ``device`` section. Writes
    ``out/{model.tflite,report.json}``.

    Returns ``(val metrics, test metrics, report, params)``.
    """
    import numpy as np

    from keras_tinyloc.deploy import convert, tflm
    from keras_tinyloc.deploy.quantize import dequantize, quantize
    from keras_tinyloc.training.train import load_run

    tagger, config, metrics = load_run(run_dir)
    crf = tagger.crf_weights()
    buf, rep = convert.convert_model(tagger.emitter, crf, ds, quant, name=f"{config.get('model')}")
    x_val = ds.x_val.astype(np.float32)
    if quant == "dynamic":
        em, _ = tflm.run_litert(buf, x_val)
    elif quant == "int8":
        i, o = rep["input"], rep["output"]
        y, _ = tflm.run_tflm(buf, quantize(x_val, i["scale"], i["zero_point"]), rep["arena_bytes"])
        em = dequantize(y, o["scale"], o["zero_point"])
    else:
        em, _ = tflm.run_tflm(buf, x_val, rep["arena_bytes"])
    val, _ = convert.decode_metrics(np.asarray(em, np.float32), ds.y_val, crf)
    rep.update({f"val_f1_{quant}": val["f1"], f"val_acc_{quant}": val["acc"]})
    rep["target"] = "cortex-m4" if target == "cortex-m4" and quant == "int8" else "host"
    if rep["target"] == "cortex-m4":
        i = rep["input"]
        settings = convert._device_settings(rep, ds, crf, 256, f"{config.get('model')}")
        convert.add_device_figures(rep, buf, settings, quantize(ds.x_test.astype(np.float32), i["scale"],
                                                                i["zero_point"]))
    out.mkdir(parents=True, exist_ok=True)
    paths.atomic_write_bytes(out / "model.tflite", buf)
    paths.atomic_write_json(out / "report.json", rep)
    test = {"f1": rep[f"test_f1_{quant}"], "acc": rep[f"test_acc_{quant}"]}
    return val, test, rep, int(metrics.get("params") or 0)


def _train_cfg(task: Task, out: Path, options: dict):
    from keras_tinyloc.training.train import TrainConfig

    return TrainConfig(dataset=task.dataset, model=task.family, hidden=task.hidden, layers=task.layers,
                       out=str(out), epochs=int(options["epochs"]), patience=int(options["patience"]),
                       seed=int(options["seed"]), data_dir=options.get("data_dir"), verbose=False,
                       dataset_options=dict(options.get("dataset_options") or {}))


def _run_baseline(task: Task, tmp: Path, ds, options: dict) -> list[dict]:
    from keras_tinyloc.training.train import train

    t0 = time.perf_counter()
    train(_train_cfg(task, tmp / "run", options), dataset=ds, log=lambda line: None)
    # sizes from the float TFLite model in TFLM; F1 of the Keras run (the float flatbuffer's are in its report)
    _, _, rep, params = convert_and_evaluate(tmp / "run", "float", ds, tmp / "tflite-float")
    m = json.loads((tmp / "run" / "metrics.json").read_text())
    val, test = {"f1": m["val_f1"], "acc": m["val_acc"]}, {"f1": m["test_f1"], "acc": m["test_acc"]}
    return [nn_row(task, val, test, m.get("params", params), rep, time.perf_counter() - t0)]


def _run_convert(task: Task, tmp: Path, ds, options: dict) -> list[dict]:
    parent = Path(options["parent"])
    if not (parent / "model.keras").is_file():
        raise TinyLocError(f"{parent}: the {PARENT[task.technique]} run this one starts from is missing or failed")
    t0 = time.perf_counter()
    quant = QUANT[task.technique]
    val, test, rep, params = convert_and_evaluate(parent, quant, ds, tmp / f"tflite-{quant}",
                                                  target=options.get("target", "host"))
    teacher = None
    if task.technique == "kd_static_int8":
        teacher = json.loads((parent.parent / "result.json").read_text())["rows"][0].get("teacher") \
            if (parent.parent / "result.json").is_file() else None
    return [nn_row(task, val, test, params, rep, time.perf_counter() - t0, teacher=teacher)]


def _run_kd(task: Task, tmp: Path, ds, options: dict) -> list[dict]:
    from keras_tinyloc.training.distill import DistillConfig, distill

    teacher = options.get("teacher")
    if not teacher or not (Path(teacher) / "model.keras").is_file():
        raise TinyLocError(f"{task.dataset} {task.family}: no finished baseline run to distil from")
    t0 = time.perf_counter()
    base = dataclasses.asdict(_train_cfg(task, tmp / "run", options))
    distill(DistillConfig(**base, teacher=str(teacher)), dataset=ds, log=lambda line: None)
    _, _, rep, params = convert_and_evaluate(tmp / "run", "float", ds, tmp / "tflite-float")
    m = json.loads((tmp / "run" / "metrics.json").read_text())
    val, test = {"f1": m["val_f1"], "acc": m["val_acc"]}, {"f1": m["test_f1"], "acc": m["test_acc"]}
    label = options.get("teacher_label") or str(teacher)
    return [nn_row(task, val, test, m.get("params", params), rep, time.perf_counter() - t0, teacher=label)]


def _run_classic(task: Task, tmp: Path, ds, options: dict) -> list[dict]:
    cfg = baselines.BaselineConfig(**{k: v for k, v in (options.get("baselines") or {}).items()},
                                   seed=int(options.get("seed", 0)))
    return baselines.sklearn_rows(ds, cfg)


RUNNERS: dict[str, Callable[..., list[dict]]] = {
    "baseline": _run_baseline, "static_int8": _run_convert, "dynamic": _run_convert, "kd": _run_kd,
    "kd_static_int8": _run_convert, "classic": _run_classic,
}


def execute_task(task: Task, final: str | os.PathLike, dataset, options: dict) -> list[dict]:
    """Run one task into ``final`` atomically (unless already finished) and return its rows.

    ``final/result.json`` is ``{"task", "status", "error", "seconds", "rows"}``; a TinyLocError or any other
    exception becomes a ``failed`` result with a one-line error (the sweep goes on), Ctrl-C propagates.
    """
    from keras_tinyloc.errors import quiet_tensorflow

    quiet_tensorflow()  # per-run retracing warnings would drown the progress bar; real warnings still show
    final = Path(final)
    result = final / "result.json"
    if result.is_file():
        try:
            data = json.loads(result.read_text())
        except (OSError, ValueError):
            data = None
        if (data is not None and (data.get("status") == "ok" or not options.get("retry_failed"))
                and not lacks_device(task, options.get("target", "host"), data)):
            return data["rows"]
    clean_interrupted(final)
    t0 = time.perf_counter()
    try:
        with paths.atomic_dir(final, overwrite=True) as tmp:
            rows = RUNNERS[task.technique](task, tmp, dataset, options)
            paths.atomic_write_json(tmp / "result.json", {
                "task": dataclasses.asdict(task), "status": "ok", "error": None,
                "seconds": round(time.perf_counter() - t0, 2), "rows": rows})
        return rows
    except Exception as exc:  # noqa: BLE001 - one failed run must not stop the sweep
        msg = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        if not isinstance(exc, TinyLocError):
            msg = f"{type(exc).__name__}: {msg}"
        return record_failure(task, final, msg, time.perf_counter() - t0)


def record_failure(task: Task, final: Path, msg: str, seconds: float = 0.0) -> list[dict]:
    """Write a ``failed`` result for ``task`` into ``final`` (atomically) and return its one row."""
    row = {"dataset": task.dataset, "family": task.family,
           "config": None if task.family == CLASSIC else task.config,
           "hidden": task.hidden or None, "layers": task.layers or None, "technique": task.technique,
           "status": "failed", "error": msg[:300], "seconds": round(seconds, 2)}
    with paths.atomic_dir(final, overwrite=True) as tmp:
        paths.atomic_write_json(tmp / "result.json", {
            "task": dataclasses.asdict(task), "status": "failed", "error": msg[:300],
            "seconds": row["seconds"], "rows": [row]})
    return [row]


# ---------------------------------------------------------------------------------------------- executors
def pack_dir(path: Path) -> bytes:
    """A directory as an in-memory .tar (to send a run to / from a Ray worker)."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        tar.add(path, arcname=".")
    return buf.getvalue()


def unpack_dir(data: bytes, dest: Path) -> None:
    dest.mkdir(parents=True, exist_ok=True)
    with tarfile.open(fileobj=io.BytesIO(data), mode="r") as tar:
        tar.extractall(dest, filter="data")


def _limit_threads(threads: int) -> None:
    """Limit a worker's threads through the environment (read by TensorFlow's and BLAS's thread pools when they
    start), without importing TensorFlow into workers that do not need it."""
    for var in ("OMP_NUM_THREADS", "TF_NUM_INTRAOP_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[var] = str(threads)
    os.environ["TF_NUM_INTEROP_THREADS"] = "1"
    os.environ.setdefault("KERAS_BACKEND", "tensorflow")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


_WORKER_DATA: dict[str, Any] = {}


def die_with_parent(parent_pid: int) -> None:
    """Make this worker process die when the sweep's process dies, even by SIGKILL (Linux ``prctl(PR_SET_PDEATHSIG,
    SIGKILL)``), so that killing only the parent never leaves ~1 GB training workers running on; exits at once if the
    parent is already gone. Elsewhere a no-op (workers then notice the broken pipe when they next report)."""
    if sys.platform.startswith("linux"):
        import ctypes
        import signal

        ctypes.CDLL(None, use_errno=True).prctl(1, int(signal.SIGKILL))  # 1 = PR_SET_PDEATHSIG
    if os.getppid() != parent_pid:
        os._exit(1)


def _pool_init(datasets: dict, threads: int, parent_pid: int | None = None) -> None:
    if parent_pid is not None:
        die_with_parent(parent_pid)
    _limit_threads(threads)
    _WORKER_DATA.update(datasets)


def _pool_run(task: Task, final: str, options: dict) -> list[dict]:
    return execute_task(task, final, _WORKER_DATA[task.dataset], options)


def _remote_run(task: Task, options: dict, dataset, parent: bytes | None, threads: int) -> tuple[list[dict], bytes]:
    """Body of a Ray task: unpack the parent/teacher run, execute into a scratch dir, return rows + the run as bytes."""
    _limit_threads(threads)
    scratch = Path(tempfile.mkdtemp(prefix="tinyloc-sweep-"))
    try:
        options = dict(options)
        if parent is not None:
            unpack_dir(parent, scratch / "parent")
            key = "teacher" if task.technique == "kd" else "parent"
            options[key] = str(scratch / "parent" / "run")
        rows = execute_task(task, scratch / "result", dataset, options)
        return rows, pack_dir(scratch / "result")
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def _check_ray_address(address: str) -> None:
    """Fail fast (one line) when ``host:port`` does not answer, instead of Ray's long retry loop."""
    hostport = address.split("://", 1)[-1]
    if address == "auto" or ":" not in hostport:
        return
    host, _, port = hostport.rpartition(":")
    try:
        with socket.create_connection((host or "127.0.0.1", int(port)), timeout=5):
            pass
    except (OSError, ValueError) as exc:
        raise TinyLocError(f"--address {address}: cannot reach the Ray cluster ({exc})") from None


class Runner:
    """Runs a batch of (task, final dir, options) and yields ``(task, rows)`` as each finishes."""

    def __init__(self, cfg: SweepConfig, datasets: dict):
        self.cfg, self.datasets = cfg, datasets
        self.pool = None
        self.ray = None
        self.remote = None
        self.refs: dict[str, Any] = {}

    def __enter__(self) -> "Runner":
        cfg = self.cfg
        if cfg.backend == "ray":
            try:
                import ray
            except ImportError:
                raise TinyLocError("--backend ray: Ray is not installed (pip install 'ray[default]')") from None
            if cfg.address:
                _check_ray_address(cfg.address)
            env = {"env_vars": {"KERAS_BACKEND": "tensorflow", "TF_CPP_MIN_LOG_LEVEL": "2",
                                "OMP_NUM_THREADS": str(cfg.threads)}}
            try:
                if cfg.address:
                    ray.init(address=cfg.address, runtime_env=env, log_to_driver=False, ignore_reinit_error=True)
                else:
                    ray.init(num_cpus=cfg.jobs, runtime_env=env, include_dashboard=False, log_to_driver=False,
                             ignore_reinit_error=True)
            except Exception as exc:  # noqa: BLE001 - ConnectionError, RuntimeError, ...
                first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
                raise TinyLocError(f"--backend ray: cannot start or reach Ray "
                                   f"({cfg.address or 'local'}): {first[:200]}") from None
            self.ray = ray
            self.remote = ray.remote(num_cpus=1, max_retries=0)(_remote_run)
            self.refs = {name: ray.put(ds) for name, ds in self.datasets.items()}
        elif cfg.jobs > 1:
            import multiprocessing
            from concurrent.futures import ProcessPoolExecutor

            self.pool = ProcessPoolExecutor(max_workers=cfg.jobs, mp_context=multiprocessing.get_context("spawn"),
                                            initializer=_pool_init,
                                            initargs=(self.datasets, cfg.threads, os.getpid()))
        return self

    def __exit__(self, *exc) -> None:
        if self.pool is not None:
            self.pool.shutdown(wait=exc[0] is None, cancel_futures=True)
        if self.ray is not None:
            self.ray.shutdown()

    def run(self, items: list[tuple[Task, Path, dict]]) -> Iterator[tuple[Task, list[dict]]]:
        if self.ray is not None:
            yield from self._run_ray(items)
        elif self.pool is not None:
            from concurrent.futures import as_completed

            from concurrent.futures.process import BrokenProcessPool

            futs = {self.pool.submit(_pool_run, t, str(f), o): t for t, f, o in items}
            for fut in as_completed(futs):
                try:
                    rows = fut.result()
                except BrokenProcessPool:
                    raise TinyLocError(f"a worker process died during {futs[fut].label()} (out of memory or a "
                                       f"crash); finished runs are kept, run the sweep again to resume") from None
                yield futs[fut], rows
        else:
            for task, final, options in items:
                yield task, execute_task(task, final, self.datasets[task.dataset], options)

    def _run_ray(self, items):
        ray = self.ray
        pending = {}
        for task, final, options in items:
            src = options.get("teacher") if task.technique == "kd" else options.get("parent")
            parent = pack_dir(Path(src).parent) if src and Path(src).is_dir() else None
            opts = {k: v for k, v in options.items() if k not in ("parent", "teacher")}
            ref = self.remote.remote(task, opts, self.refs[task.dataset], parent, self.cfg.threads)
            pending[ref] = (task, final)
        while pending:
            done, _ = ray.wait(list(pending), num_returns=1)
            task, final = pending.pop(done[0])
            try:
                rows, data = ray.get(done[0])
            except Exception as exc:  # noqa: BLE001 - a worker died or the task raised inside Ray
                first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
                yield task, record_failure(task, final, f"Ray task failed: {first[:250]}")
                continue
            clean_interrupted(final)
            with paths.atomic_dir(final, overwrite=True) as tmp:
                unpack_dir(data, tmp)
            yield task, rows


# ---------------------------------------------------------------------------------------------- the sweep
def check_out_dir(cfg: SweepConfig) -> Path:
    """Create DIR/sweep.json, or check that DIR holds a sweep of the same profile."""
    out = paths.check_output_path(cfg.out)
    meta = out / "sweep.json"
    if meta.is_file():
        try:
            old = json.loads(meta.read_text())
        except (OSError, ValueError) as exc:
            raise TinyLocError(f"{meta}: unreadable ({exc})") from None
        if old.get("profile") != cfg.profile:
            raise TinyLocError(f"{out}: holds results of the '{old.get('profile')}' profile, not "
                               f"'{cfg.profile}' (use another --out)")
    elif out.is_dir() and any(out.iterdir()):
        raise TinyLocError(f"--out {out}: exists, is not empty and holds no sweep.json (not a sweep folder; "
                           f"choose another folder)")
    return out


def record_invocation(out: Path, cfg: SweepConfig) -> None:
    """``DIR/sweep.json``: the profile, the first invocation's settings, and every invocation (slices add up)."""
    meta = out / "sweep.json"
    doc = json.loads(meta.read_text()) if meta.is_file() else {**cfg.to_json(), "invocations": []}
    doc.setdefault("invocations", []).append(
        {"time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), **cfg.to_json()})
    paths.atomic_write_json(meta, doc)


def load_datasets(cfg: SweepConfig, names: Iterable[str], given: dict | None = None) -> dict:
    from keras_tinyloc.data.registry import is_recordings_path, load_dataset

    out = {}
    for name in names:
        if given and name in given:
            out[name] = given[name]
        else:
            out[name] = load_dataset(name, None if is_recordings_path(name) else cfg.data_dir,
                                     **cfg.dataset_options(name))
    return out


def task_options(cfg: SweepConfig, out: Path, task: Task) -> dict:
    opts = {**cfg.train_options(), "dataset_options": cfg.dataset_options(task.dataset),
            "baselines": cfg.spec.baselines, "retry_failed": cfg.retry_failed}
    if dataset_dir(task.dataset) != task.dataset:
        opts["data_dir"] = None  # a recordings path is its own data (config.json must not name a --data-dir)
    parent = task.parent()
    if parent is not None:
        opts["parent"] = str(out / parent.rel / "run")
    if task.technique == "kd":
        chosen = choose_teacher(out, task.dataset, task.family)
        if chosen is not None:
            opts["teacher"] = str(chosen[0])
            opts["teacher_label"] = f"{chosen[1]['config']} (val F1 {chosen[1]['val_f1']:.4f})"
    return opts


def run_sweep(cfg: SweepConfig, datasets: dict | None = None, log: Callable[[str], None] = print) -> dict:
    """Run (or resume) a sweep; write results.csv, tables.md and plots. Returns a summary dict.

    ``datasets``: in-memory :class:`~keras_tinyloc.data.base.WindowDataset` by name, used instead of loading
    (tests, notebooks). Raises TinyLocError for bad input before any run starts.
    """
    cfg.validate(extra_datasets=tuple(datasets or ()))
    with paths.claimed_output(cfg.out, resumable=True):  # one sweep per folder at a time
        return _run_sweep(cfg, datasets, log)


def _run_sweep(cfg: SweepConfig, datasets: dict | None, log: Callable[[str], None]) -> dict:
    out = check_out_dir(cfg)
    tasks = plan(cfg)
    out.mkdir(parents=True, exist_ok=True)
    record_invocation(out, cfg)
    done = [t for t in tasks if is_done(out, t, cfg.retry_failed, cfg.target)]
    todo = [t for t in tasks if t not in set(done)]
    summary = {"total": len(tasks), "skipped": len(done), "ran": 0, "failed": 0, "out": str(out)}
    if todo:
        data = load_datasets(cfg, sorted({t.dataset for t in todo}), datasets)
        bar = _progress(cfg, len(tasks), len(done))
        try:
            with Runner(cfg, data) as runner:
                for phase in sorted({t.phase for t in todo}):
                    batch = [(t, out / t.rel, task_options(cfg, out, t)) for t in todo if t.phase == phase]
                    for task, rows in runner.run(batch):
                        summary["ran"] += 1
                        summary["failed"] += any(r.get("status") == "failed" for r in rows)
                        if bar is not None:
                            bar.set_postfix_str(task.label()[:40])
                            bar.update(1)
                    write_outputs(out, plots=False)  # partial tables after each phase
        finally:
            if bar is not None:
                bar.close()
    summary["files"] = {k: str(v) for k, v in write_outputs(out, plots=cfg.plots).items()}
    return summary


def _progress(cfg: SweepConfig, total: int, initial: int):
    if not cfg.progress:
        return None
    from tqdm import tqdm

    return tqdm(total=total, initial=initial, unit="run", desc="sweep", dynamic_ncols=True, file=sys.stderr)


def write_outputs(out: Path, plots: bool = True) -> dict[str, Path]:
    """results.csv + tables.md (+ plots/*.png) from every finished run under ``out``."""
    from keras_tinyloc.experiments import results

    rows = results.collect_rows(out)
    files = results.write_results(rows, out)
    if plots:
        from keras_tinyloc.experiments import plots as plots_mod

        files.update(plots_mod.write_plots(rows, out / "plots"))
    return files


# ---------------------------------------------------------------------------------------------- CLI
# ------------------------------------------------------------------------------------ baselines with MLP runs
def mlp_rows(ds, cfg: baselines.BaselineConfig) -> list[dict]:
    """The tiny MLP (the train module's ``mlp`` family: per-step Dense layers + the CRF) trained, then converted
    to full int8 and run in TFLM, exactly as the sweep does it: a ``baseline`` and a ``static_int8`` row per H,
    with their run directories under ``cfg.work_dir/<dataset>/mlp-H<h>L1/``."""
    rows = []
    options = {"epochs": cfg.mlp_epochs, "patience": 10, "seed": cfg.seed, "data_dir": None}
    for hidden in cfg.mlp_hidden:
        base = Task(dataset=ds.name, family="mlp", hidden=int(hidden), layers=1, technique="baseline")
        int8 = dataclasses.replace(base, technique="static_int8")
        where = Path(cfg.work_dir) / dataset_dir(ds.name) / f"mlp-H{hidden}L1"
        rows += execute_task(base, where / "baseline", ds, options)
        rows += execute_task(int8, where / "static_int8", ds, {**options, "parent": str(where / "baseline" / "run")})
    return rows


def run_baselines(dataset, cfg: baselines.BaselineConfig | None = None, **kw) -> list[dict]:
    """All baseline rows on one dataset (a :class:`WindowDataset` or a registry name).

    ``kw`` overrides :class:`BaselineConfig` fields. Returns result rows (see :mod:`keras_tinyloc.experiments.results`).
    """
    cfg = dataclasses.replace(cfg or baselines.BaselineConfig(), **kw) if kw or cfg is None else cfg
    if isinstance(dataset, str):
        from keras_tinyloc.data.registry import load_dataset

        dataset = load_dataset(dataset)
    rows = baselines.sklearn_rows(dataset, cfg)
    if cfg.mlp_hidden:
        rows += mlp_rows(dataset, cfg)
    return rows


def build_parser() -> argparse.ArgumentParser:
    from keras_tinyloc.data.registry import add_recordings_options

    p = argparse.ArgumentParser(prog="python -m keras_tinyloc sweep",
                                description="Resumable sweep that regenerates the paper's tables (results.csv, "
                                            "tables.md, plots/).")
    p.add_argument("--profile", required=True, help="quick (CI-sized) or paper (the paper's grids)")
    p.add_argument("--out", required=True, metavar="DIR", help="sweep directory (resumed if it exists)")
    p.add_argument("--datasets", nargs="+", metavar="NAME|PATH",
                   help="narrow the datasets (house-a..d, uji-zones, uji, sphere) or add your recordings files")
    p.add_argument("--models", nargs="+", help="narrow the families (mdcsa, mamba, mlp)")
    p.add_argument("--hidden", nargs="+", type=int, help="H values (replace each family's grid)")
    p.add_argument("--layers", nargs="+", type=int, help="L values (replace each family's grid)")
    p.add_argument("--techniques", nargs="+", help=f"narrow the techniques ({', '.join(TECHNIQUES)})")
    p.add_argument("--epochs", type=int, help="maximum epochs per training run (default: the profile's)")
    p.add_argument("--seed", type=int, default=0, help="training seed (default 0)")
    p.add_argument("--jobs", type=int, default=1, help="runs in parallel (default 1)")
    p.add_argument("--threads", type=int, default=1, help="TensorFlow threads per worker (default 1)")
    p.add_argument("--backend", default="local", help="local (default) or ray")
    p.add_argument("--address", help="Ray cluster address (with --backend ray; none = a local Ray instance)")
    p.add_argument("--data-dir", help="raw data directory (default: $KERAS_TINYLOC_DATA, data/raw)")
    add_recordings_options(p)
    p.add_argument("--no-classic", dest="classic", action="store_false", help="skip kNN / RF / LR baselines")
    p.add_argument("--retry-failed", action="store_true", help="redo runs recorded as failed")
    p.add_argument("--no-progress", dest="progress", action="store_false", help="no progress bar")
    p.add_argument("--no-plots", dest="plots", action="store_false", help="no plots/*.png")
    p.add_argument("--target", choices=TARGETS, default="host",
                   help="host (default) = int8 models measured in the host TFLM only; cortex-m4 = also on an "
                        "emulated Cortex-M4F (QEMU, TFLM from the kit: M4 arena, whole-firmware flash and RAM, "
                        "instructions per invoke; ~10-40 s per int8 model), used by the tables and plots")
    return p


@cli_errors
def main(argv: list[str] | None = None) -> int:
    from keras_tinyloc.data.registry import dataset_options

    a = build_parser().parse_args(argv)
    cfg = SweepConfig(profile=a.profile, out=a.out, datasets=_tuple(a.datasets), models=_tuple(a.models),
                      hidden=_tuple(a.hidden), layers=_tuple(a.layers), techniques=_tuple(a.techniques),
                      epochs=a.epochs, seed=a.seed, jobs=a.jobs, threads=a.threads, backend=a.backend,
                      address=a.address, classic=a.classic, retry_failed=a.retry_failed, data_dir=a.data_dir,
                      progress=a.progress, plots=a.plots, recording_options=dataset_options(a), target=a.target)
    summary = run_sweep(cfg)
    print(json.dumps(summary))
    return 0


def _tuple(v):
    return tuple(v) if v else None


if __name__ == "__main__":
    sys.exit(main())
