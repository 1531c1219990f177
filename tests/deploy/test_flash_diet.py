"""flash_diet: variants of one sketch on the cached -Os library. Registering every op links more TFLM than exactly the
model's; CMSIS-NN's int8-only registrations link less and still give the host TFLM's outputs; the model's own bytes
never change; without op names the sketch no longer links TFLM's op-name table, but TFLM's messages do. (The -O2,
stripped-strings and release variants need their own library builds: benchmarks/device.py.)"""
from __future__ import annotations

import numpy as np
import pytest
from helpers import tiny_int8_mlp

from keras_tinyloc.deploy import export_c, flash_diet, tflm
from keras_tinyloc.errors import TinyLocError


@pytest.fixture(scope="module")
def mlp():
    """An int8 MLP (x -> Dense(16)+ReLU -> Dense(4), T=1, F=8) and device settings for it."""
    from keras_tinyloc.deploy import tflite_inspect

    buf = tiny_int8_mlp(seed=1)
    info = tflite_inspect.inspect_tflite(buf)
    st = export_c.DeviceSettings(
        model_name="diet_test", window=1, hop=1, n_features=8, n_classes=4, class_names=list("abcd"),
        feature_names=[f"ap{i}" for i in range(8)], scale_low=[-100.0] * 8, scale_high=[-40.0] * 8, fill_dbm=-120.0,
        input_scale=info.input().scale, input_zero_point=info.input().zero_point, output_scale=info.output().scale,
        output_zero_point=info.output().zero_point, transitions=np.zeros((4, 4)).tolist(), start=[0.0] * 4,
        end=[0.0] * 4, arena_bytes=tflm.minimal_arena(buf).arena_bytes, arena_margin_bytes=256,
        ops=tflite_inspect.summary(info)["op_types"])
    return buf, st


def test_variants_on_the_default_library(mlp, m4_lib, tmp_path):
    buf, st = mlp
    rows = {r["variant"]: r for r in flash_diet.measure_variants(buf, st, ["default", "all_ops", "int8_kernels",
                                                                            "no_op_names"])}
    base, every, int8, names = rows["default"], rows["all_ops"], rows["int8_kernels"], rows["no_op_names"]
    for r in rows.values():
        assert r["flash_bytes"] == sum(r[f"flash_{p}_bytes"] for p in ("tflm", "model", "app", "libc"))
        assert r["flash_model_bytes"] == base["flash_model_bytes"] and r["library_key"] == m4_lib.key[:12]
    assert every["flash_tflm_bytes"] > base["flash_tflm_bytes"] + 20_000  # ~100 kernels instead of one
    assert "arena_bytes" not in every  # that board would refuse to start: not run
    assert int8["flash_tflm_bytes"] < base["flash_tflm_bytes"]  # FULLY_CONNECTED without its float/int16 paths
    assert base["outputs_identical_share"] == int8["outputs_identical_share"] == 1.0
    assert int8["arena_bytes"] <= base["arena_bytes"] + 64
    # TFLM's table of ~200 op names (pointers + strings) leaves the sketch, but this library's own error messages
    # name ops too: the table is linked from TFLM instead, and the firmware is as large (it saves flash only with
    # TF_LITE_STRIP_ERROR_STRINGS, the `smallest` variant)
    assert names["flash_app_bytes"] < base["flash_app_bytes"] - 2_500
    assert abs(names["flash_bytes"] - base["flash_bytes"]) <= 64 and names["outputs_identical_share"] == 1.0


def test_unknown_variant():
    with pytest.raises(TinyLocError, match="variant 'tiny'"):
        flash_diet.get_variant("tiny")
    assert flash_diet.VARIANTS[0].name == "default" and not flash_diet.get_variant("all_ops").runs
