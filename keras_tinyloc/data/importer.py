"""``data import SRC --format sphere|inhome|uji|uji-zones --out FILE``: a built-in dataset as a recordings file.

Why: the recordings format (:mod:`keras_tinyloc.data.recordings`, ``docs/recordings-format.md``) is how users bring
their own houses. Writing the built-in datasets in it — and checking (``tests/data/test_importer.py``) that loading
the file gives byte-identical windows, labels and scaling to the built-in loader — proves that the generic path is
the real one, and gives users complete examples of the format.

What is written (each loader's own reading code is reused, so nothing is re-implemented here):

* ``sphere``: long form. One row per (packet, AP that heard it) at the packet's time in seconds (t = 0 = the
  sequence start), with the room of the packet's 0.2 s step; plus a *label row* (``ap`` and ``rssi`` empty) at the
  start of step 0 and of every step without a packet, so each step's room and the grid's start and end are the
  loader's. ``session`` = the sequence (``00001`` …), ``split`` = ``train`` (00001–00007; the loader's 60 s blocks
  give validation) or ``test`` (00008–00010).
* ``inhome`` (published layout or flat CSVs, real or simulated): the same, with times in ISO 8601 (the archive's
  clock) and step 0 half a step before the first packet; ``session`` = the recording (``fingerprint_floor``,
  ``living_1`` …), ``split`` = ``train`` (fingerprint) or ``test`` (free-living).
* ``uji`` / ``uji-zones``: wide form without time (one scan per row), one column per WAP, empty = not detected;
  rows of the loader's training, validation and test splits with ``split`` = ``train``/``val``/``test``; the header
  gives the loader's fill value (−110 dBm).

The header lists the rooms and APs in the loader's order (``# rooms:``, ``# aps:``), so class and feature indices
are the same. Rows of one session are in time order (label rows after the packets of the same millisecond).
"""
from __future__ import annotations

import csv
import io
import json
import os
import re
from pathlib import Path

import numpy as np

from keras_tinyloc import paths
from keras_tinyloc.data import recordings, windows
from keras_tinyloc.errors import TinyLocError

FORMATS = ("sphere", "inhome", "uji", "uji-zones")


def header_lines(source: str, rooms: list[str], aps: list[str], **extra) -> list[str]:
    """The ``# key: value`` lines of a written file (format version, source, rooms, aps, option defaults)."""
    lines = [f"# format: {recordings.FORMAT_NAME} {recordings.FORMAT_VERSION}", f"# source: {source}",
             f"# rooms: {json.dumps(list(rooms), ensure_ascii=False)}",
             f"# aps: {json.dumps(list(aps), ensure_ascii=False)}"]
    lines += [f"# {k}: {v:g}" if isinstance(v, float) else f"# {k}: {v}" for k, v in extra.items()]
    return lines


def _seconds(ms: np.ndarray) -> np.ndarray:
    """int ms -> exact decimal seconds text (``12.345``)."""
    ms = np.asarray(ms, np.int64)
    sign = np.where(ms < 0, "-", "")
    a = np.abs(ms)
    return np.char.add(np.char.add(sign, (a // 1000).astype(str)), np.char.add(".", np.char.zfill((a % 1000).astype(str), 3)))


def _dbm(values: np.ndarray) -> np.ndarray:
    """float32 dBm -> the shortest text that parses back to the same float32."""
    uniq, inv = np.unique(np.asarray(values, np.float32), return_inverse=True)
    text = np.array([np.format_float_positional(v, unique=True, trim="-") for v in uniq] or [""], dtype=object)
    return text[inv.reshape(-1)] if len(uniq) else np.zeros(0, dtype=object)


def session_rows(name: str, split: str, rec: dict, rooms: list[str], aps: list[str], iso: bool) -> list[list[str]]:
    """One recording's rows ``[time, ap, rssi, room, session, split]`` (module docstring).

    ``rec``: ``t_ms``, ``ap``, ``rssi`` ``(P,)`` readings (AP index), ``t0`` (ms of step 0), ``n_steps`` S,
    ``labels`` ``(S,)`` (−1 unlabelled), as :func:`inhome.recording_readings` / :func:`sphere.read_sequence` give.
    """
    t, ap, rssi = np.asarray(rec["t_ms"], np.int64), np.asarray(rec["ap"], np.int64), np.asarray(rec["rssi"])
    t0, n_steps, labels = int(rec["t0"]), int(rec["n_steps"]), np.asarray(rec["labels"])
    step = (t - t0) // windows.STEP_MS
    if len(step) and (step.min() < 0 or step.max() >= n_steps):
        raise TinyLocError(f"{name}: a packet lies outside the recording's {n_steps} steps (cannot be written)")
    quiet = np.setdiff1d(np.arange(n_steps), step)
    label_steps = np.union1d(quiet, [0])
    times = np.concatenate([t, t0 + label_steps * windows.STEP_MS])
    order = np.argsort(times, kind="stable")  # packets keep their order; a label row follows same-ms packets
    room_names = np.array([""] + list(rooms), dtype=object)
    room = room_names[np.concatenate([labels[step], labels[label_steps]]) + 1]
    ap_text = np.concatenate([np.array(aps, dtype=object)[ap], np.full(len(label_steps), "", dtype=object)])
    rssi_text = np.concatenate([_dbm(rssi), np.full(len(label_steps), "", dtype=object)])
    if iso:
        time_text = np.datetime_as_string(times.astype("datetime64[ms]"), unit="ms")
    else:
        time_text = _seconds(times)
    n = len(times)
    cols = [time_text[order], ap_text[order], rssi_text[order], room[order], np.full(n, name, dtype=object),
            np.full(n, split, dtype=object)]
    return [list(r) for r in zip(*cols)]


def _csv_text(header: list[str], columns: list[str], rows) -> str:
    buf = io.StringIO()
    buf.write("\n".join(header) + "\n")
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(columns)
    w.writerows(rows)
    return buf.getvalue()


# --------------------------------------------------------------------------------------------- each dataset
def sphere_text(src) -> tuple[str, dict]:
    """The SPHERE Challenge release at ``src`` (as ``--data-dir``) as recordings text, and a summary."""
    from keras_tinyloc.data import sphere

    public = sphere.find_public_dir(src)
    rooms = sphere.read_rooms(public / "rooms.json")
    aps = list(sphere.AP_COLUMNS)
    rows = []
    names = {}
    for split, dirs in sphere.sequence_dirs(public).items():
        for d in dirs:
            seq = d.name
            r = sphere.read_sequence(d, rooms)
            rec = {"t_ms": r["t_ms"], "ap": r["ap"], "rssi": r["rssi"], "t0": 0, "n_steps": r["n_steps"],
                   "labels": r["labels"]}
            rows += session_rows(seq, split, rec, rooms, aps, iso=False)
            names[seq] = split
    head = header_lines("data import --format sphere (SPHERE Challenge 2016, Twomey et al., data.bris "
                        "10.5523/bris.8gccwpx47rav19vk8x4xapcog; annotator 0)", rooms, aps)
    return _csv_text(head, list(recordings.LONG_COLUMNS), rows), {"rows": len(rows), "sessions": names,
                                                                  "rooms": rooms, "aps": aps, "form": "long"}


def _house_letter(src: Path, house: str | None) -> str:
    if house:
        letter = str(house).upper()
        if not re.fullmatch(r"[A-DS]", letter):
            raise TinyLocError(f"--house {house!r}: choose from A, B, C, D (or S, the SPHERE-like simulated house)")
        return letter
    m = re.fullmatch(r"house_([A-Za-z])", src.name)
    if m:
        return m.group(1).upper()
    found = sorted({g for folder in (src, src / "ble-accelerometer-indoor-localisation-measurements") if folder.is_dir()
                    for e in folder.iterdir() for g in re.findall(r"^(?:csv_)?house_([A-Za-z])", e.name)})
    if len(found) == 1:
        return found[0].upper()
    if not found:
        raise TinyLocError(f"{src}: no house_X folder or csv_house_X_*.csv inside (give the house folder or --house)")
    raise TinyLocError(f"{src}: holds houses {', '.join(found)}; choose one with --house")


def inhome_text(src, house: str | None = None) -> tuple[str, dict]:
    """An In-Home house (published layout or flat CSVs) at ``src`` as recordings text, and a summary."""
    from keras_tinyloc.data import inhome

    src = Path(src)
    if not src.exists():
        raise TinyLocError(f"{src}: no such folder (an In-Home house: house_X/ or a folder holding it)")
    letter = _house_letter(src, house)
    found = inhome.find_house(letter, src)
    if found is None:
        raise TinyLocError(inhome.missing_house_message(letter, src))
    kind, where = found
    rows, names = [], {}
    if kind == "published":
        meta, recs = inhome._published_recordings(where)
        rooms, aps = meta.class_names, [f"ap_{a}" for a in meta.ap_ids]
        for k, folder in recs:
            split = "train" if k == "fp" else "test"
            rows += session_rows(folder.name, split, inhome.recording_readings(folder, meta), rooms, aps, iso=True)
            names[folder.name] = split
    else:
        class_names, got = inhome.read_flat_house(where, letter, inhome.flat_readings)
        if class_names is None:
            c = int(max(got["fp"]["labels"].max(), got["fl"]["labels"].max())) + 1
            class_names = [f"room {i + 1}" for i in range(c)]
        rooms, aps = class_names, got["fp"]["ap_names"]
        for k, split in (("fp", "train"), ("fl", "test")):
            name = f"csv_house_{letter}_{k}"
            rows += session_rows(name, split, got[k], rooms, aps, iso=True)
            names[name] = split
    head = header_lines(f"data import --format inhome (house {letter}"
                        f"{', simulated' if (where / 'simulation.json').exists() else ''})", rooms, aps)
    return _csv_text(head, list(recordings.LONG_COLUMNS), rows), {"rows": len(rows), "sessions": names,
                                                                  "rooms": list(rooms), "aps": list(aps), "form": "long"}


def uji_text(src, labeling: str = "building-floor", n_zones: int = 59) -> tuple[str, dict]:
    """UJIIndoorLoc at ``src`` (building-floors or ``n_zones`` zones, the loader's split) as recordings text
    (scans)."""
    from keras_tinyloc.data import uji

    a = uji.uji_arrays(src, labeling, n_zones)
    rooms = [str(c) for c in a["class_names"]]
    aps = [str(f) for f in a["feature_names"]]
    fill = float(a["fill"])
    room_names = np.array(rooms, dtype=object)
    rows = []
    for split in ("train", "val", "test"):
        x, y = np.asarray(a[f"x_{split}"]), np.asarray(a[f"y_{split}"])
        cells = x.astype(str).astype(object)
        cells[x == fill] = ""  # not detected (every real reading is above the fill value)
        rows += [[room, split, *c] for room, c in zip(room_names[y], cells.tolist())]
    head = header_lines(f"data import --format {'uji-zones' if labeling == 'zones' else 'uji'} (UJIIndoorLoc, "
                        f"UCI 310, CC BY 4.0; the loader's 75/25 split, seed 0)", rooms, aps, fill_dbm=fill)
    return _csv_text(head, ["room", "split", *aps], rows), {"rows": len(rows), "sessions": {},
                                                           "rooms": rooms, "aps": aps, "form": "scans"}


def import_dataset(fmt: str, src, out, house: str | None = None, overwrite: bool = False) -> dict:
    """Write dataset ``fmt`` read from ``src`` to the recordings file ``out`` (atomically); return a summary.

    Refuses (before reading anything) an empty ``out``, an existing folder, or an existing file without
    ``overwrite``.
    """
    if fmt not in FORMATS:
        raise TinyLocError(f"--format {fmt!r}: choose from {', '.join(FORMATS)}")
    if house is not None and fmt != "inhome":
        raise TinyLocError(f"--house: only with --format inhome, not {fmt}")
    text_out = "" if out is None else os.fspath(out)
    if not text_out.strip():
        raise TinyLocError(f"--out {text_out!r}: an empty path (an unset shell variable?); name the file to write")
    out = Path(text_out)
    if out.is_dir():
        raise TinyLocError(f"--out {out}: is a folder; name the recordings file to write (e.g. {out / 'recordings.csv'})")
    if out.exists() and not overwrite:
        raise TinyLocError(f"--out {out}: exists (use --overwrite to replace it)")
    if fmt == "sphere":
        text, summary = sphere_text(src)
    elif fmt == "inhome":
        text, summary = inhome_text(src, house)
    else:
        text, summary = uji_text(src, "zones" if fmt == "uji-zones" else "building-floor")
    try:
        paths.atomic_write_text(out, text)
    except OSError as exc:
        raise TinyLocError(f"--out {out}: cannot write ({exc.strerror})") from None
    return {**summary, "out": str(out), "bytes": len(text.encode("utf-8"))}
