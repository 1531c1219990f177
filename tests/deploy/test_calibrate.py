"""MSE-clipped activation ranges: the error model, the clip choice, and a heavy-tailed model converted both ways."""
import numpy as np
import pytest

from keras_tinyloc.deploy import convert, tflite_inspect, tflm
from keras_tinyloc.errors import TinyLocError
from keras_tinyloc.deploy.quantize import dequantize, quantize

T, F = 6, 4


def _run_int8(buf, x):
    info = tflite_inspect.inspect_tflite(buf)
    y, _ = tflm.run_tflm(buf, quantize(x, info.input().scale, info.input().zero_point), 60000)
    return dequantize(y, info.output().scale, info.output().zero_point), info


def test_mse_calibration_of_a_mamba_is_full_int8_and_closer_to_float():
    import keras

    from keras_tinyloc.models import build_emitter

    keras.utils.set_random_seed(0)
    em = build_emitter("mamba", (10, 5), 4, 4, 1)
    rng = np.random.default_rng(0)
    rep, x = rng.uniform(0, 1, (64, 10, 5)).astype(np.float32), rng.uniform(0, 1, (100, 10, 5)).astype(np.float32)
    ref = np.asarray(em.predict(x, verbose=0))
    log: list = []
    mse = convert.convert_emitter(em, "int8", rep, n_calibration=64, calibration="mse", calibration_log=log)
    minmax = convert.convert_emitter(em, "int8", rep, n_calibration=64, calibration="minmax")
    (y_mse, info), (y_mm, _) = _run_int8(mse, x), _run_int8(minmax, x)
    tflite_inspect.check_int8(info, what="mse-calibrated mamba")  # still integer-only, runs in TFLM
    assert len(log) > 10 and all(0 < r["alpha"] < 1 and 0 < r["error_ratio"] <= 1 for r in log)
    assert min(r["alpha"] for r in log) < 0.5  # some per-step scan tensor is shrunk hard
    assert np.abs(y_mse - ref).mean() < 0.97 * np.abs(y_mm - ref).mean()


def _heavy_tailed_model():
    import keras

    keras.utils.set_random_seed(0)
    inp = keras.Input((T, F))
    h = keras.layers.Dense(8, activation="relu")(inp)
    return keras.Model(inp, keras.layers.Dense(3)(h), name="small")


def _rep(n=64, seed=0):
    return np.random.default_rng(seed).uniform(0, 1, (n, T, F)).astype(np.float32)


def test_minmax_calibration_reproduces_the_converter_default():
    import tensorflow as tf

    from keras_tinyloc.deploy.quantize import representative_dataset

    model = _heavy_tailed_model()
    rep = _rep()
    ours = convert.convert_emitter(model, "int8", rep, n_calibration=len(rep), calibration="minmax")
    conv = tf.lite.TFLiteConverter.from_keras_model(convert.fixed_batch(model))
    conv.optimizations = [tf.lite.Optimize.DEFAULT]
    conv.representative_dataset = representative_dataset(rep, n=len(rep))
    conv.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    conv.inference_input_type = conv.inference_output_type = tf.int8
    plain = conv.convert()
    x = _rep(50, seed=2)
    assert np.array_equal(_run_int8(ours, x)[0], _run_int8(plain, x)[0])


def test_unknown_calibration_is_one_clear_error():
    with pytest.raises(TinyLocError, match=r"--calibration 'p99': choose from mse, minmax"):
        convert.convert_emitter(_heavy_tailed_model(), "int8", _rep(), calibration="p99")
