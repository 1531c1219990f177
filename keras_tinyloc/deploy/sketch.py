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
from keras_tinyloc.paths import REPO_ROOT, atomic_dir, check_output_path

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


_BYTES = re.compile(r"\{([^}]*)\};")
_LEN = re.compile(r"_len\s*=\s*(\d+)\s*;")


def check_model_files(conv: Path) -> bytes:
    """Check that a model folder's files are whole and belong together before they are copied; return the model.

    ``model_data.cc`` must hold a complete flatbuffer (its byte count = its ``_len``, and it parses), byte-identical
    to ``model.tflite`` when that is present; ``model_settings.h`` must be exactly what ``device_settings.json``
    generates (not truncated, not edited) and describe this flatbuffer (same op types; for a windowed model the same
    input/output quantization); a streaming folder's ``step_settings.h`` must be complete. One-line TinyLocError
    naming the file otherwise — so a truncated copy never reaches a board.
    """
    from keras_tinyloc.deploy import export_c, tflite_inspect

    cc = conv / "model_data.cc"
    text = cc.read_text(errors="replace")
    body, length = _BYTES.search(text), _LEN.search(text)
    try:
        data = bytes(int(v, 16) for v in body.group(1).replace("\n", " ").split(",") if v.strip())
    except (AttributeError, ValueError):
        data = None
    if data is None or length is None or len(data) != int(length.group(1)):
        raise TinyLocError(f"{cc}: not a complete model array (truncated or edited?); run convert again")
    tflite = conv / "model.tflite"
    if tflite.is_file() and tflite.read_bytes() != data:
        raise TinyLocError(f"{cc}: does not hold {tflite} (the two come from different conversions); run convert again")
    if export_c.model_data_source(data)[0] != text:
        raise TinyLocError(f"{cc}: differs from what convert writes for its own bytes (edited?); run convert again")
    try:
        info = tflite_inspect.inspect_tflite(data)
    except Exception as exc:  # noqa: BLE001 - flatbuffers raises assorted errors on damaged input
        raise TinyLocError(f"{cc}: the model array is not a valid .tflite flatbuffer ({type(exc).__name__})") from None
    settings = export_c.read_device_settings(conv)
    header = conv / "model_settings.h"
    if header.read_text(errors="replace") != export_c.model_settings_source(settings):
        raise TinyLocError(f"{header}: does not match {conv / export_c.SETTINGS_JSON} (truncated or edited?); "
                           f"run convert again")
    if sorted(set(settings.ops)) != sorted(set(info.op_types)):
        raise TinyLocError(f"{header}: lists ops {sorted(set(settings.ops))} but {cc} uses {sorted(set(info.op_types))} "
                           f"(files from different conversions); run convert again")
    if not is_stream_dir(conv):
        for what, tensor, scale, zp in (("input", info.input(), settings.input_scale, settings.input_zero_point),
                                        ("output", info.output(), settings.output_scale, settings.output_zero_point)):
            if tensor.scale != scale or tensor.zero_point != zp:
                raise TinyLocError(f"{header}: {what} quantization ({scale}, {zp}) differs from {cc}'s "
                                   f"({tensor.scale}, {tensor.zero_point}): files from different conversions")
    else:
        step = (conv / STEP_SETTINGS).read_text(errors="replace").rstrip()
        if not step.endswith("#endif  // TINYLOC_STEP_SETTINGS_H_"):
            raise TinyLocError(f"{conv / STEP_SETTINGS}: incomplete (truncated?); export the step model again")
    return data


def export_sketch(convert_out_dir: str | Path, sketch_dir: str | Path, overwrite: bool = False) -> Path:
    """Assemble the sketch folder from a convert output directory; return ``sketch_dir``.

    A folder with ``step_settings.h`` (a streaming step model) gives the streaming sketch (module docstring).
    Raises TinyLocError if a model file is missing (convert with ``--quant int8``) or the sketch name is not a
    valid Arduino sketch name (letters, digits, ``_``; not starting with a digit).
    """
    sketch = check_output_path(sketch_dir)
    conv = Path(convert_out_dir)
    for f in MODEL_FILES:
        if not (conv / f).is_file():
            raise TinyLocError(f"{conv / f}: missing (export-sketch needs the output of 'convert --quant int8')")
    check_model_files(conv)
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
