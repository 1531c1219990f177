"""Access-point (feature) selection on the training split only.

A selection is a list of feature names; :func:`keras_tinyloc.data.registry.load_dataset` takes it as
``features=[names]`` (the run's ``config.json`` stores it in ``dataset_options`` so ``convert`` reloads the same
columns), and ``model_settings.h`` gets ``kFeatureIndex`` (which raw AP each model input reads).

Rules (``spec`` strings, also the CLI's ``--ap``):

* ``all``: every feature, in order;
* ``heard:P``: features heard (scaled value > 0, i.e. above the "not heard" fill) in at least a share ``P`` of the
  training windows' last steps (UJIIndoorLoc: ``heard:0.01`` keeps 273 of 520 APs on the 75 % training split);
* ``mi:K``: the ``K`` features with the highest mutual information between "heard" (binary) and the class, ties to
  the lower index (scikit-learn ``mutual_info_classif`` on discrete features, ``random_state`` 0).

Selected indices are returned sorted ascending, so the model reads the APs in their original order.
Shapes: ``x`` ``(B,T,F)`` scaled windows, ``y`` ``(B,T)`` labels (``-1`` = unlabelled); the last step is used.
"""
from __future__ import annotations

import numpy as np

from keras_tinyloc.errors import TinyLocError

RULES = ("all", "heard", "mi")


def parse_spec(spec: str) -> tuple[str, float | int | None]:
    """``"heard:0.01"`` -> ``("heard", 0.01)``; ``"mi:200"`` -> ``("mi", 200)``; ``"all"`` -> ``("all", None)``."""
    spec = str(spec).strip()
    rule, _, arg = spec.partition(":")
    if rule == "all" and not arg:
        return "all", None
    try:
        if rule == "heard":
            p = float(arg)
            if not 0.0 <= p < 1.0:
                raise ValueError
            return "heard", p
        if rule == "mi":
            k = int(arg)
            if k < 1:
                raise ValueError
            return "mi", k
    except ValueError:
        raise TinyLocError(f"--ap {spec!r}: {rule} needs a {'share in [0, 1)' if rule == 'heard' else 'count >= 1'}") from None
    raise TinyLocError(f"--ap {spec!r}: choose all, heard:P or mi:K")


def heard_share(x: np.ndarray) -> np.ndarray:
    """``(B,T,F)`` scaled windows -> ``(F,)`` share of windows whose last step hears each feature (value > 0)."""
    x = np.asarray(x)
    if x.ndim != 3 or len(x) == 0:
        raise TinyLocError(f"AP selection: expected non-empty (B,T,F) windows, got shape {x.shape}")
    return (x[:, -1, :] > 0).mean(axis=0)


def mutual_information(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """``(F,)`` mutual information (nats) between each feature's "heard" bit and the class of the last step."""
    from sklearn.feature_selection import mutual_info_classif
    from threadpoolctl import threadpool_limits

    x, y = np.asarray(x), np.asarray(y)
    lab = y[:, -1] >= 0
    heard = (x[lab, -1, :] > 0).astype(np.int8)
    with threadpool_limits(1):
        return mutual_info_classif(heard, y[lab, -1], discrete_features=True, random_state=0)


def select_indices(x: np.ndarray, y: np.ndarray, spec: str) -> np.ndarray:
    """Indices (sorted ascending, int64) of the features ``spec`` keeps, computed on training windows ``x``, ``y``."""
    rule, arg = parse_spec(spec)
    n = np.asarray(x).shape[-1]
    if rule == "all":
        return np.arange(n, dtype=np.int64)
    if rule == "heard":
        idx = np.flatnonzero(heard_share(x) >= arg)
    else:
        if arg > n:
            raise TinyLocError(f"--ap mi:{arg}: the dataset has only {n} features")
        mi = mutual_information(x, y)
        order = np.lexsort((np.arange(n), -mi))  # highest MI first, ties to the lower index
        idx = np.sort(order[:arg])
    if len(idx) == 0:
        raise TinyLocError(f"--ap {spec!r}: selects no feature on this training split")
    return idx.astype(np.int64)


def select_features(dataset, spec: str) -> list[str]:
    """Feature names ``spec`` keeps on ``dataset``'s training split (pass them as ``load_dataset(features=...)``)."""
    idx = select_indices(dataset.x_train, dataset.y_train, spec)
    return [dataset.feature_names[i] for i in idx]
