"""Datasets by name: ``uji``, ``uji-zones``, ``house-a`` … ``house-d``, ``sphere``.

:func:`load_dataset` is the one entry point the CLI, training, conversion and the sweep use.
Loaders are imported lazily so ``--help`` stays fast.
"""
from __future__ import annotations

import os

from keras_tinyloc.data.base import WindowDataset
from keras_tinyloc.errors import TinyLocError

HOUSES = ("house-a", "house-b", "house-c", "house-d")
DATASETS = ("uji", "uji-zones", *HOUSES, "sphere")


def dataset_names() -> tuple[str, ...]:
    return DATASETS


def load_dataset(name: str, data_dir: str | os.PathLike | None = None, **options) -> WindowDataset:
    """Load a dataset by registry name.

    Args:
        name: one of :data:`DATASETS`.
        data_dir: where the raw files are (``--data-dir``); ``None`` = the default search
            (``$KERAS_TINYLOC_DATA``, ``data/raw/``; for houses a cached simulated copy).
        options: loader-specific options (e.g. ``n_zones`` for ``uji-zones``).
    """
    if name in ("uji", "uji-zones"):
        from keras_tinyloc.data import uji

        labeling = "zones" if name == "uji-zones" else "building-floor"
        return uji.load_uji(data_dir=data_dir, labeling=labeling, **options)
    if name in HOUSES:
        from keras_tinyloc.data import inhome

        return inhome.load_house(name[-1].upper(), data_dir=data_dir, **options)
    if name == "sphere":
        from keras_tinyloc.data import sphere

        return sphere.load_sphere(data_dir=data_dir, **options)
    raise TinyLocError(f"unknown dataset {name!r} (choose from {', '.join(DATASETS)})")
