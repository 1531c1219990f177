"""UJIIndoorLoc (real WiFi fingerprints): reader, labelings, splits, cache and download.

Source: the published ``UJIIndoorLoc.zip`` (UCI dataset 310; Torres-Sospedra et al., IPIN 2014) or its two
CSVs ``trainingData.csv`` / ``validationData.csv``, found in the first of

1. the ``data_dir`` argument (``--data-dir``; an explicit directory or file is never skipped),
2. ``$KERAS_TINYLOC_DATA``,
3. ``data/raw/``,
4. the workplace copy ``paths.shared_data_dir() / "ujiindoorloc"``,

that holds them (directly, in a ``ujiindoorloc/`` or ``UJIndoorLoc/`` sub-folder, or as a zip; the UCI download
``ujiindoorloc.zip`` wraps ``UJIIndoorLoc.zip`` and both forms are read).

Processing (one row = one sample, no windowing, so ``T = 1``):

* RSSI columns ``WAP001 … WAPnnn`` (520 in the real data) are dBm in −127..0; ``100`` = not detected and is
  mapped to :attr:`WindowDataset.fill_value` = ``min(-110, weakest real reading of the training split - 1)``,
  i.e. below every real reading (−110 on the real data, weakest −104).
* Splits: a 75/25 split of ``trainingData`` stratified by building-floor with a fixed ``seed`` gives train and
  validation (the same rows for both labelings); ``validationData`` is the test set.
* Scaling: :class:`MinMaxScaling` fit on the training split only.
* ``labeling="building-floor"`` (dataset ``uji``): 13 classes ``B<building>-F<floor>``.
* ``labeling="zones"`` (dataset ``uji-zones``): ``K = n_zones`` area classes. K is split across building-floors by
  the **largest-remainder rule** proportional to each building-floor's number of training-split samples
  (quota ``K * n_i / N``; everyone gets the floor of the quota, the remaining seats go to the largest fractional
  remainders, ties to the lower class index; a building-floor left with 0 seats takes one from the building-floor
  with the most). Within each building-floor, k-means (scikit-learn, ``random_state=seed``) on the training split's
  (LONGITUDE, LATITUDE) gives the zone centres, ordered by (longitude, latitude); **every** sample (train, val, test)
  is then labelled with the nearest centre of its own building-floor. The centres are saved as JSON in the cache
  (``uji-zones-K{K}-seed{seed}-{md5}.json``) and reused, so labels are reproducible.

Cache (``paths.user_cache_dir()``, written atomically): the parsed tables (``uji-table-{md5}.npz``, shared by both
labelings) and the processed dataset (``uji-{labeling}-K{K}-seed{seed}-{md5}.npz``), keyed by the md5 of the source
files. A second load only hashes the source and reads one npz.

Shapes: ``x_*`` ``(B, 1, F)`` float32 in [0, 1] (F = 520), ``y_*`` ``(B, 1)`` int32.
"""
from __future__ import annotations

import hashlib
import io
import json
import os
import re
import urllib.error
import urllib.request
import zipfile
import zlib
from pathlib import Path

import numpy as np

from keras_tinyloc import paths
from keras_tinyloc.data.base import MinMaxScaling, WindowDataset, read_csv_table
from keras_tinyloc.errors import TinyLocError

TRAIN_CSV = "trainingData.csv"
TEST_CSV = "validationData.csv"
NOT_DETECTED = 100
MIN_DBM, MAX_DBM = -127, 0
DEFAULT_FILL = -110.0
CACHE_VERSION = 1
REQUIRED_COLUMNS = ("LONGITUDE", "LATITUDE", "FLOOR", "BUILDINGID")
WAP_RE = re.compile(r"^WAP(\d{3})$")

UCI_URL = "https://archive.ics.uci.edu/static/public/310/ujiindoorloc.zip"
ARCHIVE_NAME = "UJIIndoorLoc.zip"
ARCHIVE_MD5 = "3e989426a228edbb358b77297c2d08d6"
CSV_MD5 = {TRAIN_CSV: "ff04de449948e9931c301ff809662331", TEST_CSV: "e6c0fc68156814beb98c4363b062be6f"}
LABELINGS = ("building-floor", "zones")


# --------------------------------------------------------------------------------------------- finding the source
class _Source:
    """Where the two CSVs are: a directory (two files) or a zip file (possibly wrapping another zip)."""

    def __init__(self, path: Path, kind: str):
        self.path = path
        self.kind = kind  # "dir" or "zip"

    def files(self) -> list[Path]:
        if self.kind == "zip":
            return [self.path]
        return [self.path / TRAIN_CSV, self.path / TEST_CSV]

    def md5(self) -> str:
        h = hashlib.md5()
        for f in self.files():
            if not f.is_file():
                raise TinyLocError(f"{f}: missing (UJIIndoorLoc needs {TRAIN_CSV} and {TEST_CSV})")
            h.update(_md5_file(f).encode())
        return h.hexdigest()

    def read_bytes(self) -> dict[str, tuple[str, bytes]]:
        """``{csv name: (display name for errors, raw bytes)}`` for the two CSVs."""
        if self.kind == "dir":
            out = {}
            for name in (TRAIN_CSV, TEST_CSV):
                f = self.path / name
                try:
                    out[name] = (str(f), f.read_bytes())
                except OSError as exc:
                    raise TinyLocError(f"{f}: cannot read ({exc.strerror})") from None
            return out
        try:
            data = self.path.read_bytes()
        except OSError as exc:
            raise TinyLocError(f"{self.path}: cannot read ({exc.strerror})") from None
        return _csvs_from_zip(data, str(self.path))


def _md5_file(path: Path) -> str:
    h = hashlib.md5()
    try:
        with open(path, "rb") as fh:
            for chunk in iter(lambda: fh.read(1 << 20), b""):
                h.update(chunk)
    except OSError as exc:
        raise TinyLocError(f"{path}: cannot read ({exc.strerror})") from None
    return h.hexdigest()


def read_member(zf: zipfile.ZipFile, member: str, display: str) -> bytes:
    """The bytes of one zip member, or a one-line TinyLocError for a corrupt member (CRC mismatch, broken deflate
    stream, truncated archive) or one this zipfile cannot read (encrypted, unknown compression)."""
    try:
        return zf.read(member)
    except (zipfile.BadZipFile, zlib.error, EOFError, OSError) as exc:
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise TinyLocError(f"{display}:{member}: corrupt zip member ({reason}); download the archive again") from None
    except (NotImplementedError, RuntimeError) as exc:
        raise TinyLocError(f"{display}:{member}: cannot be extracted ({str(exc).splitlines()[0]})") from None


def _csvs_from_zip(data: bytes, display: str, depth: int = 0) -> dict[str, tuple[str, bytes]]:
    """Extract the two CSVs from zip bytes; descend into one nested zip (the UCI wrapper)."""
    try:
        zf = zipfile.ZipFile(io.BytesIO(data))
    except zipfile.BadZipFile:
        raise TinyLocError(f"{display}: not a valid zip file") from None
    with zf:
        names = [n for n in zf.namelist() if not n.endswith("/") and "__MACOSX" not in n]
        found = {}
        for want in (TRAIN_CSV, TEST_CSV):
            hits = [n for n in names if n.rsplit("/", 1)[-1] == want]
            if hits:
                found[want] = (f"{display}:{hits[0]}", read_member(zf, hits[0], display))
        if len(found) == 2:
            return found
        if depth == 0:
            for n in names:
                if n.lower().endswith(".zip"):
                    inner = _csvs_from_zip(read_member(zf, n, display), f"{display}:{n}", depth + 1)
                    return inner
        missing = [w for w in (TRAIN_CSV, TEST_CSV) if w not in found]
        raise TinyLocError(f"{display}: zip does not contain {' and '.join(missing)}")


def _source_in(root: Path) -> _Source | None:
    """The UJI source inside ``root`` (a directory or a zip file), or None."""
    if root.is_file():
        return _Source(root, "zip")
    if not root.is_dir():
        return None
    for d in (root, root / "ujiindoorloc", root / "UJIndoorLoc", root / "UJIIndoorLoc"):
        if (d / TRAIN_CSV).is_file() or (d / TEST_CSV).is_file():
            return _Source(d, "dir")
        for z in (ARCHIVE_NAME, "ujiindoorloc.zip", "UJIndoorLoc.zip"):
            if (d / z).is_file():
                return _Source(d / z, "zip")
    return None


def find_source(data_dir: str | os.PathLike | None = None) -> _Source:
    """Resolve where the UJIIndoorLoc files are (see the module docstring for the search order)."""
    if data_dir:
        root = Path(data_dir)
        if not root.exists():
            raise TinyLocError(f"{root}: no such file or directory (UJIIndoorLoc data)")
        src = _source_in(root)
        if src is None:
            raise TinyLocError(
                f"{root}: no {TRAIN_CSV}/{TEST_CSV} and no {ARCHIVE_NAME} found "
                "(run 'python -m keras_tinyloc data download uji')"
            )
        return src
    tried = []
    candidates = []
    env = os.environ.get("KERAS_TINYLOC_DATA")
    if env:
        candidates.append(Path(env))
    candidates.append(Path.cwd() / "data" / "raw")
    shared = paths.shared_data_dir()
    if shared is not None:
        candidates.append(shared / "ujiindoorloc")
    for c in candidates:
        tried.append(str(c))
        src = _source_in(c)
        if src is not None:
            return src
    raise TinyLocError(
        f"UJIIndoorLoc not found in {', '.join(tried)} "
        "(pass --data-dir or run 'python -m keras_tinyloc data download uji')"
    )


# --------------------------------------------------------------------------------------------- parsing
def _parse_csv(name: str, raw: bytes, wap_cols: list[str] | None = None) -> dict[str, np.ndarray]:
    """Parse one UJI CSV into ``rssi (B, F)`` int16 (100 kept), ``lon, lat (B,)`` float64, ``floor, building (B,)``.

    ``wap_cols``: the WAP columns the training file defined; the test file must have the same ones.
    """
    import pandas as pd

    if not raw.strip():
        raise TinyLocError(f"{name}: file is empty")
    df = read_csv_table(io.BytesIO(raw), name, encoding="utf-8-sig")
    cols = list(df.columns)
    if len(df) == 0:
        raise TinyLocError(f"{name}: has a header but no data rows")
    waps = [c for c in cols if WAP_RE.match(c)]
    if not waps:
        raise TinyLocError(f"{name}: no RSSI columns WAP001..WAPnnn in the header")
    if wap_cols is None:
        expected = [f"WAP{i:03d}" for i in range(1, len(waps) + 1)]
        if waps != expected:
            bad = next(w for w, e in zip(waps, expected) if w != e)
            raise TinyLocError(f"{name}: column {bad}: WAP columns must run WAP001..WAP{len(waps):03d} in order")
    else:
        missing = [w for w in wap_cols if w not in waps]
        if missing:
            raise TinyLocError(f"{name}: missing column {missing[0]} (the training file has {len(wap_cols)} WAPs)")
        extra = [w for w in waps if w not in wap_cols]
        if extra:
            raise TinyLocError(f"{name}: unexpected column {extra[0]} (the training file has {len(wap_cols)} WAPs)")
        waps = wap_cols
    for c in REQUIRED_COLUMNS:
        if c not in cols:
            raise TinyLocError(f"{name}: missing column {c}")

    def numeric(col: str, integer: bool) -> np.ndarray:
        s = df[col]
        v = s if pd.api.types.is_numeric_dtype(s) else pd.to_numeric(s, errors="coerce")
        bad = v.isna().to_numpy()
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            what = "an empty value" if pd.isna(s.iloc[i]) else f"non-numeric value {str(s.iloc[i]).strip()!r}"
            raise TinyLocError(f"{name}: column {col}, row {i + 2}: {what}")
        arr = v.to_numpy(dtype=np.float64)
        if integer and not np.all(arr == np.round(arr)):
            i = int(np.flatnonzero(arr != np.round(arr))[0])
            raise TinyLocError(f"{name}: column {col}, row {i + 2}: value {s.iloc[i]} is not an integer")
        return arr

    rssi = np.empty((len(df), len(waps)), np.int16)
    for j, c in enumerate(waps):
        v = numeric(c, integer=True)
        bad = (v != NOT_DETECTED) & ((v < MIN_DBM) | (v > MAX_DBM))
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            raise TinyLocError(
                f"{name}: column {c}, row {i + 2}: RSSI {v[i]:g} outside {MIN_DBM}..{MAX_DBM} "
                f"(or {NOT_DETECTED} = not detected)"
            )
        rssi[:, j] = v.astype(np.int16)
    return {
        "rssi": rssi,
        "lon": numeric("LONGITUDE", integer=False),
        "lat": numeric("LATITUDE", integer=False),
        "floor": numeric("FLOOR", integer=True).astype(np.int32),
        "building": numeric("BUILDINGID", integer=True).astype(np.int32),
        "waps": np.asarray(waps),
    }


def _load_tables(src: _Source, md5: str) -> dict[str, np.ndarray]:
    """Parsed training and test tables (keys prefixed ``train_`` / ``test_``), through the table cache."""
    cache = paths.user_cache_dir() / f"uji-table-v{CACHE_VERSION}-{md5}.npz"
    if cache.is_file():
        try:
            with np.load(cache) as z:
                return {k: z[k] for k in z.files}
        except (OSError, ValueError, zipfile.BadZipFile):
            pass  # unreadable cache: rebuild it
    csvs = src.read_bytes()
    train = _parse_csv(csvs[TRAIN_CSV][0], csvs[TRAIN_CSV][1])
    test = _parse_csv(csvs[TEST_CSV][0], csvs[TEST_CSV][1], wap_cols=list(train["waps"]))
    out = {f"train_{k}": v for k, v in train.items() if k != "waps"}
    out.update({f"test_{k}": v for k, v in test.items() if k != "waps"})
    out["waps"] = train["waps"]
    out["names"] = np.asarray([csvs[TRAIN_CSV][0], csvs[TEST_CSV][0]])
    _try_save(cache, out)
    return out


def _try_save(path: Path, arrays: dict[str, np.ndarray]) -> None:
    """Write a cache file atomically; an unwritable cache only costs speed."""
    try:
        paths.atomic_save_npz(path, **arrays)
    except OSError:
        pass


# --------------------------------------------------------------------------------------------- labelings
def largest_remainder(counts: np.ndarray, k: int) -> np.ndarray:
    """Split ``k`` seats over groups proportionally to ``counts`` (Hamilton / largest-remainder rule).

    Every group ends with at least one seat (a group left at 0 takes one from the group with the most).

    Args:
        counts: ``(n_groups,)`` group sizes (> 0).
        k: seats, ``k >= G``.

    Returns:
        ``(n_groups,)`` int seats summing to ``k``.
    """
    counts = np.asarray(counts, dtype=np.float64)
    g = len(counts)
    if k < g:
        raise TinyLocError(f"n_zones={k}: need at least one zone per building-floor ({g})")
    quota = k * counts / counts.sum()
    seats = np.floor(quota).astype(np.int64)
    rem = quota - seats
    order = sorted(range(g), key=lambda i: (-rem[i], i))
    for i in order[: k - int(seats.sum())]:
        seats[i] += 1
    while (seats == 0).any():
        i = int(np.flatnonzero(seats == 0)[0])
        j = int(np.argmax(seats))
        seats[j] -= 1
        seats[i] += 1
    return seats


def _nearest(points: np.ndarray, centres: np.ndarray) -> np.ndarray:
    """``(B, 2)`` points, ``(n_zones, 2)`` centres -> ``(B,)`` index of the nearest centre (first on ties)."""
    d = ((points[:, None, :] - centres[None, :, :]) ** 2).sum(-1)
    return np.argmin(d, axis=1)


def fit_zones(
    bf: np.ndarray, coords: np.ndarray, bf_names: list[str], n_zones: int, seed: int
) -> dict[str, list[list[float]]]:
    """k-means zone centres per building-floor on training coordinates.

    Args:
        bf: ``(B,)`` building-floor class of each training sample.
        coords: ``(B, 2)`` (LONGITUDE, LATITUDE) of each training sample.
        bf_names: names of the building-floor classes (index = class).
        n_zones: K in total, split by :func:`largest_remainder`.
        seed: k-means ``random_state``.

    Returns:
        ``{building-floor name: [[lon, lat], ...]}`` centres sorted by (lon, lat).
    """
    from sklearn.cluster import KMeans
    from threadpoolctl import threadpool_limits

    counts = np.bincount(bf, minlength=len(bf_names))
    seats = largest_remainder(counts, n_zones)
    centres = {}
    for c, name in enumerate(bf_names):
        pts = coords[bf == c]
        distinct = np.unique(pts, axis=0)
        k = int(seats[c])
        if len(distinct) < k:
            raise TinyLocError(
                f"uji-zones: building-floor {name} has {len(distinct)} distinct training positions "
                f"but gets {k} of {n_zones} zones; use fewer zones"
            )
        with threadpool_limits(1):  # OpenMP threads on a shared 2-core machine: 14 s instead of 0.3 s
            km = KMeans(n_clusters=k, n_init=10, random_state=seed).fit(pts)
        cen = km.cluster_centers_
        cen = cen[np.lexsort((cen[:, 1], cen[:, 0]))]
        centres[name] = [[float(a), float(b)] for a, b in cen]
    return centres


def assign_zones(
    bf: np.ndarray, coords: np.ndarray, bf_names: list[str], centres: dict[str, list[list[float]]]
) -> tuple[np.ndarray, list[str]]:
    """Label samples with the nearest zone centre of their building-floor.

    Args:
        bf: ``(B,)`` building-floor class per sample; coords: ``(B, 2)``.

    Returns:
        ``(B,)`` int32 zone class and the ``C`` zone names (``B0-F0-Z00`` …), building-floor major.
    """
    names, offset = [], {}
    for name in bf_names:
        offset[name] = len(names)
        names += [f"{name}-Z{z:02d}" for z in range(len(centres[name]))]
    y = np.empty(len(bf), np.int32)
    for c, name in enumerate(bf_names):
        m = bf == c
        if m.any():
            y[m] = offset[name] + _nearest(coords[m], np.asarray(centres[name], np.float64))
    return y, names


# --------------------------------------------------------------------------------------------- loader
def load_uji(
    data_dir: str | os.PathLike | None = None,
    labeling: str = "building-floor",
    n_zones: int = 59,
    seed: int = 0,
) -> WindowDataset:
    """Load UJIIndoorLoc as a :class:`WindowDataset` (see the module docstring for every rule).

    Args:
        data_dir: directory with the CSVs or the zip, or the zip itself; ``None`` = default search.
        labeling: ``"building-floor"`` (13 classes, dataset ``uji``) or ``"zones"`` (dataset ``uji-zones``).
        n_zones: K for ``"zones"``.
        seed: the train/validation split and k-means seed.

    Returns:
        x ``(B, 1, F)`` float32 in [0, 1], y ``(B, 1)`` int32 for train/val/test.
    """
    name = "uji-zones" if labeling == "zones" else "uji"
    return _dataset(uji_arrays(data_dir, labeling, n_zones, seed), name)


def uji_arrays(
    data_dir: str | os.PathLike | None = None,
    labeling: str = "building-floor",
    n_zones: int = 59,
    seed: int = 0,
) -> dict[str, np.ndarray]:
    """The processed dataset before scaling (arguments as :func:`load_uji`; through the cache): ``x_{train,val,test}``
    ``(B, F)`` int16 dBm with ``fill`` for "not detected", ``y_*`` ``(B,)`` int32, ``low``/``high`` ``(F,)`` (the
    scaling), ``fill``, ``class_names``, ``feature_names`` and ``meta`` (JSON text). ``data import`` writes these."""
    if labeling not in LABELINGS:
        raise TinyLocError(f"unknown UJIIndoorLoc labeling {labeling!r} (choose from {', '.join(LABELINGS)})")
    n_zones = int(n_zones)
    seed = int(seed)
    src = find_source(data_dir)
    md5 = src.md5()
    k_tag = f"-K{n_zones}" if labeling == "zones" else ""
    key = f"uji-v{CACHE_VERSION}-{labeling}{k_tag}-seed{seed}-{md5}"
    cache = paths.user_cache_dir() / f"{key}.npz"
    arrays = _from_cache(cache)
    if arrays is not None:
        return arrays

    from sklearn.model_selection import train_test_split

    t = _load_tables(src, md5)
    tr_bf_raw = np.stack([t["train_building"], t["train_floor"]], 1)
    te_bf_raw = np.stack([t["test_building"], t["test_floor"]], 1)
    pairs = sorted({(int(b), int(f)) for b, f in tr_bf_raw})
    bf_names = [f"B{b}-F{f}" for b, f in pairs]
    index = {p: i for i, p in enumerate(pairs)}
    bf_all = np.array([index[(int(b), int(f))] for b, f in tr_bf_raw], np.int32)
    unknown = [(int(b), int(f)) for b, f in te_bf_raw if (int(b), int(f)) not in index]
    if unknown:
        b, f = unknown[0]
        raise TinyLocError(f"{t['names'][1]}: building {b} floor {f} does not occur in {TRAIN_CSV}")
    bf_test = np.array([index[(int(b), int(f))] for b, f in te_bf_raw], np.int32)

    idx = np.arange(len(bf_all))
    counts = np.bincount(bf_all)
    strat = bf_all if counts.min() >= 2 else None
    try:
        i_tr, i_va = train_test_split(idx, test_size=0.25, random_state=seed, stratify=strat)
    except ValueError as exc:
        raise TinyLocError(f"{t['names'][0]}: cannot split 75/25 ({exc})") from None
    i_tr, i_va = np.sort(i_tr), np.sort(i_va)

    real = t["train_rssi"][i_tr]
    real = real[real != NOT_DETECTED]
    fill = float(min(DEFAULT_FILL, float(real.min()) - 1.0)) if real.size else DEFAULT_FILL

    def raw_x(rssi: np.ndarray) -> np.ndarray:
        return np.where(rssi == NOT_DETECTED, np.int16(fill), rssi).astype(np.int16)

    x_all, x_test = raw_x(t["train_rssi"]), raw_x(t["test_rssi"])
    meta = {
        "source": str(src.path),
        "source_md5": md5,
        "labeling": labeling,
        "seed": seed,
        "split": "75/25 of trainingData " + ("stratified by building-floor" if strat is not None else
                                             "(not stratified: a building-floor has < 2 rows)")
                 + " for train/val; validationData = test",
        "not_detected": f"{NOT_DETECTED} -> fill_value",
    }
    if labeling == "building-floor":
        y_all, y_test, class_names = bf_all, bf_test, bf_names
    else:
        coords_all = np.stack([t["train_lon"], t["train_lat"]], 1)
        coords_test = np.stack([t["test_lon"], t["test_lat"]], 1)
        zpath = paths.user_cache_dir() / f"uji-zones-K{n_zones}-seed{seed}-{md5}.json"
        centres = _read_zone_model(zpath, bf_names, n_zones)
        if centres is None:
            centres = fit_zones(bf_all[i_tr], coords_all[i_tr], bf_names, n_zones, seed)
            try:
                paths.atomic_write_json(
                    zpath,
                    {"source_md5": md5, "n_zones": n_zones, "seed": seed, "coordinates": ["LONGITUDE", "LATITUDE"],
                     "rule": "k-means per building-floor on the training split; K by largest remainder",
                     "centres": centres},
                )
            except OSError:
                pass
        y_all, class_names = assign_zones(bf_all, coords_all, bf_names, centres)
        y_test, _ = assign_zones(bf_test, coords_test, bf_names, centres)
        meta["zone_model"] = str(zpath)
        meta["n_zones"] = n_zones
    arrays = {
        "x_train": x_all[i_tr], "y_train": y_all[i_tr].astype(np.int32),
        "x_val": x_all[i_va], "y_val": y_all[i_va].astype(np.int32),
        "x_test": x_test, "y_test": y_test.astype(np.int32),
    }
    scaling = MinMaxScaling.fit(arrays["x_train"].astype(np.float32))
    arrays.update(
        low=scaling.low, high=scaling.high, fill=np.float32(fill),
        class_names=np.asarray(class_names), feature_names=t["waps"],
        meta=np.asarray(json.dumps(meta)),
    )
    _try_save(cache, arrays)
    return arrays


def _read_zone_model(path: Path, bf_names: list[str], n_zones: int) -> dict | None:
    if not path.is_file():
        return None
    try:
        obj = json.loads(path.read_text())
        centres = obj["centres"]
    except (OSError, ValueError, KeyError, TypeError):
        return None
    if set(centres) != set(bf_names) or sum(len(v) for v in centres.values()) != n_zones:
        return None
    return centres


def _from_cache(path: Path) -> dict[str, np.ndarray] | None:
    if not path.is_file():
        return None
    try:
        with np.load(path) as z:
            return {k: z[k] for k in z.files}
    except (OSError, ValueError, zipfile.BadZipFile):
        return None


def _dataset(a: dict[str, np.ndarray], name: str) -> WindowDataset:
    """Build the dataset from raw int16 arrays: scale, add T = 1."""
    scaling = MinMaxScaling(low=np.asarray(a["low"], np.float32), high=np.asarray(a["high"], np.float32))

    def x(split):
        return scaling.transform(a[f"x_{split}"])[:, None, :]

    def y(split):
        return np.asarray(a[f"y_{split}"], np.int32)[:, None]

    return WindowDataset(
        name=name,
        x_train=x("train"), y_train=y("train"),
        x_val=x("val"), y_val=y("val"),
        x_test=x("test"), y_test=y("test"),
        class_names=[str(c) for c in a["class_names"]],
        feature_names=[str(c) for c in a["feature_names"]],
        scaling=scaling,
        fill_value=float(a["fill"]),
        meta=json.loads(str(a["meta"])),
    )


# --------------------------------------------------------------------------------------------- download
def download_uji(
    dest_dir: str | os.PathLike | None = None, url: str | None = None, timeout: float = 30.0
) -> Path:
    """Download the official archive from UCI, verify it and store ``UJIIndoorLoc.zip`` in ``dest_dir``.

    The UCI download wraps ``UJIIndoorLoc.zip``; the inner archive is extracted. Its md5 must be
    :data:`ARCHIVE_MD5` (or, for a repackaged archive, both CSVs must match :data:`CSV_MD5`).

    Args:
        dest_dir: target directory (default ``data/raw/``).
        url: where to download from (default :data:`UCI_URL`).

    Returns:
        The path of the stored ``UJIIndoorLoc.zip``.
    """
    dest = Path(dest_dir) if dest_dir else Path.cwd() / "data" / "raw"
    url = url or UCI_URL
    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp:
            data = resp.read()
    except (urllib.error.URLError, OSError, ValueError) as exc:
        reason = getattr(exc, "reason", None) or exc
        raise TinyLocError(
            f"{url}: download failed ({reason}); download it by hand and put {ARCHIVE_NAME} in {dest}"
        ) from None
    archive = _official_archive(data, url)
    target = dest / ARCHIVE_NAME
    try:
        paths.atomic_write_bytes(target, archive)
    except OSError as exc:
        raise TinyLocError(f"{target}: cannot write ({exc.strerror})") from None
    return target


def _official_archive(data: bytes, display: str) -> bytes:
    """Return the verified ``UJIIndoorLoc.zip`` bytes from a download (the archive itself or the UCI wrapper)."""
    if hashlib.md5(data).hexdigest() == ARCHIVE_MD5:
        return data
    try:
        zf = zipfile.ZipFile(io.BytesIO(data))
    except zipfile.BadZipFile:
        raise TinyLocError(f"{display}: downloaded file is not a zip archive") from None
    with zf:
        for n in zf.namelist():
            if n.rsplit("/", 1)[-1].lower() == ARCHIVE_NAME.lower():
                inner = read_member(zf, n, display)
                if hashlib.md5(inner).hexdigest() == ARCHIVE_MD5:
                    return inner
                raise TinyLocError(f"{display}:{n}: md5 {hashlib.md5(inner).hexdigest()} != {ARCHIVE_MD5}")
    csvs = _csvs_from_zip(data, display)
    for name, (shown, raw) in csvs.items():
        got = hashlib.md5(raw).hexdigest()
        if got != CSV_MD5[name]:
            raise TinyLocError(f"{shown}: md5 {got} != {CSV_MD5[name]} (not the published UJIIndoorLoc)")
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as out:
        for name, (_, raw) in csvs.items():
            out.writestr(name, raw)
    return buf.getvalue()
