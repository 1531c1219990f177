"""MCU table (paper Table 1 + core, clock, runs TFLM), the fit rule at its byte boundaries (a core that cannot run
TFLM never fits a TFLM model), the RAM classes as budgets, and latency/energy against the stated formula."""
import pytest

from keras_tinyloc.deploy import mcu
from keras_tinyloc.errors import TinyLocError


def test_table_has_the_papers_eight_mcus():
    assert [m.name for m in mcu.MCUS] == ["MSP430FR5969", "ATmega328P", "CC2650", "RL78/G13", "ADuCM3029",
                                           "STM32L4", "MAX32630", "EFM32"]
    assert (mcu.get_mcu("CC2650").ram_kb, mcu.get_mcu("CC2650").flash_kb) == (20, 128)
    assert (mcu.get_mcu("RL78/G13").ram_kb, mcu.get_mcu("RL78/G13").flash_kb) == (32, 512)
    assert (mcu.get_mcu("ADuCM3029").ram_kb, mcu.get_mcu("ADuCM3029").flash_kb) == (64, 128)
    # TFLM runs on the 32-bit Arm Cortex-M parts only; the 8/16-bit ones cannot run it
    assert [m.name for m in mcu.MCUS if not m.runs_tflm] == ["MSP430FR5969", "ATmega328P", "RL78/G13"]
    assert all(m.core.startswith("Arm Cortex-M") == m.runs_tflm for m in mcu.MCUS)
    # where the part's datasheet gives µA/MHz, the paper's current is that times the clock (within 5 %)
    for name, ua_per_mhz in (("CC2650", 61), ("ADuCM3029", 38), ("MAX32630", 106), ("MSP430FR5969", 100),
                             ("EFM32", 219)):
        m = mcu.get_mcu(name)
        assert m.active_ma == pytest.approx(ua_per_mhz * m.clock_mhz / 1000, rel=0.05), name
    with pytest.raises(TinyLocError, match="unknown MCU 'ESP32'"):
        mcu.get_mcu("ESP32")


def test_fit_boundaries_are_inclusive_in_kib():
    f = mcu.fit(20 * 1024, 128 * 1024)
    assert f["CC2650"] == {"ram": True, "flash": True, "runs_tflm": True, "fits": True}
    assert mcu.fit(20 * 1024 + 1, 1000)["CC2650"]["fits"] is False
    f = mcu.fit(1000, 128 * 1024 + 1)
    assert not f["CC2650"]["fits"] and not f["ADuCM3029"]["fits"] and f["STM32L4"]["fits"]
    # the RL78/G13 has the RAM and flash, but its core does not run TFLM
    assert f["RL78/G13"] == {"ram": True, "flash": True, "runs_tflm": False, "fits": False}
    assert mcu.fit(1000, 128 * 1024 + 1, needs_tflm=False)["RL78/G13"]["fits"]
    assert not mcu.fit(2048, 100)["ATmega328P"]["fits"] and mcu.fit(2048, 100, needs_tflm=False)["ATmega328P"]["fits"]
    assert not mcu.fit(2049, 100, needs_tflm=False)["ATmega328P"]["fits"]


def test_ram_classes_are_budgets_and_unmeasured_arena():
    assert mcu.ram_classes(30 * 1024, 200 * 1024) == {"20 KB": False, "32 KB": True, "64 KB": False}
    assert mcu.ram_classes(60 * 1024, 100 * 1024) == {"20 KB": False, "32 KB": False, "64 KB": True}
    none = mcu.fit(None, 10)
    assert not any(v["fits"] or v["ram"] for v in none.values()) and all(v["flash"] for v in none.values())


def test_device_costs_follow_the_stated_formula():
    n = 3_430_000
    costs = mcu.device_costs(n, 36_000, 150_000)
    stm = costs["STM32L4"]  # 80 MHz, 4.0 mA, CPI 1, 3.0 V: 42.875 ms, 171.5 µC, 514.5 µJ
    assert stm["latency_ms"] == pytest.approx(n / 80e6 * 1e3) == pytest.approx(42.875)
    assert stm["charge_uc"] == pytest.approx(42.875e-3 * 4.0e-3 * 1e6)
    assert stm["energy_uj"] == pytest.approx(stm["charge_uc"] * 3.0)
    assert stm["fits"] and not costs["CC2650"]["fits"]  # 36,000 B of RAM > 20 KiB
    assert costs["RL78/G13"]["latency_ms"] is None and costs["RL78/G13"]["energy_uj"] is None
    slow = mcu.device_costs(n, 36_000, 150_000, cpi=2.0, supply_v=1.8)["STM32L4"]
    assert slow["latency_ms"] == pytest.approx(2 * stm["latency_ms"]) and slow["energy_uj"] == pytest.approx(
        2 * stm["charge_uc"] * 1.8)
    with pytest.raises(TinyLocError, match="CPI 0.0"):
        mcu.device_costs(n, 1, 1, cpi=0)
