"""In-Home BLE houses A–D: the published archive layout, the flat per-house CSVs, or a simulated copy.

Sources, searched in this order under ``data_dir`` (``--data-dir`` > ``$KERAS_TINYLOC_DATA`` >
``data/raw``):

1. **Published layout**: ``house_X/`` or ``ble-accelerometer-indoor-localisation-measurements/house_X/``
   (or ``data_dir`` itself named ``house_X``) with ``metadata/{ap_coordinates, room_names, room_tags}.dat``
   and ``experiments/{fingerprint_*, living_*}/{rx_wearable_data, tag_annotations}.dat``.
   ``rx_wearable_data.dat`` is long format (``timestamp, ap_id, wearable_id, rssi``; a missed packet has
   no row); ``tag_annotations.dat`` gives ``timestamp, ?, tag, x, y, z``; a tag's room comes from
   ``room_tags.dat``.
2. **Flat CSVs**: ``csv_house_X_fp.csv`` (fingerprint) and ``csv_house_X_fl.csv`` (free-living) in
   ``data_dir`` or ``data_dir/house_X``: column 0 a time (``YYYY-MM-DD HH:MM:SS.fff``) or a row index
   (then each row is one 5 Hz step and keeps its own label), one RSSI column per AP (empty = not
   heard), last column the room label (1-based; 0 or empty = unlabelled). Class names come from
   ``metadata/room_names.dat`` beside them when present, else ``room 1 .. room C``.
3. Otherwise — only when no ``--data-dir`` was given: an explicit folder without the house is an error naming it —
   a **simulated** house (:func:`keras_tinyloc.data.simulate.simulate_house`), generated
   once into ``user_cache_dir()/sim/house_X_seed{seed}_scale{scale}_v{SIM_VERSION}`` and read as in 1
   (``meta["source"] == "simulated"``).

Pre-processing is :mod:`keras_tinyloc.data.windows` (shared with SPHERE and the device): 5 Hz grid,
forward-fill ≤ 1 s, −120 dBm, windows of T=20 steps with hop 10; the fingerprint recordings are
split 75/25 into train/validation by contiguous 60 s blocks; all free-living recordings form the test
set. The grid of a recording starts half a step before its first packet, so packets sent every
200 ms with a few ms of jitter fall one per step. A step's label is the room of the annotation nearest
to the step's centre if it lies within 500 ms (as the dataset's authors match packets to annotations),
else −1. Windows without any labelled step are dropped. Min-max scaling is fit on the training windows.
Processed arrays are cached (npz, written atomically) keyed by the source files' sizes and times.
"""
from __future__ import annotations

import hashlib
import json
import os
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from keras_tinyloc import paths
from keras_tinyloc.data import windows
from keras_tinyloc.data.base import UNLABELLED, MinMaxScaling, WindowDataset
from keras_tinyloc.errors import TinyLocError

ARCHIVE_DIR = "ble-accelerometer-indoor-localisation-measurements"
MATCH_MS = 500  # annotation ↔ step matching tolerance
RSSI_RANGE = (-130.0, 0.0)
PROCESSING_VERSION = 2


@dataclass
class HouseMeta:
    """What the loader needs from ``metadata/``.

    Attributes:
        ap_ids: ``F`` AP ids in feature order (as in ``ap_coordinates.dat``).
        class_names: ``C`` room names in room-id order.
        room_ids: ``C`` room ids matching ``class_names``.
        tag_class: tag id → class index.
    """

    ap_ids: list[int]
    class_names: list[str]
    room_ids: list[int]
    tag_class: dict[int, int]


# --------------------------------------------------------------------------- reading helpers
def _read_table(path: Path):
    import pandas as pd

    if not path.is_file():
        raise TinyLocError(f"{path}: missing file")
    try:
        # only an empty cell (or a literal NaN) means "missing"; words like "n/a" are reported as bad values
        df = pd.read_csv(path, skipinitialspace=True, keep_default_na=False, na_values=["", "nan", "NaN"])
    except Exception as exc:  # pandas raises many types for malformed text
        raise TinyLocError(f"{path}: cannot be read as comma-separated text ({type(exc).__name__})") from None
    df.columns = [str(c).strip() for c in df.columns]
    return df


def _column(df, path: Path, want: str, keys: tuple[str, ...], fallback: int | None, exclude: tuple[str, ...] = ()):
    """Find a column whose lower-cased name equals or contains one of ``keys``."""
    low = [c.lower() for c in df.columns]
    for k in keys:
        if k in low:
            return df.columns[low.index(k)]
    for i, c in enumerate(low):
        if any(k in c for k in keys) and not any(e in c for e in exclude):
            return df.columns[i]
    if fallback is not None and fallback < len(df.columns):
        return df.columns[fallback]
    raise TinyLocError(f"{path}: missing column {want!r} (columns: {', '.join(map(str, df.columns))})")


def _ints(series, path: Path, col: str) -> np.ndarray:
    import pandas as pd

    v = pd.to_numeric(series, errors="coerce")
    bad = np.flatnonzero(v.isna().to_numpy() | (v.to_numpy() != np.round(v.to_numpy())))
    if len(bad):
        raise TinyLocError(f"{path}: row {bad[0] + 2}: column {col!r} is not an integer id ({series.iloc[bad[0]]!r})")
    return v.to_numpy().astype(np.int64)


def _rssi(series, path: Path, col: str, allow_empty: bool) -> np.ndarray:
    import pandas as pd

    raw = series
    v = pd.to_numeric(raw, errors="coerce").to_numpy(dtype=np.float64)
    nonnum = np.isnan(v) & (raw.notna().to_numpy() if allow_empty else True)
    if nonnum.any():
        i = int(np.flatnonzero(nonnum)[0])
        raise TinyLocError(f"{path}: row {i + 2}: non-numeric RSSI {raw.iloc[i]!r} in column {col!r}")
    out = (~np.isnan(v)) & ((v < RSSI_RANGE[0]) | (v > RSSI_RANGE[1]))
    if out.any():
        i = int(np.flatnonzero(out)[0])
        raise TinyLocError(f"{path}: row {i + 2}: RSSI {v[i]:g} in column {col!r} outside {RSSI_RANGE[0]:g}..{RSSI_RANGE[1]:g} dBm")
    return v


def _times_ms(series, path: Path, col: str) -> np.ndarray:
    import pandas as pd

    t = pd.to_datetime(series.astype(str).str.strip(), format="ISO8601", errors="coerce")
    bad = np.flatnonzero(t.isna().to_numpy())
    if len(bad):
        raise TinyLocError(f"{path}: row {bad[0] + 2}: bad timestamp {series.iloc[bad[0]]!r} in column {col!r}")
    return (t.to_numpy().astype("datetime64[ms]").astype(np.int64)).astype(np.int64)


def read_metadata(house_dir: Path) -> HouseMeta:
    """Read AP ids, room names and the tag → room map from ``house_dir/metadata``."""
    meta = Path(house_dir) / "metadata"
    ap = _read_table(meta / "ap_coordinates.dat")
    ap_ids = _ints(ap[_column(ap, meta / "ap_coordinates.dat", "ap_id", ("ap_id", "id"), 0)], meta / "ap_coordinates.dat", "ap_id")
    if len(ap_ids) == 0:
        raise TinyLocError(f"{meta / 'ap_coordinates.dat'}: no access points listed")
    rn_path = meta / "room_names.dat"
    rn = _read_table(rn_path)
    if len(rn.columns) < 2:
        raise TinyLocError(f"{rn_path}: expected columns room_id,room_name")
    rid = _ints(rn[_column(rn, rn_path, "room_id", ("room_id", "id"), 0, exclude=("name",))], rn_path, "room_id")
    names = [str(s).strip() for s in rn[_column(rn, rn_path, "room_name", ("room_name", "name"), 1)]]
    rt_path = meta / "room_tags.dat"
    rt = _read_table(rt_path)
    if len(rt.columns) < 2:
        raise TinyLocError(f"{rt_path}: expected columns room_id,tag_id")
    r_col = _column(rt, rt_path, "room_id", ("room_id", "room"), 0)
    t_col = _column(rt, rt_path, "tag_id", ("tag_id", "tag"), 1)
    rooms = _ints(rt[r_col], rt_path, r_col)
    tags = _ints(rt[t_col], rt_path, t_col)
    pos = {r: i for i, r in enumerate(rid)}
    tag_class = {}
    for k, (r, t) in enumerate(zip(rooms, tags)):
        if r not in pos:
            raise TinyLocError(f"{rt_path}: row {k + 2}: room id {r} is not in room_names.dat")
        tag_class[int(t)] = pos[int(r)]
    return HouseMeta([int(a) for a in ap_ids], names, [int(r) for r in rid], tag_class)


def read_rx(path: Path, ap_ids: list[int]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Read ``rx_wearable_data.dat`` → ``(P,)`` times (ms), AP index in ``[0, F)``, RSSI (dBm)."""
    df = _read_table(path)
    t_col = _column(df, path, "timestamp", ("timestamp", "time", "ts"), None)
    a_col = _column(df, path, "ap_id", ("ap_id", "ap", "receiver"), None)
    r_col = _column(df, path, "rssi", ("rssi",), None)
    t = _times_ms(df[t_col], path, t_col)
    ap = _ints(df[a_col], path, a_col)
    rssi = _rssi(df[r_col], path, r_col, allow_empty=False)
    index = {a: i for i, a in enumerate(ap_ids)}
    idx = np.array([index.get(int(a), -1) for a in ap], np.int64) if len(ap) else np.zeros(0, np.int64)
    if (idx < 0).any():
        i = int(np.flatnonzero(idx < 0)[0])
        raise TinyLocError(f"{path}: row {i + 2}: unknown AP id {ap[i]} (not in ap_coordinates.dat)")
    return t, idx, rssi.astype(np.float32)


def read_annotations(path: Path, tag_class: dict[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """Read ``tag_annotations.dat`` → ``(A,)`` times (ms) and class index of each annotation."""
    df = _read_table(path)
    t_col = _column(df, path, "timestamp", ("timestamp", "time", "ts"), 0)
    g_col = _column(df, path, "tag", ("tag", "tag_id"), 2, exclude=("coord", "_x", "_y", "_z"))
    t = _times_ms(df[t_col], path, t_col)
    tags = _ints(df[g_col], path, g_col)
    cls = np.array([tag_class.get(int(g), -1) for g in tags], np.int64)
    if (cls < 0).any():
        i = int(np.flatnonzero(cls < 0)[0])
        raise TinyLocError(f"{path}: row {i + 2}: tag {tags[i]} has no room in room_tags.dat")
    return t, cls


def match_labels(step_ms: np.ndarray, ann_ms: np.ndarray, ann_cls: np.ndarray, tol_ms: int = MATCH_MS) -> np.ndarray:
    """Label of each step ``(S,)``: the nearest annotation within ``tol_ms`` (earlier wins ties), else −1."""
    out = np.full(len(step_ms), UNLABELLED, np.int32)
    if len(ann_ms) == 0 or len(step_ms) == 0:
        return out
    order = np.argsort(ann_ms, kind="stable")
    a_t, a_c = ann_ms[order], ann_cls[order]
    j = np.searchsorted(a_t, step_ms, side="left")
    prev = np.clip(j - 1, 0, len(a_t) - 1)
    nxt = np.clip(j, 0, len(a_t) - 1)
    d_prev = np.abs(step_ms - a_t[prev])
    d_next = np.abs(a_t[nxt] - step_ms)
    pick = np.where(d_prev <= d_next, prev, nxt)
    d = np.minimum(d_prev, d_next)
    ok = d <= tol_ms
    out[ok] = a_c[pick[ok]]
    return out


def recording_readings(folder: Path, meta: HouseMeta) -> dict:
    """One published recording → its readings and step labels, before the grid.

    Returns ``{"t_ms", "ap", "rssi"}`` ``(P,)`` (file order; AP index into ``meta.ap_ids``), ``"t0"`` (the grid's
    step 0: half a step before the first packet), ``"n_steps"`` S and ``"labels"`` ``(S,)`` int32 (−1 unlabelled).
    """
    folder = Path(folder)
    t, ap, rssi = read_rx(folder / "rx_wearable_data.dat", meta.ap_ids)
    if len(t) == 0:
        raise TinyLocError(f"{folder / 'rx_wearable_data.dat'}: no packets")
    a_t, a_c = read_annotations(folder / "tag_annotations.dat", meta.tag_class)
    t0 = int(t.min()) - windows.STEP_MS // 2
    n_steps = (int(t.max()) - t0) // windows.STEP_MS + 1
    centres = t0 + np.arange(n_steps, dtype=np.int64) * windows.STEP_MS + windows.STEP_MS // 2
    labels = match_labels(centres, a_t, a_c)
    if not (labels >= 0).any():
        raise TinyLocError(f"{folder / 'tag_annotations.dat'}: no annotation within {MATCH_MS} ms of any packet (recording has no labels)")
    return {"t_ms": t, "ap": ap, "rssi": rssi, "t0": t0, "n_steps": n_steps, "labels": labels}


def recording_grid(folder: Path, meta: HouseMeta) -> tuple[np.ndarray, np.ndarray]:
    """One published recording → ``(S, F)`` grid (dBm) and ``(S,)`` labels."""
    r = recording_readings(folder, meta)
    grid = windows.packets_to_grid(r["t_ms"], r["ap"], r["rssi"], len(meta.ap_ids), t0_ms=r["t0"],
                                   n_steps=r["n_steps"], source=str(Path(folder) / "rx_wearable_data.dat"))
    return grid, r["labels"]


def read_flat_csv(path: Path, n_classes: int | None) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """A flat per-house CSV → ``(S, F)`` grid (dBm), ``(S,)`` labels (0-based, −1 unlabelled), AP names."""
    r = flat_readings(path, n_classes)
    grid = windows.packets_to_grid(r["t_ms"], r["ap"], r["rssi"], len(r["ap_names"]), t0_ms=r["t0"],
                                   n_steps=r["n_steps"], source=str(path))
    return grid, r["labels"], r["ap_names"]


def flat_readings(path: Path, n_classes: int | None) -> dict:
    """A flat per-house CSV → readings and step labels before the grid (keys as :func:`recording_readings`, plus
    ``"ap_names"``: the AP columns)."""
    import pandas as pd

    df = _read_table(path)
    if len(df.columns) < 3:
        raise TinyLocError(f"{path}: expected a time/index column, one RSSI column per AP and a label column; got {len(df.columns)} columns")
    if len(df) == 0:
        raise TinyLocError(f"{path}: no rows")
    c0, ap_cols, lab_col = df.columns[0], list(df.columns[1:-1]), df.columns[-1]
    lab = pd.to_numeric(df[lab_col], errors="coerce")
    bad = np.flatnonzero((lab.isna() & df[lab_col].notna()).to_numpy())
    if len(bad):
        raise TinyLocError(f"{path}: row {bad[0] + 2}: room label {df[lab_col].iloc[bad[0]]!r} in column {lab_col!r} is not a number")
    lab = lab.fillna(0).to_numpy()
    if (lab != np.round(lab)).any() or (lab < 0).any() or (n_classes is not None and (lab > n_classes).any()):
        i = int(np.flatnonzero((lab != np.round(lab)) | (lab < 0) | ((lab > n_classes) if n_classes else False))[0])
        raise TinyLocError(f"{path}: row {i + 2}: room label {lab[i]:g} in column {lab_col!r} is not in 1..{n_classes or 'C'}")
    lab = lab.astype(np.int64) - 1
    vals = np.stack([_rssi(df[c], path, c, allow_empty=True) for c in ap_cols], axis=1)
    n, f = vals.shape
    numeric_t = pd.to_numeric(df[c0], errors="coerce")
    if numeric_t.notna().all():
        t_rows = np.arange(n, dtype=np.int64) * windows.STEP_MS  # each row one 5 Hz step
        t0 = 0
    else:
        t_rows = _times_ms(df[c0], path, str(c0))
        t0 = int(t_rows.min()) - windows.STEP_MS // 2
    s, a = np.nonzero(~np.isnan(vals))
    n_steps = int((t_rows.max() - t0) // windows.STEP_MS) + 1
    if numeric_t.notna().all():
        labels = lab.astype(np.int32)  # one row per step: the row's own label
    else:
        centres = t0 + np.arange(n_steps, dtype=np.int64) * windows.STEP_MS + windows.STEP_MS // 2
        keep = lab >= 0
        labels = match_labels(centres, t_rows[keep], lab[keep])
    if not (labels >= 0).any():
        raise TinyLocError(f"{path}: no labelled rows (recording has no labels)")
    return {"t_ms": t_rows[s], "ap": a.astype(np.int64), "rssi": vals[s, a].astype(np.float32), "t0": int(t0),
            "n_steps": n_steps, "labels": labels, "ap_names": [str(c) for c in ap_cols]}


# --------------------------------------------------------------------------- locating a house
def find_house(letter: str, data_dir: str | os.PathLike | None) -> tuple[str, Path] | None:
    """``("published", house_dir)``, ``("flat", dir_with_csvs)`` or None when ``data_dir`` has no house."""
    base = paths.data_dir(data_dir)
    name = f"house_{letter}"
    published = [base / name, base / ARCHIVE_DIR / name] + ([base] if base.name == name else [])
    for cand in published:
        if (cand / "experiments").is_dir():
            return "published", cand
    for cand in (base, base / name):
        if (cand / f"csv_{name}_fp.csv").exists() or (cand / f"csv_{name}_fl.csv").exists():
            return "flat", cand
    for cand in published:  # a partial copy: report what is missing rather than simulate
        if (cand / "metadata").is_dir():
            return "published", cand
    return None


def missing_house_message(letter: str, data_dir: Path) -> str:
    """The one-line error for an explicit ``--data-dir`` without house ``letter`` (never a silent simulator)."""
    name = f"house_{letter}"
    expected = (f"expected {name}/ with metadata/ and experiments/ (the published archive) or csv_{name}_fp.csv + "
                f"csv_{name}_fl.csv; the simulated house is used only without --data-dir")
    if not data_dir.exists():
        return f"--data-dir {data_dir}: no such folder ({expected})"
    if not data_dir.is_dir():
        return f"--data-dir {data_dir}: not a folder ({expected})"
    entries = sorted(p.name for p in data_dir.iterdir())
    if not entries:
        return f"--data-dir {data_dir}: an empty folder, no {name} ({expected})"
    others = set()
    for folder in (data_dir, data_dir / ARCHIVE_DIR):
        for e in (folder.iterdir() if folder.is_dir() else ()):
            m = re.match(r"(?:csv_)?(house_[A-Za-z])(?:_f[pl]\.csv)?$", e.name)
            if m and m.group(1) != name:
                others.add(m.group(1))
    shown = sorted(others) if others else entries[:4] + (["..."] if len(entries) > 4 else [])
    found = f"; it holds {', '.join(shown)}"
    return f"--data-dir {data_dir}: no {name} ({expected}){found}"


def simulated_house_dir(letter: str, seed: int = 0, scale: float = 1.0) -> Path:
    """The cached simulated copy of house ``letter`` (generated atomically on first use)."""
    from keras_tinyloc.data.simulate import SIM_VERSION, simulate_house

    root = paths.user_cache_dir() / "sim" / f"house_{letter}_seed{int(seed)}_scale{float(scale):g}_v{SIM_VERSION}"
    house = root / f"house_{letter}"
    if not house.is_dir():
        try:
            simulate_house(letter, root, seed=seed, scale=scale)
        except TinyLocError:
            if not house.is_dir():  # not a concurrent writer finishing first
                raise
    return house


def _source_files(kind: str, where: Path, letter: str) -> list[Path]:
    if kind == "flat":
        return sorted(p for p in (where / f"csv_house_{letter}_fp.csv", where / f"csv_house_{letter}_fl.csv",
                                  where / "metadata" / "room_names.dat") if p.exists())
    return sorted(p for p in where.rglob("*.dat") if p.name in
                  ("ap_coordinates.dat", "room_names.dat", "room_tags.dat", "rx_wearable_data.dat", "tag_annotations.dat"))


def _cache_key(kind: str, where: Path, letter: str) -> str:
    h = hashlib.sha1(f"{PROCESSING_VERSION}|{kind}|{where.resolve()}|{letter}".encode())
    for p in _source_files(kind, where, letter):
        st = p.stat()
        h.update(f"|{p.relative_to(where)}:{st.st_size}:{st.st_mtime_ns}".encode())
    return h.hexdigest()[:16]


# --------------------------------------------------------------------------- assembling windows
def _published_recordings(house_dir: Path) -> tuple[HouseMeta, list[tuple[str, Path]]]:
    meta = read_metadata(house_dir)
    exp = house_dir / "experiments"
    if not exp.is_dir():
        raise TinyLocError(f"{exp}: missing directory (expected experiments/fingerprint_* and living_*)")
    recs = []
    for d in sorted(exp.iterdir(), key=lambda p: (len(p.name), p.name)):
        if d.is_dir() and d.name.startswith("fingerprint"):
            recs.append(("fp", d))
        elif d.is_dir() and d.name.startswith("living"):
            recs.append(("fl", d))
    if not any(k == "fp" for k, _ in recs):
        raise TinyLocError(f"{exp}: no fingerprint_* recording")
    if not any(k == "fl" for k, _ in recs):
        raise TinyLocError(f"{exp}: no living_* recording")
    return meta, recs


def read_flat_house(where: Path, letter: str, reader) -> tuple[list[str] | None, dict]:
    """A flat-layout house: its room names and its two files read by ``reader``.

    Returns ``(class_names, {"fp": reader(fp_path, C), "fl": reader(fl_path, C)})``: ``class_names`` from
    ``metadata/room_names.dat`` (last column), or None when that file is absent (then C is None too and the caller
    names rooms by label). ``reader`` is :func:`read_flat_csv` (windows) or :func:`flat_readings` (the importer's
    readings). Raises TinyLocError naming a missing ``csv_house_X_{fp,fl}.csv``.
    """
    names_file = where / "metadata" / "room_names.dat"
    class_names = None
    if names_file.exists():
        rn = _read_table(names_file)
        class_names = [str(s).strip() for s in rn[rn.columns[-1]]]
    got = {}
    for k in ("fp", "fl"):
        p = where / f"csv_house_{letter}_{k}.csv"
        if not p.exists():
            raise TinyLocError(f"{p}: missing file")
        got[k] = reader(p, len(class_names) if class_names else None)
    return class_names, got


def house_windows(kind: str, where: Path, letter: str) -> dict:
    """Raw (unscaled, dBm) windows ``x_{train,val,test}`` ``(B, T, F)``, ``y_*`` ``(B, T)``, names, recordings.

    ``kind``/``where`` as returned by :func:`find_house` (``"published"`` or ``"flat"``).
    """
    parts = {"train": [], "val": [], "test": []}
    if kind == "published":
        meta, recs = _published_recordings(where)
        class_names = meta.class_names
        feature_names = [f"ap_{a}" for a in meta.ap_ids]
        recordings = []
        for k, folder in recs:
            grid, labels = recording_grid(folder, meta)
            recordings.append(folder.name)
            _add(parts, k, grid, labels)
    else:
        class_names, got = read_flat_house(where, letter, read_flat_csv)
        if got["fp"][2] != got["fl"][2]:
            raise TinyLocError(f"{where / f'csv_house_{letter}_fl.csv'}: AP columns differ from the fingerprint file's")
        if class_names is None:
            c = int(max(got["fp"][1].max(), got["fl"][1].max())) + 1
            class_names = [f"room {i + 1}" for i in range(c)]
        feature_names = got["fp"][2]
        recordings = [f"csv_house_{letter}_fp.csv", f"csv_house_{letter}_fl.csv"]
        for k in ("fp", "fl"):
            _add(parts, k, got[k][0], got[k][1])
    out = {}
    f = len(feature_names)
    for split, items in parts.items():
        x = np.concatenate([a for a, _ in items]) if items else np.zeros((0, windows.WINDOW_STEPS, f), np.float32)
        y = np.concatenate([b for _, b in items]) if items else np.zeros((0, windows.WINDOW_STEPS), np.int32)
        keep = (y >= 0).any(axis=1)
        x, y = x[keep], y[keep]
        if len(x) == 0:
            what = "fingerprint recordings (train)" if split == "train" else (
                "fingerprint recordings (validation blocks)" if split == "val" else "free-living recordings (test)")
            raise TinyLocError(f"{where}: empty window set: the {what} give no labelled {windows.WINDOW_STEPS}-step window")
        out[f"x_{split}"], out[f"y_{split}"] = x, y
    out["class_names"], out["feature_names"], out["recordings"] = class_names, feature_names, recordings
    return out


def _add(parts: dict, kind: str, grid: np.ndarray, labels: np.ndarray) -> None:
    if kind == "fp":
        sp = windows.split_recording(grid, labels)
        parts["train"].append(sp["train"])
        parts["val"].append(sp["val"])
    else:
        parts["test"].append(windows.make_windows(grid, labels))


def load_house(letter: str, data_dir: str | os.PathLike | None = None, scale: float = 1.0, seed: int = 0) -> WindowDataset:
    """Load house ``letter`` (A–D, or the SPHERE-like S) as windows; see the module doc for sources.

    Args:
        letter: house letter.
        data_dir: where a real copy is (published layout or flat CSVs); without one, a simulated copy.
        scale, seed: of the simulated copy (ignored for real data).

    Returns:
        A :class:`WindowDataset` named ``house-x``: ``x_*`` ``(B, 20, F)``, ``y_*`` ``(B, 20)``.
    """
    letter = str(letter).upper()
    if letter not in ("A", "B", "C", "D", "S"):
        raise TinyLocError(f"unknown house {letter!r} (choose from A, B, C, D, or S for the SPHERE-like house)")
    found = find_house(letter, data_dir)
    if found is None and data_dir:
        raise TinyLocError(missing_house_message(letter, Path(data_dir)))
    if found is None:
        kind, where, source = "published", simulated_house_dir(letter, seed, scale), "simulated"
    else:
        kind, where = found
        source = "simulated" if (where / "simulation.json").exists() else "real"
    key = _cache_key(kind, where, letter)
    cache = paths.user_cache_dir() / "inhome" / f"house_{letter}_{key}.npz"
    name = f"house-{letter.lower()}"
    if cache.is_file():
        try:
            with np.load(cache, allow_pickle=False) as z:
                info = json.loads(str(z["info"]))
                return WindowDataset(
                    name=name,
                    **{k: z[k] for k in ("x_train", "y_train", "x_val", "y_val", "x_test", "y_test")},
                    class_names=info["class_names"], feature_names=info["feature_names"],
                    scaling=MinMaxScaling(low=z["low"], high=z["high"]), fill_value=windows.FILL_DBM,
                    meta=info["meta"],
                )
        except (OSError, KeyError, ValueError):
            pass  # unreadable cache: rebuild it
    raw = house_windows(kind, where, letter)
    scaling = MinMaxScaling.fit(raw["x_train"])
    meta = {
        "source": source, "layout": kind, "path": str(where), "recordings": raw["recordings"],
        "split": "fingerprint 75/25 by contiguous 60 s blocks (every 4th → val); free-living → test",
        "window": windows.WINDOW_STEPS, "hop": windows.HOP_STEPS,
    }
    if source == "simulated":
        meta.update({"seed": int(seed), "scale": float(scale)})
    arrays = {k: raw[k] for k in ("x_train", "y_train", "x_val", "y_val", "x_test", "y_test")}
    for split in ("train", "val", "test"):
        arrays[f"x_{split}"] = scaling.transform(arrays[f"x_{split}"])
        arrays[f"y_{split}"] = arrays[f"y_{split}"].astype(np.int32)
    info = {"class_names": raw["class_names"], "feature_names": raw["feature_names"], "meta": meta}
    ds = WindowDataset(name=name, **arrays, class_names=raw["class_names"], feature_names=raw["feature_names"],
                       scaling=scaling, fill_value=windows.FILL_DBM, meta=meta)
    paths.atomic_save_npz(cache, **arrays, low=scaling.low, high=scaling.high, info=np.array(json.dumps(info)))
    return ds
