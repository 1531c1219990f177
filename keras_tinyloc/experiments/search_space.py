"""The search space of ``fit --mcu``: families x sizes x training levers, as a finite, ordered list of candidates.

Why a finite grid and not a sampler's continuous space: every axis here is discrete (a family, a width, whether a
lever is on), the grid is small (48 candidates by default), and a grid lets ``fit`` drop the candidates that cannot
fit the MCU **before** training any of them (their arena and flatbuffer depend only on the architecture:
:mod:`keras_tinyloc.experiments.fit_sizes`). The order in which the search visits the grid is a seeded permutation
(:func:`visit_order`), written by hand instead of an Optuna sampler because a sampler's random state is not
restored when a killed study is resumed; a fixed order is what makes a resumed search repeat the uninterrupted one.

Axes (why these, and why not others):

* **family x size** (:data:`FAMILIES`): the per-step MLP (the smallest arena of all), MDCSA and the TFLM-runnable
  Mamba, at sizes that span 20-64 KiB MCUs. A family is a :class:`Family` entry (a ``models`` family, its sizes, its
  learning rate and fixed emitter options), so a new option such as a learned-A Mamba is one more entry.
* **input power** ``x**3`` (:func:`keras_tinyloc.models.powed_emitter`): the largest single lever on UJIIndoorLoc
  (docs/results/beyond_uji.md, uji_families.md); two int8 MULs in the model.
* **augmentation** (per-window ±8 dB offset + AP drop-out 0.2, :mod:`keras_tinyloc.training.augment`): the other
  lever that moved UJIIndoorLoc's test figures.
* Not searched: **distillation** (within seed noise on UJIIndoorLoc and mixed on SPHERE, and each teacher costs a
  full training), **QAT** (full int8 with MSE-clipped ranges loses <= 1 F1 point in 34 of 35 configurations,
  docs/results/convert_targets.md), the streaming Mamba (a different device app).

Shapes: a candidate's emitter maps windows ``(B,T,F)`` to emissions ``(B,T,C)``; H hidden, L layers.
"""
from __future__ import annotations

import dataclasses

import numpy as np

from keras_tinyloc.errors import TinyLocError, check_seed

AUGMENT = {"p_drop": 0.2, "offset_db": 8.0}  # the "aug" lever (beyond_uji's _AUG without hidden dropout)
POWERS = (1, 3)


@dataclasses.dataclass(frozen=True)
class Family:
    """One searchable family: ``model`` (a :data:`keras_tinyloc.models.FAMILIES` name), its ``sizes`` ((H, L) pairs,
    smallest first), the Adam learning rate per size (``lr_small`` for H <= ``small_h``, else ``lr``) and fixed
    emitter options (``model_options``, passed to :func:`keras_tinyloc.models.build_tagger`)."""

    name: str
    model: str
    sizes: tuple[tuple[int, int], ...]
    lr: float = 3e-3
    lr_small: float = 3e-3
    small_h: int = 0
    model_options: tuple[tuple[str, object], ...] = ()

    def lr_for(self, hidden: int) -> float:
        return self.lr_small if hidden <= self.small_h else self.lr


# Small Mambas learn faster with lr 1e-2 (training/train.py's note, docs/results/sphere.md); others use the default.
FAMILIES: dict[str, Family] = {
    "mlp": Family("mlp", "mlp", ((16, 1), (32, 1), (64, 1), (128, 1), (64, 2))),
    "mdcsa": Family("mdcsa", "mdcsa", ((8, 1), (16, 1), (32, 1))),
    "mamba": Family("mamba", "mamba", ((4, 1), (8, 1), (16, 1), (32, 1)), lr_small=1e-2, small_h=8),
}


@dataclasses.dataclass(frozen=True)
class Candidate:
    """One point of the grid: a family at one size with one setting of the levers."""

    family: str
    hidden: int
    layers: int
    power: int = 1
    augment: bool = False

    @property
    def key(self) -> str:
        """A stable name, e.g. ``mlp-H64L1-pow3-aug`` (folder names, the study's parameter, the leaderboard)."""
        return f"{self.arch_key}{'-aug' if self.augment else ''}"

    @property
    def arch_key(self) -> str:
        """The architecture (what the converted model's size depends on): ``mlp-H64L1-pow3``."""
        return f"{self.family}-H{self.hidden}L{self.layers}{f'-pow{self.power}' if self.power > 1 else ''}"

    @property
    def spec(self) -> Family:
        return FAMILIES[self.family]

    @property
    def model(self) -> str:
        return self.spec.model

    @property
    def lr(self) -> float:
        return self.spec.lr_for(self.hidden)

    def model_options(self) -> dict:
        """Keyword arguments of :func:`keras_tinyloc.models.build_tagger` beyond family/shape/size/seed."""
        opts = dict(self.spec.model_options)
        if self.power > 1:
            opts["input_power"] = int(self.power)
        return opts

    def augment_options(self) -> dict:
        """``AugmentConfig`` keyword arguments (``{}`` = no augmentation)."""
        return dict(AUGMENT) if self.augment else {}

    def levers(self) -> str:
        """A short human label of the levers: ``x^3, aug(drop 0.2, ±8 dB), lr 0.01``."""
        parts = []
        if self.power > 1:
            parts.append(f"x^{self.power}")
        if self.augment:
            parts.append(f"aug(drop {AUGMENT['p_drop']:g}, ±{AUGMENT['offset_db']:g} dB)")
        if self.lr != 3e-3:
            parts.append(f"lr {self.lr:g}")
        return ", ".join(parts) or "plain"

    def to_json(self) -> dict:
        return {**dataclasses.asdict(self), "key": self.key, "model": self.model, "lr": self.lr}


def check_families(names) -> tuple[str, ...]:
    """``names`` as a tuple, each a key of :data:`FAMILIES` (one-line TinyLocError otherwise)."""
    names = tuple(names)
    if not names:
        raise TinyLocError("--families: name at least one family")
    for n in names:
        if n not in FAMILIES:
            raise TinyLocError(f"--families {n!r}: choose from {', '.join(FAMILIES)}")
    if len(set(names)) != len(names):
        raise TinyLocError(f"--families {','.join(names)}: a family is named twice")
    return names


def grid(families=tuple(FAMILIES)) -> list[Candidate]:
    """Every candidate of ``families`` in canonical order: family, size (smallest first), power, augmentation."""
    return [Candidate(f, h, l, p, a)
            for f in check_families(families) for h, l in FAMILIES[f].sizes for p in POWERS for a in (False, True)]


def visit_order(candidates: list[Candidate], seed: int) -> list[Candidate]:
    """The order the search visits ``candidates``: a permutation drawn from ``numpy.random.default_rng(seed)``
    (random search + successive halving = ASHA's setting); the same seed and grid give the same order."""
    check_seed(seed)
    perm = np.random.default_rng(int(seed)).permutation(len(candidates))
    return [candidates[int(i)] for i in perm]


def architectures(candidates: list[Candidate]) -> list[Candidate]:
    """One representative (augmentation off) per distinct architecture, in first-seen order."""
    seen: dict[str, Candidate] = {}
    for c in candidates:
        seen.setdefault(c.arch_key, dataclasses.replace(c, augment=False))
    return list(seen.values())
