"""results.py: rows -> results.csv / tables.md, selection by validation F1, the paper CSV's duplicated rows."""
import json
from pathlib import Path

import pytest

from keras_tinyloc.experiments import results as R
from keras_tinyloc.errors import TinyLocError

KIB = 1024


def row(family, config, technique, val_f1, test_f1, arena, flat, params=1000, dataset="house-a", **kw):
    return {"dataset": dataset, "family": family, "config": config, "technique": technique, "val_f1": val_f1,
            "val_acc": 0.9, "test_f1": test_f1, "test_acc": 0.8, "params": params, "arena_bytes": arena,
            "flatbuffer_bytes": flat, "arena_source": "tflm-host", "status": "ok", **kw}


def synthetic_rows():
    return [
        # H64L1: best validation F1 but arena 70 KiB fits no class.
        row("mamba", "H64L1", "baseline", 0.95, 0.95, 70 * KIB, 100 * KIB),
        # H16L1: fits 64 KB only (arena 40 KiB); H8L1: fits 32 KB and 64 KB, lower val F1.
        row("mamba", "H16L1", "baseline", 0.80, 0.60, 40 * KIB, 50 * KIB),
        row("mamba", "H16L1", "static_int8", 0.85, 0.62, 40 * KIB, 20 * KIB),
        row("mamba", "H8L1", "baseline", 0.70, 0.90, 20 * KIB, 30 * KIB),  # highest test F1: never selects
        row("mamba", "H8L1", "static_int8", 0.72, 0.91, 10 * KIB, 10 * KIB),
        # a kNN whose flash (training set) is 200 KiB: fits the 32 KB class (512 KiB flash), not 64 KB (128 KiB).
        row("knn", "k=3", "int8", 0.75, 0.70, 1 * KIB, 200 * KIB, arena_source="estimate", features="last"),
        row("mamba", "H4L1", "kd", None, None, None, None, status="failed", error="conversion: float island"),
    ]


def test_fits_class_uses_mcu_ram_and_flash():
    r = row("mdcsa", "H8L1", "baseline", 0.5, 0.5, 32 * KIB, 512 * KIB)
    assert R.fits_class(r, "32 KB") and not R.fits_class(r, "64 KB")  # ADuCM3029 flash is 128 KiB
    assert not R.fits_class({**r, "arena_bytes": 32 * KIB + 1}, "32 KB")
    assert not R.fits_class({**r, "status": "failed"}, "32 KB")


def test_device_figures_decide_the_fit_when_present():
    """Host arena 20 KiB and flatbuffer 24 KiB fit the 20 KB class; the measured firmware (31 KiB RAM, 140 KiB flash)
    fits no class's flash but RL78/G13's 512 KiB, and RAM only from 32 KiB: the device figures decide."""
    r = row("mamba", "H8L1", "static_int8", 0.7, 0.7, 20 * KIB, 24 * KIB)
    assert R.row_need(r) == (20 * KIB, 24 * KIB, "host") and R.fits_class(r, "20 KB")
    d = {**r, "device_ram_bytes": 31 * KIB, "device_flash_bytes": 140 * KIB}
    assert R.row_need(d) == (31 * KIB, 140 * KIB, "device")
    assert [R.fits_class(d, c) for c in ("20 KB", "32 KB", "64 KB")] == [False, True, False]
    back = R.normalize_row({k: str(v) for k, v in d.items()})  # CSV strings come back as ints
    assert back["device_ram_bytes"] == 31 * KIB and isinstance(back["device_flash_bytes"], int)
    md = R.render_tables([d])
    line = next(ln for ln in md.splitlines() if ln.startswith("| mamba | H8L1 "))
    assert "| 31.0 | 140.0 | device | yes |" in line


def test_best_config_selects_on_validation_not_test():
    rows = [R.normalize_row(r) for r in synthetic_rows()]
    best64 = R.best_config(rows, "house-a", "mamba", "64 KB")
    assert (best64["config"], best64["technique"]) == ("H16L1", "static_int8")
    best32 = R.best_config(rows, "house-a", "mamba", "32 KB")
    assert (best32["config"], best32["technique"]) == ("H8L1", "static_int8")
    assert R.best_config(rows, "house-a", "knn", "64 KB") is None
    assert R.best_config(rows, "house-a", "knn", "32 KB")["config"] == "k=3"


def test_results_csv_round_trip(tmp_path):
    rows = synthetic_rows()
    paths = R.write_results(rows, tmp_path, paper_csv=_paper_csv(tmp_path))
    back = R.read_results_csv(paths["results_csv"])
    assert len(back) == len(rows)
    assert list(back[0]) == list(R.ROW_FIELDS)
    by = {(r["config"], r["technique"]): r for r in back}
    assert by[("H16L1", "static_int8")]["arena_bytes"] == 40 * KIB
    assert by[("H16L1", "static_int8")]["val_f1"] == pytest.approx(0.85)
    assert by[("H4L1", "kd")]["status"] == "failed" and by[("H4L1", "kd")]["test_f1"] is None


def _paper_csv(tmp_path):
    text = (
        "dataset,group,family,config,params,technique,macro_f1,accuracy,size_kb,over_budget_mark\n"
        "house-a,Under 64 KB,mamba,H32L1,10392,static_int8,79.05,96.59,26,False\n"
        "house-a,Under 32 KB,mamba,H8L1,1432,static_int8,79.41,97.27,12,False\n"
        "house-a,Under 32 KB,mamba,H8L1,1631,static_int8,72.71,80.71,13,False\n"
        "house-b,Under 32 KB,mamba,H8L1,1631,static_int8,72.71,80.71,13,False\n"
    )
    path = tmp_path / "paper.csv"
    path.write_text(text)
    return path


def test_paper_rows_copied_from_another_dataset_are_dropped(tmp_path):
    paper, notes = R.load_paper_tables(_paper_csv(tmp_path))
    assert [(p["dataset"], p["params"]) for p in paper] == [("house-a", 10392), ("house-a", 1432), ("house-b", 1631)]
    assert len(notes) == 1 and "house-a" in notes[0] and "house-b" in notes[0] and "line" in notes[0]
    assert R.paper_row(paper, "house-a", "32 KB", "mamba", "static_int8")["macro_f1"] == 79.41
    assert R.paper_row(paper, "house-b", "32 KB", "mamba", "static_int8")["macro_f1"] == 72.71
    assert R.paper_row(paper, "house-a", "20 KB", "mamba", "static_int8") is None


def test_shared_paper_csv_duplicates_are_reported():
    path = R.default_paper_csv()
    if path is None:
        pytest.skip("shared paper_tables.csv not present")
    paper, notes = R.load_paper_tables(path)
    counts = {}
    for p in paper:
        counts[p["dataset"]] = counts.get(p["dataset"], 0) + 1
    assert counts["house-a"] == counts["house-b"] == counts["house-c"] == counts["house-d"] == 20
    # House A's own MDCSA H16L1 has 10,588 parameters (the copy from House B has 10,874).
    assert R.paper_row(paper, "house-a", "64 KB", "mdcsa", "baseline")["params"] == 10588
    assert R.paper_row(paper, "house-b", "64 KB", "mdcsa", "baseline")["params"] == 10874
    assert len(notes) == 2


def test_tables_md_layout_and_values(tmp_path):
    R.write_results(synthetic_rows(), tmp_path, paper_csv=_paper_csv(tmp_path))
    md = (tmp_path / "tables.md").read_text()
    sec64 = md.split("### 64 KB class")[1].split("### 32 KB class")[0]
    sec32 = md.split("### 32 KB class")[1].split("### 20 KB class")[0]
    # 64 KB: mamba H16L1 (both techniques), its selected int8 row in bold with val 85.00 / test 62.00; paper H32L1.
    assert "| mamba | H16L1 | **static_int8** | 85.00 | 62.00 | 80.00 | 1000 | 40.0 | tflm-host | 20.0 |" in sec64
    assert "| H32L1 | 79.05 | 96.59 | 26 |" in sec64
    assert "H8L1" not in sec64 and "H64L1" not in sec64
    assert "| knn | none fits |" in sec64
    # 32 KB: mamba H8L1 and the kNN; paper's House A H8L1 (1432 params, not the copied 1631 row).
    assert "| mamba | H8L1 | **static_int8** | 72.00 | 91.00 |" in sec32
    assert "79.41" in sec32 and "72.71" not in sec32
    assert "| knn | k=3 | **int8 (last)** | 75.00 | 70.00 |" in sec32
    assert "## Failed runs" in md and "float island" in md
    assert "## Notes" in md and "repeat house-b's rows exactly" in md


def test_collect_rows_skips_temporary_dirs(tmp_path):
    done = tmp_path / "runs" / "house-a" / "mamba-H8L1" / "baseline"
    done.mkdir(parents=True)
    (done / "result.json").write_text(json.dumps({"rows": [row("mamba", "H8L1", "baseline", 0.5, 0.4, 1, 2)]}))
    tmp = tmp_path / "runs" / "house-a" / "mamba-H8L1" / ".kd.tmp-abc"
    tmp.mkdir(parents=True)
    (tmp / "result.json").write_text(json.dumps({"rows": [row("mamba", "H8L1", "kd", 0.5, 0.4, 1, 2)]}))
    rows = R.collect_rows(tmp_path)
    assert [(r["technique"], r["run_dir"]) for r in rows] == [("baseline", str(Path("runs/house-a/mamba-H8L1/baseline")))]


def test_bad_inputs(tmp_path):
    with pytest.raises(TinyLocError, match="no such results file"):
        R.read_results_csv(tmp_path / "missing.csv")
    bad = tmp_path / "paper.csv"
    bad.write_text("dataset,family\nhouse-a,mamba\n")
    with pytest.raises(TinyLocError, match="paper.csv: missing column"):
        R.load_paper_tables(bad)
    with pytest.raises(TinyLocError, match="val_f1='abc'"):
        R.normalize_row({"val_f1": "abc"})


def test_paper_size_convention():
    assert R.paper_size_kb(10240, "baseline") == 40.0
    assert R.paper_size_kb(10240, "static_int8") == 10.0
    assert R.paper_size_kb(None, "baseline") is None
