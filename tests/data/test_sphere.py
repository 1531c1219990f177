"""SPHERE loader: packet recovery, labels, split and scaling on tiny folders written here; bad input; the real copy."""
from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import pytest

from keras_tinyloc import paths
from keras_tinyloc.data import sphere, windows
from keras_tinyloc.errors import TinyLocError

ROOMS = ["bath", "hall", "kitchen"]
HEADER = ["t", "x", "y", "z", *sphere.AP_COLUMNS]
ROW = sphere.ROW_US


def packet_times_us(n: int, t0_us: int = 17856) -> np.ndarray:
    """Packets every 200 ms with the release's drift of +1 ms every 5th packet."""
    p = np.arange(n)
    return t0_us + 200_000 * p + (p // 5) * 1000


def write_acc(path: Path, starts_us, values, rows_per_packet=None, first_row_values=None, header=HEADER):
    """Write acceleration.csv: packet p's values (F,) (NaN = missed) on rows start + k * 50.048 ms."""
    lines = [",".join(header)]
    n_ap = len(header) - 4
    for p, (s, v) in enumerate(zip(starts_us, values)):
        ks = rows_per_packet[p] if rows_per_packet is not None else range(4)
        for j, k in enumerate(ks):
            vals = v
            if first_row_values is not None and j == 0 and p in first_row_values:
                vals = first_row_values[p]
            cells = ["" if np.isnan(a) else f"{a:.1f}" for a in vals[:n_ap]]
            t = (s + k * ROW) / 1e6
            lines.append(f"{t:.6f},{np.sin(t):.4f},{np.cos(t):.4f},{t / 1000:.4f}," + ",".join(cells))
    path.write_text("\n".join(lines) + "\n")


def write_seq(d: Path, rng, seconds: float, intervals, strong=None):
    """A synthetic sequence folder; returns the packets it contains as (t_ms, ap, rssi)."""
    d.mkdir(parents=True)
    n = int(seconds / 0.2) - 1
    starts = packet_times_us(n)
    vals = rng.integers(-100, -60, (n, 4)).astype(float)
    vals[rng.random((n, 4)) < 0.3] = np.nan
    vals[:, 3] = np.nan  # Study_AP absent from every sequence
    if strong is not None:
        vals[strong, 0] = -30.0
    write_acc(d / "acceleration.csv", starts, vals)
    (d / "location_0.csv").write_text(
        "start,end,name,index\n" + "".join(f"{a},{b},{r},{ROOMS.index(r)}\n" for a, b, r in intervals)
    )
    (d / "meta.json").write_text(json.dumps({"annotators": [1], "end": seconds, "start": 0}))
    p, a = np.nonzero(~np.isnan(vals))
    return np.round(starts[p] / 1000).astype(np.int64), a, vals[p, a]


def labels_by_loop(n_steps, intervals):
    y = np.full(n_steps, -1)
    for k in range(n_steps):
        c = 0.2 * k + 0.1
        for a, b, r in intervals:
            if a <= c < b:
                y[k] = ROOMS.index(r)
    return y


# ------------------------------------------------------------------------------------------------ unit pieces
def test_packet_starts_follow_the_row_spacing():
    us = [0, ROW, 2 * ROW, 3 * ROW,  # a full packet
          200_000, 200_000 + 2 * ROW, 200_000 + 3 * ROW,  # one row missing inside
          400_000,  # 49.856 ms after the previous row: a new packet
          850_000, 850_000 + ROW,  # after a gap
          851_000]  # 1 ms later (the interleaved stream in 00004): new
    expect = [1, 0, 0, 0, 1, 0, 0, 1, 1, 0, 1]
    assert sphere.packet_starts(np.array(us)).astype(int).tolist() == expect
    # a run longer than 4 rows at 50.048 ms is cut after 4 rows
    assert sphere.packet_starts(np.arange(6) * ROW).astype(int).tolist() == [1, 0, 0, 0, 1, 0]


def test_read_packets_recovers_each_packet(tmp_path):
    starts = packet_times_us(6)
    nan = np.nan
    vals = np.array([[-80, -90, nan, nan],
                     [-80, -90, nan, nan],  # identical to the previous packet: still a packet of its own
                     [nan, nan, nan, nan],  # missed by every AP: no reading
                     [-70, nan, -95, nan],
                     [-71, nan, -96, nan],
                     [nan, -60, nan, nan]])
    rows = [range(4), range(4), range(4), [0, 2, 3], [0, 1], range(4)]
    f = tmp_path / "acceleration.csv"
    # packet 3's first row disagrees with its other rows: the last row's values count
    write_acc(f, starts, vals, rows_per_packet=rows, first_row_values={3: np.array([-70, -50, nan, nan])})
    t, ap, rssi, heard, _ = sphere.read_packets(f)
    p, a = np.nonzero(~np.isnan(vals))
    np.testing.assert_array_equal(t, np.round(starts[p] / 1000))
    np.testing.assert_array_equal(ap, a)
    np.testing.assert_array_equal(rssi, vals[p, a])
    assert heard == ["Kitchen_AP", "Lounge_AP", "Upstairs_AP"]


def test_read_packets_without_an_ap_column(tmp_path):
    f = tmp_path / "acceleration.csv"
    write_acc(f, packet_times_us(2), np.array([[-80.0, -81.0, -82.0], [-83.0, np.nan, -84.0]]), header=HEADER[:-1])
    t, ap, rssi, heard, _ = sphere.read_packets(f)
    assert ap.tolist() == [0, 1, 2, 0, 2] and rssi.tolist() == [-80, -81, -82, -83, -84]
    assert "Study_AP" not in heard


def test_step_labels_use_the_step_centre():
    s = np.array([250, 1000]), np.array([950, 1300]), np.array([2, 0])
    y = sphere.step_labels(8, *s)
    # centres 100, 300, 500, 700, 900, 1100, 1300, 1500 ms; [250, 950) -> 2, [1000, 1300) -> 0
    assert y.tolist() == [-1, 2, 2, 2, 2, 0, -1, -1]


# ------------------------------------------------------------------------------------------------ whole loader
@pytest.fixture
def tiny(tmp_path, monkeypatch):
    """Two 200 s train/val sequences and one 60 s test sequence in the published layout."""
    monkeypatch.setenv("KERAS_TINYLOC_CACHE", str(tmp_path / "cache"))
    rng = np.random.default_rng(0)
    root = tmp_path / "sphere_challenge"
    pub = root / "public_data"
    (pub / "train").mkdir(parents=True)
    (pub / "rooms.json").write_text(json.dumps(ROOMS))
    iv = {
        "00001": [(0.0, 80.0, "hall"), (80.0, 200.2, "kitchen")],
        "00002": [(0.0, 20.0, "bath"), (40.0, 200.2, "hall")],  # steps 100..199 unlabelled
        "00008": [(0.0, 20.0, "kitchen"), (30.0, 60.0, "bath")],  # steps 100..149 unlabelled
    }
    secs = {"00001": 200.0, "00002": 200.0, "00008": 60.0}
    packets = {s: write_seq(pub / "train" / s, rng, secs[s], iv[s], strong=[7] if s == "00008" else None)
               for s in iv}
    return root, iv, secs, packets


def test_tiny_layout_counts_labels_and_values(tiny):
    root, iv, secs, packets = tiny
    ds = sphere.load_sphere(root)
    assert ds.class_names == ROOMS and ds.input_shape == (20, 4)
    assert ds.feature_names == list(sphere.AP_COLUMNS) and ds.fill_value == -120.0
    # 1001 steps per 200 s sequence: blocks 300/300/300 train (29 windows each) and 101 val (9 windows);
    # 00002 loses the 9 windows inside its unlabelled steps 100..199
    assert (len(ds.x_train), len(ds.x_val)) == (87 + 78, 9 + 9)
    # 301 test steps -> 29 windows, 4 of them (starts 100..130) inside the unlabelled steps 100..149
    assert len(ds.x_test) == 25
    n = int(secs["00008"] * 5) + 1
    y = labels_by_loop(n, iv["00008"])
    starts = [s for s in range(0, n - 19, 10) if (y[s:s + 20] >= 0).any()]
    np.testing.assert_array_equal(ds.y_test, np.stack([y[s:s + 20] for s in starts]))
    grid = windows.packets_to_grid(*packets["00008"], 4, t0_ms=0, n_steps=n)
    raw = np.stack([grid[s:s + 20] for s in starts])
    np.testing.assert_allclose(ds.x_test, ds.scaling.transform(raw))
    # the absent Study_AP reads -120 throughout: scaling low = high = -120 and x = 0
    assert ds.scaling.low[3] == ds.scaling.high[3] == -120.0
    assert not ds.x_train[..., 3].any() and not ds.x_test[..., 3].any()
    # scaling fit on training windows only: the -30 dBm test packet is above the training max -> 1
    assert ds.scaling.high[0] < -30 and ds.x_test.max() == 1.0
    tr_raw = ds.x_train * (ds.scaling.high - ds.scaling.low) + ds.scaling.low
    np.testing.assert_allclose(tr_raw.reshape(-1, 4).max(0)[:3], ds.scaling.high[:3], atol=1e-4)
    assert ds.meta["sequences"]["00008"]["split"] == "test"


def test_accelerometer_features_are_per_step_means(tiny):
    root, iv, secs, packets = tiny
    rssi_only = sphere.load_sphere(root)
    ds = sphere.load_sphere(root, accelerometer=True)
    assert ds.feature_names == [*sphere.AP_COLUMNS, "acc_x", "acc_y", "acc_z"] and ds.input_shape == (20, 7)
    np.testing.assert_array_equal(ds.x_test[..., :4], rssi_only.x_test)
    np.testing.assert_array_equal(ds.y_test, rssi_only.y_test)
    # independent: mean of the rows whose time falls in each 0.2 s step, last value kept <= 5 steps, else 0
    rows = np.loadtxt(root / "public_data" / "train" / "00008" / "acceleration.csv", delimiter=",", skiprows=1,
                      usecols=(0, 1, 2, 3))
    n = int(secs["00008"] * 5) + 1
    step = (np.round(rows[:, 0] * 1000) // 200).astype(int)
    expect, last, age = np.zeros((n, 3)), np.zeros(3), 99
    for k in range(n):
        here = rows[step == k, 1:]
        if len(here):
            last, age = here.mean(0), 0
        else:
            age += 1
        expect[k] = last if age <= 5 else 0.0
    y = labels_by_loop(n, iv["00008"])
    starts = [s for s in range(0, n - 19, 10) if (y[s:s + 20] >= 0).any()]
    raw = ds.x_test[..., 4:] * (ds.scaling.high[4:] - ds.scaling.low[4:]) + ds.scaling.low[4:]
    np.testing.assert_allclose(raw, np.stack([expect[s:s + 20] for s in starts]), atol=1e-4)


def test_accelerometer_grid_gap_rule():
    t = np.array([10, 60, 250, 1850, 1900])  # steps 0, 0, 1, 9, 9
    xyz = np.array([[1, 2, 3], [3, 4, 5], [7, 7, 7], [0.5, 0.5, 0.5], [1.5, 1.5, 1.5]], np.float32)
    g = sphere.accelerometer_grid(t, xyz, 11)
    expect = [[2, 3, 4]] + [[7, 7, 7]] * 6 + [[0, 0, 0]] * 2 + [[1, 1, 1]] * 2  # step 1 held for steps 2..6
    np.testing.assert_allclose(g, expect)


def test_second_load_comes_from_the_cache(tiny, monkeypatch):
    root = tiny[0]
    first = sphere.load_sphere(root / "public_data")
    assert len(list(paths.user_cache_dir().glob("sphere-v*.npz"))) == 1

    def boom(*a, **k):
        raise AssertionError("read again")

    monkeypatch.setattr(sphere, "read_sequence", boom)
    second = sphere.load_sphere(root)
    np.testing.assert_array_equal(first.x_val, second.x_val)
    np.testing.assert_array_equal(first.y_test, second.y_test)


def test_folder_without_acceleration_csv(tiny):
    root = tiny[0]
    bad = root / "public_data" / "train" / "00003"
    bad.mkdir()
    with pytest.raises(TinyLocError, match=r"00003: no acceleration\.csv"):
        sphere.load_sphere(root)


def test_search_order_env_then_explicit(tiny, monkeypatch, tmp_path):
    root = tiny[0]
    monkeypatch.setenv("KERAS_TINYLOC_DATA", str(root))
    assert sphere.find_public_dir() == root / "public_data"
    with pytest.raises(TinyLocError, match="no public_data"):
        sphere.find_public_dir(root / "public_data" / "train")  # an explicit dir is never skipped


# ------------------------------------------------------------------------------------------------ bad input
@pytest.fixture
def seq(tmp_path):
    d = tmp_path / "00001"
    write_seq(d, np.random.default_rng(1), 6.0, [(0.0, 6.0, "hall")])
    return d


def _bad(fn, *parts):
    with pytest.raises(TinyLocError) as err:
        fn()
    msg = str(err.value)
    assert "\n" not in msg
    for p in parts:
        assert p in msg, msg


@pytest.mark.parametrize(
    "rows,parts",
    [
        ("0,2,hall\n3,1,bath\n", ["row 3", "ends before it starts"]),
        ("0,2,hall\n1.5,4,bath\n", ["row 3", "overlaps the one on row 2"]),
        ("3,4,hall\n0,5,bath\n", ["row 2", "overlaps the one on row 3"]),
        ("0,2,hall\n2,4,garage\n", ["row 3", "unknown room 'garage'"]),
        ("0,x,hall\n", ["row 2", "column end", "non-numeric"]),
        ("", ["no annotated intervals"]),
    ],
)
def test_bad_annotations(seq, rows, parts):
    f = seq / "location_0.csv"
    f.write_text("start,end,name\n" + rows)
    _bad(lambda: sphere.read_sequence(seq, ROOMS), str(f), *parts)


def test_missing_annotation_file(seq):
    (seq / "location_0.csv").unlink()
    _bad(lambda: sphere.read_sequence(seq, ROOMS), "location_0.csv", "missing")


@pytest.mark.parametrize("value,parts", [("-130.0", ["RSSI -130 outside -127..0"]), ("3.0", ["RSSI 3 outside"]),
                                         ("loud", ["non-numeric value 'loud'"])])
def test_bad_rssi(seq, value, parts):
    f = seq / "acceleration.csv"
    lines = f.read_text().splitlines()
    cells = lines[5].split(",")
    cells[6] = value  # Upstairs_AP on file row 6
    lines[5] = ",".join(cells)
    f.write_text("\n".join(lines) + "\n")
    _bad(lambda: sphere.read_sequence(seq, ROOMS), str(f), "row 6", "column Upstairs_AP", *parts)


def test_bad_acceleration_files(seq):
    f = seq / "acceleration.csv"
    f.write_text("")
    _bad(lambda: sphere.read_packets(f), str(f), "empty")
    f.write_text("time,Kitchen_AP\n0.1,-80\n")
    _bad(lambda: sphere.read_packets(f), "missing column t")
    f.write_text("t,Kitchen_AP\n0.2,-80\n0.1,-80\n")
    _bad(lambda: sphere.read_packets(f), "row 3", "backwards")


def test_labels_outside_the_recording(seq):
    (seq / "location_0.csv").write_text("start,end,name\n100,200,hall\n")
    _bad(lambda: sphere.read_sequence(seq, ROOMS), "no annotated interval overlaps")


# ------------------------------------------------------------------------------------------------ the real copy
REAL = (paths.shared_data_dir() or Path("/nonexistent")) / "sphere_challenge"
needs_real = pytest.mark.skipif(not (REAL / "public_data" / "rooms.json").is_file(), reason="no shared SPHERE copy")


@pytest.fixture(scope="module")
def real():
    return sphere.load_sphere(REAL)


@needs_real
def test_real_copy_shape_classes_and_measured_statistics(real):
    assert real.n_classes == 9 and real.input_shape == (20, 4)
    assert real.class_names == json.loads((REAL / "public_data" / "rooms.json").read_text())
    seqs = real.meta["sequences"]
    assert sorted(seqs) == [f"{i:05d}" for i in range(1, 11)]
    # reference-architecture.md: 80,449 labelled steps; Study_AP absent in 00001-00006, Lounge_AP in 00006-00010;
    # packets heard by at least one AP: 91 % overall, 61 % in 00006, 76 % in 00009
    assert abs(sum(s["labelled_steps"] for s in seqs.values()) - 80449) <= 20
    for name, s in seqs.items():
        i = int(name)
        assert ("Study_AP" in s["aps_heard"]) == (i >= 7)
        assert ("Lounge_AP" in s["aps_heard"]) == (i <= 5)
    frac = sum(s["packets"] for s in seqs.values()) / sum(s["steps"] for s in seqs.values())
    assert abs(frac - 0.91) < 0.01
    assert abs(seqs["00006"]["packets"] / seqs["00006"]["steps"] - 0.61) < 0.01
    assert abs(seqs["00009"]["packets"] / seqs["00009"]["steps"] - 0.76) < 0.01
    # every window has a labelled step; the last step is labelled for nearly all
    for split in ("train", "val", "test"):
        y = real.split(split)[1]
        assert (y >= 0).any(1).all() and (y[:, -1] >= 0).mean() > 0.98
    t = time.perf_counter()
    sphere.load_sphere(REAL)
    assert time.perf_counter() - t < 1.0


@needs_real
def test_real_copy_last_step_knn_matches_issue_8(real):
    """Issue 8 measured kNN on the last step's features at 56 macro-F1 / 76 % accuracy on the test sequences."""
    from sklearn.metrics import accuracy_score, f1_score
    from sklearn.neighbors import KNeighborsClassifier
    from threadpoolctl import threadpool_limits

    def last(split):
        x, y = real.split(split)
        keep = y[:, -1] >= 0
        return x[keep, -1], y[keep, -1]

    x, y = last("train")
    xt, yt = last("test")
    with threadpool_limits(1):  # OpenMP on a shared 2-core machine is much slower than one thread
        p = KNeighborsClassifier(5, algorithm="kd_tree").fit(x, y).predict(xt)
    assert abs(f1_score(yt, p, average="macro") - 0.56) < 0.03
    assert abs(accuracy_score(yt, p) - 0.76) < 0.03


# ------------------------------------------------------------------------------------------------ damaged files
def test_truncated_acceleration_csv_is_refused(seq):
    f = seq / "acceleration.csv"
    lines = f.read_text().splitlines()
    f.write_text("\n".join(lines[: len(lines) // 2]) + "\n")  # half the rows: meta.json still says 6 s
    last = float(lines[len(lines) // 2 - 1].split(",")[0])
    _bad(lambda: sphere.read_sequence(seq, ROOMS),
         f"{f}: the last row is at t = {round(last * 1000) / 1000:g} s but meta.json says the sequence ends at 6 s "
         f"(a truncated acceleration.csv? they agree within 1 s in the release)")
    (seq / "meta.json").unlink()  # without meta.json the annotations still show the recording went on
    _bad(lambda: sphere.read_sequence(seq, ROOMS),
         f"{f}: the last row is at t = {round(last * 1000) / 1000:g} s but location_0.csv annotates rooms until 6 s "
         f"(a truncated acceleration.csv? the release's annotations end before its last row)")


@pytest.mark.parametrize("value", ["inf", "-0.5", "1e12", "nan"])
def test_a_time_that_is_not_a_plausible_second_is_refused(seq, value):
    f = seq / "acceleration.csv"
    lines = f.read_text().splitlines()
    cells = lines[3].split(",")
    cells[0] = value
    lines[3] = ",".join(cells)
    f.write_text("\n".join(lines) + "\n")
    what = "an empty value" if value == "nan" else None
    if what:  # pandas reads "nan" as a missing number
        _bad(lambda: sphere.read_packets(f), f"{f}: row 4, column t: an empty value")
    else:
        _bad(lambda: sphere.read_packets(f),
             f"{f}: row 4, column t: time {float(value):g} is not a finite number of seconds from 0 to 86400 (one day)")


@pytest.mark.parametrize("end,msg", [
    (1e12, "meta.json: end 1e+12 s is not a finite time from 0 to 86400 s"),
    ("Infinity", "meta.json: end inf s is not a finite time from 0 to 86400 s"),
    (3.0, "the last row is at t = {last:g} s but meta.json says the sequence ends at 3 s (rows after the end? they "
          "agree within 1 s in the release)"),
])
def test_meta_json_end_must_match_the_rows(seq, end, msg):
    (seq / "meta.json").write_text('{"end": %s, "start": 0}' % (end if isinstance(end, str) else repr(end)))
    last = float((seq / "acceleration.csv").read_text().splitlines()[-1].split(",")[0])
    with pytest.raises(TinyLocError) as e:
        sphere.read_sequence(seq, ROOMS)
    assert str(e.value).endswith(msg.format(last=round(last * 1000) / 1000)), str(e.value)
