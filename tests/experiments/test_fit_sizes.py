"""fit_sizes: the target MCU, the need arithmetic, and the premise of screening (an untrained architecture converts
to the same arena and flatbuffer size as the trained model)."""
from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from helpers import synth_dataset
from keras_tinyloc.deploy import mcu
from keras_tinyloc.errors import TinyLocError
from keras_tinyloc.experiments import fit_sizes
from keras_tinyloc.experiments.search_space import Candidate


def test_table_mcu_and_overrides():
    t = fit_sizes.resolve_target("STM32L4")
    assert (t.ram_bytes, t.flash_bytes, t.clock_mhz) == (64 * 1024, 256 * 1024, 80.0)
    t = fit_sizes.resolve_target("CC2650", flash_kb=256)
    assert t.name == "CC2650 (flash KB 256)" and t.flash_bytes == 256 * 1024 and t.ram_bytes == 20 * 1024
    t = fit_sizes.resolve_target(None, ram_kb=48, flash_kb=512, clock_mhz=120)
    assert (t.name, t.ram_bytes, t.flash_bytes, t.clock_mhz) == ("custom", 48 * 1024, 512 * 1024, 120.0)
    assert t.fits(48 * 1024, 512 * 1024) and not t.fits(48 * 1024 + 1, 1) and not t.fits(None, 1)


@pytest.mark.parametrize("args, msg", [
    (("MSP430FR5969",), "--mcu MSP430FR5969: its MSP430 (16-bit) core cannot run TensorFlow Lite Micro (it needs a "
                        "32-bit core with a C++17 toolchain); choose one of CC2650, ADuCM3029, STM32L4, MAX32630, EFM32, "
                        "or a custom MCU with --ram-kb/--flash-kb/--clock-mhz"),
    (("RL78/G13",), "--mcu RL78/G13: its RL78 (16-bit) core cannot run TensorFlow Lite Micro (it needs a 32-bit core "
                    "with a C++17 toolchain); choose one of CC2650, ADuCM3029, STM32L4, MAX32630, EFM32, or a custom MCU "
                    "with --ram-kb/--flash-kb/--clock-mhz"),
    (("nRF52",), "unknown MCU 'nRF52' (choose from MSP430FR5969, ATmega328P, CC2650, RL78/G13, ADuCM3029, STM32L4, "
                 "MAX32630, EFM32)"),
    ((None, 64, None, 80), "give --mcu NAME (MSP430FR5969, ATmega328P, CC2650, RL78/G13, ADuCM3029, STM32L4, "
                           "MAX32630, EFM32) or a custom MCU with --ram-kb, --flash-kb and --clock-mhz (missing "
                           "--flash-kb)"),
    (("CC2650", -1), "--ram-kb -1: must be a positive number"),
    (("CC2650", 20.5), "--ram-kb 20.5: must be a whole number of KiB"),
    (("CC2650", None, None, float("nan")), "--clock-mhz nan: must be a positive number"),
])
def test_bad_targets_are_one_line(args, msg):
    with pytest.raises(TinyLocError) as exc:
        fit_sizes.resolve_target(*args)
    assert str(exc.value) == msg


def test_every_table_mcu_that_runs_tflm_is_accepted():
    ok = [m.name for m in mcu.MCUS if m.runs_tflm]
    assert [fit_sizes.resolve_target(n).name for n in ok] == ok


def test_need_adds_the_overhead():
    n = fit_sizes.need({"arena_bytes": 1000, "flatbuffer_bytes": 5000}, {"ram": 7, "flash": 11, "basis": "device"})
    assert (n["ram_bytes"], n["flash_bytes"]) == (1007, 5011) and n["basis"].startswith("device:")
    m = fit_sizes.host_overhead("mamba")
    assert (m["ram"], m["flash"]) == (fit_sizes.HOST_MARGINS["mamba"]["ram"], fit_sizes.HOST_MARGINS["mamba"]["flash"])
    with pytest.raises(TinyLocError, match="no stated host margin for family 'lstm'"):
        fit_sizes.host_overhead("lstm")


def test_validation_view_replaces_the_test_split():
    ds = synth_dataset(n=20)
    v = fit_sizes.validation_view(ds)
    assert np.array_equal(v.x_test, ds.x_val) and np.array_equal(v.y_test, ds.y_val) and v.meta["test_is_validation"]
    assert np.array_equal(v.x_train, ds.x_train)


@pytest.mark.parametrize("cand", [Candidate("mlp", 16, 1, power=3), Candidate("mamba", 4, 1)])
def test_untrained_sizes_equal_the_trained_models(cand):
    """The premise of screening before training: arena and flatbuffer depend on the graph, not on the weights."""
    from keras_tinyloc.deploy import convert, tflm

    ds = synth_dataset(T=4, F=5, C=3, n=60)
    s = fit_sizes.arch_sizes(cand, ds, seed=0)
    tagger = fit_sizes.untrained_tagger(cand, ds, seed=1)  # other weights: a few steps of training
    tagger.compile(optimizer="adam")
    tagger.fit(ds.x_train, ds.y_train, epochs=3, batch_size=16, verbose=0)
    buf = convert.strip_tensor_names(convert.convert_emitter(tagger.emitter, "int8", ds.x_train, seed=0))
    assert len(buf) == s["flatbuffer_bytes"]
    assert tflm.minimal_arena(buf).arena_bytes == s["arena_bytes"]
    assert s["arch"] == cand.arch_key and s["params"] > 0 and "FULLY_CONNECTED" in s["ops"]


def test_resolve_device():
    assert fit_sizes.resolve_device("host") == "host"
    with pytest.raises(TinyLocError, match=r"^--device 'gpu': choose from auto, cortex-m4, host$"):
        fit_sizes.resolve_device("gpu")
    from keras_tinyloc.deploy import m4

    assert fit_sizes.resolve_device("auto") == ("host" if m4.tools_missing_reason() else "cortex-m4")
    assert dataclasses.is_dataclass(fit_sizes.Target)
