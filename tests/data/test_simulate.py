"""House simulator: determinism, Table 3 counts, RSSI range, scripted coverage, radio and mobility behaviour.

Files are read back with pandas directly (not through the loader) so the checks are independent of it.
"""
from __future__ import annotations

import re

import numpy as np
import pandas as pd
import pytest

from keras_tinyloc.data import floorplan, simulate
from keras_tinyloc.errors import TinyLocError

SCALE = 0.05
TABLE3 = {  # letter: (APs, room classes, fingerprint min, free-living min, living sessions)
    "A": (8, 4, 39.0, 49.6, 4),
    "B": (11, 11, 117.8, 47.2, 5),
    "C": (11, 9, 82.0, 237.0, 7),
    "D": (11, 10, 97.0, 178.4, 7),
}
TS = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{3}$")


@pytest.fixture(scope="module")
def houses(tmp_path_factory):
    root = tmp_path_factory.mktemp("sim")
    return {k: simulate.simulate_house(k, root, seed=0, scale=SCALE) for k in TABLE3}


def _ms(series) -> np.ndarray:
    return pd.to_datetime(series).to_numpy().astype("datetime64[ms]").astype(np.int64)


def _files(d):
    return sorted(p.relative_to(d) for p in d.rglob("*") if p.is_file())


def test_same_seed_same_bytes_other_seed_differs(tmp_path):
    a = simulate.simulate_house("A", tmp_path / "a", seed=3, scale=0.03)
    b = simulate.simulate_house("A", tmp_path / "b", seed=3, scale=0.03)
    c = simulate.simulate_house("A", tmp_path / "c", seed=4, scale=0.03)
    assert _files(a) == _files(b) and len(_files(a)) > 10
    for rel in _files(a):
        assert (a / rel).read_bytes() == (b / rel).read_bytes(), rel
    rx = "experiments/fingerprint_floor/rx_wearable_data.dat"
    assert (a / rx).read_bytes() != (c / rx).read_bytes()


@pytest.mark.parametrize("letter", list(TABLE3))
def test_table3_counts_and_durations(houses, letter):
    n_ap, n_room, fp_min, fl_min, n_liv = TABLE3[letter]
    h = houses[letter]
    assert len(pd.read_csv(h / "metadata" / "ap_coordinates.dat")) == n_ap
    assert len(pd.read_csv(h / "metadata" / "room_names.dat")) == n_room
    exps = sorted(p.name for p in (h / "experiments").iterdir())
    assert exps == sorted(["fingerprint_floor"] + [f"living_{i + 1}" for i in range(n_liv)])
    # the fingerprint walk is never outside: its packets span the scaled duration (5 Hz, last slot 0.2 s)
    t = _ms(pd.read_csv(h / "experiments" / "fingerprint_floor" / "rx_wearable_data.dat")["timestamp"])
    span = (t.max() - t.min()) / 1000.0
    assert fp_min * 60 * SCALE - 3.0 <= span <= fp_min * 60 * SCALE
    # free-living: packets + annotations span at most the scaled total, and most of it
    total = 0.0
    for i in range(n_liv):
        d = h / "experiments" / f"living_{i + 1}"
        t = np.r_[_ms(pd.read_csv(d / "rx_wearable_data.dat")["timestamp"]),
                  _ms(pd.read_csv(d / "tag_annotations.dat")["timestamp"])]
        total += (t.max() - t.min()) / 1000.0
    assert 0.8 * fl_min * 60 * SCALE <= total <= fl_min * 60 * SCALE + 1.0


@pytest.mark.parametrize("letter", list(TABLE3))
def test_rssi_integers_in_range_known_aps_and_timestamp_format(houses, letter):
    h = houses[letter]
    ap_ids = set(pd.read_csv(h / "metadata" / "ap_coordinates.dat")["ap_id"])
    for d in (h / "experiments").iterdir():
        raw = pd.read_csv(d / "rx_wearable_data.dat", dtype=str)
        assert list(raw.columns) == ["timestamp", "ap_id", "wearable_id", "rssi"]
        rssi = raw["rssi"].astype(float).to_numpy()
        assert (rssi == np.round(rssi)).all() and rssi.min() >= -110 and rssi.max() <= 0
        assert set(raw["ap_id"].astype(int)) <= ap_ids
        assert raw["timestamp"].str.match(TS).all()
        t = _ms(raw["timestamp"])
        assert (np.diff(t) >= 0).all()
        # 5 Hz: every gap between packet times is a multiple of 200 ms give or take the jitter
        gaps = np.diff(np.unique(t))
        assert (np.abs(gaps - 200 * np.round(gaps / 200)) < simulate.DEFAULT_RADIO.jitter_ms).all()


@pytest.mark.parametrize("letter", list(TABLE3))
def test_scripted_walk_visits_every_room(houses, letter):
    h = houses[letter]
    rt = pd.read_csv(h / "metadata" / "room_tags.dat")
    tag_room = dict(zip(rt["tag_id"], rt["room_id"]))
    ann = pd.read_csv(h / "experiments" / "fingerprint_floor" / "tag_annotations.dat")
    visited = {tag_room[t] for t in ann["tag"]}
    assert visited == set(pd.read_csv(h / "metadata" / "room_names.dat")["room_id"])


def test_room_aps_hear_their_room_best(houses):
    """Path loss + walls: in each room with an AP, that room's AP has the highest mean RSSI (scripted walk)."""
    h = houses["A"]
    ap_room = dict(pd.read_csv(h / "metadata" / "ap_rooms.dat").to_numpy())
    rt = pd.read_csv(h / "metadata" / "room_tags.dat")
    tag_room = dict(zip(rt["tag_id"], rt["room_id"]))
    d = h / "experiments" / "fingerprint_floor"
    rx = pd.read_csv(d / "rx_wearable_data.dat")
    ann = pd.read_csv(d / "tag_annotations.dat")
    a_t, a_room = _ms(ann["timestamp"]), np.array([tag_room[t] for t in ann["tag"]])
    t = _ms(rx["timestamp"])
    j = np.clip(np.searchsorted(a_t, t), 1, len(a_t) - 1)
    j = np.where(np.abs(a_t[j - 1] - t) <= np.abs(a_t[j] - t), j - 1, j)
    rx["room"] = np.where(np.abs(a_t[j] - t) <= 500, a_room[j], -1)
    mean = rx[rx["room"] >= 0].groupby(["room", "ap_id"])["rssi"].mean()
    for room in set(ap_room.values()):
        best = mean.loc[room].idxmax()
        assert ap_room[best] == room, (room, mean.loc[room].to_dict())


def test_walls_counted_on_the_plan():
    """House A: from the bathroom AP to the middle of the bedroom the line crosses bathroom→foyer→bedroom."""
    h = floorplan.house_layout("A")
    w = h.walls_map()
    a = [i for i, ap in enumerate(h.aps) if ap.name == "ap_bathroom"][0]
    c = lambda x, y: (int(y / floorplan.CELL_M), int(x / floorplan.CELL_M))  # noqa: E731
    assert w[a, 0][c(2.0, 6.0)] == 2  # bedroom
    assert w[a, 0][c(7.0, 6.0)] == 0  # same room
    assert w[a, 0][c(5.0, 6.0)] == 1  # foyer


def test_gilbert_elliott_burst_statistics():
    rng = np.random.default_rng(0)
    p_gb, p_bg = 0.01, 0.1
    bad = simulate._gilbert_elliott(rng, 400_000, p_gb, p_bg)
    assert abs(bad.mean() - p_gb / (p_gb + p_bg)) < 0.01
    edges = np.diff(np.r_[0, bad.astype(np.int8), 0])
    runs = np.flatnonzero(edges == -1) - np.flatnonzero(edges == 1)
    assert abs(runs.mean() - 1 / p_bg) < 0.5


def test_free_living_dwell_transit_and_time_outside():
    h = floorplan.house_layout("C")
    tl = simulate._free_living(h, np.random.default_rng(0), 4 * 3600.0)
    seg = tl.arrays(4 * 3600.0)
    cls = h.rect_class[seg["rect"].astype(int)]
    out = seg["kind"] == 2
    assert out.any()  # trips outside the home
    assert 60 <= (seg["t1"] - seg["t0"])[out].sum() <= 0.3 * 4 * 3600
    # visits = maximal runs of one room class (outside periods split runs)
    visits: dict[str, list[float]] = {}
    start = 0
    for i in range(1, len(seg["t0"]) + 1):
        if i == len(seg["t0"]) or cls[i] != cls[start] or out[i] != out[start]:
            if not out[start]:
                visits.setdefault(h.class_names[cls[start]], []).append(seg["t1"][i - 1] - seg["t0"][start])
            start = i
    assert np.median(visits["hall"]) < 15 and np.median(visits["stairs"]) < 20
    assert np.median(visits["living room"]) > 60
    share = {k: sum(v) for k, v in visits.items()}
    assert share["living room"] > 5 * share["stairs"]  # unbalanced rooms


def test_bad_arguments(tmp_path):
    with pytest.raises(TinyLocError, match="unknown house 'E'"):
        simulate.simulate_house("E", tmp_path)
    with pytest.raises(TinyLocError, match="scale"):
        simulate.simulate_house("A", tmp_path, scale=0)
    simulate.simulate_house("A", tmp_path, scale=0.01)
    with pytest.raises(TinyLocError, match="exists"):
        simulate.simulate_house("A", tmp_path, scale=0.01)
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temporary left behind


def test_ap_outages_recorded_and_silent(houses):
    """Houses A–D: an AP listed as down for a free-living recording has no row in it; the fingerprint walk has none."""
    import json

    n_off = 0
    for letter, h in houses.items():
        info = json.loads((h / "simulation.json").read_text())
        names = info["ap_names"]
        assert info["recordings"]["fingerprint_floor"]["aps_off"] == []
        for rec, r in info["recordings"].items():
            heard = set(pd.read_csv(h / "experiments" / rec / "rx_wearable_data.dat")["ap_id"])
            for name in r["aps_off"]:
                assert names.index(name) + 1 not in heard, (letter, rec, name)
            n_off += len(r["aps_off"])
    assert n_off > 0  # 23 recordings x ~10 APs at 10 %: some outage is (deterministically) present
