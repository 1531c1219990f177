"""Shared pre-processing of BLE recordings (In-Home houses, simulated houses, SPHERE).

One implementation, used by every BLE loader and mirrored line for line by
``tflm_app/core`` on the device (tests compare the two byte for byte):

1. **5 Hz grid** (:func:`packets_to_grid`). Time is in integer milliseconds. Step ``k`` covers
   ``[t0 + 200 k, t0 + 200 (k + 1))`` ms. Each AP's value at step ``k`` is its latest reading with a
   time inside or before step ``k``, provided that reading fell in a step ``j`` with
   ``k - j <= 5`` (forward-fill up to 1 s); otherwise the fill value −120 dBm.
   Within one step the latest reading wins.
2. **Windows** (:func:`make_windows`): ``T = 20`` steps (4 s) with hop 10 (50 % overlap), per-step
   labels kept for the CRF.
3. **Contiguous time blocks** (:func:`block_masks`): a recording is cut into blocks of
   ``block_steps`` consecutive steps; every 4th block (index % 4 == 3) goes to validation, the rest to
   training (75/25). Windows are cut inside one block, so no window straddles the split.
"""
from __future__ import annotations

import numpy as np

from keras_tinyloc.errors import TinyLocError

STEP_MS = 200  # 5 Hz
FFILL_STEPS = 5  # forward-fill up to 1 s
FILL_DBM = -120.0
WINDOW_STEPS = 20  # 4 s
HOP_STEPS = 10  # 50 % overlap
BLOCK_STEPS = 300  # 60 s blocks for the train/validation split


def packets_to_grid(
    t_ms: np.ndarray,
    ap: np.ndarray,
    rssi: np.ndarray,
    n_aps: int,
    t0_ms: int | None = None,
    n_steps: int | None = None,
    ffill_steps: int = FFILL_STEPS,
    fill: float = FILL_DBM,
    source: str = "readings",
    step_ms: int = STEP_MS,
) -> np.ndarray:
    """Put ``(time, AP, RSSI)`` readings on a 5 Hz per-AP grid with the gap rules above.

    Args:
        t_ms: ``(P,)`` integer reading times in ms (non-decreasing is not required).
        ap: ``(P,)`` AP index in ``[0, F)``.
        rssi: ``(P,)`` RSSI in dBm.
        n_aps: F.
        t0_ms: time of step 0 (default: the first reading).
        n_steps: S (default: up to the step of the last reading, inclusive).
        source: a name for error messages (file path).
        step_ms: the grid's step in ms (200 = 5 Hz; other rates come from a recordings file's ``--rate-hz``).

    Returns:
        ``(S, F)`` float32 grid in dBm.
    """
    t_ms = np.asarray(t_ms, dtype=np.int64)
    ap = np.asarray(ap, dtype=np.int64)
    rssi = np.asarray(rssi, dtype=np.float32)
    if not (len(t_ms) == len(ap) == len(rssi)):
        raise TinyLocError(f"{source}: times, AP ids and RSSI have different lengths")
    if len(ap) and (ap.min() < 0 or ap.max() >= n_aps):
        bad = int(ap[(ap < 0) | (ap >= n_aps)][0])
        raise TinyLocError(f"{source}: AP index {bad} out of range 0..{n_aps - 1}")
    if np.isnan(rssi).any():
        raise TinyLocError(f"{source}: non-numeric RSSI value")
    if t0_ms is None:
        t0_ms = int(t_ms.min()) if len(t_ms) else 0
    step = np.floor_divide(t_ms - t0_ms, int(step_ms))
    if n_steps is None:
        n_steps = int(step.max()) + 1 if len(step) else 0
    grid = np.full((n_steps, n_aps), fill, dtype=np.float32)
    keep = (step >= 0) & (step < n_steps)
    step, ap, rssi, t_ms = step[keep], ap[keep], rssi[keep], t_ms[keep]
    # latest reading per (step, AP): stable sort by time, last write wins
    order = np.argsort(t_ms, kind="stable")
    last = np.full((n_steps, n_aps), np.nan, dtype=np.float32)
    last[step[order], ap[order]] = rssi[order]
    for a in range(n_aps):
        col = last[:, a]
        heard = np.flatnonzero(~np.isnan(col))
        if len(heard) == 0:
            continue
        # index of the latest heard step at or before k
        idx = np.searchsorted(heard, np.arange(n_steps), side="right") - 1
        ok = idx >= 0
        src = heard[np.maximum(idx, 0)]
        ok &= (np.arange(n_steps) - src) <= ffill_steps
        grid[ok, a] = col[src[ok]]
    return grid


def make_windows(
    grid: np.ndarray, labels: np.ndarray, window: int = WINDOW_STEPS, hop: int = HOP_STEPS
) -> tuple[np.ndarray, np.ndarray]:
    """Cut ``(S, F)`` grid and ``(S,)`` labels into ``(B, T, F)`` / ``(B, T)`` windows.

    Window ``b`` covers steps ``[b * hop, b * hop + T)``. A recording shorter than T gives none.
    """
    n = len(grid)
    if len(labels) != n:
        raise TinyLocError(f"grid has {n} steps but labels have {len(labels)}")
    if n < window:
        return (
            np.zeros((0, window, grid.shape[1]), np.float32),
            np.zeros((0, window), np.int32),
        )
    starts = np.arange(0, n - window + 1, hop)
    idx = starts[:, None] + np.arange(window)[None, :]
    return grid[idx].astype(np.float32), np.asarray(labels)[idx].astype(np.int32)


def block_masks(n_steps: int, block_steps: int = BLOCK_STEPS) -> list[tuple[str, int, int]]:
    """Contiguous blocks of a recording and the split each goes to.

    Returns a list of ``(split, start, stop)`` with split ``"train"`` or ``"val"``: block ``i``
    (``block_steps`` long, the last may be shorter) goes to ``val`` when ``i % 4 == 3``.
    """
    out = []
    for i, start in enumerate(range(0, n_steps, block_steps)):
        out.append(("val" if i % 4 == 3 else "train", start, min(start + block_steps, n_steps)))
    return out


def split_recording(
    grid: np.ndarray,
    labels: np.ndarray,
    window: int = WINDOW_STEPS,
    hop: int = HOP_STEPS,
    block_steps: int = BLOCK_STEPS,
) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Window a fingerprint recording into train/val by contiguous time blocks (see module doc)."""
    parts: dict[str, list] = {"train": [], "val": []}
    for split, a, b in block_masks(len(grid), block_steps):
        x, y = make_windows(grid[a:b], labels[a:b], window, hop)
        parts[split].append((x, y))
    out = {}
    for split, items in parts.items():
        if items:
            out[split] = (np.concatenate([x for x, _ in items]), np.concatenate([y for _, y in items]))
        else:
            out[split] = (
                np.zeros((0, window, grid.shape[1]), np.float32),
                np.zeros((0, window), np.int32),
            )
    return out


def labelled_windows(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Keep windows whose last step is labelled and that have at least one labelled step."""
    keep = y[:, -1] >= 0
    return x[keep], y[keep]


def contiguous_streams(x: np.ndarray, y: np.ndarray, hop: int = 10) -> list[dict]:
    """Rebuild the unbroken step streams behind overlapping windows, for decoding without resets.

    Windows ``x (B,T,F)``, ``y (B,T)`` cut with ``hop`` (``data/windows.py``: T = 20, hop 10, inside contiguous
    blocks). Window i+1 continues window i when its first T - hop steps equal window i's last T - hop steps (features
    and labels). Returns one dict per stream: ``x (L,F)``, ``y (L,)``, ``windows`` (indices into B) and ``ends``
    (each window's last step as a position in the stream), with L = T + hop * (windows - 1).
    """
    x, y = np.asarray(x), np.asarray(y)
    if x.ndim != 3 or y.shape != x.shape[:2] or not 0 < hop <= x.shape[1]:
        raise TinyLocError(f"windows {x.shape} / labels {y.shape} / hop {hop}: expected (B,T,F), (B,T), 0 < hop <= T")
    steps = x.shape[1]
    keep = steps - hop
    out, cur = [], None
    for i in range(len(x)):
        if cur is not None and np.array_equal(x[i, :keep], cur["x"][-keep:]) and np.array_equal(y[i, :keep], cur["y"][-keep:]):
            cur["x"] = np.concatenate([cur["x"], x[i, keep:]])
            cur["y"] = np.concatenate([cur["y"], y[i, keep:]])
            cur["windows"].append(i)
            cur["ends"].append(len(cur["x"]) - 1)
            continue
        cur = {"x": x[i].copy(), "y": y[i].copy(), "windows": [i], "ends": [steps - 1]}
        out.append(cur)
    for c in out:
        c["windows"], c["ends"] = np.array(c["windows"]), np.array(c["ends"])
    return out


def representative_sample(x_train: np.ndarray, n: int = 200, seed: int = 0) -> np.ndarray:
    """Draw ``min(n, B)`` training windows without replacement: ``(B,T,F)`` -> ``(n,T,F)`` float32."""
    x = np.asarray(x_train)
    if x.ndim != 3 or len(x) == 0:
        raise TinyLocError(f"representative data: expected a non-empty (B,T,F) array, got shape {x.shape}")
    rng = np.random.default_rng(seed)
    idx = np.sort(rng.choice(len(x), size=min(n, len(x)), replace=False))
    return x[idx].astype(np.float32)
