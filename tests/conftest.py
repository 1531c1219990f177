"""Test-suite wide settings: TensorFlow backend, quiet logs, a repo-local cache for processed datasets."""
import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("KERAS_TINYLOC_CACHE", str(ROOT / "data" / "cache"))


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
