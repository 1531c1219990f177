"""demo.py: the summary table and bad input (the full chain runs in `make demo` and in the notebooks' tests)."""
from keras_tinyloc import demo


def test_summary_markdown_lists_every_run_in_percent():
    summary = {"dataset": "house-a", "sketch": "runs/demo/sketch", "seconds": 12.5, "rows": [
        {"run": "student_kd", "model": "mamba H8L1", "params": 1432, "val_f1": 0.9, "test_f1_float": 0.7222,
         "test_acc_float": 0.97, "test_f1_int8_tflm": 0.706, "test_acc_int8_tflm": 0.9643, "test_f1_dynamic": None,
         "arena_bytes": 39152, "flatbuffer_bytes": 23700, "mcus_that_fit": ["ADuCM3029", "STM32L4"]}]}
    md = demo.summary_markdown(summary)
    row = [line for line in md.splitlines() if line.startswith("| student_kd")][0]
    cells = [c.strip() for c in row.strip("|").split("|")]
    assert cells == ["student_kd", "mamba H8L1", "1432", "90.00", "72.22", "70.60", "96.43", "—", "39152", "23700",
                     "—", "—", "ADuCM3029, STM32L4 (host)"]
    dev = {**summary["rows"][0], "device_ram_bytes": 36000, "device_flash_bytes": 150000, "fit_basis": "device",
           "mcus_that_fit": ["STM32L4"]}
    row = [ln for ln in demo.summary_markdown({**summary, "rows": [dev]}).splitlines() if ln.startswith("| student_kd")]
    assert row[0].endswith("| 36000 | 150000 | STM32L4 (device) |")
    assert "runs/demo/sketch" in md


def test_bad_epochs_is_one_line_exit_2(capsys):
    assert demo.main(["--epochs", "0", "--out", "unused"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["error: --epochs 0: must be a positive integer"]


def test_the_sketch_gets_the_best_validation_model_that_fits_and_the_summary_says_why():
    rows = [{"run": "teacher", "model": "mdcsa H32L1", "val_f1": 0.97, "arena_bytes": 90000, "mcus_that_fit": []},
            {"run": "student", "model": "mamba H8L1", "val_f1": 0.95, "arena_bytes": 39000,
             "mcus_that_fit": ["STM32L4"]},
            {"run": "student_kd", "model": "mamba H8L1", "val_f1": 0.93, "arena_bytes": 39000,
             "mcus_that_fit": ["STM32L4"]}]
    chosen, why = demo.choose_sketch_model(rows)
    assert chosen["run"] == "student"  # the teacher scores higher but fits no MCU
    assert why == ("the best validation macro-F1 (95.00 %) among the int8 models that fit an MCU of the paper's "
                   "table; chosen on validation, not on the test split the table reports")
    none_fit = [dict(r, mcus_that_fit=[]) for r in rows]
    assert demo.choose_sketch_model(none_fit)[0]["run"] == "teacher"
    tie = [dict(rows[1], arena_bytes=50000), dict(rows[2], val_f1=0.95)]
    assert demo.choose_sketch_model(tie)[0]["run"] == "student_kd"  # same F1: the smaller arena
    summary = {"dataset": "house-a", "sketch": "runs/demo/sketch", "seconds": 1.0, "rows": [],
               "sketch_model": {"run": "student", "model": "mamba H8L1", "why": why}, "simulated": True}
    md = demo.summary_markdown(summary)
    assert "with **student** (mamba H8L1): the best validation macro-F1" in md
    assert "`house-a` here is a **simulated** house" in md
    assert "arena = the RAM the TFLM interpreter needs while it runs" in md
    assert "simulated" not in demo.summary_markdown(dict(summary, simulated=False))


def test_demo_takes_a_recordings_path(capsys):
    assert demo.main(["--dataset", "no/such.csv", "--out", "unused"]) == 2
    assert capsys.readouterr().err == "error: no/such.csv: no such recordings file or folder\n"
