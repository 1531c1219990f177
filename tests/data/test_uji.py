"""UJIIndoorLoc loader: tiny CSVs / zips written here, every bad-input message, and the real copy when present."""
from __future__ import annotations

import hashlib
import io
import json
import time
import zipfile
from pathlib import Path

import numpy as np
import pytest

from keras_tinyloc import paths
from keras_tinyloc.data import uji
from keras_tinyloc.errors import TinyLocError

N_WAP = 4
EXTRA = ["SPACEID", "RELATIVEPOSITION", "USERID", "PHONEID", "TIMESTAMP"]
HEADER = [f"WAP{i:03d}" for i in range(1, N_WAP + 1)] + ["LONGITUDE", "LATITUDE", "FLOOR", "BUILDINGID", *EXTRA]
# building-floor -> the two well separated position clusters of that floor (metres)
CLUSTERS = {
    (0, 0): [(0.0, 0.0), (100.0, 0.0)],
    (0, 1): [(0.0, 50.0), (100.0, 50.0)],
    (1, 0): [(500.0, 0.0), (600.0, 0.0)],
    (1, 2): [(500.0, 80.0), (600.0, 80.0)],
}
PER_BF = {(0, 0): 16, (0, 1): 16, (1, 0): 24, (1, 2): 24}  # training rows per building-floor


def _rows(rng: np.random.Generator, per_bf: dict, jitter: float = 1.0) -> list[list]:
    rows = []
    for (b, f), n in per_bf.items():
        for i in range(n):
            cx, cy = CLUSTERS[(b, f)][i % 2]
            rssi = rng.integers(-100, -30, N_WAP)
            rssi[rng.random(N_WAP) < 0.4] = 100  # not detected
            rows.append([*rssi.tolist(), round(cx + rng.normal(0, jitter), 3), round(cy + rng.normal(0, jitter), 3),
                         f, b, 0, 0, 1, 1, 1371713733])
    return rows


def _csv(rows: list[list], header: list[str] = HEADER) -> str:
    return ",".join(header) + "\n" + "".join(",".join(str(v) for v in r) + "\n" for r in rows)


@pytest.fixture
def tables():
    rng = np.random.default_rng(1)
    train = _rows(rng, PER_BF)
    test = _rows(rng, {k: 2 for k in PER_BF})
    test[0][0] = -20  # stronger than anything in training: must clip to 1 (scaling fit on training only)
    test[1][1] = -127
    return train, test


@pytest.fixture
def csv_dir(tmp_path, tables, monkeypatch):
    monkeypatch.setenv("KERAS_TINYLOC_CACHE", str(tmp_path / "cache"))
    d = tmp_path / "raw"
    d.mkdir()
    (d / "trainingData.csv").write_text(_csv(tables[0]))
    (d / "validationData.csv").write_text(_csv(tables[1]))
    return d


def _raw(rows: list[list], fill: float) -> np.ndarray:
    x = np.array([r[:N_WAP] for r in rows], np.float32)
    return np.where(x == 100, fill, x)


def _unscale(ds, x):
    return x[:, 0, :] * (ds.scaling.high - ds.scaling.low) + ds.scaling.low


def test_building_floor_split_fill_and_scaling(csv_dir, tables):
    train, test = tables
    ds = uji.load_uji(csv_dir, seed=3)
    n = len(train)
    assert ds.name == "uji"
    assert ds.class_names == ["B0-F0", "B0-F1", "B1-F0", "B1-F2"]
    assert ds.x_train.shape[1:] == (1, N_WAP) and ds.y_train.shape[1:] == (1,)
    assert len(ds.x_train) + len(ds.x_val) == n and len(ds.x_test) == len(test)
    # 75/25 stratified by building-floor: every class keeps its share in validation
    for c, k in enumerate(PER_BF):
        assert np.sum(ds.y_val[:, 0] == c) == PER_BF[k] // 4
    # test labels are the building-floor of each validationData row, in file order
    expect = [ds.class_names.index(f"B{r[-6]}-F{r[-7]}") for r in test]
    np.testing.assert_array_equal(ds.y_test[:, 0], expect)
    # fill: below the weakest real training reading, at most -110
    weakest = min(v for r in train for v in r[:N_WAP] if v != 100)
    assert ds.fill_value == min(-110.0, weakest - 1)
    # train + val are exactly the trainingData rows (100 -> fill), scaled by min/max of the train split only
    raw_all = _raw(train, ds.fill_value)
    tr, va = np.rint(_unscale(ds, ds.x_train)), np.rint(_unscale(ds, ds.x_val))
    got = sorted(map(tuple, np.concatenate([tr, va]).tolist()))
    assert got == sorted(map(tuple, raw_all.tolist()))
    np.testing.assert_allclose(ds.scaling.low, tr.min(0))
    np.testing.assert_allclose(ds.scaling.high, tr.max(0))
    assert ds.x_train.min() >= 0 and ds.x_train.max() <= 1
    # the -20 in the test set is above the training max: clipped to 1; -127 below the fill: clipped to 0
    assert ds.x_test[0, 0, 0] == 1.0 and ds.scaling.high[0] < -20
    assert ds.x_test[1, 0, 1] == 0.0
    expect_test = np.clip((_raw(test, ds.fill_value) - ds.scaling.low) / (ds.scaling.high - ds.scaling.low), 0, 1)
    np.testing.assert_allclose(ds.x_test[:, 0, :], expect_test, atol=1e-6)
    # a different seed gives a different split of the same rows
    other = uji.load_uji(csv_dir, seed=4)
    assert not np.array_equal(other.x_val, ds.x_val)


def _zip_bytes(files: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        for name, data in files.items():
            z.writestr(name, data)
    return buf.getvalue()


def test_zip_and_uci_wrapper_read_like_the_csvs(csv_dir, tmp_path):
    files = {f"UJIndoorLoc/{n}": (csv_dir / n).read_bytes() for n in ("trainingData.csv", "validationData.csv")}
    inner = _zip_bytes(files)
    a, b = tmp_path / "a", tmp_path / "b"
    a.mkdir(), b.mkdir()
    (a / "UJIIndoorLoc.zip").write_bytes(inner)
    (b / "ujiindoorloc.zip").write_bytes(_zip_bytes({"UJIIndoorLoc.zip": inner}))
    ref = uji.load_uji(csv_dir)
    for d in (a, b, b / "ujiindoorloc.zip"):
        ds = uji.load_uji(d)
        for split in ("train", "val", "test"):
            np.testing.assert_array_equal(ds.split(split)[0], ref.split(split)[0])
            np.testing.assert_array_equal(ds.split(split)[1], ref.split(split)[1])


def test_search_order_env_then_data_raw(csv_dir, tmp_path, monkeypatch):
    monkeypatch.setenv("KERAS_TINYLOC_DATA", str(csv_dir))
    assert uji.find_source().path == csv_dir
    monkeypatch.delenv("KERAS_TINYLOC_DATA")
    work = tmp_path / "work"
    (work / "data" / "raw").mkdir(parents=True)
    (work / "data" / "raw" / "UJIIndoorLoc.zip").write_bytes(b"x")
    monkeypatch.chdir(work)
    assert uji.find_source().path == work / "data" / "raw" / "UJIIndoorLoc.zip"


@pytest.mark.parametrize(
    "counts,k,expect",
    [([5, 3, 2], 4, [2, 1, 1]), ([1, 1, 1], 4, [2, 1, 1]), ([1, 100], 3, [1, 2]), ([10, 30], 8, [2, 6])],
)
def test_largest_remainder(counts, k, expect):
    got = uji.largest_remainder(np.array(counts), k)
    assert got.tolist() == expect and got.sum() == k


def test_largest_remainder_needs_a_zone_per_group():
    with pytest.raises(TinyLocError, match="n_zones=2"):
        uji.largest_remainder(np.array([3, 3, 3]), 2)


def test_zones_follow_clusters_and_zone_model_is_reused(csv_dir, tables, tmp_path):
    train, test = tables
    # 8 zones over training counts 12/12/18/18 (75 %) -> quotas 1.6, 1.6, 2.4, 2.4 -> 2 each = two clusters a floor
    ds = uji.load_uji(csv_dir, labeling="zones", n_zones=8, seed=0)
    assert ds.name == "uji-zones" and ds.n_classes == 8
    assert ds.class_names[:2] == ["B0-F0-Z00", "B0-F0-Z01"]
    # zones are ordered by longitude: the cluster at the smaller x is Z00
    expect = []
    for r in test:
        b, f, x = r[-6], r[-7], r[N_WAP]
        cx = [c[0] for c in CLUSTERS[(b, f)]]
        z = int(np.argmin([abs(x - c) for c in cx]))
        expect.append(ds.class_names.index(f"B{b}-F{f}-Z{z:02d}"))
    np.testing.assert_array_equal(ds.y_test[:, 0], expect)
    # every training sample lands in the zone of its own cluster: 2 zones per floor with equal counts
    counts = np.bincount(np.concatenate([ds.y_train[:, 0], ds.y_val[:, 0]]), minlength=8)
    assert counts.tolist() == [8, 8, 8, 8, 12, 12, 12, 12]
    zfile = Path(ds.meta["zone_model"])
    model = json.loads(zfile.read_text())
    assert sorted(model["centres"]) == ["B0-F0", "B0-F1", "B1-F0", "B1-F2"]
    # the saved zone model is what labels come from: swap the centres of one floor, drop the array cache, reload
    c = model["centres"]["B0-F0"]
    model["centres"]["B0-F0"] = [c[1], c[0]]
    zfile.write_text(json.dumps(model))
    for f in paths.user_cache_dir().glob("uji-v*-zones-*.npz"):
        f.unlink()
    again = uji.load_uji(csv_dir, labeling="zones", n_zones=8, seed=0)
    y0, y1 = ds.y_test[:, 0], again.y_test[:, 0]
    np.testing.assert_array_equal(np.where(y0 == 0, 1, np.where(y0 == 1, 0, y0)), y1)


def test_too_many_zones_for_a_floor(csv_dir):
    with pytest.raises(TinyLocError, match="distinct training positions"):
        uji.load_uji(csv_dir, labeling="zones", n_zones=61)


def test_second_load_comes_from_the_cache(csv_dir, monkeypatch):
    first = uji.load_uji(csv_dir)
    cached = list(paths.user_cache_dir().glob("uji-v*-building-floor-*.npz"))
    assert len(cached) == 1

    def boom(*a, **k):
        raise AssertionError("parsed again")

    monkeypatch.setattr(uji, "_load_tables", boom)
    second = uji.load_uji(csv_dir)
    np.testing.assert_array_equal(first.x_train, second.x_train)
    assert second.class_names == first.class_names and second.fill_value == first.fill_value
    # a corrupt cache file is not trusted: it is rebuilt
    monkeypatch.undo()
    cached[0].write_bytes(b"half a file")
    third = uji.load_uji(csv_dir)
    np.testing.assert_array_equal(first.x_val, third.x_val)
    # a changed source file changes the key: parsed again
    f = csv_dir / "validationData.csv"
    f.write_text(f.read_text() + f.read_text().splitlines()[1] + "\n")
    assert len(uji.load_uji(csv_dir).x_test) == len(first.x_test) + 1


# ------------------------------------------------------------------------------------------------ bad input
def _write(d: Path, train: str, test: str) -> Path:
    d.mkdir(exist_ok=True)
    (d / "trainingData.csv").write_text(train)
    (d / "validationData.csv").write_text(test)
    return d


def _bad(d: Path, *parts: str):
    with pytest.raises(TinyLocError) as err:
        uji.load_uji(d)
    msg = str(err.value)
    assert "\n" not in msg
    for p in parts:
        assert p in msg, msg
    return msg


def test_missing_dir_and_missing_files(tmp_path, monkeypatch):
    monkeypatch.setenv("KERAS_TINYLOC_CACHE", str(tmp_path / "cache"))
    _bad(tmp_path / "nope", str(tmp_path / "nope"), "no such file")
    (tmp_path / "empty").mkdir()
    _bad(tmp_path / "empty", "no trainingData.csv", "data download uji")
    (tmp_path / "half").mkdir()
    (tmp_path / "half" / "trainingData.csv").write_text(_csv([]))
    _bad(tmp_path / "half", str(tmp_path / "half" / "validationData.csv"), "missing")


def test_zip_without_csvs(tmp_path, monkeypatch):
    monkeypatch.setenv("KERAS_TINYLOC_CACHE", str(tmp_path / "cache"))
    z = tmp_path / "UJIIndoorLoc.zip"
    z.write_bytes(_zip_bytes({"readme.txt": b"hi", "trainingData.csv": b"x"}))
    _bad(z, str(z), "does not contain validationData.csv")
    z.write_bytes(b"not a zip")
    _bad(z, str(z), "not a valid zip")


def test_bad_columns_and_values(tmp_path, tables, monkeypatch):
    monkeypatch.setenv("KERAS_TINYLOC_CACHE", str(tmp_path / "cache"))
    train, test = tables
    good_test = _csv(test)
    d = tmp_path / "d"
    no_floor = [h for h in HEADER if h != "FLOOR"]
    rows = [[v for h, v in zip(HEADER, r) if h != "FLOOR"] for r in train]
    _write(d, _csv(rows, no_floor), good_test)
    _bad(d, "trainingData.csv", "missing column FLOOR")
    # validationData lacks a WAP the training file has
    hdr = [h for h in HEADER if h != "WAP003"]
    _write(d, _csv(train), _csv([[v for h, v in zip(HEADER, r) if h != "WAP003"] for r in test], hdr))
    _bad(d, "validationData.csv", "missing column WAP003")
    # WAP columns out of order
    swapped = HEADER.copy()
    swapped[1], swapped[2] = swapped[2], swapped[1]
    _write(d, _csv(train, swapped), good_test)
    _bad(d, "trainingData.csv", "column WAP003")
    # non-numeric RSSI: column and row (row 1 = header)
    rows = [r.copy() for r in train]
    rows[1][1] = "abc"
    _write(d, _csv(rows), good_test)
    _bad(d, "trainingData.csv", "column WAP002, row 3", "'abc'")
    rows = [r.copy() for r in train]
    rows[4][3] = ""
    _write(d, _csv(rows), good_test)
    _bad(d, "column WAP004, row 6", "empty value")
    rows = [r.copy() for r in test]
    rows[0][0] = 7
    _write(d, _csv(train), _csv(rows))
    _bad(d, "validationData.csv", "column WAP001, row 2", "RSSI 7 outside")
    _write(d, "", good_test)
    _bad(d, "trainingData.csv", "empty")
    _write(d, "\ufeff" + _csv(train), good_test)  # a UTF-8 byte-order mark is not part of the first column name
    assert len(uji.load_uji(d).x_test) == len(test)
    _write(d, _csv([]), good_test)
    _bad(d, "trainingData.csv", "no data rows")
    rows = [r.copy() for r in test]
    rows[0][-6] = 7  # BUILDINGID 7 never seen in training
    _write(d, _csv(train), _csv(rows))
    _bad(d, "validationData.csv", "building 7")


# ------------------------------------------------------------------------------------------------ download
def test_download_without_internet_is_one_line(tmp_path):
    with pytest.raises(TinyLocError) as err:
        uji.download_uji(tmp_path, url="http://127.0.0.1:9/ujiindoorloc.zip", timeout=5)
    assert "download failed" in str(err.value) and "\n" not in str(err.value)
    assert not list(tmp_path.iterdir())


def test_download_unwraps_and_verifies(tmp_path, csv_dir, monkeypatch):
    inner = _zip_bytes({n: (csv_dir / n).read_bytes() for n in ("trainingData.csv", "validationData.csv")})
    wrapper = tmp_path / "ujiindoorloc.zip"
    wrapper.write_bytes(_zip_bytes({"UJIIndoorLoc.zip": inner}))
    # with the published md5 our tiny archive is rejected
    with pytest.raises(TinyLocError, match="md5"):
        uji.download_uji(tmp_path / "dest", url=wrapper.as_uri())
    assert not (tmp_path / "dest" / "UJIIndoorLoc.zip").exists()
    monkeypatch.setattr(uji, "ARCHIVE_MD5", hashlib.md5(inner).hexdigest())
    out = uji.download_uji(tmp_path / "dest", url=wrapper.as_uri())
    assert out == tmp_path / "dest" / "UJIIndoorLoc.zip" and out.read_bytes() == inner
    assert len(uji.load_uji(out.parent).x_test) == len(uji.load_uji(csv_dir).x_test)


# ------------------------------------------------------------------------------------------------ the real copy
REAL = (paths.shared_data_dir() or Path("/nonexistent")) / "ujiindoorloc"
needs_real = pytest.mark.skipif(not (REAL / "UJIIndoorLoc.zip").is_file(), reason="no shared UJIIndoorLoc copy")


@needs_real
def test_real_copy_building_floor():
    assert hashlib.md5((REAL / "UJIIndoorLoc.zip").read_bytes()).hexdigest() == uji.ARCHIVE_MD5
    ds = uji.load_uji(REAL)
    assert len(ds.x_train) + len(ds.x_val) == 19937 and len(ds.x_test) == 1111
    assert ds.n_classes == 13 and ds.input_shape == (1, 520)
    assert ds.fill_value == -110.0  # weakest real reading is -104
    assert abs(len(ds.x_val) - 19937 / 4) < 1
    t = time.perf_counter()
    uji.load_uji(REAL)
    assert time.perf_counter() - t < 1.0


@needs_real
def test_real_copy_zones():
    ds = uji.load_uji(REAL, labeling="zones")
    assert ds.n_classes == 59 and len(ds.x_test) == 1111
    assert set(np.unique(ds.y_train)) == set(range(59))
    bf = uji.load_uji(REAL)
    # zones refine building-floors: each zone lies inside one building-floor
    for split in ("train", "val", "test"):
        z, b = ds.split(split)[1][:, 0], bf.split(split)[1][:, 0]
        names = np.array(ds.class_names)[z]
        assert all(n.startswith(bf.class_names[k] + "-") for n, k in zip(names, b))


@pytest.mark.parametrize("compression", [zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED])
def test_corrupt_zip_member_is_one_line(tmp_path, csv_dir, monkeypatch, compression):
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression) as z:
        for name in ("trainingData.csv", "validationData.csv"):
            z.writestr(name, (csv_dir / name).read_bytes())
    data = bytearray(buf.getvalue())
    with zipfile.ZipFile(io.BytesIO(bytes(data))) as z:
        info = z.getinfo("validationData.csv")
    start = info.header_offset + 30 + len(info.filename) + len(info.extra)  # first byte of the member's data
    data[start + info.compress_size // 2] ^= 0xFF
    z = tmp_path / "UJIIndoorLoc.zip"
    z.write_bytes(bytes(data))
    with pytest.raises(TinyLocError) as err:
        uji.load_uji(z)
    msg = str(err.value)
    assert msg.startswith(f"{z}:validationData.csv: corrupt zip member (") and msg.endswith(
        "); download the archive again"), msg
    assert "\n" not in msg
