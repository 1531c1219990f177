"""``python -m keras_tinyloc data {info,import,download,simulate}``: inspect, convert, fetch and simulate datasets.

* ``info --dataset NAME|PATH [--data-dir DIR] [recordings options] [--json]``: load a dataset (built-in, or your
  recordings: :mod:`keras_tinyloc.data.recordings`) through :func:`keras_tinyloc.data.registry.load_dataset` and
  print :meth:`WindowDataset.info` (JSON or a table saying which sessions went to which split and why).
* ``import SRC --format sphere|inhome|uji|uji-zones --out FILE [--house X] [--overwrite]``: write a built-in dataset
  as a recordings file (:mod:`keras_tinyloc.data.importer`).
* ``download uji [--dest DIR]``: fetch the official UJIIndoorLoc archive from UCI, verify, store (default
  ``data/raw/``).
* ``simulate --house {A,B,C,D,S} --out DIR [--seed N] [--scale F] [--overwrite]``: write a simulated house in the
  published In-Home layout (:func:`keras_tinyloc.data.simulate.simulate_house`).
"""
from __future__ import annotations

import argparse
import json
import sys

from keras_tinyloc.data.registry import add_dataset_arguments, check_dataset, dataset_options
from keras_tinyloc.errors import TinyLocError, check_seed, cli_errors
from keras_tinyloc.paths import check_output_path


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m keras_tinyloc data",
        description="Datasets: info, import (built-in -> recordings file), download (UJIIndoorLoc), simulate (houses).",
    )
    sub = parser.add_subparsers(dest="action", metavar="ACTION", required=True)

    info = sub.add_parser("info", help="load a dataset (built-in or your recordings) and print shapes, rooms, splits",
                          description="Load a dataset — built-in, or your recordings file/folder — and print its "
                                      "shapes, rooms, APs and split sizes, and how the split was chosen.")
    add_dataset_arguments(info)
    info.add_argument("--json", action="store_true", help="print JSON instead of a table")

    imp = sub.add_parser("import", help="write a built-in dataset as a recordings file (docs/recordings-format.md)",
                         description="Write a built-in dataset in the recordings format; loading the file with "
                                     "--dataset FILE gives the same windows and labels as the built-in loader.")
    imp.add_argument("src", metavar="SRC", help="the dataset's raw files (as --data-dir: the SPHERE folder holding "
                                                "public_data/, a house_X folder, the UJIIndoorLoc zip or folder)")
    imp.add_argument("--format", required=True, choices=("sphere", "inhome", "uji", "uji-zones"),
                     help="which loader reads SRC: sphere, inhome (published layout or flat CSVs), uji "
                          "(13 building-floors) or uji-zones (59 zones)")
    imp.add_argument("--out", required=True, metavar="FILE", help="the recordings CSV to write")
    imp.add_argument("--house", default=None, help="inhome: the house letter when SRC holds several (A-D)")
    imp.add_argument("--overwrite", action="store_true", help="replace an existing FILE")

    dl = sub.add_parser("download", help="download a public dataset (uji) and verify its checksum",
                        description="Download the official UJIIndoorLoc archive from the UCI repository, verify "
                                    "its md5 and store UJIIndoorLoc.zip.")
    dl.add_argument("name", choices=("uji",), help="dataset to download (uji)")
    dl.add_argument("--dest", default=None, help="target directory (default: data/raw/)")

    sim = sub.add_parser("simulate", help="write a simulated In-Home house in the published layout",
                         description="Simulate one In-Home BLE house (floor plan, path loss, packet loss) and write "
                                     "it in the published archive layout.")
    sim.add_argument("--house", required=True, choices=("A", "B", "C", "D", "S"), type=str.upper,
                     help="house letter: A-D (the paper's Table 3) or S (the SPHERE-like house)")
    sim.add_argument("--out", required=True, help="output directory")
    sim.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    sim.add_argument("--scale", type=float, default=1.0, help="scale of the recording durations (default 1.0)")
    sim.add_argument("--overwrite", action="store_true", help="replace an existing OUT/house_X")
    return parser


def format_info(info: dict) -> str:
    """A readable table of :meth:`WindowDataset.info` output."""
    rows = [
        ("dataset", info["dataset"]),
        ("train / val / test windows", f"{info['n_train']} / {info['n_val']} / {info['n_test']}"),
        ("input shape (T, F)", tuple(info["input_shape"])),
        ("classes", info["n_classes"]),
        ("fill value (dBm)", info["fill_value"]),
    ]
    meta = info.get("meta") or {}
    if meta.get("source") == "recordings":
        rows.insert(1, ("form", f"{meta['form']} ({', '.join(meta['files'][:3])}{' ...' if len(meta['files']) > 3 else ''})"))
        rows.append(("grid", "none: one scan per sample (T = 1)" if meta["form"] == "scans" else
                     f"{meta['rate_hz']:g} Hz, window {meta['window']} steps, hop {meta['hop']}, "
                     f"forward fill {meta['ffill_steps']} steps"))
        rows.append(("split", meta["split"]))
        for split in ("train", "val", "test"):
            names = [n for n, f in meta["sessions"].items() if split in f["split"]]
            if names:
                shown = ", ".join(names[:8]) + (f" and {len(names) - 8} more" if len(names) > 8 else "")
                rows.append((f"{split} sessions", shown))
    rows.append(("access points", ", ".join(map(str, info["feature_names"][:12]))
                 + (f" ... ({len(info['feature_names'])})" if len(info["feature_names"]) > 12 else "")))
    width = max(len(k) for k, _ in rows)
    lines = [f"{k:<{width}}  {v}" for k, v in rows]
    counts = info.get("class_counts_train") or [0] * info["n_classes"]
    name_w = max(len(str(c)) for c in info["class_names"])
    lines.append("")
    lines.append(f"{'class':<{name_w}}  train windows (last step)")
    for name, n in zip(info["class_names"], counts):
        lines.append(f"{name:<{name_w}}  {n}")
    return "\n".join(lines)


@cli_errors
def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.action == "info":
        from keras_tinyloc.data.registry import load_dataset

        opts = dataset_options(args)
        check_dataset(args.dataset, args.data_dir, opts)
        info = load_dataset(args.dataset, data_dir=args.data_dir, **opts).info()
        if args.json:
            print(json.dumps(info, indent=2, default=str))
        else:
            print(format_info(info))
        return 0
    if args.action == "import":
        from keras_tinyloc.data.importer import import_dataset

        done = import_dataset(args.format, args.src, args.out, house=args.house, overwrite=args.overwrite)
        print(f"wrote {done['out']}: {done['rows']:,} rows ({done['form']} form), {len(done['sessions']) or 'no'} "
              f"sessions, {len(done['rooms'])} rooms, {len(done['aps'])} APs; load it with --dataset {done['out']}")
        return 0
    if args.action == "download":
        from keras_tinyloc.data.uji import download_uji

        path = download_uji(args.dest)
        print(f"stored {path}")
        return 0
    if args.action == "simulate":
        if args.scale <= 0:
            raise TinyLocError(f"--scale {args.scale}: must be > 0")
        check_seed(args.seed)
        check_output_path(args.out)  # the parent of house_X (which atomic_dir guards)
        from keras_tinyloc.data.simulate import simulate_house

        out = simulate_house(args.house, args.out, seed=args.seed, scale=args.scale, overwrite=args.overwrite)
        print(f"wrote house {args.house} to {out if out is not None else args.out}")
        return 0
    raise TinyLocError(f"unknown action {args.action!r}")  # unreachable: argparse checks


if __name__ == "__main__":
    sys.exit(main())
