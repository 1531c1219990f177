"""deploy/sketch_readme.py: the sketch's README names this model's rooms, APs, arena and the exact boot lines — the
boot lines checked against the format strings of the sketch sources themselves."""
from __future__ import annotations

import dataclasses
import json
import re

import pytest

from keras_tinyloc.deploy import export_c
from keras_tinyloc.deploy.sketch_readme import boot_lines, sketch_readme
from keras_tinyloc.paths import REPO_ROOT

APP = REPO_ROOT / "tflm_app"


def settings(**kw) -> export_c.DeviceSettings:
    base = dict(model_name="kitchen_m8", window=20, n_features=3, n_classes=3,
                class_names=["hall", "living | dining", "kitchen"], feature_names=["ap-hall", "ap-living", "ap-kit"],
                scale_low=[-120.0, -120.0, -120.0], scale_high=[-40.0, -45.5, -50.0], fill_dbm=-120.0,
                input_scale=1 / 255, input_zero_point=-128, output_scale=0.05, output_zero_point=3,
                transitions=[[0.0] * 3 for _ in range(3)], start=[0.0] * 3, end=[0.0] * 3, arena_bytes=26848,
                arena_margin_bytes=256, ops=["FULLY_CONNECTED"], hop=10)
    base.update(kw)
    return export_c.DeviceSettings(**base)


def c_format(fmt: str, *values) -> str:
    """Apply a C printf format of ``%d``/``%s``/``%u`` conversions (what the sketch prints)."""
    parts = re.split(r"%[dsu]", fmt)
    assert len(parts) == len(values) + 1
    return "".join(p + (str(v) if i < len(values) else "") for i, (p, v) in enumerate(
        zip(parts, [*values, ""])))


@pytest.fixture
def conv(tmp_path):
    d = tmp_path / "tflite-int8"
    d.mkdir()
    export_c.write_model_settings(d, settings())
    (d / "report.json").write_text(json.dumps({
        "dataset": str(tmp_path / "homes" / "my_flat.csv"), "model": "mamba", "hidden": 8, "layers": 1,
        "params": 1432, "flatbuffer_bytes": 23700, "test_f1_int8": 0.9123, "test_f1_float": 0.9201}))
    return d


def test_readme_names_this_models_rooms_aps_and_arena(conv, tmp_path):
    text = sketch_readme(conv, "my_flat")
    assert text.startswith("# my_flat: `kitchen_m8` on a microcontroller\n")
    assert "| model | `kitchen_m8`: mamba H8L1, 1,432 parameters, trained on `my_flat.csv` |" in text
    assert "| input | windows of T = 20 steps × F = 3 access points: 200 ms steps, a window every 10 steps" in text
    assert "| tensor arena | 27104 bytes = measured minimum 26848 (on a 64-bit host" in text
    assert "| test macro-F1 | 91.23 % int8 in TFLM (92.01 % float)" in text
    section = text.split("## Rooms")[1].split("## Access points")[0]
    rooms = [ln for ln in section.splitlines() if re.match(r"\| \d+ \| ", ln)]
    assert rooms == ["| 0 | hall |", "| 1 | living \\| dining |", "| 2 | kitchen |"]
    assert "| 1 | ap-living | -120 .. -45.5 |" in text
    assert str(tmp_path) not in text  # no folder of this machine


def test_boot_lines_are_what_the_sketch_prints(conv):
    ino = (APP / "arduino" / "tflm_app" / "tflm_app.ino").read_text()
    fmt = re.search(r'"(# arena %d bytes = [^"]*)"', ino).group(1)
    arena_line, ready = boot_lines(settings())
    assert arena_line == c_format(fmt, 26848 + 256, 26848, 256, "N")
    app = (APP / "core" / "tinyloc_app.cpp").read_text()
    assert re.search(r'Str\("ready "\)\.Str\(model_name_\)\.Str\(" T="\)\.Int\(s_->window\)\.Str\(" F="\)'
                     r'\.Int\(s_->n_features\)\.Str\(" C="\)\.Int\(\s*s_->n_classes\)', app)
    assert ready == "ready kitchen_m8 T=20 F=3 C=3"
    text = sketch_readme(conv, "my_flat")
    assert f"```\n{arena_line}\n{ready}\n```" in text
    # with a Cortex-M4 measurement, a 32-bit board declares the device figure (model_settings.h's #else branch)
    dev = dataclasses.replace(settings(), arena_device_bytes=20000)
    assert boot_lines(dev)[0] == c_format(fmt, 20256, 20000, 256, "N")


def test_a_streaming_model_gets_the_stream_sketchs_ready_line(conv):
    (conv / "step_settings.h").write_text("constexpr int kLag = 7;  // fixed-lag Viterbi\n")
    ino = (APP / "arduino" / "tflm_app_stream" / "tflm_app_stream.ino").read_text()
    fmt = re.search(r'"(ready %s stream [^"]*)"', ino).group(1)
    s = settings()
    assert boot_lines(s, stream=True, lag=7) == [c_format(fmt, "kitchen_m8", 3, 3, 7, 0, 26848 + 256)]
    text = sketch_readme(conv, "my_flat")
    assert "ready kitchen_m8 stream F=3 C=3 lag=7 stagger=0 arena=27104" in text
    assert "fixed-lag decoding, lag 7 steps" in text
