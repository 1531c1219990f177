"""Shared int8-friendly layers (Mamba part): RMSNorm and silu against NumPy, save/load, int8 conversion ops."""
import keras
import numpy as np
import pytest

from keras_tinyloc.models.layers import RMSNorm, silu


def _rmsnorm_np(x, w, eps):
    x = x.astype(np.float64)
    return x / np.sqrt(np.mean(x**2, axis=-1, keepdims=True) + eps) * w


def test_rmsnorm_matches_numpy():
    rng = np.random.default_rng(0)
    x = rng.normal(0, 3, (2, 5, 7)).astype("float32")
    layer = RMSNorm(epsilon=1e-3)
    layer.build(x.shape)
    w = rng.normal(1, 0.5, 7).astype("float32")
    layer.set_weights([w])
    np.testing.assert_allclose(np.asarray(layer(x)), _rmsnorm_np(x, w, 1e-3), rtol=1e-5, atol=1e-6)


def test_silu_matches_numpy():
    x = np.linspace(-8, 8, 33).astype("float32")
    np.testing.assert_allclose(np.asarray(silu(x)), x / (1 + np.exp(-x.astype(np.float64))), rtol=1e-5, atol=1e-7)


def test_rmsnorm_keras_round_trip(tmp_path):
    inp = keras.Input((4, 6))
    model = keras.Model(inp, RMSNorm(epsilon=1e-4, name="n")(inp))
    model.get_layer("n").set_weights([np.arange(1, 7, dtype="float32")])
    model.save(tmp_path / "m.keras")
    loaded = keras.saving.load_model(tmp_path / "m.keras")
    assert loaded.get_layer("n").epsilon == pytest.approx(1e-4)
    x = np.random.default_rng(1).normal(size=(3, 4, 6)).astype("float32")
    np.testing.assert_array_equal(np.asarray(loaded(x)), np.asarray(model(x)))


def test_rmsnorm_converts_to_int8_l2_normalization():
    import tensorflow as tf
    from ai_edge_litert.interpreter import Interpreter

    inp = keras.Input(batch_shape=(1, 4, 6))
    model = keras.Model(inp, RMSNorm()(inp))
    model.layers[-1].set_weights([np.linspace(0.5, 2.0, 6, dtype="float32")])
    rng = np.random.default_rng(2)

    def windows(n):  # rows whose magnitudes span 0.02..2: the int8 MEAN + RSQRT form failed on the small ones
        return (rng.normal(size=(n, 1, 4, 6)) * 10 ** rng.uniform(-1.7, 0.3, (n, 1, 4, 1))).astype("float32")

    conv = tf.lite.TFLiteConverter.from_keras_model(model)
    conv.optimizations = [tf.lite.Optimize.DEFAULT]
    conv.representative_dataset = lambda: iter([[w] for w in windows(50)])
    conv.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    conv.inference_input_type = conv.inference_output_type = tf.int8
    it = Interpreter(model_content=conv.convert())
    op_names = {op["op_name"] for op in it._get_ops_details()}
    assert "L2_NORMALIZATION" in op_names
    assert not op_names & {"SQUARE", "SQRT", "RSQRT", "DIV", "DEQUANTIZE", "QUANTIZE"}
    assert {t["dtype"] for t in it.get_tensor_details()} <= {np.int8, np.int32}
    it.allocate_tensors()
    i_det, o_det = it.get_input_details()[0], it.get_output_details()[0]
    (si, zi), (so, zo) = i_det["quantization"], o_det["quantization"]
    for w in windows(10):
        it.set_tensor(i_det["index"], np.clip(np.round(w / si) + zi, -128, 127).astype(np.int8))
        it.invoke()
        y8 = (it.get_tensor(o_det["index"]).astype(np.float32) - zo) * so
        big = np.abs(w).max(axis=-1, keepdims=True) > 4 * si  # rows the int8 input can still resolve
        err = np.abs(y8 - np.asarray(model(w)))[np.broadcast_to(big, w.shape)]
        assert err.size == 0 or err.mean() < 0.1  # outputs are O(1): normalised rows times weights 0.5..2
