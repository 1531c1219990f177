"""fit_report: ranking, CSV round trip, Markdown rows and plot points of a hand-made leaderboard."""
from __future__ import annotations

import csv
import io

from keras_tinyloc.experiments import fit_report

TARGET = {"name": "CC2650", "ram_bytes": 20480, "flash_bytes": 131072, "clock_mhz": 48.0}


def rows():
    base = {"family": "mlp", "hidden": 8, "layers": 1, "levers": "plain", "params": 100, "fits": True,
            "ram_need_bytes": 15000, "flash_need_bytes": 90000, "arena_bytes": 2000, "need_basis": "host + margin"}
    return [
        {**base, "key": "a", "status": "complete", "selection": "s", "val_f1": 0.8, "val_f1_int8": 0.81},
        {**base, "key": "b", "status": "winner", "selection": "s", "val_f1": 0.9, "val_f1_int8": 0.91,
         "test_f1_int8": 0.7, "test_acc_int8": 0.75},
        {**base, "key": "c", "status": "pruned", "selection": "s", "val_f1": 0.95},
        {**base, "key": "d", "status": "does not fit", "selection": "s", "fits": False, "ram_need_bytes": 40000},
        {**base, "key": "e", "status": "not run", "selection": "s"},
        {**base, "key": "f", "status": "complete", "selection": "s", "val_f1": 0.7, "val_f1_int8": 0.81,
         "params": 50},
    ]


def test_ranking_puts_the_winner_first_and_ranks_only_scored_rows():
    r = fit_report.rank_rows(rows())
    assert [x["key"] for x in r] == ["b", "f", "a", "c", "e", "d"]  # f before a: same int8 F1, fewer parameters
    assert [x["rank"] for x in r] == [1, 2, 3, None, None, None]


def test_csv_round_trip_and_markdown_rows():
    text = fit_report.leaderboard_csv(rows())
    back = list(csv.DictReader(io.StringIO(text)))
    assert [b["key"] for b in back] == ["b", "f", "a", "c", "e", "d"]
    assert back[0]["test_f1_int8"] == "0.7" and all(b["test_f1_int8"] == "" for b in back[1:])
    assert list(back[0]) == list(fit_report.COLUMNS)
    md = fit_report.leaderboard_markdown(rows(), {"dataset": "toy", "target": TARGET, "seed": 0, "budget": "5 min",
                                                  "counts": "6 candidates", "device": "host"})
    table = [ln for ln in md.splitlines() if ln.startswith("| ") and not ln.startswith("| rank")]
    assert len(table) == 6 and table[0].startswith("| 1 | b | plain | **winner** | 91.00 | 90.00 | 14.6 |")
    assert "# fit: toy on CC2650 (20 KiB RAM, 128 KiB flash, 48 MHz)" in md


def test_plot_points_use_int8_f1_when_converted_and_skip_rows_without_f1(tmp_path):
    pts = {p["key"]: p for p in fit_report.plot_points(rows())}
    assert set(pts) == {"a", "b", "c", "f"}
    assert pts["b"]["f1"] == 0.91 and pts["c"]["f1"] == 0.95 and pts["a"]["ram"] == 15000
    png = fit_report.plot_f1_vs_ram(rows(), 20480, "t", tmp_path / "p.png")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
