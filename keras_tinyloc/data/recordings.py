"""Your own recordings: the recordings format (``docs/recordings-format.md``, version 1) read into windows.

Why a format of its own: a user's beacons, rooms and building are not one of the built-in datasets. One plain CSV a
logger can write — one row per received packet (*long form*) or one row per scan (*wide form*) — goes through the
same pre-processing as the built-in BLE datasets (:mod:`keras_tinyloc.data.windows`), keeps its AP and room names,
and becomes a :class:`WindowDataset` like any other (``--dataset path/to/recordings.csv`` or a folder of them).
``data import`` (:mod:`keras_tinyloc.data.importer`) writes the built-in datasets in this format, and a test checks
that loading that file gives byte-identical windows: the generic path is the real one.

Reading (all written here, with pandas only for splitting CSV text; every error is one line naming the file, the
line and the value):

* **Header lines**: leading lines ``# key: value``. Keys: ``format`` (``keras_tinyloc recordings 1``), ``rooms`` and
  ``aps`` (JSON lists: class and feature order; default sorted names, wide form: column order), ``fill_dbm``,
  ``rate_hz``, ``window_s``, ``hop_s``, ``no_window`` (defaults for the options below), ``source``, ``note``.
  Other ``# text`` lines are comments.
* **Long form** columns ``time, ap, rssi, room[, session, split]`` (case-insensitive): a row with ``ap`` and ``rssi``
  empty is a *label row* (a room at a time, no packet). **Wide form**: ``room[, session, split, time]`` + one column
  per AP (empty cell = not heard); without ``time`` each row is one scan (``T = 1``, like UJIIndoorLoc).
* ``time``: seconds (a number) or ISO 8601; ``rssi`` in −150..0 dBm and above the fill value; ``room`` empty =
  unlabelled; ``session`` default = the file name; ``split`` ``train``/``val``/``test``.

Processing of a session with a time axis (a *part* = the rows of one session with one split value, in time order,
cut where rows are more than :data:`GAP_S` apart — nothing was recorded in between):

1. Grid: :func:`windows.packets_to_grid` from the part's first row (``step_ms = 1000 / rate_hz``; forward fill
   ``floor(1 s / step)`` steps; ``fill_dbm``). Label of a step: the room of its last row (by time, then file
   order); a step without rows keeps the previous step's room for the same forward-fill time, then −1.
2. Windows of ``T = window_s * rate_hz`` steps with hop ``hop_s * rate_hz`` (``no_window``: ``T = 1``, hop 1).
   ``train`` parts, when the file has no ``val`` rows, are cut by :func:`windows.split_recording` (60 s blocks, every
   4th to validation); ``val``/``test`` parts by :func:`windows.make_windows`. Windows without a labelled step are
   dropped.
3. Without a ``split`` column: whole sessions go to test — the last ones in file order, until they hold ≥ 25 % of
   the rows, at least one session left for training — or, with a single session, its last quarter of steps.
4. Scaling: :class:`MinMaxScaling` fit on the training windows.

Scans (wide form without ``time``): each row is one sample ``(1, F)``; ``split`` may differ per row; without ``val``
rows every 4th block of :data:`SCAN_BLOCK_ROWS` training rows of a session goes to validation.

Checks (one-line errors): unknown columns, unparseable time/RSSI, fewer than 2 rooms, a room without a labelled
training window (e.g. only in the test split), an AP never heard, a session shorter than one window, empty splits.

Shapes: ``x_*`` ``(B, T, F)`` float32 in [0, 1], ``y_*`` ``(B, T)`` int32, −1 = unlabelled step.
"""
from __future__ import annotations

import dataclasses
import io
import json
import math
import os
import re
from pathlib import Path

import numpy as np

from keras_tinyloc.data import windows
from keras_tinyloc.data.base import MinMaxScaling, WindowDataset
from keras_tinyloc.errors import TinyLocError

FORMAT_VERSION = 1
FORMAT_NAME = "keras_tinyloc recordings"
LONG_COLUMNS = ("time", "ap", "rssi", "room", "session", "split")
META_COLUMNS = ("room", "session", "split", "time")  # the non-AP columns of the wide form
SPLITS = ("train", "val", "test")
HEADER_KEYS = ("format", "rooms", "aps", "fill_dbm", "rate_hz", "window_s", "hop_s", "no_window", "source", "note")
OPTION_KEYS = ("rate_hz", "window_s", "hop_s", "fill_dbm", "no_window")
RSSI_RANGE = (-150.0, 0.0)
MAX_ABS_SECONDS = 1e11  # |time| beyond ~3000 years is a unit mistake, not a recording
GAP_S = 60.0  # rows further apart than this start a new part (no grid of pure fill between them)
FFILL_S = 1.0
BLOCK_S = 60.0
TEST_SHARE = 0.25
SCAN_BLOCK_ROWS = 10
_KEY_LINE = re.compile(r"^#\s*([A-Za-z_][A-Za-z0-9_]*)\s*:\s*(.*?)\s*$")


# --------------------------------------------------------------------------------------------- options
@dataclasses.dataclass(frozen=True)
class Processing:
    """The pre-processing of one recordings dataset (options > file header > defaults).

    Attributes:
        rate_hz: grid rate; step_ms = 1000 / rate_hz must be a whole number of ms.
        window_s, hop_s: window length and hop in seconds (whole numbers of steps).
        fill_dbm: the value of "not heard" (below every reading).
        no_window: T = 1, hop 1 (one step per sample).
    """

    rate_hz: float = 1000.0 / windows.STEP_MS
    window_s: float = windows.WINDOW_STEPS * windows.STEP_MS / 1000.0
    hop_s: float = windows.HOP_STEPS * windows.STEP_MS / 1000.0
    fill_dbm: float = windows.FILL_DBM
    no_window: bool = False

    @property
    def step_ms(self) -> int:
        return int(round(1000.0 / self.rate_hz))

    @property
    def window(self) -> int:
        return 1 if self.no_window else int(round(self.window_s * 1000.0 / self.step_ms))

    @property
    def hop(self) -> int:
        return 1 if self.no_window else int(round(self.hop_s * 1000.0 / self.step_ms))

    @property
    def ffill_steps(self) -> int:
        return int(math.floor(FFILL_S * 1000.0 / self.step_ms + 1e-9))

    @property
    def block_steps(self) -> int:
        return int(math.floor(BLOCK_S * 1000.0 / self.step_ms + 1e-9))

    def validate(self, where: str) -> None:
        """One-line errors naming the option (``--rate-hz`` ...) and ``where`` it came from."""

        def num(name, value):
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
                raise TinyLocError(f"--{name.replace('_', '-')} {value!r} ({where}): must be a finite number")
            return float(value)

        rate = num("rate_hz", self.rate_hz)
        if not 0.01 <= rate <= 1000:
            raise TinyLocError(f"--rate-hz {rate:g} ({where}): must be from 0.01 to 1000")
        step = 1000.0 / rate
        if abs(step - round(step)) > 1e-6:
            raise TinyLocError(f"--rate-hz {rate:g} ({where}): a step of 1000/{rate:g} = {step:.4g} ms is not a whole "
                               f"number of ms (the device counts ms); use e.g. 4, 5 or 10 Hz")
        fill = num("fill_dbm", self.fill_dbm)
        if not -300 <= fill <= 0:
            raise TinyLocError(f"--fill-dbm {fill:g} ({where}): must be from -300 to 0 dBm")
        if self.no_window:
            return
        for name in ("window_s", "hop_s"):
            v = num(name, getattr(self, name))
            steps = v * 1000.0 / self.step_ms
            if v <= 0 or abs(steps - round(steps)) > 1e-6:
                raise TinyLocError(f"--{name.replace('_', '-')} {v:g} ({where}): must be a positive whole number of "
                                   f"{self.step_ms} ms steps")
        if self.hop > self.window:
            raise TinyLocError(f"--hop-s {self.hop_s:g} ({where}): must not exceed --window-s {self.window_s:g}")
        if self.window > 10000:
            raise TinyLocError(f"--window-s {self.window_s:g} ({where}): {self.window} steps is more than 10000")

    def to_dict(self) -> dict:
        return {"rate_hz": self.rate_hz, "step_ms": self.step_ms, "window": self.window, "hop": self.hop,
                "ffill_steps": self.ffill_steps, "fill_dbm": self.fill_dbm, "no_window": self.no_window}


def check_option_values(options: dict) -> None:
    """Each given option on its own (finite, in range), before any file is read; :meth:`Processing.validate` checks
    the combination once the file's header is known."""
    ranges = {"rate_hz": (0.01, 1000.0), "window_s": (1e-3, 3600.0), "hop_s": (1e-3, 3600.0), "fill_dbm": (-300.0, 0.0)}
    for key, (lo, hi) in ranges.items():
        v = options.get(key)
        if v is None:
            continue
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not (math.isfinite(v) and lo <= v <= hi):
            raise TinyLocError(f"--{key.replace('_', '-')} {v!r}: must be a number from {lo:g} to {hi:g}")


# --------------------------------------------------------------------------------------------- reading files
@dataclasses.dataclass
class Table:
    """One parsed recordings file.

    Attributes:
        path: the file.  header: ``{key: value}`` of its header lines (parsed JSON for rooms/aps, floats for options).
        form: ``"long"``, ``"wide"`` (with time) or ``"scans"`` (wide without time).
        line: ``(n_rows,)`` file line of each row (header line = the line after the ``#`` lines).
        t_ms: ``(n_rows,)`` int64 ms, or None for scans.
        room, session: ``(n_rows,)`` str arrays (room "" = unlabelled).  split: ``(n_rows,)`` str or None.
        ap: long form ``(n_rows,)`` str ("" = label row); wide: None.
        rssi: long form ``(n_rows,)`` float64 (NaN = label row); wide/scans ``(n_rows, F)`` (NaN = not heard).
        ap_columns: wide/scans: the F AP column names in file order.
    """

    path: Path
    header: dict
    form: str
    line: np.ndarray
    t_ms: np.ndarray | None
    room: np.ndarray
    session: np.ndarray
    split: np.ndarray | None
    ap: np.ndarray | None
    rssi: np.ndarray
    ap_columns: list[str]


def _parse_header(lines: list[str], path: Path) -> dict:
    header: dict = {}
    for k, raw in enumerate(lines, start=1):
        m = _KEY_LINE.match(raw.strip())
        if not m:
            continue  # a free-text comment
        key, value = m.group(1).lower(), m.group(2)
        if key not in HEADER_KEYS:
            raise TinyLocError(f"{path}: line {k}: unknown header key {key!r} (known: {', '.join(HEADER_KEYS)}; "
                               f"write other notes as '# text' without a colon after the first word)")
        if key in header:
            raise TinyLocError(f"{path}: line {k}: header key {key!r} given twice")
        if key == "format":
            fm = re.fullmatch(re.escape(FORMAT_NAME) + r"\s+(\d+)", value)
            if not fm:
                raise TinyLocError(f"{path}: line {k}: format {value!r}: expected '{FORMAT_NAME} {FORMAT_VERSION}'")
            if int(fm.group(1)) > FORMAT_VERSION:
                raise TinyLocError(f"{path}: line {k}: format version {fm.group(1)} is newer than this keras_tinyloc "
                                   f"reads ({FORMAT_VERSION}); update keras_tinyloc")
            header[key] = int(fm.group(1))
        elif key in ("rooms", "aps"):
            try:
                names = json.loads(value)
            except ValueError:
                names = None
            if not isinstance(names, list) or not names or not all(isinstance(n, str) and n.strip() for n in names):
                raise TinyLocError(f"{path}: line {k}: {key}: expected a JSON list of names, e.g. [\"kitchen\", "
                                   f"\"hall\"], got {value[:60]!r}")
            names = [n.strip() for n in names]
            dup = next((n for n in names if names.count(n) > 1), None)
            if dup is not None:
                raise TinyLocError(f"{path}: line {k}: {key}: {dup!r} listed twice")
            header[key] = names
        elif key == "no_window":
            if value.lower() not in ("true", "false"):
                raise TinyLocError(f"{path}: line {k}: no_window: expected true or false, got {value!r}")
            header[key] = value.lower() == "true"
        elif key in OPTION_KEYS:
            try:
                header[key] = float(value)
            except ValueError:
                raise TinyLocError(f"{path}: line {k}: {key}: {value!r} is not a number") from None
        else:
            header[key] = value
    return header


def _column_numbers(series, lines: np.ndarray, path: Path, name: str) -> np.ndarray:
    """A numeric column (empty = NaN) -> float64; one-line errors naming the line and the value that is not a finite
    number. pandas has already parsed all-numeric columns in C; only a column holding some text is looked at here."""
    import pandas as pd

    what = "rssi" if name.lower() == "rssi" else f"AP column {name!r}"
    if pd.api.types.is_numeric_dtype(series.dtype) and not pd.api.types.is_bool_dtype(series.dtype):
        v = series.to_numpy(dtype=np.float64, na_value=np.nan)
        raw = None
    else:
        raw = np.array([str(v).strip() for v in series.fillna("").tolist()], dtype=object)
        v = pd.to_numeric(pd.Series(raw, dtype=object), errors="coerce").to_numpy(dtype=np.float64)
        bad = np.isnan(v) & (raw != "")
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            raise TinyLocError(f"{path}: line {lines[i]}: {what}: {raw[i]!r} is not a number")
    inf = np.isinf(v)
    if inf.any():
        i = int(np.flatnonzero(inf)[0])
        raise TinyLocError(f"{path}: line {lines[i]}: {what}: {v[i]:g} is not finite")
    return v


def _times(values: np.ndarray, lines: np.ndarray, path: Path) -> np.ndarray:
    """The time column (seconds or ISO 8601, decided by the first row) -> ``(n_rows,)`` int64 ms."""
    import pandas as pd

    empty = values == ""
    if empty.any():
        i = int(np.flatnonzero(empty)[0])
        raise TinyLocError(f"{path}: line {lines[i]}: time: an empty cell (every row needs a time)")
    first = pd.to_numeric(pd.Series(values[:1], dtype=object), errors="coerce").iloc[0]
    if not pd.isna(first):
        sec = pd.to_numeric(pd.Series(values, dtype=object), errors="coerce").to_numpy(dtype=np.float64)
        bad = np.isnan(sec)
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            raise TinyLocError(f"{path}: line {lines[i]}: time {values[i]!r} is not a number of seconds (line "
                               f"{lines[0]} gives the time in seconds)")
        far = ~(np.abs(sec) <= MAX_ABS_SECONDS)
        if far.any():
            i = int(np.flatnonzero(far)[0])
            raise TinyLocError(f"{path}: line {lines[i]}: time {values[i]!r} is not a finite number of seconds "
                               f"within ±{MAX_ABS_SECONDS:g}")
        return np.round(sec * 1000.0).astype(np.int64)
    t = pd.to_datetime(pd.Series(values, dtype=object), format="ISO8601", utc=True, errors="coerce")
    bad = t.isna().to_numpy()
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise TinyLocError(f"{path}: line {lines[i]}: time {values[i]!r} is neither seconds nor an ISO 8601 "
                           f"date-time (e.g. 2024-05-01T10:00:00.200)")
    return t.dt.tz_localize(None).to_numpy().astype("datetime64[ms]").astype(np.int64)


def read_table(path: str | os.PathLike) -> Table:
    """Parse one recordings file (module docstring). Raises one-line :class:`TinyLocError` s."""
    import pandas as pd

    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as exc:
        raise TinyLocError(f"{path}: not UTF-8 text (byte {exc.start})") from None
    except OSError as exc:
        raise TinyLocError(f"{path}: cannot read ({exc.strerror})") from None
    all_lines = text.splitlines()
    n_head = 0
    while n_head < len(all_lines) and all_lines[n_head].lstrip().startswith("#"):
        n_head += 1
    header = _parse_header(all_lines[:n_head], path)
    body = "\n".join(all_lines[n_head:])
    if not body.strip():
        raise TinyLocError(f"{path}: no column header and no rows (an empty recordings file)")
    read_kw = dict(keep_default_na=False, na_values=[""], skip_blank_lines=False, skipinitialspace=True)
    try:
        raw_columns = list(pd.read_csv(io.StringIO(body), nrows=0, **read_kw).columns)
        text_columns = {c: str for c in raw_columns if str(c).strip().lower() in ("time", "ap", "room", "session",
                                                                                 "split")}
        df = pd.read_csv(io.StringIO(body), dtype=text_columns, **read_kw)  # numbers parsed in C, text kept as text
    except pd.errors.ParserError as exc:
        msg = str(exc).strip().splitlines()[0]
        msg = re.sub(r"line (\d+)", lambda m: f"line {int(m.group(1)) + n_head}", msg)
        raise TinyLocError(f"{path}: not a readable CSV ({msg})") from None
    columns = [str(c).strip() for c in df.columns]
    renamed = [c for c in columns if re.fullmatch(r".+\.\d+", c) and c.rsplit(".", 1)[0] in columns]
    dup = next((c for c in columns if columns.count(c) > 1), None) or (renamed[0].rsplit(".", 1)[0] if renamed else None)
    if dup is not None:
        raise TinyLocError(f"{path}: column {dup!r} appears twice in the header")
    lines = np.arange(len(df), dtype=np.int64) + n_head + 2
    low = [c.lower() for c in columns]
    text = {}
    for i, name in enumerate(low):
        if df.columns[i] in text_columns:
            text[name] = np.array([str(v).strip() for v in df.iloc[:, i].fillna("").tolist()], dtype=object)
    col = {c: low.index(c) for c in LONG_COLUMNS if c in low}
    long_form = "ap" in col or "rssi" in col
    if long_form:
        missing = [c for c in ("time", "ap", "rssi", "room") if c not in col]
        unknown = [c for c, lc in zip(columns, low) if lc not in LONG_COLUMNS]
        if missing or unknown:
            what = (f"missing column{'s' if len(missing) > 1 else ''} {', '.join(missing)}" if missing else "") + (
                "; " if missing and unknown else "") + (
                f"unknown column{'s' if len(unknown) > 1 else ''} {', '.join(map(repr, unknown))}" if unknown else "")
            raise TinyLocError(f"{path}: {what} (found: {', '.join(columns)}; the long form has time, ap, rssi, room "
                               f"and optionally session, split; the wide form has no ap/rssi columns)")
    else:
        if "room" not in col:
            raise TinyLocError(f"{path}: no 'room' column (found: {', '.join(columns)}); a recordings file has the "
                               f"columns time, ap, rssi, room[, session, split] (long form) or room[, session, split, "
                               f"time] and one column per AP (wide form)")
        ap_idx = [i for i, lc in enumerate(low) if lc not in META_COLUMNS]
        if not ap_idx:
            raise TinyLocError(f"{path}: no AP columns (found: {', '.join(columns)}); the wide form has one column "
                               f"per AP")
    numeric = {i: _column_numbers(df.iloc[:, i], lines, path, columns[i]) for i in range(len(columns))
               if df.columns[i] not in text_columns}  # rssi (long form) or the AP columns (wide form)
    blank = np.ones(len(df), bool)
    for v in text.values():
        blank &= v == ""
    for v in numeric.values():
        blank &= np.isnan(v)
    keep = ~blank
    lines = lines[keep]
    text = {k: v[keep] for k, v in text.items()}
    numeric = {k: v[keep] for k, v in numeric.items()}
    if len(lines) == 0:
        raise TinyLocError(f"{path}: a header but no rows")

    def column(name):
        return text.get(name)

    session = column("session")
    if session is None:
        session = np.full(len(lines), path.stem, dtype=object)
    elif (session == "").any():
        i = int(np.flatnonzero(session == "")[0])
        raise TinyLocError(f"{path}: line {lines[i]}: session: an empty cell (name every row's session, or drop "
                           f"the column: the file is then one session)")
    split = column("split")
    if split is not None:
        lowered = np.array([v.lower() for v in split], dtype=object)
        bad = ~np.isin(lowered, SPLITS)
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            raise TinyLocError(f"{path}: line {lines[i]}: split {split[i]!r}: expected train, val or test")
        split = lowered
    if long_form:
        ap = column("ap")
        rssi = numeric[col["rssi"]]
        label_row = ap == ""
        odd = label_row != np.isnan(rssi)
        if odd.any():
            i = int(np.flatnonzero(odd)[0])
            what = "rssi without an ap" if label_row[i] else f"ap {ap[i]!r} without an rssi"
            raise TinyLocError(f"{path}: line {lines[i]}: {what} (a label row leaves both empty)")
        t_ms = _times(column("time"), lines, path)
        return Table(path, header, "long", lines, t_ms, column("room"), session, split, ap, rssi, [])
    ap_columns = [columns[i] for i in ap_idx]
    rssi = np.stack([numeric[i] for i in ap_idx], axis=1)
    t_ms = _times(column("time"), lines, path) if "time" in col else None
    return Table(path, header, "wide" if t_ms is not None else "scans", lines, t_ms, column("room"), session, split,
                 None, rssi, ap_columns)


def recording_files(path: str | os.PathLike) -> list[Path]:
    """A recordings file, or the ``*.csv`` files of a folder (sorted by name)."""
    p = Path(path)
    if p.is_dir():
        files = sorted(f for f in p.iterdir() if f.is_file() and f.suffix.lower() == ".csv")
        if not files:
            raise TinyLocError(f"{p}: a folder without *.csv recordings files")
        return files
    if p.is_file():
        return [p]
    raise TinyLocError(f"{p}: no such recordings file or folder")


# --------------------------------------------------------------------------------------------- merging files
@dataclasses.dataclass
class Recordings:
    """All files of one dataset path, merged: rows in file order (files by name), names resolved to indices.

    Attributes:
        form: as :class:`Table` (all files alike).  header: merged header.
        files: per row, the file index.  line: per row, the file line.  t_ms: ``(n_rows,)`` int64 or None.
        room: ``(n_rows,)`` int class index (−1 unlabelled).  session: ``(n_rows,)`` int session index.
        split: ``(n_rows,)`` int index into :data:`SPLITS`, or None when no file has a split column.
        reading_row, reading_ap, reading_rssi: ``(P,)`` the readings (long form: rows with an ap; wide: heard cells
            in row-major order): their row, AP index, dBm.
        scans: wide-without-time ``(n_rows, F)`` dBm with NaN = not heard (else None).
        rooms, aps, sessions: the names.  paths: the files.
    """

    form: str
    header: dict
    paths: list[Path]
    files: np.ndarray
    line: np.ndarray
    t_ms: np.ndarray | None
    room: np.ndarray
    session: np.ndarray
    split: np.ndarray | None
    reading_row: np.ndarray
    reading_ap: np.ndarray
    reading_rssi: np.ndarray
    scans: np.ndarray | None
    rooms: list[str]
    aps: list[str]
    sessions: list[str]

    def where(self, row: int) -> str:
        """``FILE: line N`` of a row."""
        return f"{self.paths[int(self.files[row])]}: line {int(self.line[row])}"


def read_recordings(path: str | os.PathLike) -> Recordings:
    """Read and merge the recordings file(s) at ``path``; names checked against the header lists."""
    files = recording_files(path)
    tables = [read_table(f) for f in files]
    forms = {t.form for t in tables}
    if len(forms) > 1:
        kinds = ", ".join(f"{t.path.name} ({t.form})" for t in tables[:4])
        raise TinyLocError(f"{path}: files of different forms ({kinds}); use one form for all files")
    form = tables[0].form
    header: dict = {}
    for t in tables:
        for k, v in t.header.items():
            if k in ("source", "note"):
                continue
            if k in header and header[k] != v:
                raise TinyLocError(f"{t.path}: header {k!r} differs from the one in {tables[0].path}")
            header[k] = v
    if form != "long":
        cols = tables[0].ap_columns
        for t in tables[1:]:
            if t.ap_columns != cols:
                raise TinyLocError(f"{t.path}: AP columns differ from those of {tables[0].path} (same columns, same "
                                   f"order in every file)")
    # sessions: first appearance in file order; a session must not span two files
    session_names: list[str] = []
    owner: dict[str, int] = {}
    session_idx = []
    for fi, t in enumerate(tables):
        names, first = np.unique(t.session, return_index=True)
        for name in names[np.argsort(first)]:
            name = str(name)
            if name in owner:
                raise TinyLocError(f"{t.path}: session {name!r} also appears in {tables[owner[name]].path} (a session "
                                   f"is one recording, in one file)")
            owner[name] = fi
            session_names.append(name)
        index = {n: session_names.index(n) for n in names}
        session_idx.append(np.array([index[s] for s in t.session], np.int64))
    # rooms
    seen_rooms = sorted({str(r) for t in tables for r in np.unique(t.room) if r != ""})
    rooms = header.get("rooms") or seen_rooms
    room_pos = {r: i for i, r in enumerate(rooms)}
    room_idx = []
    for t in tables:
        idx = np.array([room_pos.get(str(r), -2) if r != "" else -1 for r in t.room], np.int64)
        if (idx == -2).any():
            i = int(np.flatnonzero(idx == -2)[0])
            raise TinyLocError(f"{t.path}: line {t.line[i]}: room {t.room[i]!r} is not in the header's rooms list")
        room_idx.append(idx)
    # APs and readings
    offsets = np.cumsum([0] + [len(t.line) for t in tables])
    if form == "long":
        seen_aps = sorted({str(a) for t in tables for a in np.unique(t.ap) if a != ""})
        aps = header.get("aps") or seen_aps
        ap_pos = {a: i for i, a in enumerate(aps)}
        r_row, r_ap, r_rssi = [], [], []
        for fi, t in enumerate(tables):
            rows = np.flatnonzero(t.ap != "")
            idx = np.array([ap_pos.get(str(a), -1) for a in t.ap[rows]], np.int64)
            if (idx < 0).any():
                i = int(rows[np.flatnonzero(idx < 0)[0]])
                raise TinyLocError(f"{t.path}: line {t.line[i]}: ap {t.ap[i]!r} is not in the header's aps list")
            r_row.append(rows + offsets[fi])
            r_ap.append(idx)
            r_rssi.append(t.rssi[rows])
        scans = None
    else:
        aps = list(tables[0].ap_columns)
        if header.get("aps") is not None and header["aps"] != aps:
            raise TinyLocError(f"{tables[0].path}: the header's aps list differs from the AP columns (the wide form's "
                               f"columns give the AP order)")
        r_row, r_ap, r_rssi = [], [], []
        for fi, t in enumerate(tables):
            rows, a = np.nonzero(~np.isnan(t.rssi))
            r_row.append(rows + offsets[fi])
            r_ap.append(a.astype(np.int64))
            r_rssi.append(t.rssi[rows, a])
        scans = np.concatenate([t.rssi for t in tables]) if form == "scans" else None
    has_split = any(t.split is not None for t in tables)
    if has_split and not all(t.split is not None for t in tables):
        t = next(t for t in tables if t.split is None)
        raise TinyLocError(f"{t.path}: no split column, but other files have one (give it in every file or none)")
    return Recordings(
        form=form, header=header, paths=files,
        files=np.concatenate([np.full(len(t.line), fi) for fi, t in enumerate(tables)]),
        line=np.concatenate([t.line for t in tables]),
        t_ms=None if form == "scans" else np.concatenate([t.t_ms for t in tables]),
        room=np.concatenate(room_idx), session=np.concatenate(session_idx),
        split=np.concatenate([np.array([SPLITS.index(s) for s in t.split], np.int64) for t in tables])
        if has_split else None,
        reading_row=np.concatenate(r_row).astype(np.int64), reading_ap=np.concatenate(r_ap).astype(np.int64),
        reading_rssi=np.concatenate(r_rssi).astype(np.float64), scans=scans,
        rooms=list(rooms), aps=list(aps), sessions=session_names,
    )


# --------------------------------------------------------------------------------------------- splitting
def _auto_split(rec: Recordings, proc: Processing) -> tuple[np.ndarray, str]:
    """Split per row when the files have no split column (rule 3 of the module docstring)."""
    n_sessions = len(rec.sessions)
    split = np.zeros(len(rec.room), np.int64)  # train
    if n_sessions == 1:
        if rec.form == "scans":
            cut = int(math.floor((1 - TEST_SHARE) * len(split)))
            split[cut:] = 2
        else:
            t0, t1 = int(rec.t_ms.min()), int(rec.t_ms.max())
            n_steps = (t1 - t0) // proc.step_ms + 1
            cut = t0 + int(math.floor((1 - TEST_SHARE) * n_steps)) * proc.step_ms
            split[rec.t_ms >= cut] = 2
        return split, (f"no split column, one session: its last {int(TEST_SHARE * 100)} % "
                       f"({'rows' if rec.form == 'scans' else 'steps'}) -> test")
    counts = np.bincount(rec.session, minlength=n_sessions)
    test: list[int] = []
    for s in range(n_sessions - 1, 0, -1):
        if counts[test].sum() >= TEST_SHARE * len(split):
            break
        test.append(s)
    split[np.isin(rec.session, test)] = 2
    names = ", ".join(rec.sessions[s] for s in sorted(test))
    return split, f"no split column: the last sessions ({names}) -> test, {100 * counts[test].sum() / len(split):.0f} % of rows"


def _assign_splits(rec: Recordings, proc: Processing) -> tuple[np.ndarray, str]:
    if rec.split is None:
        split, rule = _auto_split(rec, proc)
    else:
        split, rule = rec.split, "split column"
    has_val = bool((split == 1).any())
    if has_val:
        rule += "; validation = the val rows"
    elif rec.form == "scans":
        rule += f"; validation = every 4th block of {SCAN_BLOCK_ROWS} training rows of a session"
    else:
        rule += f"; validation = every 4th {BLOCK_S:g} s block of each training part"
    return split, rule


# --------------------------------------------------------------------------------------------- windows
def _empty(proc: Processing, f: int) -> tuple[np.ndarray, np.ndarray]:
    return np.zeros((0, proc.window, f), np.float32), np.zeros((0, proc.window), np.int32)


def _parts(rec: Recordings, split: np.ndarray, proc: Processing) -> list[tuple[int, int, np.ndarray]]:
    """``[(session, split, rows)]``: per session, maximal runs (in time order) of one split value without a gap."""
    out = []
    gap_ms = int(GAP_S * 1000)
    for s in range(len(rec.sessions)):
        rows = np.flatnonzero(rec.session == s)
        order = rows[np.argsort(rec.t_ms[rows], kind="stable")]
        t, sp = rec.t_ms[order], split[order]
        cut = np.flatnonzero((np.diff(t) > gap_ms) | (np.diff(sp) != 0)) + 1
        for piece in np.split(order, cut):
            out.append((s, int(split[piece[0]]), np.sort(piece)))  # back to file order
    return out


def _series_windows(rec: Recordings, split: np.ndarray, proc: Processing) -> tuple[dict, dict]:
    """Windows per split from the time-series forms (rules 1–2) and per-session facts for ``meta``."""
    f = len(rec.aps)
    has_val = bool((split == 1).any())
    out: dict[str, list] = {"train": [], "val": [], "test": []}
    facts: dict[str, dict] = {}
    parts = _parts(rec, split, proc)
    by_row = np.full(len(rec.room), -1, np.int64)
    for k, (_, _, rows) in enumerate(parts):
        by_row[rows] = k
    reading_part = by_row[rec.reading_row]
    order = np.argsort(reading_part, kind="stable")  # readings grouped by part, file order kept inside each
    bounds = np.searchsorted(reading_part[order], np.arange(len(parts) + 1))
    for k, (s, sp, rows) in enumerate(parts):
        sel = order[bounds[k]:bounds[k + 1]]
        t0 = int(rec.t_ms[rows].min())
        n_steps = (int(rec.t_ms[rows].max()) - t0) // proc.step_ms + 1
        source = str(rec.paths[int(rec.files[rows[0]])])
        grid = windows.packets_to_grid(
            rec.t_ms[rec.reading_row[sel]], rec.reading_ap[sel], rec.reading_rssi[sel], f, t0_ms=t0, n_steps=n_steps,
            ffill_steps=proc.ffill_steps, fill=proc.fill_dbm, source=source, step_ms=proc.step_ms)
        labels = windows.packets_to_grid(
            rec.t_ms[rows], np.zeros(len(rows), np.int64), rec.room[rows].astype(np.float32), 1, t0_ms=t0,
            n_steps=n_steps, ffill_steps=proc.ffill_steps, fill=-1.0, source=source, step_ms=proc.step_ms,
        )[:, 0].astype(np.int32)
        name = SPLITS[sp]
        if name == "train" and not has_val:
            got = windows.split_recording(grid, labels, proc.window, proc.hop, proc.block_steps)
        else:
            got = {name: windows.make_windows(grid, labels, proc.window, proc.hop)}
        fact = facts.setdefault(rec.sessions[s], {"split": [], "rows": 0, "steps": 0, "parts": 0, "windows": {}})
        fact["rows"] += int(len(rows))
        fact["steps"] += int(n_steps)
        fact["parts"] += 1
        for part_split, (x, y) in got.items():
            keep = (y >= 0).any(axis=1)
            out[part_split].append((x[keep], y[keep]))
            fact["windows"][part_split] = fact["windows"].get(part_split, 0) + int(keep.sum())
            if part_split not in fact["split"]:
                fact["split"].append(part_split)
    return {k: (np.concatenate([x for x, _ in v]) if v else _empty(proc, f)[0],
                np.concatenate([y for _, y in v]) if v else _empty(proc, f)[1]) for k, v in out.items()}, facts


def _scan_windows(rec: Recordings, split: np.ndarray) -> tuple[dict, dict]:
    """Samples ``(B, 1, F)`` from scans (wide form without time)."""
    raw = rec.scans
    has_val = bool((split == 1).any())
    which = split.copy()
    if not has_val:
        for s in range(len(rec.sessions)):
            rows = np.flatnonzero((rec.session == s) & (split == 0))
            for part, a, b in windows.block_masks(len(rows), SCAN_BLOCK_ROWS):
                if part == "val":
                    which[rows[a:b]] = 1
    out = {}
    for k, name in enumerate(SPLITS):
        rows = np.flatnonzero((which == k) & (rec.room >= 0))
        out[name] = (raw[rows][:, None, :], rec.room[rows][:, None].astype(np.int32))
    facts = {}
    for s, name in enumerate(rec.sessions):
        m = rec.session == s
        used = [k for k in range(3) if ((which == k) & m).any()]
        facts[name] = {"split": [SPLITS[k] for k in used], "rows": int(m.sum()),
                       "windows": {SPLITS[k]: int(((which == k) & m & (rec.room >= 0)).sum()) for k in used}}
    return out, facts


def processing_for(rec: Recordings, options: dict, where: str) -> Processing:
    """Options > header > defaults, validated. Scans refuse window options (they have no time axis)."""
    values = {k: rec.header[k] for k in OPTION_KEYS if k in rec.header}
    values.update({k: v for k, v in options.items() if v is not None})
    if rec.form == "scans":
        given = [k for k in ("rate_hz", "window_s", "hop_s") if options.get(k) is not None]
        if given:
            raise TinyLocError(f"{where}: --{given[0].replace('_', '-')}: the file has no time column (one scan per "
                               f"row, T = 1), so there is nothing to window")
        values = {k: v for k, v in values.items() if k in ("fill_dbm",)}
        values["no_window"] = True
    proc = Processing(**values)
    proc.validate(where)
    return proc


def load_recordings(path: str | os.PathLike, rate_hz: float | None = None, window_s: float | None = None,
                    hop_s: float | None = None, fill_dbm: float | None = None, no_window: bool | None = None,
                    name: str | None = None) -> WindowDataset:
    """Load a recordings file or folder as a :class:`WindowDataset` named ``name`` (default: ``str(path)``).

    Options (``None`` = the file header's value, else the default of :class:`Processing`): ``rate_hz``, ``window_s``,
    ``hop_s``, ``fill_dbm``, ``no_window``. Returns x ``(B, T, F)`` float32 in [0, 1], y ``(B, T)`` int32.
    """
    where = str(path)
    rec = read_recordings(path)
    proc = processing_for(rec, {"rate_hz": rate_hz, "window_s": window_s, "hop_s": hop_s, "fill_dbm": fill_dbm,
                                "no_window": no_window or None}, where)
    _check_names(rec, proc, where)
    split, rule = _assign_splits(rec, proc)
    if rec.form == "scans":
        parts, facts = _scan_windows(rec, split)
        raw = {k: np.where(np.isnan(x), proc.fill_dbm, x).astype(np.float32) for k, (x, _) in parts.items()}
        parts = {k: (raw[k], parts[k][1]) for k in parts}
    else:
        _check_session_lengths(rec, proc, where)
        parts, facts = _series_windows(rec, split, proc)
    _check_windows(rec, parts, facts, where, rule)
    scaling = MinMaxScaling.fit(parts["train"][0])
    meta = {
        "source": "recordings", "path": where, "form": rec.form, "files": [p.name for p in rec.paths],
        "format_version": int(rec.header.get("format", FORMAT_VERSION)), "split": rule,
        "sessions": facts, **proc.to_dict(),
    }
    return WindowDataset(
        name=name or where,
        x_train=scaling.transform(parts["train"][0]), y_train=parts["train"][1].astype(np.int32),
        x_val=scaling.transform(parts["val"][0]), y_val=parts["val"][1].astype(np.int32),
        x_test=scaling.transform(parts["test"][0]), y_test=parts["test"][1].astype(np.int32),
        class_names=list(rec.rooms), feature_names=list(rec.aps), scaling=scaling, fill_value=float(proc.fill_dbm),
        meta=meta,
    )


# --------------------------------------------------------------------------------------------- checks
def _check_names(rec: Recordings, proc: Processing, where: str) -> None:
    labelled = np.unique(rec.room[rec.room >= 0])
    if len(rec.rooms) < 2 or len(labelled) < 2:
        got = ", ".join(repr(rec.rooms[i]) for i in labelled) or "none"
        raise TinyLocError(f"{where}: fewer than 2 rooms are labelled (rooms: {got}); a model needs at least 2")
    unused = [r for i, r in enumerate(rec.rooms) if i not in set(labelled.tolist())]
    if unused:
        raise TinyLocError(f"{where}: room {unused[0]!r} is in the header's rooms list but labels no row")
    heard = np.bincount(rec.reading_ap, minlength=len(rec.aps))
    if not (heard > 0).all():
        a = rec.aps[int(np.flatnonzero(heard == 0)[0])]
        raise TinyLocError(f"{where}: AP {a!r} is never heard (no reading in any row); remove it "
                           + ("from the header's aps list" if rec.form == "long" else "(its column is empty)"))
    low = rec.reading_rssi <= proc.fill_dbm
    if low.any():
        i = int(np.flatnonzero(low)[0])
        raise TinyLocError(f"{rec.where(rec.reading_row[i])}: rssi {rec.reading_rssi[i]:g} is not above the fill value "
                           f"{proc.fill_dbm:g} dBm ('not heard'); pass a lower --fill-dbm")
    out = (rec.reading_rssi < RSSI_RANGE[0]) | (rec.reading_rssi > RSSI_RANGE[1])
    if out.any():
        i = int(np.flatnonzero(out)[0])
        raise TinyLocError(f"{rec.where(rec.reading_row[i])}: rssi {rec.reading_rssi[i]:g} outside "
                           f"{RSSI_RANGE[0]:g}..{RSSI_RANGE[1]:g} dBm")


def _check_session_lengths(rec: Recordings, proc: Processing, where: str) -> None:
    for s, name in enumerate(rec.sessions):
        t = rec.t_ms[rec.session == s]
        steps = (int(t.max()) - int(t.min())) // proc.step_ms + 1
        if steps < proc.window:
            i = int(np.flatnonzero(rec.session == s)[0])
            raise TinyLocError(f"{rec.where(i)}: session {name!r} covers {steps * proc.step_ms / 1000:g} s, shorter than "
                               f"one window ({proc.window * proc.step_ms / 1000:g} s = {proc.window} steps)")


def _check_windows(rec: Recordings, parts: dict, facts: dict, where: str, rule: str) -> None:
    def sessions_with(split):
        return [n for n, f in facts.items() if f["windows"].get(split)]

    c = len(rec.rooms)
    train_rooms = np.bincount(parts["train"][1][parts["train"][1] >= 0], minlength=c)
    for k, room in enumerate(rec.rooms):
        if train_rooms[k]:
            continue
        elsewhere = [s for s in ("val", "test") if (parts[s][1] == k).any()]
        if elsewhere:
            raise TinyLocError(f"{where}: room {room!r} appears only in the {' and '.join(elsewhere)} split "
                               f"(split: {rule}); record it in a training session too")
        raise TinyLocError(f"{where}: room {room!r} labels no window (its rows are too few or too short for a window)")
    for split, what in (("train", "training"), ("val", "validation"), ("test", "test")):
        x, y = parts[split]
        if len(x) == 0 or not (y[:, -1] >= 0).any():
            hint = {"train": "no training session gives a labelled window",
                    "val": ("no training part is longer than 3 blocks of 60 s (record longer, or mark sessions with "
                            "split=val)" if rec.form != "scans" else "mark rows with split=val"),
                    "test": "no test session gives a labelled window (add sessions or a split column)"}[split]
            raise TinyLocError(f"{where}: no {what} windows with a labelled last step: {hint} (split: {rule})")
