"""``python -m keras_tinyloc COMMAND ...``: a thin layer over functions a notebook can call.

Each command lives in its own module, which exposes ``build_parser()`` and ``main(argv) -> int``;
this file only dispatches, so ``python -m keras_tinyloc --help`` does not import TensorFlow.
"""
from __future__ import annotations

import argparse
import importlib
import sys

from keras_tinyloc.errors import quiet_tensorflow

# command -> (module, one-line help)
COMMANDS: dict[str, tuple[str, str]] = {
    "data": ("keras_tinyloc.data.cli", "datasets: info, download (UJIIndoorLoc), simulate (houses)"),
    "train": ("keras_tinyloc.training.train", "train an MDCSA or Mamba model with a CRF head"),
    "distill": ("keras_tinyloc.training.distill", "knowledge distillation from a trained teacher run"),
    "qat": ("keras_tinyloc.training.qat", "quantization-aware fine-tuning of a trained run (simulated int8)"),
    "convert": ("keras_tinyloc.deploy.convert", "convert a run to .tflite (int8/dynamic/float), run it in TFLM, report"),
    "export-sketch": ("keras_tinyloc.deploy.sketch", "copy the generated model files next to the Arduino/STM32 sketch"),
    "replay": ("keras_tinyloc.deploy.replay", "replay a recorded session to a board over serial and compare rooms"),
    "sweep": ("keras_tinyloc.experiments.sweep", "resumable experiment sweep that regenerates the paper's tables"),
    "beyond": ("keras_tinyloc.experiments.beyond", "UJIIndoorLoc beyond the paper: int8 MLP rows (AP selection, "
               "augmentation, distillation) through TFLM"),
    "fit": ("keras_tinyloc.experiments.fit", "the most accurate model that fits an MCU: budgeted search over families, "
            "sizes and training levers (validation only, successive halving, resumable)"),
    "demo": ("keras_tinyloc.demo", "the end-to-end demo: simulate, train, distill, convert, measure"),
}


def build_parser() -> argparse.ArgumentParser:
    lines = "\n".join(f"  {name:<14}{help_}" for name, (_, help_) in COMMANDS.items())
    parser = argparse.ArgumentParser(
        prog="python -m keras_tinyloc",
        description="Train, compress and deploy indoor-localisation models to microcontrollers.",
        epilog=f"commands:\n{lines}\n\nRun 'python -m keras_tinyloc COMMAND --help' for a command's options.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("command", choices=sorted(COMMANDS), metavar="COMMAND", help="one of the commands below")
    parser.add_argument("args", nargs=argparse.REMAINDER, help=argparse.SUPPRESS)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    if not argv:
        parser.print_help()
        return 2
    if argv[0] in ("-h", "--help"):
        parser.print_help()
        return 0
    ns = parser.parse_args(argv[:1])
    quiet_tensorflow()  # no start-up banner or retracing warnings on the user's terminal (real warnings stay)
    module = importlib.import_module(COMMANDS[ns.command][0])
    return int(module.main(argv[1:]) or 0)


if __name__ == "__main__":
    sys.exit(main())
