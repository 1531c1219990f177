"""keras_tinyloc.experiments.uji_families: the catalogue, the validation-only choices on hand-made rows, the report
against the committed result document, and one tiny row trained, reloaded and converted."""
from __future__ import annotations

import json

import pytest

from helpers import synth_dataset
from keras_tinyloc import paths
from keras_tinyloc.errors import TinyLocError
from keras_tinyloc.experiments import uji_families as uf

RESULTS = paths.REPO_ROOT / "docs" / "results"


def test_catalogue():
    assert uf.row_spec("mdcsa-h16-pow3-aug") == ("mdcsa", 16, 1, "pow3-aug", 3e-3, 0)
    assert uf.row_spec("mamba-h32-aug-s2") == ("mamba", 32, 1, "aug", 3e-3, 2)
    assert all(v[3] in uf.RECIPES for v in uf.ROWS.values())
    assert set(uf.SEED_ROWS) == {n for n in uf.ROWS if n[-3:] in ("-s1", "-s2")}


def row(name, family, recipe, val, test, validation="random", h=16):
    return {"name": name, "family": family, "H": h, "L": 1, "recipe": recipe, "val_f1": val, "test_f1": test,
            "validation": validation, "matches_rf": test >= uf.RF["f1"]}


def hand_rows():
    rows = []
    # mdcsa: recipe A over three seeds (val 0.90, 0.91, 0.92; phones 0.60, 0.61, 0.62), recipe B (val 0.95, 0.95,
    # 0.95; phones 0.50, 0.50, 0.50), recipe C one run only (val 0.99)
    for i, (va, vb, pa, pb) in enumerate(((0.90, 0.95, 0.60, 0.50), (0.91, 0.95, 0.61, 0.50), (0.92, 0.95, 0.62, 0.50))):
        suffix = "" if i == 0 else f"-s{i}"
        rows += [row(f"mdcsa-h16-A{suffix}", "mdcsa", "A", va, 0.8), row(f"mdcsa-h16-B{suffix}", "mdcsa", "B", vb, 0.7),
                 row(f"mdcsa-h16-A{suffix}", "mdcsa", "A", pa, 0.8, "phones"),
                 row(f"mdcsa-h16-B{suffix}", "mdcsa", "B", pb, 0.7, "phones")]
    rows.append(row("mdcsa-h16-C", "mdcsa", "C", 0.99, 0.1))
    return rows


def test_seed_groups_and_family_selection(monkeypatch):
    monkeypatch.setattr(uf, "SEED_ROWS", ("mdcsa-h16-A-s1", "mdcsa-h16-A-s2", "mdcsa-h16-B-s1", "mdcsa-h16-B-s2"))
    rows = hand_rows()
    groups = uf.seed_groups(rows)
    assert [(g[3], len(g[4]), g[5]) for g in groups] == [("A", 3, [0.60, 0.61, 0.62]), ("B", 3, [0.5, 0.5, 0.5])]
    sel = uf.family_selection(rows, "mdcsa")
    assert sel["by_random"]["name"] == "mdcsa-h16-C"  # best seed-0 random-split validation (0.99)
    assert (sel["by_phones"]["name"], sel["phone_val"]) == ("mdcsa-h16-A", 0.60)  # C has no phone row
    # mean random val: A 0.91, B 0.95 -> B; mean phone val: A 0.61, B 0.50 -> A
    assert [(label, g[3]) for label, g in sel["recipes"]] == [("random-split", "B"), ("held-out-phone", "A")]
    assert uf.family_selection(rows, "mamba") is None
    assert uf.mean_range([0.1, 0.2, 0.6]) == "0.3000 (0.1000–0.6000)"


def test_load_rows_order(tmp_path):
    for name, validation in (("mamba-h32-plain", "random"), ("zz-unknown", "random"), ("mdcsa-h16-plain", "phones"),
                             ("mdcsa-h16-plain", "random")):
        d = tmp_path / (name + ("" if validation == "random" else "@phones"))
        d.mkdir()
        (d / "row.json").write_text(json.dumps({"name": name, "validation": validation}))
    got = [(r["name"], r["validation"]) for r in uf.load_rows(tmp_path)]
    assert got == [("mdcsa-h16-plain", "random"), ("mamba-h32-plain", "random"), ("zz-unknown", "random"),
                   ("mdcsa-h16-plain", "phones")]


def test_committed_report_is_the_rendering_of_the_committed_rows():
    doc = json.loads((RESULTS / "uji_families.json").read_text())
    assert uf.markdown(doc["rows"]) == (RESULTS / "uji_families.md").read_text()
    assert uf.results_json(doc["rows"]) == (RESULTS / "uji_families.json").read_text()


@pytest.mark.slow
def test_run_row_trains_reloads_and_converts(tmp_path, monkeypatch):
    from keras_tinyloc.experiments import apselect
    from keras_tinyloc.training.train import evaluate, load_run

    ds = synth_dataset(T=4, F=6, C=3, n=90, seed=0, name="uji-zones")
    monkeypatch.setattr(uf, "EPOCHS", 2)
    monkeypatch.setitem(uf.ROWS, "tiny", ("mdcsa", 4, 1, "pow3-aug", 3e-3))
    logs = []
    r = uf.run_row("tiny", ds, None, tmp_path, log=logs.append)
    assert (r["family"], r["H"], r["recipe"], r["seed"], r["epochs_run"]) == ("mdcsa", 4, "pow3-aug", 0, 2)
    assert r["matches_rf"] == (r["test_f1"] >= uf.RF["f1"])
    tagger, config, metrics = load_run(tmp_path / "tiny")
    assert config["uji_families"] == {"row": "tiny", "recipe": "pow3-aug", **uf.RECIPES["pow3-aug"]}
    assert config["dataset_options"]["features"] == apselect.select_features(ds, "heard:0.01")
    assert {"pow_2", "pow_3"} <= {layer.name for layer in tagger.emitter.layers}  # x**3 inside the model
    assert len(config["dataset_options"]["features"]) == ds.n_features  # every synthetic AP is heard
    assert evaluate(tagger, ds)["test_f1"] == pytest.approx(r["test_f1"])  # the saved run reproduces the row
    assert uf.run_row("tiny", ds, None, tmp_path, log=logs.append) == json.loads(json.dumps(r))  # cached
    conv = uf.convert_row("tiny", ds, tmp_path, log=logs.append)
    assert conv["test_f1_float"] == pytest.approx(r["test_f1"]) and 0 < conv["arena_bytes"]
    assert json.loads((tmp_path / "tiny" / "row.json").read_text())["test_f1_int8"] == conv["test_f1_int8"]
    assert len(logs) == 2
    (tmp_path / "tiny" / "model.keras").unlink()
    with pytest.raises(TinyLocError, match="no model.keras"):
        uf.convert_row("tiny", ds, tmp_path)
