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
                     "ADuCM3029, STM32L4"]
    assert "runs/demo/sketch" in md


def test_bad_epochs_is_one_line_exit_2(capsys):
    assert demo.main(["--epochs", "0", "--out", "unused"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["error: --epochs 0: must be a positive integer"]
