"""The one container every dataset loader returns, and the input scaling exported to the device.

Shapes (see the glossary in :mod:`keras_tinyloc`):

* ``x_*``: ``(B, T, F)`` float32, already min-max scaled to [0, 1] with :attr:`WindowDataset.scaling`.
* ``y_*``: ``(B, T)`` int32 per-step class indices; ``-1`` marks a step without a label
  (excluded from the loss and the metrics, never silently labelled).

A window's prediction is the decoded label of its **last** step; metrics are computed on windows
whose last step is labelled.
"""
from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np

from keras_tinyloc.errors import TinyLocError

UNLABELLED = -1


@dataclasses.dataclass(frozen=True)
class MinMaxScaling:
    """Per-feature min-max scaling fit on training data only.

    ``scaled = clip((raw - low) / (high - low), 0, 1)``; features with ``high == low`` map to 0.
    The same arithmetic runs on the device (``tflm_app/core``), so keep it exactly this.

    Attributes:
        low: ``(F,)`` float32, minimum of each feature over the training data (raw units, dBm).
        high: ``(F,)`` float32, maximum of each feature over the training data.
    """

    low: np.ndarray
    high: np.ndarray

    @classmethod
    def fit(cls, raw: np.ndarray) -> "MinMaxScaling":
        """Fit on raw data of shape ``(..., F)``."""
        if raw.size == 0:
            raise TinyLocError("cannot fit scaling on an empty training set")
        flat = raw.reshape(-1, raw.shape[-1]).astype(np.float32)
        return cls(low=flat.min(axis=0), high=flat.max(axis=0))

    def transform(self, raw: np.ndarray) -> np.ndarray:
        """Scale raw ``(..., F)`` values to [0, 1] (float32)."""
        raw = np.asarray(raw, dtype=np.float32)
        span = (self.high - self.low).astype(np.float32)
        inv = np.where(span > 0, 1.0 / np.where(span > 0, span, 1.0), 0.0).astype(np.float32)
        return np.clip((raw - self.low) * inv, 0.0, 1.0).astype(np.float32)

    def to_dict(self) -> dict:
        return {"low": [float(v) for v in self.low], "high": [float(v) for v in self.high]}

    @classmethod
    def from_dict(cls, d: dict) -> "MinMaxScaling":
        return cls(low=np.asarray(d["low"], np.float32), high=np.asarray(d["high"], np.float32))


@dataclasses.dataclass
class WindowDataset:
    """Train / validation / test windows of one dataset, scaled, with per-step labels.

    Attributes:
        name: registry name (``uji``, ``uji-zones``, ``house-a`` … ``house-d``, ``sphere``).
        x_train, x_val, x_test: ``(B, T, F)`` float32 in [0, 1].
        y_train, y_val, y_test: ``(B, T)`` int32, ``-1`` = unlabelled step.
        class_names: ``C`` names, index = class id.
        feature_names: ``F`` names (access points).
        scaling: the :class:`MinMaxScaling` applied to raw RSSI (dBm) to get ``x_*``.
        fill_value: the raw value used for "not heard" (dBm), before scaling.
        meta: free-form provenance (source path, seed, split rule, counts).
    """

    name: str
    x_train: np.ndarray
    y_train: np.ndarray
    x_val: np.ndarray
    y_val: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    class_names: list[str]
    feature_names: list[str]
    scaling: MinMaxScaling
    fill_value: float = -120.0
    meta: dict[str, Any] = dataclasses.field(default_factory=dict)

    def __post_init__(self) -> None:
        for split in ("train", "val", "test"):
            x, y = getattr(self, f"x_{split}"), getattr(self, f"y_{split}")
            if x.ndim != 3 or y.ndim != 2 or x.shape[:2] != y.shape:
                raise TinyLocError(
                    f"{self.name}: {split} split has x {x.shape} and y {y.shape}; expected (B,T,F) and (B,T)"
                )
            if len(x) == 0:
                raise TinyLocError(f"{self.name}: the {split} split has no windows")

    @property
    def window(self) -> int:
        """T, steps per window."""
        return int(self.x_train.shape[1])

    @property
    def n_features(self) -> int:
        """F, access points per step."""
        return int(self.x_train.shape[2])

    @property
    def n_classes(self) -> int:
        """C."""
        return len(self.class_names)

    @property
    def input_shape(self) -> tuple[int, int]:
        return (self.window, self.n_features)

    def split(self, which: str) -> tuple[np.ndarray, np.ndarray]:
        """Return ``(x, y)`` of ``train``, ``val`` or ``test``."""
        if which not in ("train", "val", "test"):
            raise TinyLocError(f"unknown split {which!r} (train, val, test)")
        return getattr(self, f"x_{which}"), getattr(self, f"y_{which}")

    def info(self) -> dict[str, Any]:
        """The JSON printed by ``data info``."""
        return {
            "dataset": self.name,
            "n_train": int(len(self.x_train)),
            "n_val": int(len(self.x_val)),
            "n_test": int(len(self.x_test)),
            "input_shape": list(self.input_shape),
            "n_classes": self.n_classes,
            "class_names": list(self.class_names),
            "feature_names": list(self.feature_names)[:600],
            "fill_value": self.fill_value,
            "class_counts_train": np.bincount(
                self.y_train[:, -1][self.y_train[:, -1] >= 0], minlength=self.n_classes
            ).tolist(),
            "meta": self.meta,
        }


def last_step_labels(y: np.ndarray) -> np.ndarray:
    """``(B, T)`` per-step labels -> ``(B,)`` window labels (the last step's; may be -1)."""
    return np.asarray(y)[:, -1]


def read_csv_table(source, label, empty: str = "file is empty", **read_kw):
    """``pandas.read_csv(source, skipinitialspace=True, **read_kw)`` with column names stripped, or a one-line
    :class:`TinyLocError` naming ``label`` (the file) when it is empty (``"<label>: <empty>"``) or not readable CSV."""
    import pandas as pd

    try:
        df = pd.read_csv(source, skipinitialspace=True, **read_kw)
    except pd.errors.EmptyDataError:
        raise TinyLocError(f"{label}: {empty}") from None
    except (OSError, pd.errors.ParserError, UnicodeDecodeError) as exc:
        raise TinyLocError(f"{label}: not a readable CSV ({str(exc).splitlines()[0]})") from None
    df.columns = [str(c).strip() for c in df.columns]
    return df
