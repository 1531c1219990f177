"""Benchmark (issue 7, "Houses: a streaming Mamba"): the step model of a trained Mamba, full int8 in TFLM, against the
windowed model and against a per-window int8 MLP. Writes docs/results/streaming.{json,md}.

Per house (house-a..d, simulated) and Mamba configuration: :func:`keras_tinyloc.experiments.streaming_eval.evaluate_house`
(train briefly, step model in int8 through TFLM over every test window and over the unbroken test streams, the
per-window int8 MLP baseline); the report is :mod:`keras_tinyloc.experiments.streaming_report`.

    .venv/bin/python benchmarks/streaming.py [--houses house-a house-b house-c house-d] [--epochs 40]
    .venv/bin/python benchmarks/streaming.py --add-validation   # val F1 for rows stored before it was recorded
    .venv/bin/python benchmarks/streaming.py --add-device       # device figures (emulated Cortex-M4) of stored rows

``--add-device`` (:func:`keras_tinyloc.experiments.streaming_eval.device_figures`) measures the step model and the
windowed model of every stored Mamba row of ``--houses`` (``--configs`` narrows, e.g. ``H8L1 H4L1``) that has no
device figures yet, after checking that the cached run reproduces the row; every other stored figure is kept.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from _bootstrap import ROOT  # noqa: E402,F401  (first: sets up the environment, see _bootstrap)

from keras_tinyloc.errors import cli_errors  # noqa: E402


@cli_errors
def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--houses", nargs="+", default=["house-a", "house-b", "house-c", "house-d"])
    p.add_argument("--epochs", type=int, default=40)
    p.add_argument("--out", default=str(ROOT / "docs/results/streaming"))
    p.add_argument("--markdown-only", action="store_true", help="rewrite the .md from the existing .json")
    p.add_argument("--slow-decay", action="store_true", help="share of slow state decays (H8L1), for the stream analysis")
    p.add_argument("--ablation-folded", action="store_true", help="plain vs folded step graph on the cached H8L1 runs")
    p.add_argument("--add-validation", action="store_true",
                   help="add the validation F1 of each Mamba row measured before it was recorded (its run, cached or "
                        "retrained with the same settings, must reproduce the row's float test F1)")
    p.add_argument("--add-device", action="store_true",
                   help="add the device figures (emulated Cortex-M4: step and windowed model) of the stored Mamba rows "
                        "of --houses that lack them; each run must reproduce its row first")
    p.add_argument("--configs", nargs="+", default=None, help="with --add-device: only these configurations (H8L1 ...)")
    ns = p.parse_args(argv)
    from keras_tinyloc import paths
    from keras_tinyloc.experiments import streaming_eval, streaming_report

    cache = paths.user_cache_dir() / "streaming"
    out_json = Path(ns.out + ".json")
    res = json.loads(out_json.read_text()) if out_json.is_file() else {"houses": {}}
    log = lambda s: print(s, flush=True)  # noqa: E731
    if ns.slow_decay:
        res["slow_decay"] = streaming_eval.slow_decay(ns.houses, cache)
        paths.atomic_write_json(out_json, res)
        ns.markdown_only = True
    if ns.ablation_folded:
        res["ablation_folded"] = streaming_eval.ablation_folded(ns.houses, cache, log=log)
        paths.atomic_write_json(out_json, res)
        ns.markdown_only = True
    if ns.add_validation:
        for house, hh in res["houses"].items():
            for name, row in hh["mamba"].items():
                if "val_f1" not in row:
                    row["val_f1"] = streaming_eval.validation_f1(house, name, row, ns.epochs, cache)
                    res["val_f1_added"] = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
                    log(f"{house} {name}: validation F1 {row['val_f1']:.4f}")
                    paths.atomic_write_json(out_json, res)
        ns.markdown_only = True
    if ns.add_device:
        from keras_tinyloc.data.registry import load_dataset

        for house in ns.houses:
            hh = res["houses"][house]
            todo = [n for n in hh["mamba"] if "device" not in hh["mamba"][n] and (not ns.configs or n in ns.configs)]
            ds = load_dataset(house) if todo else None
            for name in todo:
                t0 = time.perf_counter()
                hh["mamba"][name]["device"] = streaming_eval.device_figures(house, name, hh["mamba"][name], ns.epochs,
                                                                            cache, dataset=ds, log=log)
                res["device_added"] = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
                d = hh["mamba"][name]["device"]
                log(f"{house} {name}: step M4 arena {d['step']['arena_bytes']} B, flash {d['step']['flash_bytes']} B; "
                    f"window M4 arena {d['window']['arena_bytes']} B, flash {d['window']['flash_bytes']} B "
                    f"({time.perf_counter() - t0:.0f} s)")
                paths.atomic_write_json(out_json, res)
        ns.markdown_only = True
    if ns.markdown_only:
        paths.atomic_write_text(Path(ns.out + ".md"), streaming_report.markdown(res, res.get("argv", [])))
        return 0
    for house in ns.houses:
        res["houses"][house] = streaming_eval.evaluate_house(house, ns.epochs, cache, log=log)
    res["generated"] = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    res["argv"] = argv if argv is not None else sys.argv[1:]
    paths.atomic_write_json(out_json, res)
    paths.atomic_write_text(Path(ns.out + ".md"), streaming_report.markdown(res, res["argv"]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
