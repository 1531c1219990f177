"""errors.py: what reaches the user's terminal — TensorFlow's start-up banner and retracing warnings do not, real
warnings do (checked against a run without the filter, which shows both)."""
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
    quiet = _stderr("quiet")
    assert quiet.splitlines() == ["WARNING:tensorflow:a real warning"]
