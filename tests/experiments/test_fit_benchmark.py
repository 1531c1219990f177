"""fit_benchmark: committed rows read and filtered by the MCU, the comparison row and the report."""
from __future__ import annotations

import json

from keras_tinyloc.experiments import fit_benchmark as fb

HEADER = ("dataset,family,config,hidden,layers,technique,features,val_f1,val_acc,test_f1,test_acc,params,"
          "flatbuffer_bytes,arena_bytes,arena_source,size_kb,seconds,status,error,teacher,run_dir\n")


def results(tmp_path):
    (tmp_path / "sweep").mkdir(exist_ok=True)
    (tmp_path / "sweep" / "results.csv").write_text(HEADER + "\n".join([
        "house-a,mlp,H64L1,64,1,static_int8,,0.8,0.9,0.76,0.95,860,4000,3000,tflm-host,1,1,ok,,,r",
        "house-a,mdcsa,H16L1,16,1,static_int8,,0.9,0.9,0.71,0.92,8204,28000,23000,tflm-host,1,1,ok,,,r",
        "house-a,mlp,H64L1,64,1,baseline,,0.8,0.9,0.99,0.95,860,4000,3000,tflm-host,1,1,ok,,,r",  # float: not deployable
        "house-a,rf,10 trees,,,int8,last,0.92,0.95,0.74,0.95,1028,6000,16,estimate,6,0,ok,,,r",
        "house-a,lr,C=1,,,int8,window,0.89,0.94,0.757,0.94,100,100,200,estimate,0.1,0,ok,,,r",
        "house-a,knn,k=5,,,int8,window,0.80,0.91,0.716,0.91,2e4,21000,200,estimate,21,0,failed,x,,r",
        "house-b,mlp,H64L1,64,1,static_int8,,0.8,0.9,0.5,0.95,860,4000,3000,tflm-host,1,1,ok,,,r",
    ]) + "\n")
    return tmp_path


def test_hand_picked_rows_and_the_mcu_filter(tmp_path):
    rows = fb.hand_picked_rows(results(tmp_path), "house-a")
    assert [(r["name"], r["kind"]) for r in rows] == [("mlp H64L1 static_int8", "nn"), ("mdcsa H16L1 static_int8", "nn"),
                                                       ("rf 10 trees int8", "sklearn"), ("lr C=1 int8", "sklearn")]
    assert [r["name"] for r in fb.fitting(rows, 20 * 1024, 128 * 1024)] == [
        "mlp H64L1 static_int8", "rf 10 trees int8", "lr C=1 int8"]  # mdcsa's 23,000 B arena > 20 KiB


def test_compare_and_report(tmp_path):
    case = fb.Case("house-a-cc2650", "house-a", "20 KB", mcu="CC2650")
    winner = {"key": "mlp-H32L1", "val_f1_int8": 0.9, "test_f1_int8": 0.8, "test_acc_int8": 0.96, "ram_bytes": 15000,
              "flash_bytes": 60000, "fit_basis": "device: whole firmware"}
    summary = {"search": {"target": {"name": "CC2650", "ram_bytes": 20480, "flash_bytes": 131072, "clock_mhz": 48.0},
                          "epochs": 150, "patience": 30, "min_epochs": 10, "reduction_factor": 3},
               "winner": winner, "counts": "48 candidates"}
    c = fb.compare(case, summary, results(tmp_path))
    assert c["hand_picked_best"]["name"] == "mlp H64L1 static_int8" and c["reaches_hand_picked"] is True
    assert c["baseline_by_val"]["name"] == "rf 10 trees int8" and "issue_target" not in c
    doc = {"meta": {"command": "`benchmarks/fit.py`", "machine": "2 CPU cores", "time_budget_min": 8, "epochs": 40,
                    "seed": 0, "device": "cortex-m4", "min_epochs": 4, "reduction_factor": 3},
           "cases": [json.loads(json.dumps(c))], "notes": ["n1"], "not_run": ["x: not run"]}
    md = fb.markdown(doc)
    assert ("| house-a-cc2650 | CC2650 (20 / 128 KiB) | mlp-H32L1 | 90.00 | **80.00** | 96.00 | 14.6 / 58.6 KiB (device) "
            "| 48 candidates; E/P/R 150/30/10 | mlp H64L1 static_int8 (76.00) | rf 10 trees int8 (74.00) | yes |") in md
    assert "* n1" in md and "* x: not run" in md
    zcase = fb.Case("uji-zones-cc2650", "house-a", "20 KB", mcu="CC2650", target_note="macro-F1 >= 85 in 20 KB")
    zones = fb.compare(zcase, {**summary, "winner": {**winner, "test_f1_int8": 0.84}}, results(tmp_path))
    assert zones["issue_target"] == {"metric": "test_f1_int8", "threshold": 0.85, "value": 0.84, "reached": False,
                                     "note": "macro-F1 >= 85 in 20 KB"}


def test_limits_from_a_leaderboard(tmp_path):
    from keras_tinyloc.experiments import fit_report

    base = {"hidden": 8, "layers": 1, "levers": "plain", "selection": "s", "params": 1, "need_basis": "device: x"}
    pruned = "eliminated by successive halving at epoch {} (val F1 0.5)"
    rows = [{**base, "key": "m1", "family": "mlp", "status": "winner", "fits": True, "ram_need_bytes": 5000,
             "flash_need_bytes": 70000},
            {**base, "key": "m2", "family": "mlp", "status": "pruned", "fits": True, "ram_need_bytes": 6000,
             "flash_need_bytes": 71000, "levers": "x^3", "selection": pruned.format(4)},
            {**base, "key": "m4", "family": "mlp", "status": "pruned", "fits": True, "ram_need_bytes": 6000,
             "flash_need_bytes": 71000, "levers": "aug(drop 0.2, ±8 dB)", "selection": pruned.format(12)},
            {**base, "key": "m3", "family": "mlp", "status": "not run", "fits": True, "ram_need_bytes": 6000,
             "flash_need_bytes": 71000},
            {**base, "key": "a1", "family": "mamba", "status": "does not fit", "fits": False, "ram_need_bytes": 30720,
             "flash_need_bytes": 150000, "need_basis": "arena and flatbuffer alone (already above the MCU's limits)"},
            {**base, "key": "a2", "family": "mamba", "status": "does not fit", "fits": False, "ram_need_bytes": None,
             "flash_need_bytes": None}]
    (tmp_path / "leaderboard.csv").write_text(fit_report.leaderboard_csv(rows))
    lim = fb.limits(tmp_path / "leaderboard.csv")
    assert lim["families"]["mamba"] == {"candidates": 2, "fit": 0, "min_ram_need": 30720, "min_flash_need": 150000,
                                        "bare": True}
    assert (lim["trained"], lim["complete"], lim["pruned"], lim["not_run"], lim["does_not_fit"]) == (3, 1, 2, 1, 2)
    assert (lim["first_rung"], lim["levers_trained"], lim["levers_first_rung"]) == (4, 2, 1)
    notes = fb.limit_notes({"limits": lim, "target": {"ram_bytes": 20480, "flash_bytes": 131072},
                            "winner": {"val_f1_int8": 0.9, "test_f1_int8": 0.8}})
    assert notes == ["no mamba fits the 20 KiB / 128 KiB (smallest model alone, before any app RAM or TFLM code: "
                     "arena 30.0 KiB / flatbuffer 146.5 KiB)",
                     "3 trained (1 to the end, 2 eliminated), 1 fitting candidates not reached within the budget",
                     "of the 2 trained candidates with x^3 or augmentation, 1 were eliminated at the first rung (epoch 4)",
                     "winner's validation F1 90.00 vs test F1 80.00"]
