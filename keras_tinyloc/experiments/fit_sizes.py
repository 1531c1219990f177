"""What a ``fit --mcu`` candidate needs on the MCU, known **before** it is trained, and the MCU it must fit.

Why before training: a converted model's tensor arena and flatbuffer depend on its graph and tensor shapes only,
not on its weights, so one int8 conversion of an *untrained* model per architecture (:func:`arch_sizes`, ~1-3 s)
tells whether the trained model can fit; candidates that cannot are never trained.

"Fits" means the **whole program** fits (issue 16):

* RAM need  = tensor arena + the app's RAM (static data without the arena buffer, heap, stack);
* flash need = flatbuffer + the TFLM runtime code for the model's ops + the app's code + libc.

The app/runtime part (the **overhead**) comes from one of two sources, recorded with every estimate (``basis``):

* ``device``: measured once per family and dataset by linking and running the real sketch on the emulated Cortex-M4
  (:func:`keras_tinyloc.deploy.m4.measure_device`, through :func:`keras_tinyloc.deploy.convert.convert_run` with
  ``target="cortex-m4"``) for the family's smallest architecture with the most op types (TFLM's code depends on which
  op kernels are linked; ``x^3`` adds MUL to an MLP; an op missing from the measured set is listed in
  ``ops_not_measured``): overhead RAM = device RAM - device arena, overhead flash = firmware flash - model bytes. The
  app's RAM and code depend on the dataset's T, F and C (window buffer, CRF tables), hence per dataset.
* ``host + margin``: without the TFLM kit / Arm toolchain, the stated per-family margins :data:`HOST_MARGINS` (the
  largest overheads measured on the device for that family on house-a, sphere and uji-zones: see the constant).

The screening estimate adds the overhead to the **host** arena (64-bit TFLM), which is an upper bound of the M4
arena (measured 73-85 % of it for Mamba, MDCSA, MLP and the step model), so a screening "fits" is conservative on RAM; the winner is
then measured on the device as a whole (``fit``), which is the proof. Shapes: windows ``(B,T,F)``.
"""
from __future__ import annotations

import dataclasses
import math
import time
from pathlib import Path

from keras_tinyloc.errors import TinyLocError

KIB = 1024

# Overheads (bytes) of the windowed sketch (tflm_app/stm32/main.cc) on the Cortex-M4 build: whole-firmware RAM minus
# the M4 arena, and flash minus the model. Measured 2026-12-05 with device_overhead() on the untrained smallest x^3
# size of each family (mlp H16L1, mdcsa H8L1, mamba H4L1; TFLM kit library 7021725c) on three datasets:
#            house-a (T 20, F 8, C 4)   sphere (T 20, F 4, C 9)   uji-zones (T 1, F 520, C 59)
#   mlp      2,824 / 63,592             2,920 / 63,896            7,960 / 82,760
#   mdcsa    3,276 / 107,408            3,372 / 107,712           8,372 / 127,820
#   mamba    3,652 / 127,048            3,716 / 127,352           8,692 / 145,028     (RAM / flash)
# The margin of a family is its largest overhead rounded up to whole KiB. The app's RAM and code grow with T x F
# (window buffer) and C x C (CRF tables), so a dataset larger than uji-zones needs the device measurement.
HOST_MARGINS: dict[str, dict[str, int]] = {
    "mlp": {"ram": 8 * KIB, "flash": 81 * KIB},
    "mdcsa": {"ram": 9 * KIB, "flash": 125 * KIB},
    "mamba": {"ram": 9 * KIB, "flash": 142 * KIB},
}
DEVICES = ("auto", "cortex-m4", "host")


# ----------------------------------------------------------------------------------------------- the target MCU
@dataclasses.dataclass(frozen=True)
class Target:
    """The MCU a search must fit: RAM and flash in bytes, core clock in MHz (for latency), and where it came from."""

    name: str
    ram_bytes: int
    flash_bytes: int
    clock_mhz: float
    core: str
    source: str

    def to_json(self) -> dict:
        return dataclasses.asdict(self)

    def fits(self, ram_bytes: int | None, flash_bytes: int | None) -> bool:
        return ram_bytes is not None and flash_bytes is not None and ram_bytes <= self.ram_bytes \
            and flash_bytes <= self.flash_bytes


def resolve_target(mcu: str | None, ram_kb=None, flash_kb=None, clock_mhz=None) -> Target:
    """The target of ``--mcu NAME`` (the table of :mod:`keras_tinyloc.deploy.mcu`, each of ``--ram-kb``, ``--flash-kb``,
    ``--clock-mhz`` overriding that figure) or of all three options alone (a custom MCU, assumed to run TFLM).

    Raises a one-line TinyLocError for an unknown name, a core that cannot run TFLM (naming the core and the
    MCUs that can), a missing or non-positive figure.
    """
    from keras_tinyloc.deploy import mcu as mcu_table

    for flag, v in (("--ram-kb", ram_kb), ("--flash-kb", flash_kb), ("--clock-mhz", clock_mhz)):
        if v is not None and not (isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)
                                  and v > 0):
            raise TinyLocError(f"{flag} {v!r}: must be a positive number")
    for flag, v in (("--ram-kb", ram_kb), ("--flash-kb", flash_kb)):
        if v is not None and float(v) != int(v):
            raise TinyLocError(f"{flag} {v!r}: must be a whole number of KiB")
    if mcu is None:
        missing = [f for f, v in (("--ram-kb", ram_kb), ("--flash-kb", flash_kb), ("--clock-mhz", clock_mhz))
                   if v is None]
        if missing:
            raise TinyLocError(f"give --mcu NAME ({', '.join(m.name for m in mcu_table.MCUS)}) or a custom MCU with "
                               f"--ram-kb, --flash-kb and --clock-mhz (missing {', '.join(missing)})")
        return Target("custom", int(ram_kb) * KIB, int(flash_kb) * KIB, float(clock_mhz),
                      "custom (assumed to run TFLM: a 32-bit core with a C++17 toolchain)", "--ram-kb/--flash-kb/--clock-mhz")
    m = mcu_table.get_mcu(mcu)
    if not m.runs_tflm:
        able = ", ".join(x.name for x in mcu_table.MCUS if x.runs_tflm)
        raise TinyLocError(f"--mcu {m.name}: its {m.core} core cannot run TensorFlow Lite Micro (it needs a 32-bit core "
                           f"with a C++17 toolchain); choose one of {able}, or a custom MCU with --ram-kb/--flash-kb/"
                           f"--clock-mhz")
    changed = [f"{k} {v:g}" for k, v in (("RAM KB", ram_kb), ("flash KB", flash_kb), ("clock MHz", clock_mhz))
               if v is not None]
    return Target(m.name + (f" ({', '.join(changed)})" if changed else ""),
                  int(ram_kb if ram_kb is not None else m.ram_kb) * KIB,
                  int(flash_kb if flash_kb is not None else m.flash_kb) * KIB,
                  float(clock_mhz if clock_mhz is not None else m.clock_mhz), m.core,
                  "deploy.mcu table" + (" with overrides" if changed else ""))


def resolve_device(device: str) -> str:
    """``host`` or ``cortex-m4`` for ``--device`` (``auto``: cortex-m4 when the TFLM kit, the Arm toolchain and QEMU
    are here). TinyLocError when ``cortex-m4`` is asked for and something is missing."""
    from keras_tinyloc.deploy import m4

    if device not in DEVICES:
        raise TinyLocError(f"--device {device!r}: choose from {', '.join(DEVICES)}")
    if device == "host":
        return "host"
    missing = m4.tools_missing_reason()
    if device == "auto":
        return "host" if missing else "cortex-m4"
    if missing:
        raise TinyLocError(f"--device cortex-m4: {missing}")
    return "cortex-m4"


# ----------------------------------------------------------------------------------------------- sizes
def validation_view(ds):
    """``ds`` with its test split replaced by the validation split (``meta["test_is_validation"]``): what the
    conversions of the search evaluate on, so that no figure of the search comes from the test set."""
    return dataclasses.replace(ds, x_test=ds.x_val, y_test=ds.y_val, meta={**ds.meta, "test_is_validation": True})


def untrained_tagger(cand, ds, seed: int = 0):
    """A fresh CRF tagger of candidate ``cand`` for ``ds``'s ``(T, F)`` and C, every trainable weight moved by
    seeded noise (N(0, 0.05²)) so that it converts like a trained model: the converter stores identical constant
    tensors once, and a fresh model's all-zero biases would make its flatbuffer smaller than the trained one's."""
    import numpy as np

    from keras_tinyloc.models import build_tagger

    tagger = build_tagger(cand.model, ds.input_shape, ds.n_classes, cand.hidden, cand.layers, seed=seed,
                          **cand.model_options())
    rng = np.random.default_rng(seed)
    for w in tagger.trainable_weights:
        v = np.asarray(w.numpy())
        w.assign((v + rng.normal(0.0, 0.05, v.shape)).astype(v.dtype))
    return tagger


def arch_sizes(cand, ds, seed: int = 0) -> dict:
    """Host figures of ``cand``'s architecture: full-int8 conversion of an untrained model (calibrated on training
    windows), tensor names stripped as shipped, minimal TFLM arena (host 64-bit).

    Returns ``{"arch", "params", "flatbuffer_bytes", "arena_bytes", "ops", "seconds"}``.
    """
    from keras_tinyloc.deploy import convert, tflite_inspect, tflm
    from keras_tinyloc.training.train import count_params

    t0 = time.perf_counter()
    tagger = untrained_tagger(cand, ds, seed)
    buf = convert.strip_tensor_names(convert.convert_emitter(tagger.emitter, "int8", ds.x_train, seed=seed))
    arena = tflm.minimal_arena(buf)
    ops = tflite_inspect.summary(tflite_inspect.inspect_tflite(buf))["op_types"]
    return {"arch": cand.arch_key, "family": cand.family, "params": count_params(tagger),
            "flatbuffer_bytes": len(buf), "arena_bytes": int(arena.arena_bytes), "ops": sorted(ops),
            "seconds": round(time.perf_counter() - t0, 2)}


def device_overhead(cand, ds, work: Path, seed: int = 0) -> dict:
    """Measure the app/runtime overhead of ``cand``'s family on the emulated Cortex-M4: an untrained run of ``cand``
    is written to ``work/run`` and converted with ``target="cortex-m4"`` (validation windows only).

    Returns ``{"ram", "flash", "arch", "ops", "device": {arena/ram/flash figures}, "basis": "device"}``: overhead
    RAM = whole-firmware RAM - M4 arena, overhead flash = firmware flash - model bytes.
    """
    from keras_tinyloc.deploy import convert
    from keras_tinyloc.training.train import TrainConfig, run_config, write_run

    tagger = untrained_tagger(cand, ds, seed)
    run = Path(work) / "run"
    tcfg = TrainConfig(dataset=ds.name, model=cand.model, hidden=cand.hidden, layers=cand.layers, out=str(run),
                       seed=seed, verbose=False, model_options=cand.model_options())
    write_run(run, tagger, run_config(tcfg, ds, tagger), {"params": None, "note": "untrained: size calibration"},
              overwrite=True)
    rep = convert.convert_run(convert.ConvertConfig(run_dir=str(run), out=str(Path(work) / "int8"), overwrite=True,
                                                    target="cortex-m4", seed=seed), dataset=validation_view(ds))
    dev = rep["device"]
    return {"ram": int(dev["ram_bytes"] - dev["arena_bytes"]), "flash": int(dev["flash_bytes"] - dev["flash_model_bytes"]),
            "arch": cand.arch_key, "ops": sorted(rep["ops"]), "basis": "device",
            "device": {k: dev[k] for k in ("arena_bytes", "ram_bytes", "ram_split", "flash_bytes", "flash_tflm_bytes",
                                           "flash_model_bytes", "flash_app_bytes", "flash_libc_bytes",
                                           "instructions_per_invoke")},
            "host_arena_bytes": rep["arena_bytes"], "flatbuffer_bytes": rep["flatbuffer_bytes"]}


def host_overhead(family_model: str) -> dict:
    """The stated margin of a family (:data:`HOST_MARGINS`) as an overhead record (``basis`` "host + margin")."""
    m = HOST_MARGINS.get(family_model)
    if m is None:
        raise TinyLocError(f"no stated host margin for family {family_model!r}: run fit with --device cortex-m4")
    return {"ram": int(m["ram"]), "flash": int(m["flash"]), "basis": "host + margin", "arch": None, "ops": None}


def need(sizes: dict, overhead: dict) -> dict:
    """Whole-program need of a model with host figures ``sizes`` (arena, flatbuffer) and an ``overhead`` record:
    ``{"ram_bytes": arena + overhead RAM, "flash_bytes": flatbuffer + overhead flash, "basis"}``."""
    return {"ram_bytes": int(sizes["arena_bytes"]) + int(overhead["ram"]),
            "flash_bytes": int(sizes["flatbuffer_bytes"]) + int(overhead["flash"]),
            "basis": f"{overhead['basis']}: host arena + app RAM, flatbuffer + TFLM/app/libc flash"}
