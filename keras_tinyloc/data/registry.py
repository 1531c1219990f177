"""Datasets by name — ``uji``, ``uji-zones``, ``house-a`` … ``house-d``, ``sphere`` — or by path: a recordings file
or a folder of them (:mod:`keras_tinyloc.data.recordings`, ``docs/recordings-format.md``).

:func:`load_dataset` is the one entry point the CLI, training, conversion and the sweep use, and
:func:`add_dataset_arguments` / :func:`dataset_options` the one definition of the ``--dataset`` options every command
shares (a run records the options in ``config.json``'s ``dataset_options``, so later steps rebuild the same windows).
Loaders are imported lazily so ``--help`` stays fast.
"""
from __future__ import annotations

import argparse
import os
from pathlib import Path

from keras_tinyloc.data.base import WindowDataset
from keras_tinyloc.errors import TinyLocError

HOUSES = ("house-a", "house-b", "house-c", "house-d")
DATASETS = ("uji", "uji-zones", *HOUSES, "sphere")
RECORDING_OPTIONS = ("rate_hz", "window_s", "hop_s", "fill_dbm", "no_window")  # loader options of a recordings path
DATASET_HELP = (f"a built-in dataset ({', '.join(DATASETS)}) or a path to your recordings: a CSV file or a folder of "
                "them (docs/recordings-format.md)")


def dataset_names() -> tuple[str, ...]:
    return DATASETS


def is_recordings_path(name: str) -> bool:
    """Whether ``--dataset`` names a recordings file/folder rather than a built-in dataset."""
    name = str(name)
    if name in DATASETS:
        return False
    return "/" in name or os.sep in name or name.lower().endswith(".csv") or Path(name).exists()


def add_dataset_arguments(parser: argparse.ArgumentParser, required: bool = True, default: str | None = None) -> None:
    """``--dataset NAME|PATH``, ``--data-dir`` and the recordings options, for every command that loads a dataset."""
    parser.add_argument("--dataset", required=required, default=default, metavar="NAME|PATH", help=DATASET_HELP
                        + (" (default: %(default)s)" if default else ""))
    parser.add_argument("--data-dir", default=None,
                        help="where a built-in dataset's raw files are (default: $KERAS_TINYLOC_DATA, data/raw/, the "
                             "workplace copy; houses: a simulated copy)")
    add_recordings_options(parser)


def _given(value) -> bool:
    """An option the user gave: not None (argparse's default) and not a ``False`` flag. By identity, not ``in (None,
    False)``: ``0.0 == False``, so ``--rate-hz 0`` would be dropped (and the default used) and ``--fill-dbm 0`` too."""
    return value is not None and value is not False


def add_recordings_options(parser: argparse.ArgumentParser) -> None:
    """The options of a recordings path (:data:`RECORDING_OPTIONS`; ``None`` = the file header, else the default)."""
    g = parser.add_argument_group("recordings options (only with --dataset PATH; default: the file's header, else "
                                  "the built-in BLE pre-processing)")
    g.add_argument("--rate-hz", type=float, default=None, help="grid rate in Hz (default 5; 1000/rate must be whole ms)")
    g.add_argument("--window-s", type=float, default=None, help="window length in seconds (default 4: T = 20 at 5 Hz)")
    g.add_argument("--hop-s", type=float, default=None, help="hop between windows in seconds (default 2: 50%% overlap)")
    g.add_argument("--fill-dbm", type=float, default=None, help="RSSI of 'not heard' in dBm (default -120)")
    g.add_argument("--no-window", action="store_true", default=None,
                   help="one step per sample (T = 1), e.g. WiFi scans with a time column")


def dataset_options(ns: argparse.Namespace) -> dict:
    """The recordings options given on the command line (``{}`` when none): the loader keyword arguments a run
    records in ``config.json``'s ``dataset_options``."""
    values = {k: getattr(ns, k, None) for k in RECORDING_OPTIONS}
    return {k: v for k, v in values.items() if _given(v)}


def check_dataset(name: str, data_dir=None, options: dict | None = None) -> None:
    """Validate ``--dataset`` and its options before any work (one-line TinyLocError): a built-in name takes no
    recordings option; a path must exist, takes no ``--data-dir``, and its options must be valid."""
    options = {k: v for k, v in (options or {}).items() if k in RECORDING_OPTIONS and _given(v)}
    if not is_recordings_path(name):
        if name not in DATASETS:
            raise TinyLocError(f"unknown dataset {name!r} (choose from {', '.join(DATASETS)}, or give the path of a "
                               f"recordings file or folder)")
        if options:
            flag = "--" + next(iter(options)).replace("_", "-")
            raise TinyLocError(f"{flag}: only for a recordings path (--dataset PATH), not the built-in {name!r}")
        return
    from keras_tinyloc.data import recordings

    if data_dir:
        raise TinyLocError(f"--data-dir {data_dir}: not used with a recordings path (--dataset {name}); the path is "
                           f"the data")
    recordings.check_option_values(options)
    recordings.recording_files(name)


def load_dataset(name: str, data_dir: str | os.PathLike | None = None, **options) -> WindowDataset:
    """Load a dataset by registry name.

    Args:
        name: one of :data:`DATASETS`, or the path of a recordings file or folder.
        data_dir: where the raw files are (``--data-dir``; built-in datasets only); ``None`` = the default search
            (``$KERAS_TINYLOC_DATA``, ``data/raw/``; for houses a cached simulated copy).
        options: loader-specific options (e.g. ``n_zones`` for ``uji-zones``; :data:`RECORDING_OPTIONS` for a
            path), plus the generic
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
    recording_opts = {k: options[k] for k in RECORDING_OPTIONS if k in options}
    check_dataset(name, data_dir, recording_opts)
    if is_recordings_path(name):
        from keras_tinyloc.data import recordings

        unknown = sorted(set(options) - set(RECORDING_OPTIONS))
        if unknown:
            raise TinyLocError(f"{name}: option {unknown[0]!r} is not a recordings option "
                               f"({', '.join(RECORDING_OPTIONS)})")
        return recordings.load_recordings(name, **options)
    options = {k: v for k, v in options.items() if k not in RECORDING_OPTIONS}
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
    raise TinyLocError(f"unknown dataset {name!r} (choose from {', '.join(DATASETS)})")  # unreachable: checked
