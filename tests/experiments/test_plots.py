"""plots.py: the plotted numbers (points, MCU fit) against independent selections, and the PNG files."""
import pytest

from keras_tinyloc.experiments import plots

KIB = 1024


def rows():
    base = {"status": "ok", "val_acc": 0.9, "test_acc": 0.9}
    return [
        {**base, "dataset": "house-a", "family": "mamba", "config": "H8L1", "technique": "static_int8",
         "val_f1": 0.70, "test_f1": 0.75, "arena_bytes": 10 * KIB, "flatbuffer_bytes": 12 * KIB, "params": 1400},
        {**base, "dataset": "house-a", "family": "mdcsa", "config": "H16L1", "technique": "baseline",
         "val_f1": 0.80, "test_f1": 0.60, "arena_bytes": 50 * KIB, "flatbuffer_bytes": 60 * KIB, "params": 9000},
        {**base, "dataset": "house-a", "family": "mamba", "config": "H4L1", "technique": "dynamic",
         "val_f1": 0.99, "test_f1": 0.99, "arena_bytes": None, "flatbuffer_bytes": 8 * KIB, "params": 500},
        {**base, "dataset": "house-a", "family": "knn", "config": "k=3", "technique": "int8", "features": "last",
         "val_f1": 0.90, "test_f1": 0.85, "arena_bytes": 100, "flatbuffer_bytes": 300 * KIB, "params": 1},
        {**base, "dataset": "uji", "family": "mlp", "config": "H16L1", "technique": "static_int8",
         "val_f1": 0.5, "test_f1": 0.5, "arena_bytes": 3 * KIB, "flatbuffer_bytes": 13 * KIB, "params": 9300},
        {"dataset": "uji", "family": "mlp", "config": "H8L1", "technique": "kd", "status": "failed",
         "error": "boom"},
    ]


def test_f1_size_points_only_finished_rows_with_the_axis():
    arena = plots.f1_size_points(rows(), "house-a", "arena_bytes")
    assert sorted((p["config"], p["x"]) for p in arena) == [("H16L1", 50 * KIB), ("H8L1", 10 * KIB), ("k=3", 100)]
    flat = plots.f1_size_points(rows(), "house-a", "flatbuffer_bytes")
    assert len(flat) == 4  # the dynamic-range row has a flatbuffer but no TFLM arena
    assert plots.f1_size_points(rows(), "uji", "arena_bytes") == [
        {"family": "mlp", "technique": "static_int8", "config": "H16L1", "x": 3 * KIB, "f1": 0.5}]


def test_mcu_fit_table_best_by_validation():
    t = plots.mcu_fit_table(rows())
    assert list(t["house-a"]) == ["mdcsa", "mamba", "knn"] and list(t["uji"]) == ["mlp"]
    # the kNN's 100-byte arena fits 2 KB of RAM, but its 300 KiB training set needs >= 512 KiB of flash
    assert t["house-a"]["knn"]["ATmega328P"] is None and t["house-a"]["knn"]["ADuCM3029"] is None
    assert t["house-a"]["knn"]["RL78/G13"]["config"] == "k=3"
    # Mamba: H4L1 (best val F1) has no TFLM arena, so H8L1 (10 KiB / 12 KiB) is the best that fits from CC2650 up
    assert t["house-a"]["mamba"]["CC2650"]["config"] == "H8L1" and t["house-a"]["mamba"]["MSP430FR5969"] is None
    # ... but never on the RL78/G13 (32 KiB RAM, 512 KiB flash): its 16-bit core does not run TFLM; the kNN does
    assert t["house-a"]["mamba"]["RL78/G13"] is None
    assert t["house-a"]["mdcsa"]["RL78/G13"] is None and t["house-a"]["mdcsa"]["ADuCM3029"]["config"] == "H16L1"
    # device figures, when a row has them, decide: this firmware needs 140 KiB of flash, over CC2650's 128 KiB
    dev = rows() + [{**rows()[0], "config": "H8L1dev", "val_f1": 0.71, "device_ram_bytes": 15 * KIB,
                     "device_flash_bytes": 140 * KIB}]
    td = plots.mcu_fit_table(dev)["house-a"]["mamba"]
    assert td["CC2650"]["config"] == "H8L1" and td["STM32L4"]["config"] == "H8L1dev"
    assert t["uji"]["mlp"]["CC2650"]["config"] == "H16L1" and t["uji"]["mlp"]["MSP430FR5969"] is None


def test_write_plots_png_files(tmp_path):
    files = plots.write_plots(rows(), tmp_path)
    assert set(files) == {"f1_vs_arena_house-a", "f1_vs_flatbuffer_house-a", "f1_vs_arena_uji",
                          "f1_vs_flatbuffer_uji", "mcu_fit"}
    for path in files.values():
        data = path.read_bytes()
        assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 5000
    assert not list(tmp_path.glob(".*tmp*"))


def test_bad_axis():
    with pytest.raises(ValueError):
        plots.f1_size_points(rows(), "house-a", "params")
