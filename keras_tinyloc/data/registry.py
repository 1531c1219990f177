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
        options: loader-specific options (e.g. ``n_zones`` for ``uji-zones``), plus the generic
            ``features=[names]``: keep only those feature columns, in that order (:func:`select_features`).
    """
    features = options.pop("features", None)
    ds = _load(name, data_dir, **options)
    return ds if features is None else select_features(ds, features)


def select_features(ds: WindowDataset, names) -> WindowDataset:
    """Keep the feature columns ``names`` (in that order) of every split, the scaling and the names.

    ``x_*`` ``(B,T,F)`` -> ``(B,T,F')``; ``meta["feature_index"]`` records, for each kept column, its index among the
    loaded features (composed with an earlier selection's index, so it always points at the raw loader's columns).
    The scaling of the kept columns is unchanged (it was fit per feature).
    """
    import dataclasses

    names = [str(n) for n in names]
    if not names:
        raise TinyLocError(f"{ds.name}: features=[]: select at least one feature")
    pos = {n: i for i, n in enumerate(ds.feature_names)}
    missing = [n for n in names if n not in pos]
    if missing:
        raise TinyLocError(f"{ds.name}: feature {missing[0]!r} does not exist (features are e.g. {ds.feature_names[0]!r})")
    if len(set(names)) != len(names):
        dup = next(n for n in names if names.count(n) > 1)
        raise TinyLocError(f"{ds.name}: feature {dup!r} selected twice")
    idx = [pos[n] for n in names]
    prior = ds.meta.get("feature_index")
    meta = dict(ds.meta, feature_index=[int(prior[i]) if prior is not None else int(i) for i in idx])
    scaling = type(ds.scaling)(low=ds.scaling.low[idx].copy(), high=ds.scaling.high[idx].copy())
    return dataclasses.replace(
        ds, x_train=ds.x_train[:, :, idx], x_val=ds.x_val[:, :, idx], x_test=ds.x_test[:, :, idx],
        feature_names=names, scaling=scaling, meta=meta,
    )


def _load(name: str, data_dir, **options) -> WindowDataset:
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
