"""m4: a model on the emulated Cortex-M4F (real TFLM from the kit, QEMU mps2-an386). The minimal arena is re-checked
in fresh emulators (works; 16 bytes less fails), outputs are compared byte for byte with the host TFLM wheel,
instruction counts are repeatable, and the device figures add up from their parts (flash from the linker map, RAM
from arena + static + heap + stack) and give the MCU table's latency/energy by its stated formula."""
from __future__ import annotations

import numpy as np
import pytest

from keras_tinyloc.deploy import export_c, m4, mcu, qemu, tflm

T, F, C = 12, 5, 4


@pytest.fixture(scope="module")
def mamba():
    """A small int8 Mamba emitter (T=12, F=5, C=4; 16 op types) and device settings carrying its quantization."""
    from keras_tinyloc.deploy import convert, tflite_inspect
    from keras_tinyloc.models.mamba import calibrate_state_scales

    from helpers import mamba_windows, small_mamba

    em, x = small_mamba(), mamba_windows(64)
    calibrate_state_scales(em, x)
    buf = convert.strip_tensor_names(convert.convert_emitter(em, "int8", x, n_calibration=64))
    info = tflite_inspect.inspect_tflite(buf)
    rng = np.random.default_rng(3)
    st = export_c.DeviceSettings(
        model_name="m4_test", window=T, n_features=F, n_classes=C, class_names=[f"room{i}" for i in range(C)],
        feature_names=[f"ap{i}" for i in range(F)], scale_low=[-100.0] * F, scale_high=[-40.0] * F,
        fill_dbm=-120.0, input_scale=info.input().scale, input_zero_point=info.input().zero_point,
        output_scale=info.output().scale, output_zero_point=info.output().zero_point,
        transitions=rng.normal(0, 1, (C, C)).tolist(), start=[0.0] * C, end=[0.0] * C, hop=4,
        arena_bytes=tflm.minimal_arena(buf).arena_bytes, arena_margin_bytes=256,
        ops=tflite_inspect.summary(info)["op_types"])
    return buf, st


@pytest.fixture(scope="module")
def probe(mamba, m4_lib, tmp_path_factory):
    """The probe firmware linked for the Mamba (shared by the tests below)."""
    return m4.build_probe(mamba[0], m4_lib, tmp_path_factory.mktemp("probe"))


def test_minimal_arena_rechecked_in_fresh_emulators(mamba, probe):
    buf, st = mamba
    found = m4.minimal_arena(probe.path)
    assert found.arena_bytes % 16 == 0 and found.probes >= 3
    assert qemu.run(probe.path, ["arena", str(found.arena_bytes)]).returncode == 0
    smaller = qemu.run(probe.path, ["arena", str(found.arena_bytes - 16)])
    assert smaller.returncode != 0  # 1 = AllocateTensors failed cleanly, 3 = TFLM crashed
    assert found.used_reported <= found.arena_bytes
    # the 64-bit host needs more (bigger pointers and structs): the host figure is an upper bound
    assert found.arena_bytes < st.arena_bytes


def test_arena_record_accounts_for_every_node(mamba, probe):
    from keras_tinyloc.deploy import tflite_inspect

    buf, _ = mamba
    rec = m4.arena_record(probe.path, 64 * 1024)
    info = tflite_inspect.inspect_tflite(buf)
    assert rec["nodes"] == len(info.ops) == len(rec["per_node"]) and rec["tensors"] == len(info.tensors)
    assert [n["op"] for n in rec["per_node"]] == [op.name for op in info.ops]
    t = rec["types"]
    # 32-bit structs: NodeAndRegistration = TfLiteNode (7 words) + a registration pointer; TfLiteEvalTensor 3 words
    assert t["node_and_registration"]["count"] == rec["nodes"] and t["node_and_registration"]["used"] == 32 * rec["nodes"]
    assert t["eval_tensors"]["count"] == rec["tensors"] and t["eval_tensors"]["used"] == 12 * rec["tensors"]
    # the per-node persistent buffers are RecordingMicroAllocator's total for them but a few interpreter-owned bytes
    per_node = sum(n["init"] + n["prepare"] for n in rec["per_node"])
    assert per_node + rec["persistent_buffers_outside_nodes"] == t["persistent_buffers"]["used"] and per_node > 0
    assert 0 <= rec["persistent_buffers_outside_nodes"] <= 256
    assert sum(v["used"] for v in t.values()) <= rec["tail"] and rec["head"] + rec["tail"] == rec["total"]


def test_outputs_match_the_host_wheel_and_counts_repeat(mamba, probe, tmp_path):
    buf, _ = mamba
    xs = m4.random_inputs(buf, 12, seed=5)
    got, counts = m4.run_inputs(probe.path, 64 * 1024, buf, xs, tmp_path)
    want = m4.host_outputs(buf, xs)
    assert len(got) == len(want) == 1 and got[0].shape == (12, 1, T, C) and got[0].dtype == np.int8
    np.testing.assert_array_equal(got[0], want[0])
    assert len(set(map(tuple, got[0].reshape(12, -1)))) > 1  # the inputs differ, so do the outputs
    _, again = m4.run_inputs(probe.path, 64 * 1024, buf, xs, tmp_path)
    assert again == counts and min(counts) > 10_000  # exact counts: the same inputs, the same count


def test_probe_header_lists_exactly_the_model_ops():
    text = m4.probe_header(["FULLY_CONNECTED", "RESHAPE", "FULLY_CONNECTED"])
    assert "kProbeNumOps = 2;" in text
    int8, plain = text.split("#if defined(TINYLOC_INT8_KERNELS)")[1].split("#else")
    assert plain.count("resolver.Add") == int8.count("resolver.Add") == 2
    assert "resolver.AddFullyConnected(tflite::Register_FULLY_CONNECTED_INT8())" in int8
    assert "resolver.AddFullyConnected()" in plain and "resolver.AddReshape()" in plain


def test_measure_device_windowed_figures_add_up(mamba, m4_lib, tmp_path):
    buf, st = mamba
    dev = m4.measure_device(buf, st, n_random=8, lib=m4_lib, work=tmp_path)
    parts = [dev[f"flash_{p}_bytes"] for p in ("tflm", "model", "app", "libc")]
    assert dev["flash_bytes"] == sum(parts) and len(buf) <= dev["flash_model_bytes"] <= len(buf) + 64
    assert dev["flash_tflm_bytes"] > dev["flash_app_bytes"] > 1000 and dev["flash_libc_bytes"] > 0
    r = dev["ram_split"]
    assert dev["ram_bytes"] == r["arena"] + r["static"] + r["heap"] + r["stack"] and r["arena"] == dev["arena_bytes"]
    assert 200 < r["stack"] < 16 * 1024 and r["heap"] == 0 and r["static"] > 0
    assert dev["outputs_identical_share"] == 1.0 and dev["n_compared"] == 8
    lo, hi = dev["instructions_range"]
    assert lo <= dev["instructions_per_invoke"] <= hi and dev["invoke_per"] == "window"
    fit = mcu.fit(dev["ram_bytes"], dev["flash_bytes"])
    cpi = mcu.COST_ASSUMPTIONS["cycles_per_instruction"]
    for m in mcu.MCUS:
        row = dev["mcu"][m.name]
        assert {k: row[k] for k in fit[m.name]} == fit[m.name]
        if m.runs_tflm:
            want_ms = dev["instructions_per_invoke"] * cpi / (m.clock_mhz * 1e3)
            assert row["latency_ms"] == pytest.approx(want_ms, abs=1e-4)
            assert row["energy_uj"] == pytest.approx(want_ms * m.active_ma * mcu.COST_ASSUMPTIONS["supply_v"], rel=1e-3)
        else:
            assert row["latency_ms"] is None and not row["fits"]


def test_measure_device_step_model_uses_the_streaming_sketch(m4_lib, tmp_path):
    from keras_tinyloc.deploy import streaming, tflite_inspect
    from keras_tinyloc.models.mamba import calibrate_state_scales
    from keras_tinyloc.models.mamba_step import build_step_model, state_shapes_from_model

    from helpers import mamba_windows, small_mamba

    em, x = small_mamba(), mamba_windows(32)
    calibrate_state_scales(em, x)
    step = build_step_model(em)
    buf, io = streaming.convert_step_model(step, x, n_windows=16, n_calibration=100)
    info = tflite_inspect.inspect_tflite(buf)
    xq = io["input_q"][io["inputs"].index("x_t")]
    eq = io["output_q"][io["outputs"].index("emissions")]
    st = export_c.DeviceSettings(
        model_name="step_test", window=1, hop=1, n_features=F, n_classes=C, class_names=list("abcd"),
        feature_names=list("vwxyz"), scale_low=[-100.0] * F, scale_high=[-40.0] * F, fill_dbm=-120.0,
        input_scale=xq[0], input_zero_point=xq[1], output_scale=eq[0], output_zero_point=eq[1],
        transitions=np.zeros((C, C)).tolist(), start=[0.0] * C, end=[0.0] * C, arena_bytes=64 * 1024,
        arena_margin_bytes=256, ops=tflite_inspect.summary(info)["op_types"])
    sizes = {name: int(np.prod(shape)) for name, shape in state_shapes_from_model(step)}
    dev = m4.measure_device(buf, st, step_io={"io": io, "state_sizes": sizes, "lag": 3}, n_random=6, lib=m4_lib,
                            work=tmp_path)
    assert dev["app"].startswith("tflm_app/arduino/tflm_app_stream") and dev["invoke_per"] == "200 ms step"
    assert dev["outputs_identical_share"] == 1.0 and dev["n_compared"] == 6
    assert dev["flash_bytes"] == sum(dev[f"flash_{p}_bytes"] for p in ("tflm", "model", "app", "libc"))
    assert dev["ram_bytes"] == sum(dev["ram_split"].values()) and dev["ram_split"]["stack"] > 200
