"""Test-suite wide settings: TensorFlow backend, quiet logs, a repo-local cache for processed datasets."""
import os
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("KERAS_TINYLOC_CACHE", str(ROOT / "data" / "cache"))
