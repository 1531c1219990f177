"""The preamble every benchmark script shares: run from a checkout without installing the package.

Imported first by each ``benchmarks/*.py`` (``python benchmarks/NAME.py`` puts this folder on ``sys.path``): selects
Keras's TensorFlow back end, silences TensorFlow's C++ start-up log, and puts the checkout's root (``ROOT``) on
``sys.path`` so ``import keras_tinyloc`` finds this checkout's package. Logic belongs in ``keras_tinyloc/experiments``.
"""
from __future__ import annotations

import os
import sys
from pathlib import Path

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))
