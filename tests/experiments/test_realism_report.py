"""keras_tinyloc.experiments.realism_report: the committed report is exactly the rendering of the committed result
document (round trip), its cells state the document's numbers, and the figure renders from raw values."""
from __future__ import annotations

import json

import numpy as np

from keras_tinyloc import paths
from keras_tinyloc.experiments import realism_report

RESULTS = paths.REPO_ROOT / "docs" / "results"


def test_committed_report_is_the_rendering_of_the_committed_json():
    doc = json.loads((RESULTS / "simulator_realism.json").read_text())
    md = realism_report.markdown(doc)
    assert md == (RESULTS / "simulator_realism.md").read_text()
    cd = doc["cross_domain"]
    assert f"| SPHERE train | {cd['real_on_real']:.3f} | {cd['real_on_sim']:.3f} " in md
    living = doc["sphere"]["rooms"]["living"]
    assert f"| living | {living['share']:.3f} / " in md
    assert md.rstrip().endswith("![distributions](simulator_realism.png)")
    assert doc["verdict"] in md


def test_plot_from_raw_values():
    h = {"rec_ap": [0.5, 0.9], "runs": [1, 2, 5], "diff": [-1.0, 0.0, 2.0], "rssi": [-80.0, -60.0]}
    png = realism_report.plot_png({"sphere": {"_hist": h}, "sim_S": {"_hist": h}})
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    assert realism_report._fmt_rng({"min": 1.0, "median": 2.0, "max": np.float64(3.0)}) == (
        "1.00 – 3.00 (median 2.00)")
