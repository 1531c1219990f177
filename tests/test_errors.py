"""errors.py: what reaches the user's terminal — TensorFlow's start-up banner, retracing warnings and the converters'
routine notes do not, real warnings do (checked against a run without the filter, which shows them all)."""
from __future__ import annotations

import os
import subprocess
import sys

import pytest

SCRIPT = """
import logging, sys
from keras_tinyloc.errors import quiet_tensorflow
if sys.argv[1] == "quiet":
    quiet_tensorflow()
import tensorflow as tf

@tf.function
def f(x):
    return x * 2

for n in range(1, 9):
    f(tf.zeros([n]))
logging.getLogger("tensorflow").warning("a real warning")
import warnings
warnings.warn("Statistics for quantized inputs were expected, but not specified; continuing anyway.")
warnings.warn("a real user warning")
print("done")
"""


def _stderr(mode: str) -> str:
    env = {k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"}  # conftest sets it; a user has none
    res = subprocess.run([sys.executable, "-c", SCRIPT, mode], capture_output=True, text=True, env=env, timeout=300)
    assert res.returncode == 0 and res.stdout == "done\n", res.stderr
    return res.stderr


@pytest.mark.slow
def test_banner_and_retracing_are_filtered_real_warnings_pass():
    loud = _stderr("loud")
    assert "oneDNN custom operations are on" in loud and "triggered tf.function retracing" in loud  # the control
    assert "Statistics for quantized inputs" in loud
    quiet = [ln for ln in _stderr("quiet").splitlines() if not ln.startswith("  warnings.warn(")]
    assert quiet[0] == "WARNING:tensorflow:a real warning" and quiet[1].endswith("UserWarning: a real user warning")
    assert len(quiet) == 2
