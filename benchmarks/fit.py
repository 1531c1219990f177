"""Benchmark: ``fit --mcu`` on uji, uji-zones, sphere and the simulated house-a for the 20 KB / 64 KB classes (and
sphere in 32 KB), against the committed hand-picked rows and the scikit-learn baselines. Writes
docs/results/fit.{json,md}; the searches live in runs/fit/<case>/ (resumable: re-running continues them).

    flock /tmp/team/heavy.lock .venv/bin/python benchmarks/fit.py [--cases a,b] [--time-budget MIN] [--epochs N]
    .venv/bin/python benchmarks/fit.py --render-only        # docs/results/fit.md from docs/results/fit.json
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

from _bootstrap import ROOT  # noqa: E402,F401  (first: sets up the environment, see _bootstrap)

from keras_tinyloc.errors import TinyLocError, cli_errors  # noqa: E402
from keras_tinyloc.experiments import fit, fit_benchmark  # noqa: E402


@cli_errors
def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--cases", default=",".join(c.name for c in fit_benchmark.CASES), help="comma-separated case names")
    p.add_argument("--time-budget", type=float, default=8.0, help="minutes of search per case (default 8)")
    p.add_argument("--epochs", type=int, default=None, help="maximum epochs per trial (default: the case's, "
                                                            "fit_benchmark.UJI_TRAINING / BLE_TRAINING)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="auto", help="auto | cortex-m4 | host (fit --device)")
    p.add_argument("--runs", default=str(ROOT / "runs" / "fit"), help="where the searches are kept")
    p.add_argument("--out", default=str(ROOT / "docs" / "results"))
    p.add_argument("--render-only", action="store_true", help="rewrite fit.md from fit.json")
    a = p.parse_args(argv)
    from keras_tinyloc.paths import atomic_write_json, atomic_write_text

    out = Path(a.out)
    if a.render_only:  # the limits are re-read from the searches' leaderboards when runs/fit/<case>/ is here
        doc = fit_benchmark.refresh_limits(json.loads((out / "fit.json").read_text()), Path(a.runs))
        atomic_write_json(out / "fit.json", doc)
        atomic_write_text(out / "fit.md", fit_benchmark.markdown(doc))
        return 0
    by_name = {c.name: c for c in fit_benchmark.CASES}
    names = [n.strip() for n in a.cases.split(",") if n.strip()]
    unknown = [n for n in names if n not in by_name]
    if unknown:
        raise TinyLocError(f"--cases {unknown[0]!r}: choose from {', '.join(by_name)}")
    done = {}
    if (out / "fit.json").is_file():  # keep the cases of earlier invocations
        done = {c["case"]: c for c in json.loads((out / "fit.json").read_text()).get("cases", [])}
    meta = {"command": f"`{' '.join(['benchmarks/fit.py', *(argv if argv is not None else sys.argv[1:])])}`",
            "machine": f"{os.cpu_count()} CPU cores", "time_budget_min": a.time_budget, "seed": a.seed}
    for name in names:
        case = by_name[name]
        extra = {} if a.epochs is None else {"epochs": a.epochs, "min_epochs": min(a.epochs, 4)}
        cfg = case.fit_config(Path(a.runs), time_budget_min=a.time_budget, seed=a.seed, device=a.device,
                              progress=False, overhead_cache=str(Path(a.runs) / "overheads.json"), **extra)
        t0 = time.perf_counter()
        summary = fit.run_fit(cfg, log=lambda line: print(f"[{name}] {line}", flush=True))
        done[name] = {**fit_benchmark.compare(case, summary, out), "seconds": round(time.perf_counter() - t0, 1),
                      "device": summary["search"]["device"],
                      "limits": fit_benchmark.limits(Path(cfg.out) / "leaderboard.csv"), "command": meta["command"],
                      "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())}
        meta["device"] = done[name]["device"]
        meta["date"] = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
        doc = {"meta": meta, "cases": [done[c.name] for c in fit_benchmark.CASES if c.name in done],
               "not_run": [f"{c.name}: not run in this benchmark invocation" for c in fit_benchmark.CASES
                           if c.name not in done]}
        atomic_write_json(out / "fit.json", doc)
        atomic_write_text(out / "fit.md", fit_benchmark.markdown(doc))
        w = summary.get("winner")
        print(f"[{name}] {round(time.perf_counter() - t0)} s: "
              + (f"{w['key']} val {w['val_f1_int8']:.4f} test {w['test_f1_int8']:.4f}" if w else "no winner"),
              flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
