"""``python -m keras_tinyloc demo``: the whole product on the built-in default, end to end.

1. A simulated In-Home house (``house-a`` unless ``--dataset``), generated and cached on first use.
2. A teacher (MDCSA H32L1) and a small student baseline (Mamba H8L1) trained with a CRF head.
3. The student distilled from the teacher (α = 0.1, hard teacher labels, as in the paper).
4. Both students converted to full int8, checked op by op, run in the real TFLM interpreter with a measured
   minimal arena, and judged against the paper's MCU table; a dynamic-range model for comparison.
5. ``RUN/summary.md`` and ``RUN/summary.json`` side by side, and a ready-to-open sketch in ``RUN/sketch``.

Finished steps are reused when the demo is run again (``--fresh`` redoes everything).
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import shutil
import sys
import time
from pathlib import Path

from keras_tinyloc.errors import TinyLocError, check_seed, cli_errors
from keras_tinyloc.paths import check_replaceable, claimed_output, record_output


@dataclasses.dataclass
class DemoConfig:
    """The demo's settings.

    Attributes:
        out: where every run, conversion and the summary go.
        dataset: registry name of the dataset (default: the simulated House A).
        teacher: (family, H, L) of the teacher.  student: (family, H, L) of the student.
        epochs: maximum epochs per training run (early stopping on validation macro-F1 usually stops sooner).
        seed: seeds every run.  fresh: delete ``out`` first.
        data_dir: a built-in dataset's raw files.  dataset_options: loader options (a recordings path's ``--rate-hz``
            etc.), passed to every run so that each records them.
    """

    out: str = "runs/demo"
    dataset: str = "house-a"
    teacher: tuple[str, int, int] = ("mdcsa", 32, 1)
    student: tuple[str, int, int] = ("mamba", 8, 1)
    epochs: int = 60
    seed: int = 0
    fresh: bool = False
    data_dir: str | None = None
    dataset_options: dict = dataclasses.field(default_factory=dict)


def _done(run_dir: Path, marker: str) -> bool:
    return (run_dir / marker).is_file()


def run_demo(cfg: DemoConfig, log=print) -> dict:
    """Run the demo; return the summary dict (also written to ``out/summary.json``)."""
    with claimed_output(cfg.out, resumable=True):  # validated and locked; finished steps inside are reused
        return _run_demo(cfg, log)


def _run_demo(cfg: DemoConfig, log) -> dict:
    from keras_tinyloc.data.registry import load_dataset
    from keras_tinyloc.deploy.convert import ConvertConfig, convert_run
    from keras_tinyloc.paths import atomic_write_json, atomic_write_text
    from keras_tinyloc.training.distill import DistillConfig, distill
    from keras_tinyloc.training.train import TrainConfig, train

    out = Path(cfg.out)
    if cfg.fresh and out.exists():
        check_replaceable(out, overwrite=True)  # only what keras_tinyloc wrote is deleted
        shutil.rmtree(out)
    out.mkdir(parents=True, exist_ok=True)
    t_start = time.time()

    log(f"[1/5] dataset {cfg.dataset}")
    ds = load_dataset(cfg.dataset, data_dir=cfg.data_dir, **cfg.dataset_options)
    info = ds.info()
    simulated = ds.meta.get("source") == "simulated"
    log(f"      {info['n_train']} train / {info['n_val']} val / {info['n_test']} test windows of "
        f"{tuple(info['input_shape'])}, {info['n_classes']} classes: {', '.join(ds.class_names)}"
        + (" (a simulated house)" if simulated else ""))

    def train_run(name: str, spec: tuple[str, int, int], step: str) -> Path:
        run_dir = out / name
        fam, h, l = spec
        if _done(run_dir, "metrics.json"):
            log(f"{step} {name}: {fam} H{h}L{l} already trained, reusing {run_dir}")
        else:
            log(f"{step} {name}: training {fam} H{h}L{l}")
            train(TrainConfig(dataset=cfg.dataset, model=fam, hidden=h, layers=l, out=str(run_dir),
                              epochs=cfg.epochs, seed=cfg.seed, data_dir=cfg.data_dir,
                              dataset_options=cfg.dataset_options), dataset=ds, log=log)
        return run_dir

    teacher_dir = train_run("teacher", cfg.teacher, "[2/5]")
    student_dir = train_run("student", cfg.student, "[2/5]")

    kd_dir = out / "student_kd"
    fam, h, l = cfg.student
    if _done(kd_dir, "metrics.json"):
        log(f"[3/5] student_kd already distilled, reusing {kd_dir}")
    else:
        log(f"[3/5] distilling {cfg.teacher[0]} H{cfg.teacher[1]}L{cfg.teacher[2]} -> {fam} H{h}L{l}")
        distill(DistillConfig(dataset=cfg.dataset, model=fam, hidden=h, layers=l, out=str(kd_dir),
                              epochs=cfg.epochs, seed=cfg.seed, data_dir=cfg.data_dir, teacher=str(teacher_dir),
                              dataset_options=cfg.dataset_options),
                dataset=ds, log=log)

    log("[4/5] converting: full int8 (TFLM, measured arena) and dynamic range (host only)")
    reports = {}
    for run_dir in (teacher_dir, student_dir, kd_dir):
        for quant in ("int8", "dynamic"):
            conv = run_dir / f"tflite-{quant}"
            if _done(conv, "report.json"):
                rep = json.loads((conv / "report.json").read_text())
            else:
                # int8: measured on an emulated Cortex-M4 too when the TFLM kit and the Arm toolchain are here
                rep = convert_run(ConvertConfig(run_dir=str(run_dir), quant=quant, out=str(conv),
                                                target="auto" if quant == "int8" else "host"), dataset=ds)
            reports[(run_dir.name, quant)] = rep
            if quant == "int8":
                log(f"      {run_dir.name}: int8 test F1 {rep.get('test_f1_int8', float('nan')):.4f} "
                    f"(float {rep.get('test_f1_float', float('nan')):.4f}), arena {rep.get('arena_bytes')} B, "
                    f"flatbuffer {rep.get('flatbuffer_bytes')} B"
                    + (f"; Cortex-M4: RAM {rep['device']['ram_bytes']} B, flash {rep['device']['flash_bytes']} B"
                       if rep.get("device") else ""))

    log("[5/5] summary and sketch")
    rows = []
    for run_dir in (teacher_dir, student_dir, kd_dir):
        metrics = json.loads((run_dir / "metrics.json").read_text())
        config = json.loads((run_dir / "config.json").read_text())
        r8 = reports[(run_dir.name, "int8")]
        rd = reports[(run_dir.name, "dynamic")]
        fits = [name for name, fit in r8["mcu_fit"].items() if fit["fits"]]  # mcu.fit(): {MCU: {ram, flash, fits}}
        rows.append({
            "run": run_dir.name, "model": f"{config['model']} H{config['hidden']}L{config['layers']}",
            "params": metrics.get("params"), "val_f1": metrics.get("val_f1"), "test_f1_float": metrics.get("test_f1"),
            "test_acc_float": metrics.get("test_acc"),
            "test_f1_int8_tflm": r8.get("test_f1_int8"), "test_acc_int8_tflm": r8.get("test_acc_int8"),
            "test_f1_dynamic": rd.get("test_f1_dynamic"),
            "arena_bytes": r8.get("arena_bytes"), "flatbuffer_bytes": r8.get("flatbuffer_bytes"),
            "tflm_matches_litert": r8.get("tflm_matches_litert"), "mcus_that_fit": fits,
            "device_ram_bytes": (r8.get("device") or {}).get("ram_bytes"),
            "device_flash_bytes": (r8.get("device") or {}).get("flash_bytes"),
            "fit_basis": "device" if r8.get("device") else "host",
        })
    sketch_dir = out / "sketch"
    chosen, why = choose_sketch_model(rows)
    chosen_dir = out / chosen["run"]
    try:
        from keras_tinyloc.deploy.sketch import export_sketch

        export_sketch(chosen_dir / "tflite-int8", sketch_dir, overwrite=True)
        sketch_note = str(sketch_dir)
    except ImportError:  # pragma: no cover - the sketch exporter ships with the package
        sketch_note = "(sketch exporter not available)"
    summary = {"dataset": cfg.dataset, "dataset_info": {k: info[k] for k in
                                                      ("n_train", "n_val", "n_test", "input_shape", "n_classes")},
               "rows": rows, "sketch": sketch_note, "seconds": round(time.time() - t_start, 1),
               "sketch_model": {"run": chosen["run"], "model": chosen["model"], "why": why},
               "data_source": ds.meta.get("source"), "simulated": simulated}
    atomic_write_json(out / "summary.json", summary)
    md = summary_markdown(summary)
    atomic_write_text(out / "summary.md", md)
    record_output(out, "summary.json", "summary.md")
    log("")
    log(md)
    return summary


def _f(v) -> str:
    return "—" if v is None else f"{100 * v:.2f}"


def summary_markdown(summary: dict) -> str:
    """The demo's table: float vs int8-in-TFLM F1, arena and flash, MCUs that fit."""
    lines = [
        f"# keras_tinyloc demo on `{summary['dataset']}`",
        "",
        "Macro-F1 / accuracy in % on the test split (free-living recordings); int8 measured in the TFLM interpreter; "
        "arena = minimal working TFLM arena on the host (64-bit, an upper bound for a Cortex-M build). M4 RAM / flash "
        "= the whole firmware (TFLM + model + sketch + libc; arena + static data + stack) measured on an emulated "
        "Cortex-M4 (`convert --target cortex-m4`, '—' where the TFLM kit was not available). MCUs that fit: on the M4 "
        "figures where measured (fit on `device`), else on arena + flatbuffer (fit on `host`, a lower bound of the "
        "need); only cores that run TFLM.",
        "",
        "| run | model | params | val F1 | test F1 float | test F1 int8 (TFLM) | acc int8 | test F1 dynamic | "
        "arena B | flatbuffer B | M4 RAM B | M4 flash B | MCUs that fit (fit on) |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for r in summary["rows"]:
        dash = lambda v: "—" if v is None else str(v)  # noqa: E731
        lines.append(
            f"| {r['run']} | {r['model']} | {r['params']} | {_f(r['val_f1'])} | {_f(r['test_f1_float'])} | "
            f"{_f(r['test_f1_int8_tflm'])} | {_f(r['test_acc_int8_tflm'])} | {_f(r['test_f1_dynamic'])} | "
            f"{r['arena_bytes']} | {r['flatbuffer_bytes']} | {dash(r.get('device_ram_bytes'))} | "
            f"{dash(r.get('device_flash_bytes'))} | {', '.join(r['mcus_that_fit']) or 'none'} "
            f"({r.get('fit_basis', 'host')}) |"
        )
    chosen = summary.get("sketch_model")
    lines.append("")
    if chosen:
        lines.append(f"Sketch ready to open: `{summary['sketch']}`, with **{chosen['run']}** ({chosen['model']}): "
                     f"{chosen['why']}.")
    else:
        lines.append(f"Sketch ready to open: `{summary['sketch']}`.")
    if summary.get("simulated"):
        lines.append(f"`{summary['dataset']}` here is a **simulated** house (no real In-Home archive was given with "
                     f"`--data-dir`): these figures describe the simulator, not a real home.")
    lines += ["Params = the model's weights (stored in flash, inside the flatbuffer); arena = the RAM the TFLM "
              "interpreter needs while it runs (activations and bookkeeping) — the arena, more than the "
              "parameters, decides which MCU fits.", f"Total time {summary['seconds']} s.", ""]
    return "\n".join(lines)


def choose_sketch_model(rows: list[dict]) -> tuple[dict, str]:
    """The row whose int8 model goes into the sketch, and why (one sentence).

    Among the runs whose int8 model fits at least one MCU of the paper's table (all runs if none fits): the best
    validation macro-F1, ties to the smaller arena. Chosen on validation, never on the test split the table reports.
    """
    fitting = [r for r in rows if r.get("mcus_that_fit")]
    pool = fitting or rows
    best = max(pool, key=lambda r: (r.get("val_f1") or 0.0, -(r.get("arena_bytes") or 0)))
    where = ("among the int8 models that fit an MCU of the paper's table" if fitting else
             "although no int8 model here fits an MCU of the paper's table")
    return best, (f"the best validation macro-F1 ({_f(best.get('val_f1'))} %) {where}; chosen on validation, "
                  f"not on the test split the table reports")


def build_parser() -> argparse.ArgumentParser:
    from keras_tinyloc.data.registry import add_dataset_arguments

    p = argparse.ArgumentParser(
        prog="python -m keras_tinyloc demo",
        description="End-to-end demo: simulate a house, train a teacher and a student, distil, convert to full "
                    "int8, run in TFLM with a measured arena, and write a summary. Re-running reuses finished steps.",
    )
    p.add_argument("--out", default=DemoConfig.out, help="output directory (default: %(default)s)")
    add_dataset_arguments(p, required=False, default=DemoConfig.dataset)  # a built-in name or your recordings
    p.add_argument("--epochs", type=int, default=DemoConfig.epochs, help="max epochs per run (default: %(default)s)")
    p.add_argument("--seed", type=int, default=0, help="random seed (default: 0)")
    p.add_argument("--fresh", action="store_true", help="delete OUT first and redo every step")
    return p


@cli_errors
def main(argv: list[str] | None = None) -> int:
    from keras_tinyloc.data.registry import check_dataset, dataset_options

    ns = build_parser().parse_args(argv)
    check_dataset(ns.dataset, ns.data_dir, dataset_options(ns))
    if ns.epochs <= 0:
        raise TinyLocError(f"--epochs {ns.epochs}: must be a positive integer")
    check_seed(ns.seed)
    run_demo(DemoConfig(out=ns.out, dataset=ns.dataset, epochs=ns.epochs, seed=ns.seed, fresh=ns.fresh,
                        data_dir=ns.data_dir, dataset_options=dataset_options(ns)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
