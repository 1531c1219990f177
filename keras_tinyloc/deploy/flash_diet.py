"""What build flags and TFLM options cost on the Cortex-M4: one model's sketch built in variants, each measured.

Why: the whole firmware, not the model, decides which MCU a model fits, and most of it is TFLM
(:mod:`keras_tinyloc.deploy.m4`). ``benchmarks/device.py`` tabulates these variants per model family in
``docs/results/device.md``. A variant = a TFLM library configuration (:func:`keras_tinyloc.deploy.tflm_kit.library`:
``OPT``, defines; cached per configuration) + the sketch's own build (defines, ``--gc-sections``, which ops are
registered). Each is measured on the firmware the user would flash (``stm32/main.cc``, or the streaming sketch for a
step model): flash split (TFLM / model / app / libc), static RAM; and, when the variant can change them, the minimal
M4 arena and the instructions per invoke (the probe firmware built the same way).

:data:`VARIANTS`, the first being the sketch as exported:

* ``default`` — ``-Os`` library and sketch, exactly the model's ops registered, ``--gc-sections``, newlib-nano;
* ``all_ops`` — every op this TFLM's ``MicroMutableOpResolver`` can add registered (what an "all ops" resolver costs);
  the board would refuse to start (the op count differs), so only flash and static RAM are measured;
* ``no_gc`` — linked without ``--gc-sections`` (every function and datum of the objects kept);
* ``O2`` — library and sketch at ``-O2`` (TFLM's own default for its kernels);
* ``strip_errors`` — ``-DTF_LITE_STRIP_ERROR_STRINGS`` in library and sketch (TFLM's messages compiled out);
* ``int8_kernels`` — ``-DTINYLOC_INT8_KERNELS``: CMSIS-NN's int8-only kernel registrations (no float/int16 paths);
* ``diet`` — ``strip_errors`` + ``int8_kernels``;
* ``release`` — TFLM's own ``BUILD_TYPE=release`` defines in library and sketch: ``-DNDEBUG`` (assertions and
  ``TFLITE_DCHECK`` compiled out: newlib's ``assert`` pulls in its ``printf`` family, 5-8 KiB) +
  ``TF_LITE_STRIP_ERROR_STRINGS``; what it costs: no internal consistency checks in TFLM (a corrupt model is caught by
  the flatbuffer checks and the sketch's own checks, not by TFLM's debug assertions) and no TFLM messages;
* ``no_op_names`` — ``-DTINYLOC_NO_OP_NAMES``: the sketch's boot check names an op the settings lack by its builtin
  code instead of its name, so the sketch no longer links TFLM's table of op names (3.3 KiB); TFLM's own error
  messages name ops too, so the table leaves the firmware only when they are stripped as well (``smallest``);
* ``smallest`` — ``release`` + ``int8_kernels`` + ``no_op_names``.

Every variant runs the same sketch source (``stm32/main.cc`` / the streaming ``.ino``): their protocol output is the
same; the table says what each option changes besides flash.
"""
from __future__ import annotations

import dataclasses
import tempfile
from pathlib import Path

import numpy as np

from keras_tinyloc.deploy import export_c, firmware, m4, tflm_kit
from keras_tinyloc.errors import TinyLocError

STRIP = "-DTF_LITE_STRIP_ERROR_STRINGS"
INT8 = "-DTINYLOC_INT8_KERNELS"
NDEBUG = "-DNDEBUG"
NO_OP_NAMES = "-DTINYLOC_NO_OP_NAMES"


@dataclasses.dataclass(frozen=True)
class Variant:
    """One build: library ``lib_opt``/``lib_defs``, sketch ``app_opt``/``app_defs``, ``gc_sections``, ``all_ops``."""

    name: str
    what: str
    lib_opt: str = "-Os"
    lib_defs: tuple[str, ...] = ()
    app_opt: str = "-Os"
    app_defs: tuple[str, ...] = ()
    gc_sections: bool = True
    all_ops: bool = False

    @property
    def runs(self) -> bool:
        """Whether the board starts with this build (an all-ops resolver fails the op-count check)."""
        return not self.all_ops


VARIANTS: tuple[Variant, ...] = (
    Variant("default", "-Os, exactly the model's ops, --gc-sections, newlib-nano (the exported sketch)"),
    Variant("all_ops", "every op this TFLM can register, instead of exactly the model's", all_ops=True),
    Variant("no_gc", "linked without --gc-sections", gc_sections=False),
    Variant("O2", "library and sketch at -O2", lib_opt="-O2", app_opt="-O2"),
    Variant("strip_errors", "TF_LITE_STRIP_ERROR_STRINGS (TFLM's messages compiled out)", lib_defs=(STRIP,),
            app_defs=(STRIP,)),
    Variant("int8_kernels", "TINYLOC_INT8_KERNELS (CMSIS-NN int8-only kernel registrations)", app_defs=(INT8,)),
    Variant("diet", "strip_errors + int8_kernels", lib_defs=(STRIP,), app_defs=(STRIP, INT8)),
    Variant("release", "TFLM's BUILD_TYPE=release: NDEBUG (no assert/DCHECK, so no newlib printf) + "
            "TF_LITE_STRIP_ERROR_STRINGS", lib_defs=(STRIP, NDEBUG), app_defs=(STRIP, NDEBUG)),
    Variant("no_op_names", "TINYLOC_NO_OP_NAMES (an unlisted op named by its builtin code: the sketch no longer "
            "needs TFLM's op-name table, TFLM's messages still do)", app_defs=(NO_OP_NAMES,)),
    Variant("smallest", "release + int8_kernels + no_op_names", lib_defs=(STRIP, NDEBUG),
            app_defs=(STRIP, NDEBUG, INT8, NO_OP_NAMES)),
)


def get_variant(name: str) -> Variant:
    for v in VARIANTS:
        if v.name == name:
            return v
    raise TinyLocError(f"flash-diet variant {name!r}: choose from {', '.join(v.name for v in VARIANTS)}")


def _sketch(tflite_bytes: bytes, settings: export_c.DeviceSettings, step_io: dict | None, all_ops: bool,
            work: Path) -> tuple[str, Path]:
    if step_io is None:
        app, sk = "stm32", m4.windowed_sketch(tflite_bytes, settings, work)
    else:
        app, sk = "stream", m4.stream_sketch(tflite_bytes, settings, step_io, work)
    if all_ops:  # the exported folder's model_settings.h, regenerated to register every op
        every = dataclasses.replace(settings, ops=sorted(export_c.RESOLVER_METHODS))
        (sk / "model_settings.h").write_text(export_c.model_settings_source(every))
    return app, sk


def measure_variant(tflite_bytes: bytes, settings: export_c.DeviceSettings, variant: Variant,
                    step_io: dict | None = None, inputs: list[np.ndarray] | None = None, n_random: int = 8,
                    work: Path | None = None) -> dict:
    """One variant of one model's sketch: flash split (and the 12 largest TFLM members in flash), static RAM, and (for
    a board that starts) the minimal M4 arena, the instructions per invoke and whether the outputs still equal the
    host TFLM's."""
    lib = tflm_kit.library("m4", opt=variant.lib_opt, defs=variant.lib_defs)
    with tempfile.TemporaryDirectory(prefix="tinyloc-diet-") as tmp:
        work = Path(work) / variant.name if work else Path(tmp)
        work.mkdir(parents=True, exist_ok=True)
        app, sk = _sketch(tflite_bytes, settings, step_io, variant.all_ops, work)
        fw = firmware.build(app, sk, lib, work / "app", app_defs=variant.app_defs, app_opt=variant.app_opt,
                            gc_sections=variant.gc_sections)
        flash = firmware.flash_split(fw)
        static = firmware.static_ram(fw)
        row = {"variant": variant.name, "what": variant.what, "app": app, "flash_bytes": flash["total"],
               **{f"flash_{p}_bytes": flash[p] for p in firmware.PARTS},
               "static_ram_bytes": static["static_without_arena"], "library_key": lib.key[:12],
               "tflm_objects": firmware.tflm_objects(fw, 12)}
        if variant.runs:
            probe = m4.build_probe(tflite_bytes, lib, work, app_defs=variant.app_defs)
            arena = m4.minimal_arena(probe.path)
            xs = inputs if inputs is not None else m4.random_inputs(tflite_bytes, n_random)
            got, counts = m4.run_inputs(probe.path, arena.arena_bytes, tflite_bytes, xs, work)
            want = m4.host_outputs(tflite_bytes, xs)
            same = np.all([np.all((g == w).reshape(len(g), -1), axis=1) for g, w in zip(got, want)], axis=0)
            row.update(arena_bytes=arena.arena_bytes, instructions_per_invoke=int(np.median(counts)),
                       outputs_identical_share=float(np.mean(same)))
        return row


def measure_variants(tflite_bytes: bytes, settings: export_c.DeviceSettings, variants=VARIANTS,
                     step_io: dict | None = None, inputs: list[np.ndarray] | None = None, log=None) -> list[dict]:
    """:func:`measure_variant` for each variant (names or :class:`Variant`), in order."""
    rows = []
    for v in variants:
        v = get_variant(v) if isinstance(v, str) else v
        if log:
            log(f"  variant {v.name}: {v.what}")
        rows.append(measure_variant(tflite_bytes, settings, v, step_io, inputs))
    return rows
