"""``python -m keras_tinyloc export-sketch CONVERT_DIR --out SKETCH_DIR``: a ready-to-open Arduino/STM32 project.

Copies, into ``SKETCH_DIR`` (written atomically; the Arduino IDE wants the folder and the ``.ino`` to share a name):

* ``<SKETCH_DIR name>.ino``: ``tflm_app/arduino/tflm_app/tflm_app.ino``;
* the model files of a ``convert --quant int8`` output: ``model_data.cpp`` (from ``model_data.cc``: the Arduino IDE
  compiles ``.cpp``), ``model_data.h``, ``model_settings.h``;
* the portable core: ``tinyloc_core.{h,cpp}``, ``tinyloc_app.{h,cpp}`` (``tflm_app/core``);
* ``stm32/main.cc`` and ``stm32/Makefile`` (they use the files one level up), and ``README.md`` written for this
  model (:mod:`keras_tinyloc.deploy.sketch_readme`: its name, T/F/C, arena, rooms, APs, boot lines).

A streaming step-model folder (``export_stream.export_step_model``: it also holds ``step_settings.h``) gives the
streaming sketch instead: ``tflm_app/arduino/tflm_app_stream/tflm_app_stream.ino`` as ``<name>.ino``, the model files
with ``step_settings.h``, ``tinyloc_core.{h,cpp}`` and ``tinyloc_online.{h,cpp}`` (no STM32 project: the streaming
sketch is Arduino only), and ``README.md``.
"""
from __future__ import annotations

import argparse
import re
import shutil
import sys
from pathlib import Path

from keras_tinyloc.deploy.sketch_readme import sketch_readme
from keras_tinyloc.errors import TinyLocError, cli_errors
from keras_tinyloc.paths import REPO_ROOT, atomic_dir

APP_DIR = REPO_ROOT / "tflm_app"
MODEL_FILES = {"model_data.cc": "model_data.cpp", "model_data.h": "model_data.h", "model_settings.h": "model_settings.h"}
CORE_FILES = ("tinyloc_core.h", "tinyloc_core.cpp", "tinyloc_app.h", "tinyloc_app.cpp")
STREAM_CORE_FILES = ("tinyloc_core.h", "tinyloc_core.cpp", "tinyloc_online.h", "tinyloc_online.cpp")
STM32_FILES = ("main.cc", "Makefile")
STEP_SETTINGS = "step_settings.h"


def is_stream_dir(convert_out_dir: str | Path) -> bool:
    """Whether a model folder holds a streaming step model (``step_settings.h``, from export_stream)."""
    return (Path(convert_out_dir) / STEP_SETTINGS).is_file()


def _sources(stream: bool = False) -> dict[Path, str]:
    """Repository file -> path inside the sketch (without the model files)."""
    if stream:
        srcs = {APP_DIR / "arduino" / "tflm_app_stream" / "tflm_app_stream.ino": "{name}.ino",
                APP_DIR / "README.md": "README.md"}
        srcs.update({APP_DIR / "core" / f: f for f in STREAM_CORE_FILES})
    else:
        srcs = {APP_DIR / "arduino" / "tflm_app" / "tflm_app.ino": "{name}.ino", APP_DIR / "README.md": "README.md"}
        srcs.update({APP_DIR / "core" / f: f for f in CORE_FILES})
        srcs.update({APP_DIR / "stm32" / f: f"stm32/{f}" for f in STM32_FILES})
    missing = [str(p) for p in srcs if not p.is_file()]
    if missing:
        raise TinyLocError(f"{missing[0]}: missing (export-sketch needs the repository's tflm_app/ folder)")
    return srcs


def export_sketch(convert_out_dir: str | Path, sketch_dir: str | Path, overwrite: bool = False) -> Path:
    """Assemble the sketch folder from a convert output directory; return ``sketch_dir``.

    A folder with ``step_settings.h`` (a streaming step model) gives the streaming sketch (module docstring).
    Raises TinyLocError if a model file is missing (convert with ``--quant int8``) or the sketch name is not a
    valid Arduino sketch name (letters, digits, ``_``; not starting with a digit).
    """
    conv = Path(convert_out_dir)
    sketch = Path(sketch_dir)
    for f in MODEL_FILES:
        if not (conv / f).is_file():
            raise TinyLocError(f"{conv / f}: missing (export-sketch needs the output of 'convert --quant int8')")
    name = sketch.resolve().name
    if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]{0,62}", name):
        raise TinyLocError(f"{sketch}: {name!r} is not a valid Arduino sketch name (letters, digits, _)")
    stream = is_stream_dir(conv)
    srcs = _sources(stream)
    with atomic_dir(sketch, overwrite=overwrite) as tmp:
        for src, rel in srcs.items():
            dst = tmp / rel.format(name=name)
            dst.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(src, dst)
        for f, rel in MODEL_FILES.items():
            shutil.copyfile(conv / f, tmp / rel)
        # README.md for THIS model (name, T/F/C, arena, rooms, APs, boot lines), not the repository's generic one
        (tmp / "README.md").write_text(sketch_readme(conv, name), encoding="utf-8")
        if stream:
            shutil.copyfile(conv / STEP_SETTINGS, tmp / STEP_SETTINGS)
    return sketch


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m keras_tinyloc export-sketch",
        description="Assemble an Arduino/STM32 sketch folder (sketch, model files, core) from a 'convert --quant int8' "
        "output.")
    p.add_argument("convert_dir", metavar="CONVERT_DIR", help="output of 'convert --quant int8' (model_data.cc, ...)")
    p.add_argument("--out", required=True, metavar="SKETCH_DIR", help="sketch folder to create (its name = .ino name)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing sketch folder")
    return p


@cli_errors
def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    out = export_sketch(args.convert_dir, args.out, overwrite=args.overwrite)
    stm32 = "" if is_stream_dir(args.convert_dir) else f"; STM32: {out}/stm32/"
    print(f"wrote {out}/ (open {out.name}.ino in the Arduino IDE{stm32})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
