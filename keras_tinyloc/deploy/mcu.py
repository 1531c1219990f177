"""The microcontrollers of the paper's Table 1 and whether a converted model fits them.

A model fits an MCU when its TFLM tensor arena (activations + interpreter bookkeeping) fits the RAM and its
flatbuffer (weights + graph) fits the flash. KB here means KiB (1024 bytes), as in MCU datasheets.
"""
from __future__ import annotations

import dataclasses

KIB = 1024


@dataclasses.dataclass(frozen=True)
class MCU:
    """One microcontroller: RAM and flash in KiB, active current in mA (paper Table 1)."""

    name: str
    ram_kb: int
    flash_kb: int
    active_ma: float

    @property
    def ram_bytes(self) -> int:
        return self.ram_kb * KIB

    @property
    def flash_bytes(self) -> int:
        return self.flash_kb * KIB


MCUS: tuple[MCU, ...] = (
    MCU("MSP430FR5969", 2, 64, 1.6),
    MCU("ATmega328P", 2, 32, 1.5),
    MCU("CC2650", 20, 128, 2.9),
    MCU("RL78/G13", 32, 512, 2.11),
    MCU("ADuCM3029", 64, 128, 0.96),
    MCU("STM32L4", 64, 256, 4.0),
    MCU("MAX32630", 512, 2048, 10.1),
    MCU("EFM32", 128, 1024, 10.5),
)

# The paper's RAM classes and the MCU that defines each.
RAM_CLASSES: dict[str, str] = {"20 KB": "CC2650", "32 KB": "RL78/G13", "64 KB": "ADuCM3029"}


def get_mcu(name: str) -> MCU:
    from keras_tinyloc.errors import TinyLocError

    for m in MCUS:
        if m.name == name:
            return m
    raise TinyLocError(f"unknown MCU {name!r} (choose from {', '.join(m.name for m in MCUS)})")


def fit(arena_bytes: int | None, flatbuffer_bytes: int) -> dict[str, dict]:
    """Per MCU: ``{"ram": arena <= RAM, "flash": flatbuffer <= flash, "fits": both}``.

    ``arena_bytes`` None (not deployable / not measured) makes ``ram`` and ``fits`` False.
    """
    out = {}
    for m in MCUS:
        ram_ok = arena_bytes is not None and arena_bytes <= m.ram_bytes
        flash_ok = flatbuffer_bytes <= m.flash_bytes
        out[m.name] = {"ram": bool(ram_ok), "flash": bool(flash_ok), "fits": bool(ram_ok and flash_ok)}
    return out


def ram_classes(arena_bytes: int | None, flatbuffer_bytes: int) -> dict[str, bool]:
    """The paper's classes: ``{"20 KB": fits CC2650, "32 KB": fits RL78/G13, "64 KB": fits ADuCM3029}``."""
    f = fit(arena_bytes, flatbuffer_bytes)
    return {cls: f[name]["fits"] for cls, name in RAM_CLASSES.items()}
