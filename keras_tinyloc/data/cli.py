"""``python -m keras_tinyloc data {info,download,simulate}``: inspect, fetch and simulate datasets.

* ``info --dataset NAME [--data-dir DIR] [--json]``: load a dataset through
  :func:`keras_tinyloc.data.registry.load_dataset` and print :meth:`WindowDataset.info` (JSON or a table).
* ``download uji [--dest DIR]``: fetch the official UJIIndoorLoc archive from UCI, verify, store (default
  ``data/raw/``).
* ``simulate --house {A,B,C,D,S} --out DIR [--seed N] [--scale F] [--overwrite]``: write a simulated house in the
  published In-Home layout (:func:`keras_tinyloc.data.simulate.simulate_house`).
"""
from __future__ import annotations

import argparse
import json
import sys

from keras_tinyloc.data.registry import DATASETS
from keras_tinyloc.errors import TinyLocError, cli_errors


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m keras_tinyloc data", description="Datasets: info, download (UJIIndoorLoc), simulate (houses)."
    )
    sub = parser.add_subparsers(dest="action", metavar="ACTION", required=True)

    info = sub.add_parser("info", help="load a dataset and print its shapes, classes and split sizes",
                          description="Load a dataset and print its shapes, classes and split sizes.")
    info.add_argument("--dataset", required=True, choices=DATASETS, metavar="NAME",
                      help=f"one of {', '.join(DATASETS)}")
    info.add_argument("--data-dir", default=None, help="where the raw files are (default: $KERAS_TINYLOC_DATA, "
                                                       "data/raw/, the workplace copy)")
    info.add_argument("--json", action="store_true", help="print JSON instead of a table")

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

        info = load_dataset(args.dataset, data_dir=args.data_dir).info()
        if args.json:
            print(json.dumps(info, indent=2, default=str))
        else:
            print(format_info(info))
        return 0
    if args.action == "download":
        from keras_tinyloc.data.uji import download_uji

        path = download_uji(args.dest)
        print(f"stored {path}")
        return 0
    if args.action == "simulate":
        if args.scale <= 0:
            raise TinyLocError(f"--scale {args.scale}: must be > 0")
        from keras_tinyloc.data.simulate import simulate_house

        out = simulate_house(args.house, args.out, seed=args.seed, scale=args.scale, overwrite=args.overwrite)
        print(f"wrote house {args.house} to {out if out is not None else args.out}")
        return 0
    raise TinyLocError(f"unknown action {args.action!r}")  # unreachable: argparse checks


if __name__ == "__main__":
    sys.exit(main())
