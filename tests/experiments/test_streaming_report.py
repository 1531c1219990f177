"""keras_tinyloc.experiments.streaming_report: the committed report is the rendering of the committed result document
(round trip), and the targets' verdicts follow the numbers when they change."""
from __future__ import annotations

import copy
import json

import pytest

from keras_tinyloc import paths
from keras_tinyloc.experiments import streaming_report

RESULTS = paths.REPO_ROOT / "docs" / "results"


@pytest.fixture(scope="module")
def committed():
    return json.loads((RESULTS / "streaming.json").read_text())


def test_committed_report_is_the_rendering_of_the_committed_json(committed):
    md = streaming_report.markdown(committed, committed.get("argv", []))
    assert md == (RESULTS / "streaming.md").read_text()


def test_verdicts_follow_the_numbers(committed):
    res = copy.deepcopy(committed)
    hb = res["houses"]["house-b"]
    hb["mamba"]["H4L1"]["f1_int8_step_tflm"] = hb["mlp"]["f1_int8_tflm"] + 0.01  # the H4L1 now beats the MLP
    res["houses"]["house-a"]["mamba"]["H8L1"]["agree_int8_step_vs_float_window_all"] = 0.995
    for hh in res["houses"].values():
        for name in ("H8L1", "H4L1"):
            hh["mamba"][name]["arena_bytes"] = 8000
    lines = "\n".join(streaming_report.targets_section(res))
    # wins: best of H8L1/H4L1 above the MLP -> house-a (0.720 > 0.718), house-b (now), house-c (0.720 > 0.702)
    assert "wins on house-a, house-b, house-c and **does not win on house-d**" in lines
    assert "<= 8 KiB for the 32 KB-class configurations" in lines and "8,000 B" in lines
    assert ": **met** on the host figure" in lines
    assert "house-a H8L1: int8 step model (TFLM) decoded last-step labels agree with the float windowed model on " \
           "99.50 % of" in lines and "(**met**, target 99 %)" in lines
    # the MLP's arena against the H8L1 step model's, averaged over the houses: 8000 / 2224
    assert "the MLP's arena 3.6x smaller" in lines
    res["houses"]["house-c"]["mamba"]["H8L1"]["arena_bytes"] = 8193
    assert ": **not met** on the host figure" in "\n".join(streaming_report.targets_section(res))


def test_ram_classes_in_words():
    assert streaming_report._classes(2224, 3520) == "20 KB, 32 KB, 64 KB"
    assert streaming_report._classes(10 ** 7, 10 ** 7) == "none"
