"""keras_tinyloc.experiments.convert_targets: paper lookup, row merging, the report against the committed result
document and on hand-made rows, and one tiny configuration trained, converted and diagnosed."""
from __future__ import annotations

import json

import pytest

from helpers import synth_dataset
from keras_tinyloc import paths
from keras_tinyloc.errors import TinyLocError
from keras_tinyloc.experiments import convert_targets as ct

RESULTS = paths.REPO_ROOT / "docs" / "results"


def test_paper_lookup():
    paper = [{"dataset": "house-a", "family": "mamba", "config": "H8L1", "technique": "static_int8", "macro_f1": 70.1,
              "accuracy": 80.2, "size_kb": 1.4, "params": 1432, "group": "g"},
             {"dataset": "house-a", "family": "mamba", "config": "H4L1", "technique": "static_int8", "macro_f1": 1,
              "accuracy": 1, "size_kb": 1, "params": 1, "group": "g"}]
    assert ct.paper_lookup(paper, "house-a", "mamba", "H8L1") == {
        "static_int8": {"f1": 70.1, "acc": 80.2, "size_kb": 1.4, "params": 1432, "group": "g"}}
    assert ct.paper_lookup(paper, "uji", "mamba", "H8L1") == {}


def test_cache_is_the_user_cache_folder_never_the_checkout(monkeypatch, tmp_path):
    monkeypatch.delenv("KERAS_TINYLOC_CACHE", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert ct.cache_dir() == tmp_path / "xdg" / "keras_tinyloc" / "convert_targets"
    monkeypatch.setenv("KERAS_TINYLOC_CACHE", str(tmp_path / "c"))
    assert ct.cache_dir() == tmp_path / "c" / "convert_targets"


def test_spread_merge_configs_meta():
    assert ct.spread({"f1_drop_by_calibration_seed": {"0": 0.5, "1": -0.25, "2": 1.0}}) == "-0.25 … +1.00 (3)"
    assert ct.spread({}) == "–"
    rows = {("b", "mamba", "H8L1"): {"dataset": "b", "family": "mamba", "config": "H8L1", "v": 1}}
    ordered = ct.merge_row(rows, {"dataset": "a", "family": "mdcsa", "config": "H16L1"})
    ordered = ct.merge_row(rows, {"dataset": "b", "family": "mamba", "config": "H8L1", "v": 2})
    assert [(r["dataset"], r.get("v")) for r in ordered] == [("a", None), ("b", 2)]
    assert ct.parse_configs(["mamba:8:1", "mdcsa:16:2"]) == (("mamba", 8, 1), ("mdcsa", 16, 2))
    assert ct.parse_configs(None) == ct.CONFIGS
    with pytest.raises(TinyLocError, match="FAMILY:H:L"):
        ct.parse_configs(["mamba:8"])
    meta = ct.render_meta({"date": "d", "notes": ["paper_tables: x", "old note"]})
    assert meta["notes"] == ["paper_tables: x"] + ct.NOTES and meta["date"] == "d"


def test_committed_report_is_the_rendering_of_the_committed_rows():
    doc = json.loads((RESULTS / "convert_targets.json").read_text())
    assert ct.markdown(doc["rows"], ct.render_meta(doc["meta"])) == (RESULTS / "convert_targets.md").read_text()


def test_targets_line_counts_the_rows():
    def r(drop, float_ops=(), same=1.0, ident=0.995, **kw):
        return {"dataset": "d", "family": "mamba", "config": kw.get("config", "H8L1"), "params": 1, "n_ops": 3,
                "float_ops": list(float_ops), "flatbuffer_bytes": 1, "flatbuffer_bytes_with_names": 2,
                "arena_bytes": 3, "arena_head_bytes": 1, "arena_tail_bytes": 2, "paper": {}, "ram_classes": {},
                "test_f1_float": 0.8, "test_f1_int8": 0.8 - drop / 100, "f1_drop_points": drop, "invoke_us_tflm": 5.0,
                "tflm_matches_litert": {"share_identical": ident, "max_diff_steps": 1,
                                        "share_same_window_prediction": same}}
    rows = [r(0.5), r(-1.5, config="H4L1", ident=0.5), r(0.2, float_ops=["DEQUANTIZE"], same=0.98),
            {"dataset": "d", "family": "mdcsa", "config": "H16L1", "error": "ValueError: x"}]
    md = ct.markdown(rows, {"date": "d", "machine": "m", "epochs": 1, "patience": 1, "seed": 0, "notes": ["n"]})
    assert ("Targets: 2/3 with zero float ops and running in TFLM; 2/3 within 1.0 F1 point (largest |drop| 1.50, "
            "d mamba H4L1); 2/3 with TFLM and LiteRT deciding the same room on >= 99 % of windows, 2/3 with >= 99 % "
            "bit-identical windows.") in md
    assert "| d | mdcsa H16L1 | – |" in md and "error: ValueError: x" in md and md.endswith("* n\n")


@pytest.mark.slow
def test_run_one_trains_converts_and_diagnoses(tmp_path, monkeypatch):
    monkeypatch.setenv("KERAS_TINYLOC_CACHE", str(tmp_path))
    ds = synth_dataset(T=4, F=5, C=3, n=90, seed=0, name="house-a")  # a registry name: train checks it
    row = ct.run_one(ds, "house-a", "mdcsa", 4, 1, [], epochs=1, patience=1, calib_seeds=[1])
    assert row["run_dir"] == "<user cache>/convert_targets/house-a/mdcsa_h4l1"  # portable: no machine path
    assert (row["dataset"], row["family"], row["config"], row["paper"]) == ("house-a", "mdcsa", "H4L1", {})
    assert row["float_ops"] == [] and 0 < row["arena_head_bytes"] <= row["arena_bytes"]
    assert row["f1_drop_points"] == pytest.approx(100 * (row["test_f1_float"] - row["test_f1_int8"]), abs=1e-3)
    assert list(row["f1_drop_by_calibration_seed"]) == ["0", "1"]
    assert row["f1_drop_by_calibration_seed"]["0"] == row["f1_drop_points"]
    assert isinstance(row["f1_drop_points_minmax"], float)
    assert (row["fidelity_diagnosis"] is None) == (abs(row["f1_drop_points"]) <= 1.0)
    d = ct.diagnose(tmp_path / "convert_targets" / "house-a" / "mdcsa_h4l1", ds, n_windows=10)
    errs = [w["mean_err_steps"] for w in d["worst"]]
    assert errs == sorted(errs, reverse=True) and len(errs) <= 5
    first = d["first_op_over_1_step"]
    assert first is None or first["mean_err_steps"] > 1.0


def _device(arena, flash=(90_000, 20_000, 12_000, 15_000)):
    from keras_tinyloc.deploy import mcu

    split = {"arena": arena, "static": 2_000, "heap": 0, "stack": 1_400}
    ram = sum(split.values())
    return {"board": "QEMU board", "tflm": "kit k", "arena_bytes": arena, "ram_bytes": ram, "ram_split": split,
            "flash_bytes": sum(flash), "flash_tflm_bytes": flash[0], "flash_model_bytes": flash[1],
            "flash_app_bytes": flash[2], "flash_libc_bytes": flash[3], "instructions_per_invoke": 1_000_000,
            "outputs_identical_share": 1.0, "n_compared": 64, "mcu": mcu.device_costs(1_000_000, ram, sum(flash)),
            "cost_assumptions": mcu.COST_ASSUMPTIONS}


def _without_device(doc):
    """The committed rows as they were before any device measurement."""
    return [{k: v for k, v in r.items() if k not in ("device", "device_check", "retrained")} for r in doc["rows"]]


def test_device_figures_attach_only_to_a_reproduced_row_and_render():
    doc = json.loads((RESULTS / "convert_targets.json").read_text())
    doc["rows"] = _without_device(doc)
    old = next(r for r in doc["rows"] if (r["dataset"], r["family"], r["config"]) == ("house-a", "mamba", "H4L1"))
    new = {**old, "test_f1_int8": 0.6, "device": _device(20_000), "train_seconds": 3.0}
    same = ct.attach_device(old, new, "d")
    assert same["device"] == new["device"] and same["device_check"]["reproduced"] is True
    assert same["test_f1_int8"] == old["test_f1_int8"] and same["device_check"]["test_f1_int8_retrained"] == 0.6
    other = ct.attach_device(old, {**new, "test_f1_float": old["test_f1_float"] + 0.01}, "d")
    assert "device" not in other and other["device_check"]["reproduced"] is False
    assert other["retrained"]["test_f1_float"] == old["test_f1_float"] + 0.01 and other["test_f1_float"] == old["test_f1_float"]
    bigger = ct.attach_device(old, {**new, "flatbuffer_bytes": old["flatbuffer_bytes"] + 16}, "d")
    assert bigger["device_check"]["reproduced"] is False  # another int8 graph: its sizes are not the row's
    rows = [same if r is old else r for r in doc["rows"]]
    md = ct.markdown(rows, ct.render_meta({**doc["meta"], "device_not_measured": "no time"}))
    # RAM 20,000 + 2,000 + 0 + 1,400; flash 137,000 B = 133.8 KiB > the CC2650's 128 KiB
    assert ("| house-a | mamba H4L1 | yes (66.81) / 60.00 | 20,000 (26,848) | 23,400 = 20,000 + 2,000 + 0 + 1,400 | "
            "87.9 + 19.5 + 11.7 + 14.6 = **133.8** | 1,000,000 |") in md
    assert "| house-a | mamba H8L1 | not re-measured: no time |" in md
    assert "Device summary over the 1 measured rows (of 35): whole firmware fits CC2650 0; STM32L4 1;" in md
    assert "| fits (host) |" in md


def test_same_trained_model_converted_to_another_graph_is_marked():
    doc = json.loads((RESULTS / "convert_targets.json").read_text())
    old = next(r for r in _without_device(doc) if (r["dataset"], r["family"], r["config"]) == ("house-a", "mdcsa", "H8L1"))
    new = {**old, "n_ops": 41, "flatbuffer_bytes": 14_784, "arena_bytes": 13_344, "device": _device(9_984)}
    row = ct.attach_device(old, new, "d")
    assert row["device_check"]["reproduced"] is False and row["retrained"]["device"]["arena_bytes"] == 9_984
    md = ct.markdown([row], {"date": "d", "machine": "m", "epochs": 1, "patience": 1, "seed": 0, "notes": []})
    assert (f"| house-a | mdcsa H8L1 | yes ({100 * old['test_f1_float']:.2f}) / {100 * old['test_f1_int8']:.2f}; "
            "**another int8 graph today**: 41 nodes, 14,784 B flatbuffer, 13,344 B host arena (row: 68, 18,880, "
            "21,216); figures of today's graph | 9,984 (13,344) |") in md
