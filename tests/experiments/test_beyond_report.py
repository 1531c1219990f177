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
