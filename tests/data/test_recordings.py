"""The recordings format (data/recordings.py): values against a hand-computed grid, the three forms agree, split
rules, options, and every one-line error a user's file can cause (exact messages)."""
from __future__ import annotations

import json

import numpy as np
import pytest

from keras_tinyloc.data import recordings, registry
from keras_tinyloc.errors import TinyLocError

ROOMS = ["hall", "kitchen"]


def write(path, header_cols, rows, head=()):
    path.write_text("".join(f"{h}\n" for h in head) + ",".join(header_cols) + "\n"
                    + "".join(",".join(str(c) for c in r) + "\n" for r in rows))
    return path


def walk(seconds=300, session="s1", seed=0, t0=0.0, rooms=ROOMS, aps=("a1", "a2"), period=60):
    """Long-form rows: 5 Hz packets for ``seconds``; room i for ``period`` s in turn; AP j loud in room j; ~30 % of
    readings missed. Returns rows ``[time, ap, rssi, room, session]``."""
    rng = np.random.default_rng(seed)
    rows = []
    for k in range(int(seconds * 5)):
        room = (k // (5 * period)) % len(rooms)
        t = t0 + 0.2 * k + 0.013
        for j, ap in enumerate(aps):
            if rng.random() < 0.7:
                rows.append([f"{t:.3f}", ap, -50 - 25 * (j != room) - int(rng.integers(0, 6)), rooms[room], session])
    return rows


def grid_by_hand(rows, aps, t0_ms, n_steps, step_ms=200, ffill=5, fill=-120.0):
    """The 5 Hz grid and labels by a plain loop: latest reading in a step wins, kept <= ffill steps, else fill;
    a step's room = the last row in it, kept <= ffill steps, else -1."""
    g = np.full((n_steps, len(aps)), fill, np.float32)
    lab = np.full(n_steps, -1)
    last = {}
    last_room = None
    by_step = {}
    for r in rows:
        k = (int(round(float(r[0]) * 1000)) - t0_ms) // step_ms
        by_step.setdefault(k, []).append(r)
    for k in range(n_steps):
        for r in sorted(by_step.get(k, []), key=lambda r: float(r[0])):
            if r[1] != "":
                last[aps.index(r[1])] = (k, float(r[2]))
            last_room = (k, ROOMS.index(r[3]) if r[3] else -1)
        for a, (j, v) in last.items():
            if k - j <= ffill:
                g[k, a] = v
        if last_room is not None and k - last_room[0] <= ffill:
            lab[k] = last_room[1]
    return g, lab


# ------------------------------------------------------------------------------------------ values
def test_long_form_windows_match_a_hand_computed_grid(tmp_path):
    s1, s2 = walk(300, "s1", 0), walk(180, "s2", 1)
    f = write(tmp_path / "rec.csv", ["time", "ap", "rssi", "room", "session"], s1 + s2)
    ds = recordings.load_recordings(f)
    assert ds.class_names == ["hall", "kitchen"] and ds.feature_names == ["a1", "a2"] and ds.input_shape == (20, 2)
    assert ds.meta["split"].startswith("no split column: the last sessions (s2) -> test")
    # training session s1: step 0 at its first row; blocks of 300 steps, every 4th -> val; windows T=20 hop 10
    t0 = int(round(float(s1[0][0]) * 1000))
    n = (int(round(float(s1[-1][0]) * 1000)) - t0) // 200 + 1
    g, lab = grid_by_hand(s1, ["a1", "a2"], t0, n)
    xs, ys, xv, yv = [], [], [], []
    for b, a in enumerate(range(0, n, 300)):
        for s in range(a, min(a + 300, n) - 19, 10):
            (xv if b % 4 == 3 else xs).append(g[s:s + 20])
            (yv if b % 4 == 3 else ys).append(lab[s:s + 20])
    np.testing.assert_array_equal(ds.y_train, np.stack(ys))
    np.testing.assert_array_equal(ds.y_val, np.stack(yv))
    np.testing.assert_allclose(ds.x_train, ds.scaling.transform(np.stack(xs)))
    raw = np.stack(xs).reshape(-1, 2)
    assert ds.scaling.low.tolist() == raw.min(0).tolist() and ds.scaling.high.tolist() == raw.max(0).tolist()
    assert len(ds.x_test) == (180 * 5 - 20) // 10 + 1


def test_iso_times_wide_form_and_long_form_agree(tmp_path):
    rows = walk(300, "s1") + walk(200, "s2", 1)
    long = write(tmp_path / "long.csv", ["time", "ap", "rssi", "room", "session"], rows)
    base = np.datetime64("2024-05-01T10:00:00.000", "ms")
    iso = [[str(base + np.timedelta64(int(round(float(r[0]) * 1000)), "ms")), *r[1:]] for r in rows]
    iso_f = write(tmp_path / "iso.csv", ["time", "ap", "rssi", "room", "session"], iso)
    # wide form: one row per packet time, one column per AP (every packet has a distinct time here)
    wide = {}
    for t, ap, rssi, room, sess in rows:
        wide.setdefault((sess, t), {"room": room})[ap] = rssi
    wide_rows = [[t, v.get("a1", ""), v.get("a2", ""), v["room"], s] for (s, t), v in wide.items()]
    wide_f = write(tmp_path / "wide.csv", ["time", "a1", "a2", "room", "session"], wide_rows)
    a, b, c = (recordings.load_recordings(p) for p in (long, iso_f, wide_f))
    assert c.meta["form"] == "wide"
    for other in (b, c):
        for k in ("x_train", "y_train", "x_val", "y_val", "x_test", "y_test"):
            assert getattr(a, k).tobytes() == getattr(other, k).tobytes(), k


def test_header_orders_rooms_and_aps_and_sets_defaults(tmp_path):
    rows = walk(300, "s1") + walk(200, "s2", 1)
    head = ["# format: keras_tinyloc recordings 1", "# a free comment, no key", '# rooms: ["kitchen", "hall"]',
            '# aps: ["a2", "a1"]', "# rate_hz: 10", "# window_s: 2", "# hop_s: 1", "# fill_dbm: -110"]
    f = write(tmp_path / "rec.csv", ["time", "ap", "rssi", "room", "session"], rows, head)
    ds = recordings.load_recordings(f)
    assert ds.class_names == ["kitchen", "hall"] and ds.feature_names == ["a2", "a1"]
    assert ds.input_shape == (20, 2) and ds.fill_value == -110.0  # 2 s at 10 Hz
    assert (ds.meta["step_ms"], ds.meta["hop"], ds.meta["ffill_steps"]) == (100, 10, 10)
    plain = recordings.load_recordings(write(tmp_path / "p.csv", ["time", "ap", "rssi", "room", "session"], rows),
                                       rate_hz=10, window_s=2, hop_s=1, fill_dbm=-110)
    # same windows, with rooms and APs permuted
    np.testing.assert_array_equal(ds.x_test, plain.x_test[..., ::-1])
    np.testing.assert_array_equal(ds.y_test, 1 - plain.y_test.clip(0) - 2 * (plain.y_test < 0))
    # options beat the header
    assert recordings.load_recordings(f, window_s=4).input_shape == (40, 2)
    assert recordings.load_recordings(f, no_window=True).input_shape == (1, 2)


def test_scans_are_t1_samples_with_split_per_row(tmp_path):
    rng = np.random.default_rng(0)
    rows = []
    for i in range(120):
        room = ROOMS[i % 2]
        split = "test" if i >= 100 else ("val" if i % 5 == 0 else "train")
        rows.append([room, split, -40 - 30 * (i % 2) + int(rng.integers(0, 5)), "" if i % 3 else -90])
    rows.append(["", "train", -60, -60])  # unlabelled: dropped
    f = write(tmp_path / "scans.csv", ["room", "split", "w1", "w2"], rows)
    ds = recordings.load_recordings(f)
    assert ds.meta["form"] == "scans" and ds.input_shape == (1, 2)
    assert (len(ds.x_train), len(ds.x_val), len(ds.x_test)) == (80, 20, 20)
    raw = ds.x_train[:, 0] * (ds.scaling.high - ds.scaling.low) + ds.scaling.low
    want = [[r[2], -120.0 if r[3] == "" else r[3]] for r in rows[:100] if r[1] == "train"]
    np.testing.assert_allclose(raw, want, atol=1e-4)
    assert ds.y_train[:, 0].tolist() == [ROOMS.index(r[0]) for r in rows[:100] if r[1] == "train"]
    with pytest.raises(TinyLocError, match=r"--window-s: the file has no time column"):
        recordings.load_recordings(f, window_s=4)


def test_one_session_tests_on_its_last_quarter(tmp_path):
    rows = walk(400, "only")
    ds = recordings.load_recordings(write(tmp_path / "one.csv", ["time", "ap", "rssi", "room"], [r[:4] for r in rows]))
    assert ds.meta["split"].startswith("no split column, one session: its last 25 %")
    n = 400 * 5
    assert len(ds.x_test) == (n - int(0.75 * n) - 20) // 10 + 1
    assert list(ds.meta["sessions"]) == ["one"]  # the file name names the session


def test_a_gap_starts_a_new_part_and_a_folder_is_one_dataset(tmp_path):
    a = walk(300, "s1")
    b = walk(200, "s1", 1, t0=10_000.0)  # the same session, 9700 s later
    c = walk(200, "s2", 2)
    ds = recordings.load_recordings(write(tmp_path / "gap.csv", ["time", "ap", "rssi", "room", "session"], a + b + c))
    assert ds.meta["sessions"]["s1"]["parts"] == 2 and ds.meta["sessions"]["s1"]["steps"] == 1500 + 1000
    d = tmp_path / "folder"
    d.mkdir()
    write(d / "monday.csv", ["time", "ap", "rssi", "room"], [r[:4] for r in a])
    write(d / "tuesday.csv", ["time", "ap", "rssi", "room"], [r[:4] for r in c])
    ds = registry.load_dataset(str(d))
    assert list(ds.meta["sessions"]) == ["monday", "tuesday"] and ds.meta["files"] == ["monday.csv", "tuesday.csv"]


def test_registry_takes_a_path_and_checks_options(tmp_path):
    f = write(tmp_path / "r.csv", ["time", "ap", "rssi", "room", "session"], walk(300) + walk(200, "s2", 1))
    ds = registry.load_dataset(str(f), window_s=2.0)
    assert ds.name == str(f) and ds.input_shape == (10, 2)
    with pytest.raises(TinyLocError, match=r"^--rate-hz: only for a recordings path \(--dataset PATH\), not the "
                                           r"built-in 'house-a'$"):
        registry.load_dataset("house-a", rate_hz=10.0)
    with pytest.raises(TinyLocError, match=r"^--data-dir /x: not used with a recordings path"):
        registry.load_dataset(str(f), data_dir="/x")
    with pytest.raises(TinyLocError, match=r"^--rate-hz 3 \(.*r\.csv\): a step of 1000/3 = 333.3 ms is not a whole "
                                           r"number of ms \(the device counts ms\); use e\.g\. 4, 5 or 10 Hz$"):
        registry.load_dataset(str(f), rate_hz=3.0)
    with pytest.raises(TinyLocError, match=r"^--hop-s inf: must be a number from 0.001 to 3600$"):
        registry.check_dataset(str(f), None, {"hop_s": float("inf")})
    with pytest.raises(TinyLocError, match=r"^nothere\.csv: no such recordings file or folder$"):
        registry.check_dataset("nothere.csv")


def test_dataset_arguments_are_shared_and_recorded():
    import argparse

    p = argparse.ArgumentParser()
    registry.add_dataset_arguments(p)
    ns = p.parse_args(["--dataset", "my.csv", "--rate-hz", "10", "--no-window"])
    assert registry.dataset_options(ns) == {"rate_hz": 10.0, "no_window": True}
    assert registry.dataset_options(p.parse_args(["--dataset", "house-a"])) == {}


# ------------------------------------------------------------------------------------------ errors
HEAD = ["time", "ap", "rssi", "room", "session"]


def err(path, **opts) -> str:
    with pytest.raises(TinyLocError) as e:
        recordings.load_recordings(path, **opts)
    msg = str(e.value)
    assert "\n" not in msg
    return msg


def test_unknown_and_missing_columns_are_named(tmp_path):
    f = write(tmp_path / "c.csv", ["time", "mac", "rssi", "room", "floor"], [["0", "x", "-50", "hall", "1"]])
    assert err(f) == (f"{f}: missing column ap; unknown columns 'mac', 'floor' (found: time, mac, rssi, room, floor; "
                      f"the long form has time, ap, rssi, room and optionally session, split; the wide form has no "
                      f"ap/rssi columns)")
    f = write(tmp_path / "w.csv", ["t", "a1", "where"], [["0", "-50", "hall"]])
    assert err(f).startswith(f"{f}: no 'room' column (found: t, a1, where)")


@pytest.mark.parametrize("cell,line,msg", [
    ("12:30", 3, "time '12:30' is not a number of seconds (line 2 gives the time in seconds)"),
    ("", 3, "time: an empty cell (every row needs a time)"),
    ("inf", 3, "time 'inf' is not a finite number of seconds within ±1e+11"),
])
def test_unparseable_time_names_line_and_value(tmp_path, cell, line, msg):
    f = write(tmp_path / "t.csv", HEAD, [["0.0", "a", "-50", "hall", "s"], [cell, "a", "-50", "hall", "s"]])
    assert err(f) == f"{f}: line {line}: {msg}"
    iso = write(tmp_path / "i.csv", HEAD, [["2024-05-01T10:00:00", "a", "-50", "hall", "s"],
                                           ["2024-13-01T10:00:00", "a", "-50", "hall", "s"]])
    assert err(iso) == (f"{iso}: line 3: time '2024-13-01T10:00:00' is neither seconds nor an ISO 8601 date-time "
                        f"(e.g. 2024-05-01T10:00:00.200)")


@pytest.mark.parametrize("cell,msg", [("loud", "rssi: 'loud' is not a number"), ("-inf", "rssi: -inf is not finite")])
def test_unparseable_rssi_names_line_and_value(tmp_path, cell, msg):
    rows = [["0.0", "a", "-50", "hall", "s"], ["0.2", "b", "-60", "hall", "s"], ["0.4", "a", cell, "hall", "s"]]
    f = write(tmp_path / "r.csv", HEAD, rows, head=["# note: line numbers count this header line"])
    assert err(f) == f"{f}: line 5: {msg}"


def test_rssi_range_fill_and_half_empty_rows(tmp_path):
    base = walk(300, "s1") + walk(200, "s2", 1)
    f = write(tmp_path / "a.csv", HEAD, base[:3] + [["1.0", "a1", "-125", "hall", "s1"]] + base[3:])
    assert err(f) == (f"{f}: line 5: rssi -125 is not above the fill value -120 dBm ('not heard'); pass a lower "
                      f"--fill-dbm")
    f = write(tmp_path / "c.csv", HEAD, base[:3] + [["1.0", "a1", "5", "hall", "s1"]] + base[3:])
    assert err(f) == f"{f}: line 5: rssi 5 outside -150..0 dBm"
    f = write(tmp_path / "b.csv", HEAD, base[:2] + [["1.0", "a1", "", "hall", "s1"]] + base[2:])
    assert err(f) == f"{f}: line 4: ap 'a1' without an rssi (a label row leaves both empty)"


def test_a_room_only_in_the_test_split(tmp_path):
    rows = walk(300, "s1") + walk(200, "s2", 1, rooms=["hall", "kitchen", "study"], period=20)
    f = write(tmp_path / "t.csv", HEAD, rows)
    assert err(f) == (f"{f}: room 'study' appears only in the test split (split: no split column: the last sessions "
                      f"(s2) -> test, 40 % of rows; validation = every 4th 60 s block of each training part); record it "
                      f"in a training session too")


def test_an_ap_never_heard(tmp_path):
    f = write(tmp_path / "a.csv", HEAD, walk(300) + walk(200, "s2", 1), head=['# aps: ["a1", "a2", "a3"]'])
    assert err(f) == f"{f}: AP 'a3' is never heard (no reading in any row); remove it from the header's aps list"
    rows = [[r[3], r[4], r[2], ""] for r in walk(300) + walk(200, "s2", 1)]
    w = write(tmp_path / "w.csv", ["room", "session", "a1", "dead"], rows)
    assert err(w) == f"{w}: AP 'dead' is never heard (no reading in any row); remove it (its column is empty)"


def test_fewer_than_two_rooms(tmp_path):
    f = write(tmp_path / "one.csv", HEAD, walk(300, rooms=["hall"]) + walk(200, "s2", 1, rooms=["hall"]))
    assert err(f) == f"{f}: fewer than 2 rooms are labelled (rooms: 'hall'); a model needs at least 2"


def test_a_session_shorter_than_one_window(tmp_path):
    rows = walk(300) + walk(200, "s2", 1) + walk(3, "blip", 2)
    f = write(tmp_path / "s.csv", HEAD, rows)
    first = 2 + next(i for i, r in enumerate(rows) if r[4] == "blip")
    assert err(f) == (f"{f}: line {first}: session 'blip' covers 3 s, shorter than one window (4 s = 20 steps)")


def test_header_and_split_mistakes(tmp_path):
    rows = walk(300) + walk(200, "s2", 1)
    f = write(tmp_path / "h.csv", HEAD, rows, head=["# room: [\"hall\"]"])
    assert err(f) == (f"{f}: line 1: unknown header key 'room' (known: format, rooms, aps, fill_dbm, rate_hz, window_s, "
                      f"hop_s, no_window, source, note; write other notes as '# text' without a colon after the first "
                      f"word)")
    f = write(tmp_path / "v.csv", HEAD, rows, head=["# format: keras_tinyloc recordings 7"])
    assert err(f) == (f"{f}: line 1: format version 7 is newer than this keras_tinyloc reads (1); update keras_tinyloc")
    f = write(tmp_path / "r.csv", HEAD, rows, head=['# rooms: ["hall"]'])
    first = 3 + next(i for i, r in enumerate(rows) if r[3] == "kitchen")
    assert err(f) == f"{f}: line {first}: room 'kitchen' is not in the header's rooms list"
    f = write(tmp_path / "sp.csv", [*HEAD, "split"], [[*r, "training"] for r in rows])
    assert err(f) == f"{f}: line 2: split 'training': expected train, val or test"
    f = write(tmp_path / "e.csv", HEAD, [])
    assert err(f) == f"{f}: a header but no rows"
    f.write_text("")
    assert err(f) == f"{f}: no column header and no rows (an empty recordings file)"


def test_no_validation_windows_says_why(tmp_path):
    f = write(tmp_path / "short.csv", HEAD, walk(150) + walk(100, "s2", 1))
    assert err(f) == (f"{f}: no validation windows with a labelled last step: no training part is longer than 3 blocks "
                      f"of 60 s (record longer, or mark sessions with split=val) (split: no split column: the last "
                      f"sessions (s2) -> test, 40 % of rows; validation = every 4th 60 s block of each training part)")


def test_info_json_is_serialisable(tmp_path):
    f = write(tmp_path / "r.csv", HEAD, walk(300) + walk(200, "s2", 1))
    info = recordings.load_recordings(f).info()
    assert json.loads(json.dumps(info))["meta"]["sessions"]["s2"]["split"] == ["test"]
