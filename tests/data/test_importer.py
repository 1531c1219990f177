"""``data import``: a built-in dataset written as a recordings file loads to byte-identical windows, labels and
scaling (SPHERE, an In-Home house, UJIIndoorLoc) — small copies written here, the real copies when present — and the
command's one-line refusals."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from keras_tinyloc import paths
from keras_tinyloc.data import cli, importer, inhome, recordings, registry, sphere, uji
from keras_tinyloc.data.simulate import simulate_house
from keras_tinyloc.errors import TinyLocError

SPLIT_ARRAYS = ("x_train", "y_train", "x_val", "y_val", "x_test", "y_test")


def assert_identical(got, ref):
    """Every array byte for byte (dtype and shape included), names, scaling and fill value."""
    for k in SPLIT_ARRAYS:
        a, b = getattr(got, k), getattr(ref, k)
        assert a.dtype == b.dtype and a.shape == b.shape, k
        assert a.tobytes() == b.tobytes(), k
    assert got.class_names == ref.class_names and got.feature_names == ref.feature_names
    assert got.scaling.low.tobytes() == ref.scaling.low.tobytes()
    assert got.scaling.high.tobytes() == ref.scaling.high.tobytes()
    assert got.fill_value == ref.fill_value


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("KERAS_TINYLOC_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache"


# ------------------------------------------------------------------------------------------ SPHERE
def write_sphere(root: Path, seconds: dict, rng) -> None:
    """A small SPHERE layout: packets of 1-4 rows 50.048 ms apart every ~200 ms, 3 of 4 APs per sequence, rooms in
    30 s spells with unlabelled gaps, meta.json ends 50 ms after the last row."""
    rooms = ["bath", "hall", "kitchen"]
    pub = root / "public_data"
    (pub / "train").mkdir(parents=True)
    (pub / "rooms.json").write_text(json.dumps(rooms))
    for n, (seq, secs) in enumerate(seconds.items()):
        d = pub / "train" / seq
        d.mkdir()
        lines = ["t,x,y,z," + ",".join(sphere.AP_COLUMNS)]
        t_us = 17_856
        while t_us < secs * 1e6 - 300_000:
            vals = ["" if rng.random() < 0.4 else str(int(rng.integers(-100, -55))) for _ in range(4)]
            vals[3 if n == 0 else 1] = ""  # as in the release: Study_AP absent at first, Lounge_AP later
            for k in range(int(rng.integers(1, 5))):
                lines.append(f"{(t_us + k * sphere.ROW_US) / 1e6:.6f},0.1,0.2,0.9," + ",".join(vals))
            t_us += 200_000 + int(rng.integers(0, 1500))
        (d / "acceleration.csv").write_text("\n".join(lines) + "\n")
        last = float(lines[-1].split(",")[0])
        spells = [(a, min(a + 25.0, secs), rooms[int(rng.integers(0, 3))]) for a in np.arange(0.0, secs, 30.0)]
        (d / "location_0.csv").write_text("start,end,name,index\n" + "".join(
            f"{a},{b},{r},{rooms.index(r)}\n" for a, b, r in spells))
        (d / "meta.json").write_text(json.dumps({"end": last + 0.05, "start": 0}))


def test_sphere_round_trip_is_byte_identical(tmp_path, cache):
    root = tmp_path / "sphere_challenge"
    write_sphere(root, {"00001": 400.0, "00002": 300.0, "00008": 200.0}, np.random.default_rng(3))
    ref = sphere.load_sphere(root)
    out = tmp_path / "sphere.csv"
    summary = importer.import_dataset("sphere", root, out)
    assert summary["sessions"] == {"00001": "train", "00002": "train", "00008": "test"}
    got = registry.load_dataset(str(out))
    assert_identical(got, ref)
    head = out.read_text().splitlines()[:5]
    assert head[0] == "# format: keras_tinyloc recordings 1" and head[4] == "time,ap,rssi,room,session,split"
    assert json.loads(head[2].split(": ", 1)[1]) == ["bath", "hall", "kitchen"]


# ------------------------------------------------------------------------------------------ In-Home
def test_simulated_inhome_house_round_trip_is_byte_identical(tmp_path, cache):
    house = simulate_house("A", tmp_path / "sim", seed=4, scale=0.2)
    ref = inhome.load_house("A", data_dir=house)
    assert ref.meta["source"] == "simulated"
    out = tmp_path / "house_a.csv"
    summary = importer.import_dataset("inhome", house, out)
    assert summary["sessions"]["fingerprint_floor"] == "train" and summary["sessions"]["living_1"] == "test"
    assert_identical(registry.load_dataset(str(out)), ref)
    # times are ISO 8601 in the archive's clock; rooms and APs keep the archive's names and order
    lines = out.read_text().splitlines()
    assert lines[5].split(",")[0].count("T") == 1 and json.loads(lines[3].split(": ", 1)[1])[0] == "ap_1"
    # the folder holding house_A works too (the letter is found), and --house picks among several
    assert_identical(recordings.load_recordings(importer.import_dataset("inhome", house.parent, tmp_path / "b.csv")["out"]),
                     ref)


def test_flat_inhome_csvs_round_trip(tmp_path, cache):
    rng = np.random.default_rng(0)
    for kind, n in (("fp", 3000), ("fl", 1200)):
        rows = ["idx,ap_a,ap_b,ap_c,room"]
        for k in range(n):
            room = 1 + (k // 250) % 3
            cells = ["" if rng.random() < 0.3 else str(-50 - 20 * (j + 1 != room) - int(rng.integers(0, 5)))
                     for j in range(3)]
            rows.append(f"{k}," + ",".join(cells) + f",{room if k % 97 else 0}")
        (tmp_path / f"csv_house_C_{kind}.csv").write_text("\n".join(rows) + "\n")
    ref = inhome.load_house("C", data_dir=tmp_path)
    got = registry.load_dataset(importer.import_dataset("inhome", tmp_path, tmp_path / "c.csv", house="c")["out"])
    assert_identical(got, ref)
    assert got.class_names == ["room 1", "room 2", "room 3"] and got.feature_names == ["ap_a", "ap_b", "ap_c"]


# ------------------------------------------------------------------------------------------ UJIIndoorLoc
def write_uji(d: Path, rng) -> None:
    header = [f"WAP{i:03d}" for i in range(1, 7)] + ["LONGITUDE", "LATITUDE", "FLOOR", "BUILDINGID", "SPACEID",
                                                      "RELATIVEPOSITION", "USERID", "PHONEID", "TIMESTAMP"]
    for name, n in (("trainingData.csv", 160), ("validationData.csv", 40)):
        rows = []
        for i in range(n):
            b, f = i % 2, (i // 2) % 2
            rssi = rng.integers(-100, -30, 6)
            rssi[rng.random(6) < 0.5] = 100
            rows.append([*rssi, 100.0 * b + rng.normal(0, 3), 50.0 * f + rng.normal(0, 3), f, b, 0, 0, 1, 1, 0])
        (d / name).write_text(",".join(header) + "\n" + "".join(",".join(map(str, r)) + "\n" for r in rows))


@pytest.mark.parametrize("labeling,name", [("building-floor", "uji"), ("zones", "uji-zones")])
def test_uji_round_trip_is_byte_identical(tmp_path, cache, labeling, name):
    d = tmp_path / "raw"
    d.mkdir()
    write_uji(d, np.random.default_rng(5))
    opts = {"n_zones": 8} if labeling == "zones" else {}
    ref = registry.load_dataset(name, data_dir=d, **opts)
    text, summary = importer.uji_text(d, labeling, **opts)
    out = tmp_path / "uji.csv"
    out.write_text(text)
    got = registry.load_dataset(str(out))
    assert got.meta["form"] == "scans" and got.input_shape == (1, 6) and len(summary["rooms"]) == ref.n_classes
    assert_identical(got, ref)
    assert "# fill_dbm: -110" in text.splitlines()[:6]


def test_uji_import_command_writes_the_building_floors(tmp_path, cache):
    d = tmp_path / "raw"
    d.mkdir()
    write_uji(d, np.random.default_rng(5))
    out = tmp_path / "uji.csv"
    assert importer.import_dataset("uji", d, out)["rooms"] == ["B0-F0", "B0-F1", "B1-F0", "B1-F1"]
    assert_identical(registry.load_dataset(str(out)), registry.load_dataset("uji", data_dir=d))


# ------------------------------------------------------------------------------------------ the command
def test_cli_import_and_its_refusals(tmp_path, cache, capsys):
    root = tmp_path / "sphere_challenge"
    write_sphere(root, {"00001": 300.0, "00009": 200.0}, np.random.default_rng(1))
    out = tmp_path / "rec.csv"
    assert cli.main(["import", str(root), "--format", "sphere", "--out", str(out)]) == 0
    said = capsys.readouterr().out
    assert said.startswith(f"wrote {out}: ") and f"load it with --dataset {out}" in said
    before = out.read_bytes()
    assert cli.main(["import", str(root), "--format", "sphere", "--out", str(out)]) == 2
    assert capsys.readouterr().err == f"error: --out {out}: exists (use --overwrite to replace it)\n"
    assert out.read_bytes() == before
    assert cli.main(["import", str(root), "--format", "sphere", "--out", ""]) == 2
    assert capsys.readouterr().err == "error: --out '': an empty path (an unset shell variable?); name the file to write\n"
    assert cli.main(["import", str(root), "--format", "sphere", "--out", str(tmp_path)]) == 2
    assert capsys.readouterr().err.startswith(f"error: --out {tmp_path}: is a folder; name the recordings file")
    assert cli.main(["import", str(root), "--format", "sphere", "--out", str(out), "--house", "A"]) == 2
    assert capsys.readouterr().err == "error: --house: only with --format inhome, not sphere\n"
    assert cli.main(["info", "--dataset", str(out)]) == 0
    table = capsys.readouterr().out
    assert "split                       split column; validation = every 4th 60 s block" in table
    assert "test sessions               00009" in table


def test_inhome_import_needs_a_house(tmp_path, cache):
    (tmp_path / "house_A").mkdir()
    (tmp_path / "house_B").mkdir()
    with pytest.raises(TinyLocError, match=r"holds houses A, B; choose one with --house$"):
        importer.import_dataset("inhome", tmp_path, tmp_path / "x.csv")
    (tmp_path / "empty").mkdir()
    with pytest.raises(TinyLocError, match=r"^--data-dir .*empty: an empty folder, no house_C \(expected"):
        importer.import_dataset("inhome", tmp_path / "empty", tmp_path / "x.csv", house="C")


# ------------------------------------------------------------------------------------------ the real copies
SHARED = paths.shared_data_dir() or Path("/nonexistent")


@pytest.mark.slow
@pytest.mark.skipif(not (SHARED / "sphere_challenge" / "public_data" / "rooms.json").is_file(),
                    reason="no shared SPHERE copy (../shared/data/sphere_challenge)")
def test_real_sphere_round_trip(tmp_path):
    out = tmp_path / "sphere.csv"
    importer.import_dataset("sphere", SHARED / "sphere_challenge", out)
    assert_identical(registry.load_dataset(str(out)), registry.load_dataset("sphere"))


@pytest.mark.slow
@pytest.mark.skipif(not (SHARED / "ujiindoorloc").is_dir(), reason="no shared UJIIndoorLoc copy (../shared/data)")
def test_real_uji_round_trip(tmp_path):
    out = tmp_path / "uji.csv"
    importer.import_dataset("uji", SHARED / "ujiindoorloc", out)
    assert_identical(registry.load_dataset(str(out)), registry.load_dataset("uji"))
