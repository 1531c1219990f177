"""Test-suite wide settings: TensorFlow backend, quiet logs. Processed datasets and built TFLM libraries are cached in
the user cache folder (``paths.user_cache_dir``), outside the checkout, so a fresh clone in CI reuses them."""
import os

import pytest

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def _raw_int8(model, x):
    """Full-int8 conversion straight through tf.lite (no batch fixing, no checks), so tests see what the converter
    itself produces, float islands included; ``x`` is the representative data, one window per sample."""
    import tensorflow as tf

    conv = tf.lite.TFLiteConverter.from_keras_model(model)
    conv.optimizations = [tf.lite.Optimize.DEFAULT]
    conv.representative_dataset = lambda: ([x[i : i + 1]] for i in range(len(x)))
    conv.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    conv.inference_input_type = tf.int8
    conv.inference_output_type = tf.int8
    return conv.convert()


@pytest.fixture(scope="session")
def raw_int8():
    """The unchecked tf.lite full-int8 converter (see ``_raw_int8``)."""
    return _raw_int8


@pytest.fixture(scope="session")
def calibrated_mamba():
    """``(emitter, x)``: :func:`small_mamba` with its state scales calibrated on 64 :func:`mamba_windows`."""
    from keras_tinyloc.models.mamba import calibrate_state_scales

    from helpers import mamba_windows, small_mamba

    em, x = small_mamba(), mamba_windows(64)
    calibrate_state_scales(em, x)
    return em, x
