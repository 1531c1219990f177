"""SPHERE Challenge 2016 (real BLE, one house, 9 rooms, 4 APs): reader, packet recovery, splits, cache.

Source (Twomey et al., "The SPHERE Challenge: Activity Recognition with Multimodal Sensor Data",
arXiv:1603.00797, 2016; data.bris 10.5523/bris.8gccwpx47rav19vk8x4xapcog), the published layout::

    public_data/rooms.json                    the 9 room names (class order)
    public_data/train/000NN/acceleration.csv  t (s), x, y, z at 20 Hz, then Kitchen_AP, Lounge_AP, Upstairs_AP, Study_AP
    public_data/train/000NN/location_0.csv    start, end, name[, index] (s) — annotator 0's room intervals
    public_data/train/000NN/meta.json         {"start": 0, "end": <s>, ...} (optional; gives the sequence length)

found in the first of: the ``data_dir`` argument (explicit: never skipped), ``$KERAS_TINYLOC_DATA``, ``data/raw/``,
and the workplace copy ``paths.shared_data_dir() / "sphere_challenge"`` (each may be the folder holding
``public_data/``, ``public_data/`` itself, or a folder holding ``sphere_challenge/``).

Processing:

1. **Packets.** Each BLE packet's RSSI is repeated on its (up to 4) accelerometer rows; the release puts the rows of
   one packet exactly 50.048 ms apart, and packets start every ~200 ms. A row that follows its predecessor by 1, 2
   or 3 such intervals (±3 µs) and lies within 3 intervals of its packet's first row continues that packet; any
   other row starts a new one. A packet's time is its first row's time (integer ms); its RSSI per AP is the value on
   its last row (in the release only 3 of ~77k packets have a row that disagrees with the others, a first or
   middle row with a stale or missing value; the last row agrees with the majority); an empty cell = that AP
   missed the packet.
2. **Shared pre-processing**, exactly :mod:`keras_tinyloc.data.windows`: :func:`~windows.packets_to_grid`
   (5 Hz grid from t = 0, forward-fill ≤ 1 s, −120 dBm otherwise), :func:`~windows.split_recording` /
   :func:`~windows.make_windows` (T = 20, hop 10). All four AP columns are kept, in the order above; **an AP that is
   absent from a sequence (an empty or missing column) reads −120 dBm throughout** (Study_AP in 00001–00006,
   Lounge_AP in 00006–00010).
3. **Labels** per 0.2 s step from annotator 0: step ``k`` (``[0.2k, 0.2k + 0.2)`` s) gets the room whose interval
   ``[start, end)`` contains the step's centre ``0.2k + 0.1`` s; steps with no annotation get ``-1`` (excluded from
   loss and metrics, never silently labelled). Windows without any labelled step are dropped.
4. **Fixed split**: sequences 00001–00007 → train / validation by contiguous 60 s blocks within each sequence
   (:func:`~windows.split_recording`: every 4th block → validation, 75/25); 00008–00010 → test.
5. **Scaling**: :class:`MinMaxScaling` fit on the training windows (raw dBm).
6. **Optional accelerometer** (``accelerometer=True``, off by default; the paper's comparison is RSSI-only): three
   more features ``acc_x, acc_y, acc_z`` after the four APs (F = 7): per 0.2 s step the mean of the 20 Hz rows in
   that step (g), a step without rows takes the last step's value for up to 1 s (the same gap rule, through
   :func:`~windows.packets_to_grid`) and 0 g after that. ``fill_value`` concerns the RSSI features only, and the
   device pipeline (``tflm_app/core``) does not compute these features.

The processed arrays are cached (``paths.user_cache_dir()/sphere-v{N}-{md5}.npz``, atomic), keyed by the md5 of every
file read.

Shapes: ``x_*`` ``(B, 20, F)`` float32 in [0, 1] with F = 4 (7 with the accelerometer); ``y_*`` ``(B, 20)`` int32,
``-1`` = unlabelled step.
"""
from __future__ import annotations

import hashlib
import json
import math
import os
import zipfile
from pathlib import Path

import numpy as np

from keras_tinyloc import paths
from keras_tinyloc.data import windows
from keras_tinyloc.data.base import UNLABELLED, MinMaxScaling, WindowDataset, read_csv_table
from keras_tinyloc.errors import TinyLocError

AP_COLUMNS = ("Kitchen_AP", "Lounge_AP", "Upstairs_AP", "Study_AP")
ACC_COLUMNS = ("x", "y", "z")
ACC_FEATURES = ("acc_x", "acc_y", "acc_z")
TRAIN_SEQUENCES = tuple(f"{i:05d}" for i in range(1, 8))
TEST_SEQUENCES = ("00008", "00009", "00010")
ROW_US = 50048  # spacing of the accelerometer rows of one packet, µs
ROW_TOL_US = 3
RSSI_MIN, RSSI_MAX = -127.0, 0.0
MAX_SEQUENCE_S = 86400.0  # a sequence lasts minutes; a time beyond a day is corrupt (and would allocate a huge grid)
END_TOLERANCE_MS = 1000  # meta.json's end vs the last row: 50 ms apart in every sequence of the release
CACHE_VERSION = 2


# --------------------------------------------------------------------------------------------- finding the data
def _public_dir(root: Path) -> Path | None:
    for d in (root, root / "public_data", root / "sphere_challenge" / "public_data"):
        if (d / "train").is_dir() and (d / "rooms.json").is_file():
            return d
    return None


def find_public_dir(data_dir: str | os.PathLike | None = None) -> Path:
    """The ``public_data`` folder (see the module docstring for the search order)."""
    if data_dir:
        root = Path(data_dir)
        if not root.is_dir():
            raise TinyLocError(f"{root}: no such directory (SPHERE data)")
        found = _public_dir(root)
        if found is None:
            raise TinyLocError(f"{root}: no public_data/train/ with public_data/rooms.json (SPHERE layout)")
        return found
    candidates = []
    env = os.environ.get("KERAS_TINYLOC_DATA")
    if env:
        candidates.append(Path(env))
    candidates.append(Path.cwd() / "data" / "raw")
    shared = paths.shared_data_dir()
    if shared is not None:
        candidates.append(shared / "sphere_challenge")
    for c in candidates:
        found = _public_dir(c) if c.is_dir() else None
        if found is not None:
            return found
    raise TinyLocError(f"SPHERE data not found in {', '.join(map(str, candidates))} (pass --data-dir)")


# --------------------------------------------------------------------------------------------- reading one sequence
def read_rooms(path: Path) -> list[str]:
    """The class names from ``rooms.json`` (a JSON list of distinct strings)."""
    try:
        rooms = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise TinyLocError(f"{path}: not readable JSON ({exc})") from None
    if not isinstance(rooms, list) or not rooms or not all(isinstance(r, str) for r in rooms):
        raise TinyLocError(f"{path}: expected a non-empty JSON list of room names")
    if len(set(rooms)) != len(rooms):
        raise TinyLocError(f"{path}: room names are not unique")
    return rooms


def read_packets(path: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray, list[str], int]:
    """Recover the 5 Hz BLE packets from ``acceleration.csv`` (rule 1 of the module docstring).

    Returns:
        ``t_ms (P,)`` int64 packet times, ``ap (P,)`` int64 AP index, ``rssi (P,)`` float32 dBm — P readings, one
        per (packet, AP that heard it), as :func:`windows.packets_to_grid` takes them — the names of the APs
        heard at least once, and the time of the file's last row (ms; where the recording ends).
    Raises TinyLocError for a time that is not a finite number >= 0 or goes backwards, or a bad RSSI.
    """
    import pandas as pd

    df = read_csv_table(path, path)
    if "t" not in df.columns:
        raise TinyLocError(f"{path}: missing column t")
    if not any(c in df.columns for c in AP_COLUMNS):
        raise TinyLocError(f"{path}: none of the AP columns {', '.join(AP_COLUMNS)}")
    if len(df) == 0:
        raise TinyLocError(f"{path}: has a header but no data rows")

    def numeric(col: str, allow_empty: bool) -> np.ndarray:
        s = df[col]
        v = s if pd.api.types.is_numeric_dtype(s) else pd.to_numeric(s, errors="coerce")
        bad = v.isna().to_numpy() & (s.notna().to_numpy() if allow_empty else True)
        if np.any(bad):
            i = int(np.flatnonzero(bad)[0])
            what = "an empty value" if pd.isna(s.iloc[i]) else f"non-numeric value {str(s.iloc[i]).strip()!r}"
            raise TinyLocError(f"{path}: row {i + 2}, column {col}: {what}")
        return v.to_numpy(dtype=np.float64)

    t = numeric("t", allow_empty=False)
    bad_t = ~((t >= 0) & (t <= MAX_SEQUENCE_S))
    if bad_t.any():
        i = int(np.flatnonzero(bad_t)[0])
        raise TinyLocError(f"{path}: row {i + 2}, column t: time {t[i]:g} is not a finite number "
                           f"of seconds from 0 to {MAX_SEQUENCE_S:g} (one day)")
    us = np.round(t * 1e6).astype(np.int64)
    back = np.flatnonzero(np.diff(us) < 0)
    if len(back):
        raise TinyLocError(f"{path}: row {int(back[0]) + 3}: time t goes backwards")
    rssi = np.full((len(df), len(AP_COLUMNS)), np.nan)
    for j, col in enumerate(AP_COLUMNS):
        if col not in df.columns:
            continue
        v = numeric(col, allow_empty=True)
        out = ~np.isnan(v) & ((v < RSSI_MIN) | (v > RSSI_MAX))
        if out.any():
            i = int(np.flatnonzero(out)[0])
            raise TinyLocError(
                f"{path}: row {i + 2}, column {col}: RSSI {v[i]:g} outside {RSSI_MIN:g}..{RSSI_MAX:g}"
            )
        rssi[:, j] = v

    first = packet_starts(us)
    start_idx = np.flatnonzero(first)
    last_idx = np.r_[start_idx[1:] - 1, len(us) - 1]
    t_pk = np.round(us[start_idx] / 1000.0).astype(np.int64)
    vals = rssi[last_idx]  # (packets, F): each packet's last row
    p, a = np.nonzero(~np.isnan(vals))
    heard = [AP_COLUMNS[j] for j in range(len(AP_COLUMNS)) if (~np.isnan(vals[:, j])).any()]
    end_ms = int(np.round(us[-1] / 1000.0))
    return t_pk[p], a.astype(np.int64), vals[p, a].astype(np.float32), heard, end_ms


def packet_starts(us: np.ndarray) -> np.ndarray:
    """``(n_rows,)`` row times in µs (non-decreasing) -> ``(n_rows,)`` bool, True where a row starts a packet."""
    us = np.asarray(us, np.int64)
    if len(us) == 0:
        return np.zeros(0, bool)
    dt = np.diff(us)
    cont = np.zeros(len(dt), bool)
    for k in (1, 2, 3):
        cont |= np.abs(dt - k * ROW_US) <= ROW_TOL_US
    start = np.r_[True, ~cont]
    while True:  # a packet spans at most 4 rows: split any longer run (never seen in the release)
        gid = np.cumsum(start) - 1
        offset = us - us[np.flatnonzero(start)][gid]
        too_far = (offset > 3 * ROW_US + ROW_TOL_US) & ~start
        if not too_far.any():
            return start
        start[np.flatnonzero(too_far)[0]] = True


def read_accelerometer(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """The 20 Hz accelerometer rows of ``acceleration.csv``: ``t_ms (n_rows,)`` int64 and ``xyz (n_rows, 3)`` float32 g."""
    import pandas as pd

    df = read_csv_table(path, path)
    cols = {}
    for col in ("t", *ACC_COLUMNS):
        if col not in df.columns:
            raise TinyLocError(f"{path}: missing column {col}")
        v = pd.to_numeric(df[col], errors="coerce").to_numpy(dtype=np.float64)
        if np.isnan(v).any():
            i = int(np.flatnonzero(np.isnan(v))[0])
            raise TinyLocError(f"{path}: row {i + 2}, column {col}: non-numeric value {str(df[col].iloc[i])!r}")
        cols[col] = v
    t_ms = np.round(np.round(cols["t"] * 1e6) / 1000.0).astype(np.int64)
    return t_ms, np.stack([cols[c] for c in ACC_COLUMNS], 1).astype(np.float32)


def accelerometer_grid(t_ms: np.ndarray, xyz: np.ndarray, n_steps: int, source: str = "accelerometer") -> np.ndarray:
    """``(n_rows,)`` times and ``(n_rows, 3)`` samples -> ``(S, 3)`` float32 per-step means (rule 6)."""
    step = np.asarray(t_ms, np.int64) // windows.STEP_MS
    keep = (step >= 0) & (step < n_steps)
    step, xyz = step[keep], np.asarray(xyz, np.float64)[keep]
    counts = np.bincount(step, minlength=n_steps)
    has = np.flatnonzero(counts)
    means = np.stack([np.bincount(step, weights=xyz[:, j], minlength=n_steps) for j in range(3)], 1)[has]
    means /= counts[has, None]
    return windows.packets_to_grid(
        np.repeat(has * windows.STEP_MS, 3), np.tile(np.arange(3), len(has)), means.ravel(), 3,
        t0_ms=0, n_steps=n_steps, fill=0.0, source=source,
    )


def read_annotations(path: Path, rooms: list[str]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Read ``location_k.csv``: ``start_ms``, ``end_ms`` ``(n_intervals,)`` int64 and ``room`` ``(n_intervals,)``
    int32 class, sorted by start.

    Raises TinyLocError (naming the row, header = row 1) for a missing file or column, a non-numeric time, an
    interval that ends before it starts or overlaps another, an unknown room name, or no interval at all.
    """
    import pandas as pd

    if not path.is_file():
        raise TinyLocError(f"{path}: missing (room annotations of annotator 0)")
    df = read_csv_table(path, path, empty="file is empty (a recording with no labels)", dtype={"name": str})
    for col in ("start", "end", "name"):
        if col not in df.columns:
            raise TinyLocError(f"{path}: missing column {col}")
    if len(df) == 0:
        raise TinyLocError(f"{path}: no annotated intervals (a recording with no labels)")
    t = {}
    for col in ("start", "end"):
        v = pd.to_numeric(df[col], errors="coerce").to_numpy(dtype=np.float64)
        if np.isnan(v).any():
            i = int(np.flatnonzero(np.isnan(v))[0])
            raise TinyLocError(f"{path}: row {i + 2}, column {col}: non-numeric time {df[col].iloc[i]!r}")
        t[col] = np.round(v * 1000.0).astype(np.int64)
    index = {r: i for i, r in enumerate(rooms)}
    room = np.empty(len(df), np.int32)
    for i, name in enumerate(df["name"]):
        key = str(name).strip()
        if key not in index:
            raise TinyLocError(f"{path}: row {i + 2}: unknown room {key!r} (rooms.json has {', '.join(rooms)})")
        room[i] = index[key]
    bad = np.flatnonzero(t["end"] < t["start"])
    if len(bad):
        i = int(bad[0])
        raise TinyLocError(
            f"{path}: row {i + 2}: interval ends before it starts ({df['start'].iloc[i]} > {df['end'].iloc[i]})"
        )
    order = np.argsort(t["start"], kind="stable")
    s, e, r = t["start"][order], t["end"][order], room[order]
    over = np.flatnonzero(s[1:] < np.maximum.accumulate(e)[:-1])
    if len(over):
        j = int(over[0]) + 1
        prev = int(np.argmax(e[:j]))
        raise TinyLocError(
            f"{path}: row {int(order[j]) + 2}: interval overlaps the one on row {int(order[prev]) + 2}"
        )
    return s, e, r


def step_labels(n_steps: int, start_ms: np.ndarray, end_ms: np.ndarray, room: np.ndarray) -> np.ndarray:
    """``(S,)`` int32 label per 0.2 s step: the interval containing the step centre, else -1 (rule 3)."""
    centre = np.arange(n_steps, dtype=np.int64) * windows.STEP_MS + windows.STEP_MS // 2
    i = np.searchsorted(start_ms, centre, side="right") - 1
    ok = i >= 0
    ok[ok] &= centre[ok] < end_ms[i[ok]]
    y = np.full(n_steps, UNLABELLED, np.int32)
    y[ok] = room[i[ok]]
    return y


def read_sequence(seq_dir: Path, rooms: list[str], accelerometer: bool = False) -> dict:
    """One sequence -> ``grid (S, 4)`` float32 dBm (``(S, 7)`` with the accelerometer in g appended),
    ``labels (S,)`` int32, the packets ``t_ms``, ``ap``, ``rssi`` ``(P,)`` (as :func:`read_packets`) and facts for the
    metadata. Refuses an ``acceleration.csv`` that ends more than 1 s before ``meta.json``'s end or before the last
    annotated interval (a truncated file would otherwise read as −120 dBm for the missing part)."""
    acc = seq_dir / "acceleration.csv"
    if not acc.is_file():
        raise TinyLocError(f"{seq_dir}: no acceleration.csv in this sequence folder")
    t_ms, ap, rssi, heard, last_row_ms = read_packets(acc)
    ann = read_annotations(seq_dir / "location_0.csv", rooms)
    end_ms = int(t_ms.max()) if len(t_ms) else 0
    meta_path = seq_dir / "meta.json"
    if meta_path.is_file():
        try:
            meta_end = float(json.loads(meta_path.read_text())["end"])
        except (OSError, ValueError, KeyError, TypeError):
            raise TinyLocError(f"{meta_path}: expected JSON with a numeric 'end' (seconds)") from None
        if not (math.isfinite(meta_end) and 0 <= meta_end <= MAX_SEQUENCE_S):
            raise TinyLocError(f"{meta_path}: end {meta_end:g} s is not a finite time from 0 to {MAX_SEQUENCE_S:g} s")
        if abs(meta_end * 1000 - last_row_ms) > END_TOLERANCE_MS:
            raise TinyLocError(
                f"{acc}: the last row is at t = {last_row_ms / 1000:g} s but {meta_path.name} says the sequence ends at "
                f"{meta_end:g} s ({'a truncated acceleration.csv' if meta_end * 1000 > last_row_ms else 'rows after the end'}"
                f"? they agree within {END_TOLERANCE_MS / 1000:g} s in the release)")
        end_ms = max(end_ms, int(round(meta_end * 1000)))
    n_steps = end_ms // windows.STEP_MS + 1
    grid = windows.packets_to_grid(t_ms, ap, rssi, len(AP_COLUMNS), t0_ms=0, n_steps=n_steps, source=str(acc))
    if accelerometer:
        grid = np.concatenate([grid, accelerometer_grid(*read_accelerometer(acc), n_steps, str(acc))], axis=1)
    labels = step_labels(n_steps, *ann)
    if not (labels >= 0).any():
        raise TinyLocError(f"{seq_dir / 'location_0.csv'}: no annotated interval overlaps the recording")
    ann_end = int(ann[1].max())
    if ann_end - max(end_ms, last_row_ms) > END_TOLERANCE_MS:
        raise TinyLocError(
            f"{acc}: the last row is at t = {last_row_ms / 1000:g} s but location_0.csv annotates rooms until "
            f"{ann_end / 1000:g} s (a truncated acceleration.csv? the release's annotations end before its last row)")
    n_packets = len(np.unique(t_ms))
    return {"grid": grid, "labels": labels, "aps_heard": heard, "n_packets": n_packets, "n_steps": n_steps,
            "t_ms": t_ms, "ap": ap, "rssi": rssi}


# --------------------------------------------------------------------------------------------- loader
def sequence_dirs(public: Path, train_sequences=TRAIN_SEQUENCES, test_sequences=TEST_SEQUENCES) -> dict[str, list[Path]]:
    """``{"train": [...], "test": [...]}``: the sequence folders of ``public/train`` used by each split (rule 4)."""
    train_dir = public / "train"
    seq_dirs = sorted(d for d in train_dir.iterdir() if d.is_dir() and d.name.isdigit())
    for d in seq_dirs:
        if not (d / "acceleration.csv").is_file():
            raise TinyLocError(f"{d}: no acceleration.csv in this sequence folder")
    use = {"train": [d for d in seq_dirs if d.name in train_sequences],
           "test": [d for d in seq_dirs if d.name in test_sequences]}
    for split, names in (("train", train_sequences), ("test", test_sequences)):
        if not use[split]:
            raise TinyLocError(f"{train_dir}: none of the {split} sequences {', '.join(names)} is present")
    return use


def load_sphere(
    data_dir: str | os.PathLike | None = None,
    train_sequences: tuple[str, ...] = TRAIN_SEQUENCES,
    test_sequences: tuple[str, ...] = TEST_SEQUENCES,
    accelerometer: bool = False,
) -> WindowDataset:
    """Load the SPHERE house as a :class:`WindowDataset` (rules in the module docstring).

    Args:
        data_dir: folder holding ``public_data/`` (or ``public_data/`` itself); ``None`` = default search.
        train_sequences: sequence folders split into train / validation by contiguous blocks.
        test_sequences: sequence folders used whole as the test set.
        accelerometer: append the three accelerometer features (rule 6); default RSSI only.

    Returns:
        x ``(B, 20, F)`` float32 in [0, 1] (F = 4, or 7 with the accelerometer), y ``(B, 20)`` int32 with
        ``-1`` = unlabelled step.
    """
    public = find_public_dir(data_dir)
    use = sequence_dirs(public, train_sequences, test_sequences)
    files = [public / "rooms.json"]
    for d in use["train"] + use["test"]:
        files += [d / n for n in ("acceleration.csv", "location_0.csv", "meta.json") if (d / n).is_file()]
    accelerometer = bool(accelerometer)
    h = hashlib.md5(
        f"{CACHE_VERSION}|{','.join(train_sequences)}|{','.join(test_sequences)}|acc={accelerometer}".encode()
    )
    for f in files:
        h.update(f"{f.relative_to(public)}|".encode())
        h.update(_md5_file(f).encode())
    md5 = h.hexdigest()
    cache = paths.user_cache_dir() / f"sphere-v{CACHE_VERSION}-{md5}.npz"
    ds = _from_cache(cache)
    if ds is not None:
        return ds

    rooms = read_rooms(public / "rooms.json")
    parts: dict[str, list] = {"train": [], "val": [], "test": []}
    seq_meta = {}
    for split in ("train", "test"):
        for d in use[split]:
            rec = read_sequence(d, rooms, accelerometer=accelerometer)
            if split == "train":
                got = windows.split_recording(rec["grid"], rec["labels"])
            else:
                got = {"test": windows.make_windows(rec["grid"], rec["labels"])}
            counts = {}
            for s, (x, y) in got.items():
                keep = (y >= 0).any(axis=1)
                parts[s].append((x[keep], y[keep]))
                counts[s] = int(keep.sum())
            seq_meta[d.name] = {
                "split": "train/val" if split == "train" else "test",
                "steps": rec["n_steps"],
                "labelled_steps": int((rec["labels"] >= 0).sum()),
                "packets": rec["n_packets"],
                "aps_heard": rec["aps_heard"],
                "windows": counts,
            }
    arrays = {}
    for s, items in parts.items():
        arrays[f"x_{s}"] = np.concatenate([x for x, _ in items]).astype(np.float32)
        arrays[f"y_{s}"] = np.concatenate([y for _, y in items]).astype(np.int32)
    scaling = MinMaxScaling.fit(arrays["x_train"])
    meta = {
        "source": str(public),
        "source_md5": md5,
        "annotator": 0,
        "split": "00001-00007 train/val by contiguous 60 s blocks (every 4th -> val); 00008-00010 test",
        "absent_ap": f"an AP absent from a sequence reads {windows.FILL_DBM:g} dBm throughout",
        "accelerometer": accelerometer,
        "sequences": seq_meta,
    }
    arrays.update(
        low=scaling.low, high=scaling.high, class_names=np.asarray(rooms),
        feature_names=np.asarray(AP_COLUMNS + (ACC_FEATURES if accelerometer else ())),
        meta=np.asarray(json.dumps(meta)),
    )
    try:
        paths.atomic_save_npz(cache, **arrays)
    except OSError:
        pass  # an unwritable cache only costs speed
    return _dataset(arrays)


def _md5_file(path: Path) -> str:
    h = hashlib.md5()
    try:
        with open(path, "rb") as fh:
            for chunk in iter(lambda: fh.read(1 << 20), b""):
                h.update(chunk)
    except OSError as exc:
        raise TinyLocError(f"{path}: cannot read ({exc.strerror})") from None
    return h.hexdigest()


def _from_cache(path: Path) -> WindowDataset | None:
    if not path.is_file():
        return None
    try:
        with np.load(path) as z:
            arrays = {k: z[k] for k in z.files}
    except (OSError, ValueError, zipfile.BadZipFile):
        return None
    return _dataset(arrays)


def _dataset(a: dict[str, np.ndarray]) -> WindowDataset:
    scaling = MinMaxScaling(low=np.asarray(a["low"], np.float32), high=np.asarray(a["high"], np.float32))
    return WindowDataset(
        name="sphere",
        x_train=scaling.transform(a["x_train"]), y_train=a["y_train"],
        x_val=scaling.transform(a["x_val"]), y_val=a["y_val"],
        x_test=scaling.transform(a["x_test"]), y_test=a["y_test"],
        class_names=[str(c) for c in a["class_names"]],
        feature_names=[str(f) for f in a["feature_names"]],
        scaling=scaling,
        fill_value=float(windows.FILL_DBM),
        meta=json.loads(str(a["meta"])),
    )
