"""The microcontrollers of the paper's Table 1: whether a model's firmware fits them, and what one inference costs.

Table 1 gives RAM, flash and active current. Added here from the parts' datasheets: the core (and so whether
TensorFlow Lite Micro runs on it: TFLM needs a 32-bit core with a C++17 toolchain; of these parts, the Arm Cortex-M
ones) and the maximum core clock. Where the paper names a family ("STM32L4", "EFM32"), ``part`` says which member
the row's figures match (the paper's current equals the datasheet's µA/MHz times that clock for CC2650, ADuCM3029,
MAX32630, MSP430FR5969 and EFM32 Giant Gecko).

:func:`fit`: a model fits an MCU when its RAM need fits the RAM, its flash need fits the flash, **and** the core runs
TFLM. What "need" means is the caller's: with device figures (:mod:`keras_tinyloc.deploy.m4`) the whole firmware's
flash (TFLM + model + app + libc) and its whole RAM (arena + static + heap + stack); with host figures only the
tensor arena and the flatbuffer — a lower bound of the need, so a host-figure "fits" can be false on the device.
KB means KiB (1024 bytes), as in MCU datasheets.

:func:`device_costs`: latency and energy of one invoke per MCU from an exact instruction count, under the stated
:data:`COST_ASSUMPTIONS` (cycles per instruction, supply voltage).
"""
from __future__ import annotations

import dataclasses

from keras_tinyloc.errors import TinyLocError

KIB = 1024


@dataclasses.dataclass(frozen=True)
class MCU:
    """One microcontroller: RAM and flash in KiB and active current in mA (paper Table 1); core, maximum core
    clock in MHz and whether TFLM runs on it (datasheets); ``part`` = the family member the figures match."""

    name: str
    ram_kb: int
    flash_kb: int
    active_ma: float
    core: str
    clock_mhz: float
    runs_tflm: bool
    part: str

    @property
    def ram_bytes(self) -> int:
        return self.ram_kb * KIB

    @property
    def flash_bytes(self) -> int:
        return self.flash_kb * KIB


MCUS: tuple[MCU, ...] = (
    MCU("MSP430FR5969", 2, 64, 1.6, "MSP430 (16-bit)", 16, False, "MSP430FR5969 (100 µA/MHz at 16 MHz)"),
    MCU("ATmega328P", 2, 32, 1.5, "AVR (8-bit)", 20, False, "ATmega328P"),
    MCU("CC2650", 20, 128, 2.9, "Arm Cortex-M3", 48, True, "CC2650 (61 µA/MHz at 48 MHz)"),
    MCU("RL78/G13", 32, 512, 2.11, "RL78 (16-bit)", 32, False, "RL78/G13"),
    MCU("ADuCM3029", 64, 128, 0.96, "Arm Cortex-M3", 26, True, "ADuCM3029 (38 µA/MHz at 26 MHz)"),
    MCU("STM32L4", 64, 256, 4.0, "Arm Cortex-M4F", 80, True, "STM32L4 (80 MHz)"),
    MCU("MAX32630", 512, 2048, 10.1, "Arm Cortex-M4F", 96, True, "MAX32630 (106 µA/MHz at 96 MHz)"),
    MCU("EFM32", 128, 1024, 10.5, "Arm Cortex-M3", 48, True, "EFM32 Giant Gecko (219 µA/MHz at 48 MHz)"),
)

# The paper's RAM classes and the MCU whose RAM and flash define each (a budget: the RL78/G13 that defines the
# 32 KB class cannot run TFLM itself).
RAM_CLASSES: dict[str, str] = {"20 KB": "CC2650", "32 KB": "RL78/G13", "64 KB": "ADuCM3029"}

COST_ASSUMPTIONS = {
    "cycles_per_instruction": 1.0,
    "supply_v": 3.0,
    "note": "latency = instructions x CPI / clock, with CPI 1.0: a lower bound (zero-wait-state memory; flash wait "
            "states, multi-cycle loads, multiplies and divides raise it); energy = latency x active current (paper "
            "Table 1) x 3.0 V. Counts are from the Cortex-M4 build (CMSIS-NN with DSP instructions): a Cortex-M3 "
            "has no DSP/SIMD instructions and runs more of them.",
}


def get_mcu(name: str) -> MCU:
    for m in MCUS:
        if m.name == name:
            return m
    raise TinyLocError(f"unknown MCU {name!r} (choose from {', '.join(m.name for m in MCUS)})")


def fit(ram_bytes: int | None, flash_bytes: int, needs_tflm: bool = True) -> dict[str, dict]:
    """Per MCU: ``{"ram": need <= RAM, "flash": need <= flash, "runs_tflm", "fits": all three}``.

    ``ram_bytes`` None (not deployable / not measured) makes ``ram`` and ``fits`` False. ``needs_tflm`` False (a
    model that does not run in TFLM, e.g. a scikit-learn baseline's own C code) drops the core condition.
    """
    out = {}
    for m in MCUS:
        ram_ok = ram_bytes is not None and ram_bytes <= m.ram_bytes
        flash_ok = flash_bytes <= m.flash_bytes
        out[m.name] = {"ram": bool(ram_ok), "flash": bool(flash_ok), "runs_tflm": m.runs_tflm,
                       "fits": bool(ram_ok and flash_ok and (m.runs_tflm or not needs_tflm))}
    return out


def ram_classes(ram_bytes: int | None, flash_bytes: int) -> dict[str, bool]:
    """The paper's classes as budgets: ``{"20 KB": RAM and flash within CC2650's, "32 KB": within RL78/G13's,
    "64 KB": within ADuCM3029's}`` (the core is not required to run TFLM: see :data:`RAM_CLASSES`)."""
    f = fit(ram_bytes, flash_bytes)
    return {cls: f[name]["ram"] and f[name]["flash"] for cls, name in RAM_CLASSES.items()}


def device_costs(instructions: int, ram_bytes: int, flash_bytes: int, cpi: float | None = None,
                 supply_v: float | None = None) -> dict[str, dict]:
    """Per MCU: :func:`fit` on whole-firmware figures, plus ``latency_ms``, ``energy_uj`` and ``charge_uc`` of one
    invoke of ``instructions`` instructions at the MCU's clock and active current (None where TFLM cannot run).

    latency = instructions x CPI / clock; charge = latency x current; energy = charge x supply voltage
    (defaults: :data:`COST_ASSUMPTIONS`).
    """
    cpi = COST_ASSUMPTIONS["cycles_per_instruction"] if cpi is None else float(cpi)
    volts = COST_ASSUMPTIONS["supply_v"] if supply_v is None else float(supply_v)
    if instructions < 0 or cpi <= 0 or volts <= 0:
        raise TinyLocError(f"device_costs: instructions {instructions}, CPI {cpi}, supply {volts} V must be positive")
    fits = fit(ram_bytes, flash_bytes)
    out = {}
    for m in MCUS:
        row = dict(fits[m.name])
        if m.runs_tflm:
            seconds = instructions * cpi / (m.clock_mhz * 1e6)
            charge_uc = seconds * m.active_ma * 1e3  # mA x s = mC; x 1e3 = µC
            row.update(latency_ms=round(seconds * 1e3, 4), charge_uc=round(charge_uc, 4),
                       energy_uj=round(charge_uc * volts, 4))
        else:
            row.update(latency_ms=None, charge_uc=None, energy_uj=None)
        out[m.name] = row
    return out
