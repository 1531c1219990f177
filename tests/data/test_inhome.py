"""In-Home house loader: tiny published-layout and flat-CSV houses written here, values checked by hand."""
from __future__ import annotations

import numpy as np
import pytest

from keras_tinyloc.data import inhome
from keras_tinyloc.errors import TinyLocError

T0 = np.datetime64("2018-05-01T10:00:00.000", "ms")


def _ts(ms: int) -> str:
    return str(T0 + np.timedelta64(int(ms), "ms")).replace("T", " ")


def _write(path, header, rows):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(header + "\n" + "".join(",".join(map(str, r)) + "\n" for r in rows))


def ap5(k):
    """AP id 5 hears every packet: -60 - (k mod 7)."""
    return -60 - (k % 7)


def ap9_heard(k):
    """AP id 9 hears even packets except a 10-packet silence at 40..49 of every 100."""
    return k % 2 == 0 and not (40 <= k % 100 < 50)


def ap9(k):
    return -80 - (k % 5)


def expected_grid(n):
    """The 5 Hz grid by hand: AP5 always heard; AP9 forward-filled ≤ 5 steps, else -120."""
    g = np.full((n, 2), -120.0, np.float32)
    last = None
    for k in range(n):
        g[k, 0] = ap5(k)
        if ap9_heard(k):
            last = k
        if last is not None and k - last <= 5:
            g[k, 1] = ap9(last)
    return g


def write_recording(folder, n, room_of_step, jitter=True, gap=None):
    """n packets 200 ms apart (+ up to 29 ms jitter); annotations every 1 s at 100 ms after a packet."""
    rows = []
    for k in range(n):
        t = 200 * k + ((7 * k) % 30 if jitter else 0)  # packet 0 at 0 ms; jitter < 30 ms
        rows.append((_ts(t), 5, 1, ap5(k)))
        if ap9_heard(k):
            rows.append((_ts(t + 1), 9, 1, ap9(k)))
    _write(folder / "rx_wearable_data.dat", "timestamp,ap_id,wearable_id,rssi", rows)
    ann = []
    for k in range(0, n, 5):
        if gap is not None and gap[0] <= k < gap[1]:
            continue
        room = room_of_step(k)
        tag = 10 + room  # tags 10 (room id 3) and 11 (room id 7)
        ann.append((_ts(200 * k), 0, tag, 0, 0, 100))
    _write(folder / "tag_annotations.dat", "timestamp,annotator_id,tag,tag_coord_x,tag_coord_y,tag_coord_z", ann)


def write_house(root, n_fp=1300, n_fl=60, gap=None):
    house = root / "house_A"
    meta = house / "metadata"
    _write(meta / "ap_coordinates.dat", "ap_id,x,y,z", [(5, 0, 0, 200), (9, 300, 0, 200)])
    _write(meta / "room_names.dat", "room_id,room_name", [(3, "kitchen"), (7, "lounge")])
    _write(meta / "room_tags.dat", "room_id,tag_id", [(3, 10), (7, 11)])
    write_recording(house / "experiments" / "fingerprint_floor", n_fp, lambda k: (k // 150) % 2)
    write_recording(house / "experiments" / "living_1", n_fl, lambda k: 0 if k < 30 else 1, gap=gap)
    return house


@pytest.fixture()
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("KERAS_TINYLOC_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("KERAS_TINYLOC_DATA", raising=False)
    return tmp_path / "cache"


def _unscale(ds, x):
    return x * (ds.scaling.high - ds.scaling.low) + ds.scaling.low


def test_published_layout_values_match_hand_computation(tmp_path, cache):
    gap = (35, 45)
    write_house(tmp_path / "raw", gap=gap)
    ds = inhome.load_house("A", data_dir=tmp_path / "raw")
    assert ds.class_names == ["kitchen", "lounge"]
    assert ds.feature_names == ["ap_5", "ap_9"]
    assert ds.input_shape == (20, 2)
    # scaling fit on training windows: AP5 spans -66..-60; AP9 reaches -120 in its silences
    np.testing.assert_allclose(ds.scaling.low, [-66, -120])
    np.testing.assert_allclose(ds.scaling.high, [-60, -80])
    # test split = living_1, 60 steps -> windows starting at 0, 10, .., 40
    g = expected_grid(60)
    assert ds.x_test.shape == (5, 20, 2)
    for b in range(5):
        np.testing.assert_allclose(_unscale(ds, ds.x_test[b]), g[10 * b : 10 * b + 20], atol=1e-4)
    # labels: the grid starts 100 ms before packet 0, so step k's centre is at 200 k ms, annotation a at
    # 200 a ms: labelled when |k - a| <= 2 for some annotation a; annotations 35 and 40 are missing;
    # the annotation at 30 (lounge) is nearest for steps 28..32
    exp = np.array([0] * 28 + [1] * 5 + [-1] * 10 + [1] * 15 + [-1] * 2)  # last annotation at 55
    assert exp[33] == -1 and exp[42] == -1 and exp[43] == 1
    for b in range(5):
        np.testing.assert_array_equal(ds.y_test[b], exp[10 * b : 10 * b + 20])
    # fingerprint 1300 steps: blocks of 300 -> train blocks 0,1,2,(4: 100 steps), val block 3
    assert len(ds.x_train) == 3 * 29 + 9 and len(ds.x_val) == 29
    np.testing.assert_allclose(_unscale(ds, ds.x_val[0]), expected_grid(1300)[900:920], atol=1e-4)
    assert ds.meta["source"] == "real" and ds.meta["layout"] == "published"


def test_archive_root_and_cache(tmp_path, cache):
    write_house(tmp_path / "raw" / inhome.ARCHIVE_DIR)
    a = inhome.load_house("A", data_dir=tmp_path / "raw")
    files = list((cache / "inhome").glob("*.npz"))
    assert len(files) == 1
    b = inhome.load_house("A", data_dir=tmp_path / "raw")  # from the cache
    np.testing.assert_array_equal(a.x_train, b.x_train)
    np.testing.assert_array_equal(a.y_test, b.y_test)
    assert b.class_names == a.class_names


def write_flat(root, n_fp=1300, n_fl=60, time_col=False):
    def rows(n, room_of_step):
        out = []
        for k in range(n):
            c0 = _ts(200 * k) if time_col else k
            v9 = ap9(k) if ap9_heard(k) else ""
            out.append((c0, ap5(k), v9, room_of_step(k) + 1))
        return out

    _write(root / "csv_house_B_fp.csv", "time,ap_a,ap_b,room", rows(n_fp, lambda k: (k // 150) % 2))
    _write(root / "csv_house_B_fl.csv", "time,ap_a,ap_b,room", rows(n_fl, lambda k: 0 if k < 30 else 1))


@pytest.mark.parametrize("time_col", [False, True])
def test_flat_csv_values_match_hand_computation(tmp_path, cache, time_col):
    write_flat(tmp_path / "raw", time_col=time_col)
    ds = inhome.load_house("B", data_dir=tmp_path / "raw")
    assert ds.class_names == ["room 1", "room 2"] and ds.feature_names == ["ap_a", "ap_b"]
    g = expected_grid(60)
    for b in range(5):
        np.testing.assert_allclose(_unscale(ds, ds.x_test[b]), g[10 * b : 10 * b + 20], atol=1e-4)
    y = np.array([0 if k < 30 else 1 for k in range(60)])
    np.testing.assert_array_equal(ds.y_test[2], y[20:40])


def test_flat_csv_unlabelled_rows_stay_unlabelled(tmp_path, cache):
    root = tmp_path / "raw"
    write_flat(root)
    f = root / "csv_house_B_fl.csv"
    lines = f.read_text().splitlines()
    for k in (21, 22, 23):  # rows of steps 21..23 (line k + 1) get label 0 = unlabelled
        p = lines[k + 1].split(",")
        lines[k + 1] = ",".join(p[:-1] + ["0"])
    f.write_text("\n".join(lines) + "\n")
    ds = inhome.load_house("B", data_dir=root)
    exp = np.array([0] * 10 + [1] * 10)  # steps 20..39: room 1 until step 29, then room 2
    exp[1:4] = -1  # steps 21..23
    np.testing.assert_array_equal(ds.y_test[2], exp)
    assert len(ds.x_train) == 96 and len(ds.x_val) == 29
    assert ds.meta["layout"] == "flat"


def test_flat_csv_takes_room_names_from_metadata_and_checks_labels(tmp_path, cache):
    root = tmp_path / "raw"
    write_flat(root / "house_B")
    _write(root / "house_B" / "metadata" / "room_names.dat", "room_id,room_name", [(1, "kitchen"), (2, "lounge")])
    assert inhome.load_house("B", data_dir=root).class_names == ["kitchen", "lounge"]
    _write(root / "house_B" / "metadata" / "room_names.dat", "room_id,room_name", [(1, "kitchen")])
    msg = _err(root, "B")  # label 2 is out of range for one room
    assert "csv_house_B_fp.csv: row" in msg and "room label 2" in msg


def test_match_labels_against_brute_force():
    rng = np.random.default_rng(3)
    ann_t = np.sort(rng.choice(20000, 40, replace=False)).astype(np.int64)
    ann_c = rng.integers(0, 4, 40)
    steps = np.arange(0, 20000, 200, dtype=np.int64) + 100
    got = inhome.match_labels(steps, ann_t, ann_c)
    for s, g in zip(steps, got):
        d = np.abs(ann_t - s)
        j = int(np.argmin(d))  # first minimum = the earlier annotation on a tie
        assert g == (ann_c[j] if d[j] <= 500 else -1)


def test_simulated_house_through_registry(cache):
    from keras_tinyloc.data.registry import load_dataset

    ds = load_dataset("house-a", scale=0.2)
    info = ds.info()
    assert info["input_shape"] == [20, 8] and info["n_classes"] == 4
    assert info["class_names"] == ["foyer", "bedroom", "living room", "bathroom"]
    assert ds.meta["source"] == "simulated"
    assert (cache / "sim").is_dir()
    for x in (ds.x_train, ds.x_val, ds.x_test):
        assert x.dtype == np.float32 and x.min() >= 0.0 and x.max() <= 1.0


# ----------------------------------------------------------------------------- bad input
def _err(data_dir, letter="A"):
    with pytest.raises(TinyLocError) as exc:
        inhome.load_house(letter, data_dir=data_dir)
    return str(exc.value)


def test_missing_file(tmp_path, cache):
    house = write_house(tmp_path)
    (house / "experiments" / "living_1" / "rx_wearable_data.dat").unlink()
    msg = _err(tmp_path)
    assert "living_1/rx_wearable_data.dat" in msg and "missing file" in msg


def test_missing_metadata(tmp_path, cache):
    house = write_house(tmp_path)
    (house / "metadata" / "room_tags.dat").unlink()
    assert "room_tags.dat: missing file" in _err(tmp_path)


def test_missing_column(tmp_path, cache):
    house = write_house(tmp_path)
    f = house / "experiments" / "living_1" / "rx_wearable_data.dat"
    f.write_text(f.read_text().replace("timestamp,ap_id,wearable_id,rssi", "timestamp,ap_id,wearable_id,level"))
    msg = _err(tmp_path)
    assert "rx_wearable_data.dat" in msg and "missing column 'rssi'" in msg


def test_non_numeric_rssi_names_row(tmp_path, cache):
    house = write_house(tmp_path)
    f = house / "experiments" / "living_1" / "rx_wearable_data.dat"
    lines = f.read_text().splitlines()
    parts = lines[3].split(",")
    lines[3] = ",".join(parts[:3] + ["strong"])
    f.write_text("\n".join(lines) + "\n")
    msg = _err(tmp_path)
    assert "rx_wearable_data.dat: row 4" in msg and "non-numeric RSSI 'strong'" in msg


def test_unknown_ap_id(tmp_path, cache):
    house = write_house(tmp_path)
    f = house / "experiments" / "fingerprint_floor" / "rx_wearable_data.dat"
    lines = f.read_text().splitlines()
    p = lines[2].split(",")
    lines[2] = ",".join([p[0], "42"] + p[2:])
    f.write_text("\n".join(lines) + "\n")
    msg = _err(tmp_path)
    assert "fingerprint_floor/rx_wearable_data.dat: row 3" in msg and "unknown AP id 42" in msg


def test_recording_without_labels(tmp_path, cache):
    house = write_house(tmp_path)
    f = house / "experiments" / "living_1" / "tag_annotations.dat"
    f.write_text(f.read_text().replace("2018-05-01", "2018-06-01"))  # annotations a month away
    msg = _err(tmp_path)
    assert "living_1/tag_annotations.dat" in msg and "no labels" in msg


def test_unknown_tag(tmp_path, cache):
    house = write_house(tmp_path)
    f = house / "experiments" / "living_1" / "tag_annotations.dat"
    lines = f.read_text().splitlines()
    p = lines[1].split(",")
    lines[1] = ",".join(p[:2] + ["99"] + p[3:])
    f.write_text("\n".join(lines) + "\n")
    assert "row 2: tag 99 has no room" in _err(tmp_path)


def test_empty_window_set(tmp_path, cache):
    write_house(tmp_path, n_fl=15)  # shorter than one 20-step window
    msg = _err(tmp_path)
    assert "empty window set" in msg and "free-living" in msg


def test_flat_bad_inputs(tmp_path, cache):
    root = tmp_path / "raw"
    write_flat(root)
    f = root / "csv_house_B_fl.csv"
    lines = f.read_text().splitlines()
    p = lines[5].split(",")
    lines[5] = ",".join([p[0], "n/a"] + p[2:])
    f.write_text("\n".join(lines) + "\n")
    msg = _err(root, "B")
    assert "csv_house_B_fl.csv: row 6" in msg and "non-numeric RSSI 'n/a'" in msg
    f.unlink()
    assert "csv_house_B_fl.csv: missing file" in _err(root, "B")
    (root / "csv_house_B_fp.csv").write_text("time,room\n0,1\n")
    assert "got 2 columns" in _err(root, "B")


def test_an_explicit_data_dir_without_the_house_never_falls_back_to_the_simulator(tmp_path, cache):
    expected = ("expected house_A/ with metadata/ and experiments/ (the published archive) or csv_house_A_fp.csv + "
                "csv_house_A_fl.csv; the simulated house is used only without --data-dir")
    missing = tmp_path / "nope"
    assert _err(missing) == f"--data-dir {missing}: no such folder ({expected})"
    empty = tmp_path / "empty"
    empty.mkdir()
    assert _err(empty) == f"--data-dir {empty}: an empty folder, no house_A ({expected})"
    other = tmp_path / "other"
    (other / "house_B" / "experiments").mkdir(parents=True)
    assert _err(other) == f"--data-dir {other}: no house_A ({expected}); it holds house_B"
    assert not (cache / "sim").exists()  # nothing was simulated
    from keras_tinyloc.data import cli

    assert cli.main(["info", "--dataset", "house-a", "--data-dir", str(other)]) == 2
