"""Benchmark (issue 7, UJIIndoorLoc): the ablation of :mod:`keras_tinyloc.experiments.beyond`, every row trained, converted to
full int8 and evaluated through TFLM on the real test set. Writes docs/results/beyond_uji.{json,md}.

    .venv/bin/python benchmarks/beyond_uji.py [--datasets uji-zones uji] [--rows aug-h64 ...] [--out runs/beyond]

Each row is ``python -m keras_tinyloc beyond <dataset> --row <name> --out <out>``; finished rows are reused from
``<out>/<dataset>/<row>/row.json`` (``--overwrite`` retrains). ``--report-only`` rebuilds the tables from them. The
report is :mod:`keras_tinyloc.experiments.beyond_report`.

    .venv/bin/python benchmarks/beyond_uji.py --render-json      # the report from the committed JSON (no runs needed)
    .venv/bin/python benchmarks/beyond_uji.py --add-device [--device-rows uji:pow3-aug-h64 ...]

``--add-device`` (:func:`keras_tinyloc.experiments.beyond.add_device_rows`) trains the rows cited as 20 KB results
(``beyond.DEVICE_ROWS``) again in ``--out`` with ``--target cortex-m4`` and gives a committed row the device figures
only when the retrained run reproduced it (the same trained model and the same int8 model sizes); otherwise the run's
figures are kept apart (``retrained``). Every other committed figure is kept; the int8 test figures of today's
conversion are recorded beside the row's (``device_check``).
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from _bootstrap import ROOT  # noqa: E402,F401  (first: sets up the environment, see _bootstrap)


def main(argv=None) -> int:
    from keras_tinyloc.experiments import beyond, beyond_report
    from keras_tinyloc.paths import atomic_write_json, atomic_write_text

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--datasets", nargs="+", default=["uji-zones", "uji"], choices=beyond.DATASETS)
    p.add_argument("--rows", nargs="+", default=list(beyond.ROWS), choices=list(beyond.ROWS))
    p.add_argument("--recipes", nargs="*", default=list(beyond.RECIPES), choices=list(beyond.ROWS),
                   help="rows retrained with held-out-phone validation to choose a recipe")
    p.add_argument("--out", default=str(ROOT / "runs" / "beyond"))
    p.add_argument("--overwrite", action="store_true")
    p.add_argument("--report-only", action="store_true")
    p.add_argument("--results", default=str(ROOT / "docs" / "results" / "beyond_uji"))
    p.add_argument("--render-json", action="store_true", help="rewrite the .md from the committed .json alone")
    p.add_argument("--add-device", action="store_true",
                   help="retrain --device-rows with --target cortex-m4 and add their device figures (see above)")
    p.add_argument("--device-rows", nargs="+", default=list(beyond.DEVICE_ROWS), metavar="DATASET:ROW")
    a = p.parse_args(argv)
    results: dict[str, list[dict]] = {}
    phones: dict[str, list[dict]] = {}
    if a.add_device or a.render_json:
        import json

        path = Path(a.results + ".json")
        doc = json.loads(path.read_text())
        if a.add_device:
            beyond.add_device_rows(doc, a.device_rows, a.out, save=lambda d: atomic_write_json(path, d))
        results, phones = doc["rows"], doc["phone_validation_rows"]
        atomic_write_text(Path(a.results + ".md"), beyond_report.markdown(results, phones))
        return 0
    for ds in a.datasets:
        if a.report_only:
            results[ds] = beyond_report.stored_rows(a.out, ds, a.rows)
            phones[ds] = beyond_report.stored_rows(a.out, ds, a.recipes, "@phones")
        else:
            results[ds] = beyond.run_rows(ds, a.rows, out=a.out, overwrite=a.overwrite)
            phones[ds] = beyond.run_rows(ds, a.recipes, out=a.out, overwrite=a.overwrite, validation="phones")
    md = beyond_report.markdown(results, phones)
    atomic_write_json(Path(a.results + ".json"), {"rows": results, "phone_validation_rows": phones,
                                                   "command": " ".join(sys.argv)})
    atomic_write_text(Path(a.results + ".md"), md)
    print(md)
    return 0


if __name__ == "__main__":
    sys.exit(main())
