"""keras_tinyloc.experiments.beyond_report: the committed report is the rendering of the committed rows (their error
breakdowns stand in for the runs' predictions), the choices are by validation only, stored rows are read in order."""
from __future__ import annotations

import copy
import json

from keras_tinyloc import paths
from keras_tinyloc.experiments import beyond, beyond_report as br

RESULTS = paths.REPO_ROOT / "docs" / "results"


def test_committed_report_is_the_rendering_of_the_committed_rows(monkeypatch):
    doc = json.loads((RESULTS / "beyond_uji.json").read_text())
    kept = {r["run_dir"]: r["error_breakdown"] for rows in doc["rows"].values() for r in rows if "error_breakdown" in r}
    monkeypatch.setattr(beyond, "run_breakdown", lambda run_dir: kept[run_dir])
    rows = copy.deepcopy(doc["rows"])
    for rs in rows.values():
        for r in rs:
            r.pop("error_breakdown", None)
    assert br.markdown(rows, doc["phone_validation_rows"]) == (RESULTS / "beyond_uji.md").read_text()
    assert rows == doc["rows"]  # the breakdowns were added back to the detailed rows, as in the JSON


def row(name, val, test_f1, within=True, params=100, loss=0.2):
    return {"name": name, "family": "mlp", "H": 64, "L": 1, "technique": "t", "n_features": 520, "params": params,
            "val_f1": val, "test_f1_float": test_f1, "test_f1_int8": test_f1, "int8_loss_points": loss,
            "test_acc_int8": test_f1, "arena_bytes": 3000, "flatbuffer_bytes": 20000, "within_budget": within}


def test_summary_selects_by_validation():
    rows = [row("a", 0.97, 0.80), row("b", 0.95, 0.86, loss=0.7), row("c", 0.99, 0.99, within=False)]
    lines = "\n".join(br.summary("uji-zones", rows))
    # c is over budget; a has the best validation F1 -> 80.00, not b's 86.00 (shown as the ceiling only)
    assert "Best **random-split validation** F1 among rows within budget: `a` — test macro-F1 80.00" in lines
    assert "target **not reached**" in lines
    assert "(not a selection rule, shown for the ceiling): `b` 86.00." in lines
    assert "min +0.20, max +0.70; rows with loss ≤ 0.5: 2/3." in lines


def test_recipe_table_reads_the_choice_off_the_normal_split():
    rows = [row("a", 0.97, 0.80), row("b", 0.95, 0.86)]
    phones = [dict(row("a", 0.60, 0.0), holdout_phones=[1, 3]), dict(row("b", 0.70, 0.0), holdout_phones=[1, 3]),
              dict(row("x", 0.99, 0.0), holdout_phones=[1, 3])]  # x has no normal-split row
    text = "\n".join(br.recipe_table("uji-zones", rows, phones))
    assert "**Selected: `b`** — int8 in TFLM: test macro-F1 86.00" in text
    assert "Target (test macro-F1 ≥ 85): **reached**." in text
    assert text.index("| b |") < text.index("| a |")  # by held-out-phone validation F1
    assert br.recipe_table("uji-zones", rows, []) == []


def test_stored_rows(tmp_path):
    for name in ("b", "a@phones"):
        (tmp_path / "uji" / name).mkdir(parents=True)
        (tmp_path / "uji" / name / "row.json").write_text(json.dumps({"name": name}))
    assert br.stored_rows(tmp_path, "uji", ["a", "b", "c"]) == [{"name": "b"}]
    assert br.stored_rows(tmp_path, "uji", ["a", "b"], "@phones") == [{"name": "a@phones"}]


def test_device_figures_attach_only_to_a_reproduced_row_and_render():
    from keras_tinyloc.deploy import mcu

    doc = json.loads((RESULTS / "beyond_uji.json").read_text())
    old = next(r for r in doc["rows"]["uji"] if r["name"] == "pow3-aug-h64")
    old = {k: v for k, v in old.items() if k not in ("device", "device_within_budget", "device_check", "retrained")}
    split = {"arena": 2_272, "static": 3_600, "heap": 0, "stack": 1_200}
    flash = (38_000, 22_000, 14_000, 13_000)
    dev = {"board": "QEMU board", "tflm": "kit k", "arena_bytes": 2_272, "ram_bytes": 7_072, "ram_split": split,
           "flash_bytes": sum(flash), "flash_tflm_bytes": flash[0], "flash_model_bytes": flash[1],
           "flash_app_bytes": flash[2], "flash_libc_bytes": flash[3], "instructions_per_invoke": 85_000,
           "outputs_identical_share": 1.0, "n_compared": 64, "mcu": mcu.device_costs(85_000, 7_072, sum(flash)),
           "cost_assumptions": mcu.COST_ASSUMPTIONS}
    new = {**old, "test_f1_int8": 0.93, "device": dev, "device_within_budget": True}
    row = beyond.attach_device(old, new, "d")
    assert row["device"] == dev and row["device_check"]["reproduced"] and row["test_f1_int8"] == old["test_f1_int8"]
    assert row["device_check"]["test_f1_int8_now"] == 0.93 and row["device_check"]["test_f1_int8_row"] == old["test_f1_int8"]
    apart = beyond.attach_device(old, {**new, "val_f1": 0.5}, "d")
    assert "device" not in apart and apart["retrained"]["val_f1"] == 0.5 and apart["val_f1"] == old["val_f1"]
    assert apart["device_check"]["differences"] == {"val_f1": [old["val_f1"], 0.5]}
    md = "\n".join(br.device_section({"uji": [row, apart]}))
    # 87,000 B = 85.0 KiB flash and 7,072 B RAM: inside the CC2650's 128 KiB / 20 KiB
    assert ("| uji | pow3-aug-h64 | 94.09 / 95.05 (93.00 / 95.05) | yes | 2,272 (3,008) | 7,072 = 2,272 + 3,600 + 0 + "
            "1,200 | 37.1 + 21.5 + 13.7 + 12.7 = **85.0** | 85,000 |") in md
    assert "| 100 % of 64 | **yes** | CC2650," in md
    assert (f"| uji | pow3-aug-h64 | 94.09 / 95.05 (retrained run: 93.00 / 95.05) | **no**: val_f1 "
            f"{old['val_f1']:.6g} → 0.5; the retrained run measured |") in md
    assert br.device_section({"uji": [old]}) == []
