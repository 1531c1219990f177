"""MCU table (paper Table 1) and the fit rule at its byte boundaries."""
from keras_tinyloc.deploy import mcu


def test_table_has_the_papers_eight_mcus():
    assert [m.name for m in mcu.MCUS] == ["MSP430FR5969", "ATmega328P", "CC2650", "RL78/G13", "ADuCM3029",
                                           "STM32L4", "MAX32630", "EFM32"]
    assert (mcu.get_mcu("CC2650").ram_kb, mcu.get_mcu("CC2650").flash_kb) == (20, 128)
    assert (mcu.get_mcu("RL78/G13").ram_kb, mcu.get_mcu("RL78/G13").flash_kb) == (32, 512)
    assert (mcu.get_mcu("ADuCM3029").ram_kb, mcu.get_mcu("ADuCM3029").flash_kb) == (64, 128)


def test_fit_boundaries_are_inclusive_in_kib():
    f = mcu.fit(20 * 1024, 128 * 1024)
    assert f["CC2650"] == {"ram": True, "flash": True, "fits": True}
    assert mcu.fit(20 * 1024 + 1, 1000)["CC2650"]["fits"] is False
    f = mcu.fit(1000, 128 * 1024 + 1)
    assert not f["CC2650"]["fits"] and not f["ADuCM3029"]["fits"] and f["RL78/G13"]["fits"]
    assert mcu.fit(2048, 100)["ATmega328P"]["fits"] and not mcu.fit(2049, 100)["ATmega328P"]["fits"]


def test_ram_classes_and_unmeasured_arena():
    assert mcu.ram_classes(30 * 1024, 200 * 1024) == {"20 KB": False, "32 KB": True, "64 KB": False}
    assert mcu.ram_classes(60 * 1024, 100 * 1024) == {"20 KB": False, "32 KB": False, "64 KB": True}
    none = mcu.fit(None, 10)
    assert not any(v["fits"] or v["ram"] for v in none.values()) and all(v["flash"] for v in none.values())
