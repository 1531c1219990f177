"""Conversion in the three modes, int8 rejection of float islands / TFLM-incompatible ops, convert_run, CLI errors."""
import json

import numpy as np
import pytest

from keras_tinyloc.deploy import convert, mcu, tflm
from keras_tinyloc.data.base import MinMaxScaling, WindowDataset
from keras_tinyloc.errors import TinyLocError

T, F, C = 10, 6, 3


def _toy_dataset(n_features=F, seed=0):
    """Separable toy windows: class c lights up feature c; labels constant per window, one unlabelled step."""
    rng = np.random.default_rng(seed)

    def split(n):
        y = np.repeat(rng.integers(0, C, (n, 1)), T, axis=1).astype(np.int32)
        x = np.clip(0.25 * rng.random((n, T, n_features)) + 0.6 * np.eye(C, n_features)[y], 0, 1).astype(np.float32)
        y[:, 0] = -1
        return x, y

    (xtr, ytr), (xv, yv), (xte, yte) = split(240), split(40), split(80)
    return WindowDataset("toy", xtr, ytr, xv, yv, xte, yte, [f"room{i}" for i in range(C)],
                         [f"ap{i}" for i in range(n_features)],
                         MinMaxScaling(np.full(n_features, -110, np.float32), np.zeros(n_features, np.float32)))


def _emitter(kind="plain", hidden=8, n_features=F):
    import keras

    inp = keras.Input((T, n_features))
    h = keras.layers.Dense(hidden, activation="relu")(inp)
    if kind == "conv":
        h = keras.layers.Conv1D(hidden, 3, padding="causal")(h)
    elif kind == "layernorm":
        h = keras.layers.LayerNormalization()(h)
    elif kind == "exp":
        h = keras.layers.Lambda(lambda v: keras.ops.exp(v))(h)
    elif kind == "wide":
        h = keras.layers.Dense(256, activation="relu")(h)
    return keras.Model(inp, keras.layers.Dense(C)(h), name=f"{kind}_emitter")


@pytest.fixture(scope="module")
def ds():
    return _toy_dataset()


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory, ds):
    """A real RUN_DIR written by train (mlp family, a few epochs on the toy data)."""
    from keras_tinyloc.training.train import TrainConfig, train

    out = tmp_path_factory.mktemp("runs") / "mlp"
    train(TrainConfig(dataset="toy", model="mlp", hidden=8, layers=1, out=str(out), epochs=8, patience=8,
                      batch_size=32, lr=1e-2, jit_compile=False, verbose=False), dataset=ds, log=lambda s: None)
    return out


def _litert_io(buf):
    from ai_edge_litert import interpreter as litert

    it = litert.Interpreter(model_content=buf)
    return it.get_input_details()[0], it.get_output_details()[0]


def test_convert_emitter_in_three_modes(ds):
    em = _emitter("wide")
    b_int8 = convert.convert_emitter(em, "int8", ds.x_train)
    b_float = convert.convert_emitter(em, "float")
    b_dyn = convert.convert_emitter(em, "dynamic")
    din, dout = _litert_io(b_int8)
    assert din["dtype"] == dout["dtype"] == np.int8 and tuple(din["shape"]) == (1, T, F)
    din, dout = _litert_io(b_float)
    assert din["dtype"] == np.float32 and tuple(dout["shape"]) == (1, T, C)
    # float flatbuffer computes what Keras computes
    y, _ = tflm.run_litert(b_float, ds.x_test[:8])
    np.testing.assert_allclose(y, em.predict(ds.x_test[:8], verbose=0), atol=1e-5)
    # dynamic range stores weight tensors of >= 1024 elements (here 8x256) as int8: smaller than float
    from keras_tinyloc.deploy.tflite_inspect import inspect_tflite

    assert len(b_dyn) < len(b_float) and "int8" in {t.dtype for t in inspect_tflite(b_dyn).tensors}
    assert len(b_int8) < len(b_float)


def test_strip_tensor_names_keeps_the_graph_and_16_byte_alignment(ds):
    from tflite_micro.tensorflow.lite.micro.python import schema_py_generated as schema

    from keras_tinyloc.deploy.tflite_inspect import inspect_tflite

    named = convert.convert_emitter(_emitter("conv"), "int8", ds.x_train)
    stripped = convert.strip_tensor_names(named)
    a, b = inspect_tflite(named), inspect_tflite(stripped)
    assert len(stripped) < len(named)
    assert [t.name for t in b.tensors] == [f"t{i}" for i in range(len(a.tensors))]
    assert [(t.dtype, t.shape, t.scale, t.zero_point) for t in a.tensors] == \
        [(t.dtype, t.shape, t.scale, t.zero_point) for t in b.tensors]
    assert [(o.name, o.inputs, o.outputs) for o in a.ops] == [(o.name, o.inputs, o.outputs) for o in b.ops]
    model = schema.Model.GetRootAsModel(stripped, 0)
    starts = [model.Buffers(i)._tab.Vector(model.Buffers(i)._tab.Offset(4))
              for i in range(model.BuffersLength()) if model.Buffers(i).DataLength()]
    assert starts and all(s % 16 == 0 for s in starts)
    x = quantize_like(named, ds.x_test[:20])
    np.testing.assert_array_equal(tflm.run_tflm(named, x)[0], tflm.run_tflm(stripped, x)[0])


def quantize_like(buf, x):
    from keras_tinyloc.deploy.quantize import quantize

    din, _ = _litert_io(buf)
    return quantize(x, *din["quantization"])


def test_int8_rejects_a_float_island_naming_the_op(ds):
    with pytest.raises(TinyLocError, match=r"float op\(s\) left in the int8 graph: [A-Z_]+#\d+"):
        convert.convert_emitter(_emitter("layernorm"), "int8", ds.x_train)


def test_int8_rejects_ops_tflm_cannot_run(ds):
    with pytest.raises(TinyLocError, match="EXP"):
        convert.convert_emitter(_emitter("exp"), "int8", ds.x_train)


def test_representative_data_of_the_wrong_shape(ds):
    with pytest.raises(TinyLocError, match=r"representative data has shape \(240, 10, 7\)"):
        convert.convert_emitter(_emitter(), "int8", _toy_dataset(n_features=F + 1).x_train)
    with pytest.raises(TinyLocError, match="--quant"):
        convert.convert_emitter(_emitter(), "int4", ds.x_train)


def test_convert_run_int8_writes_everything_and_measures_through_tflm(run_dir, ds, tmp_path):
    out, sketch = tmp_path / "int8", tmp_path / "toy_sketch"
    rep = convert.convert_run(convert.ConvertConfig(run_dir=str(run_dir), out=str(out), sketch=str(sketch)),
                              dataset=ds)
    assert (sketch / "model_settings.h").read_text() == (out / "model_settings.h").read_text()
    assert (sketch / "toy_sketch.ino").is_file()
    files = sorted(p.name for p in out.iterdir())
    assert {"model.tflite", "model_data.cc", "model_data.h", "model_settings.h", "report.json", "report.md"} <= set(files)
    assert sorted(rep["device_files"] + [".keras_tinyloc.json", "model.tflite", "report.json", "report.md"]) == files
    on_disk = json.loads((out / "report.json").read_text())
    assert on_disk["test_f1_int8"] == rep["test_f1_int8"]
    buf = (out / "model.tflite").read_bytes()
    assert rep["flatbuffer_bytes"] == len(buf) and rep["float_ops"] == []
    assert rep["calibration"] == "mse" and rep["calibration_clipped_tensors"] >= 0  # the default ranges
    # float F1 equals what train measured with the TF CRF decoder (an independent Viterbi)
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert rep["test_f1_float"] == pytest.approx(metrics["test_f1"], abs=1e-9)
    assert rep["params"] == metrics["params"]
    assert abs(rep["test_f1_int8"] - rep["test_f1_float"]) <= 0.02
    assert rep["arena_bytes"] >= rep["arena_head_bytes"] + rep["arena_tail_bytes"] > 0
    assert tflm.arena_works(buf, rep["arena_bytes"])
    assert rep["mcu_fit"] == mcu.fit(rep["arena_bytes"], len(buf))
    assert rep["tflm_matches_litert"]["max_diff_steps"] <= 1 and rep["invoke_us_tflm"] > 0
    settings = (out / "model_settings.h").read_text()
    assert f"kTensorArenaSize = {rep['arena_bytes'] + 256};" in settings
    assert "AddFullyConnected" in settings
    md = (out / "report.md").read_text()
    assert f"| flatbuffer (flash), tensor names stripped | {len(buf):,} B" in md and "bit-identical" in md
    assert "| int8 calibration | mse (" in md


def test_convert_run_dynamic_is_host_only(run_dir, ds, tmp_path):
    rep = convert.convert_run(convert.ConvertConfig(run_dir=str(run_dir), quant="dynamic", out=str(tmp_path / "d")),
                              dataset=ds)
    assert rep["deployable_tflm"] is False and rep["arena_bytes"] is None
    assert not any(v["fits"] for v in rep["mcu_fit"].values())
    assert sorted(p.name for p in (tmp_path / "d").iterdir()) == [".keras_tinyloc.json", "model.tflite", "report.json",
                                                                   "report.md"]


def test_unsupported_op_run_is_rejected_without_partial_output(ds, tmp_path):
    from keras_tinyloc.models.tagger import CRFTagger
    from keras_tinyloc.training.train import write_run

    import keras

    inp = keras.Input((T, F))
    h = keras.layers.Activation("gelu")(keras.layers.Dense(8)(inp))
    tagger = CRFTagger(keras.Model(inp, keras.layers.Dense(C)(h)))
    run = write_run(tmp_path / "gelu_run", tagger, {"dataset": "toy", "model": "custom"}, {"test_f1": 0.0}, False)
    out = tmp_path / "out"
    with pytest.raises(TinyLocError, match="GELU"):
        convert.convert_run(convert.ConvertConfig(run_dir=str(run), out=str(out)), dataset=ds)
    assert not out.exists() and [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


def _cli(capsys, argv):
    rc = convert.main(argv)
    err = capsys.readouterr().err.strip().splitlines()
    return rc, err


def test_cli_bad_inputs_exit_2_with_one_line(run_dir, tmp_path, capsys):
    rc, err = _cli(capsys, [str(run_dir), "--quant", "float", "--sketch", str(tmp_path / "sk")])
    assert rc == 2 and len(err) == 1 and "--sketch needs --quant int8" in err[0]

    rc, err = _cli(capsys, [str(tmp_path / "nope")])
    assert rc == 2 and len(err) == 1 and "nope" in err[0]

    empty = tmp_path / "empty_run"
    empty.mkdir()
    for name in ("config.json", "metrics.json"):
        (empty / name).write_text((run_dir / name).read_text())
    rc, err = _cli(capsys, [str(empty)])
    assert rc == 2 and len(err) == 1 and "model.keras: missing" in err[0]

    (empty / "model.keras").write_bytes(b"PK\x03\x04 not really a zip")
    rc, err = _cli(capsys, [str(empty), "--out", str(tmp_path / "o")])
    assert rc == 2 and len(err) == 1 and "cannot load the model" in err[0]
    assert not (tmp_path / "o").exists()

    blocker = tmp_path / "a_file"
    blocker.write_text("x")
    rc, err = _cli(capsys, [str(run_dir), "--out", str(blocker / "sub" / "out")])
    assert rc == 2 and err == [f"error: --out {blocker}/sub/out: cannot write there ({blocker} is not a writable folder)"]


def test_cli_is_dispatched_from_the_package_cli(capsys):
    from keras_tinyloc import cli

    with pytest.raises(SystemExit) as exc:
        cli.main(["convert", "--help"])
    assert exc.value.code == 0 and "--quant" in capsys.readouterr().out


def test_int8_float_island_is_retried_then_accepted(monkeypatch):
    """The TF quantizer intermittently leaves a float island; convert_emitter converts again before giving up."""
    import keras

    from keras_tinyloc.deploy import convert, tflite_inspect

    inp = keras.Input((4, 3))
    model = keras.Model(inp, keras.layers.Dense(2)(inp))
    real_check, calls = tflite_inspect.check_int8, []

    def flaky_check(info, what=""):
        calls.append(what)
        if len(calls) == 1:
            raise TinyLocError(f"{what}: not deployable as full int8: 1 float op(s) left in the int8 graph: UNPACK#3")
        return real_check(info, what=what)

    monkeypatch.setattr(tflite_inspect, "check_int8", flaky_check)
    rep = np.random.default_rng(0).random((16, 4, 3), dtype="float32")
    buf = convert.convert_emitter(model, "int8", rep)
    assert len(calls) == 2
    real_check(tflite_inspect.inspect_tflite(buf), what="the retried conversion")  # integer-only: no raise


def test_int8_persistent_float_island_fails_after_all_attempts(monkeypatch):
    import keras

    from keras_tinyloc.deploy import convert, tflite_inspect

    inp = keras.Input((4, 3))
    model = keras.Model(inp, keras.layers.Dense(2)(inp))
    calls = []

    def always_float(info, what=""):
        calls.append(what)
        raise TinyLocError(f"{what}: not deployable as full int8: 1 float op(s) left in the int8 graph: UNPACK#3")

    monkeypatch.setattr(tflite_inspect, "check_int8", always_float)
    rep = np.random.default_rng(0).random((16, 4, 3), dtype="float32")
    with pytest.raises(TinyLocError, match=r"UNPACK#3 \(after 4 conversion attempt\(s\)\)"):
        convert.convert_emitter(model, "int8", rep)
    assert len(calls) == convert.INT8_ATTEMPTS


def test_convert_run_exports_the_access_point_selection(run_dir, ds, tmp_path):
    """A dataset loaded with an AP selection (meta["feature_index"]) puts kFeatureIndex in model_settings.h."""
    import dataclasses

    picked = list(range(10, 10 + ds.n_features))  # raw AP columns the model's inputs come from
    sel = dataclasses.replace(ds, meta={**ds.meta, "feature_index": picked})
    out = tmp_path / "int8-sel"
    convert.convert_run(convert.ConvertConfig(run_dir=str(run_dir), out=str(out)), dataset=sel)
    settings = (out / "model_settings.h").read_text()
    body = settings.split("kFeatureIndex[kNumFeatures] = {", 1)[1].split("}", 1)[0]
    assert [int(v) for v in body.replace("\n", " ").split(",") if v.strip()] == picked
    plain = tmp_path / "int8-plain"
    convert.convert_run(convert.ConvertConfig(run_dir=str(run_dir), out=str(plain)), dataset=ds)
    assert "kFeatureIndex" not in (plain / "model_settings.h").read_text()


def test_powed_input_model_converts_to_full_int8_and_runs_in_tflm(ds):
    """`train --input-power 3` puts x**3 (two MULs) in front of the emitter: still integer-only, still runs in TFLM."""
    from keras_tinyloc.deploy import tflite_inspect
    from keras_tinyloc.models import powed_emitter

    model = powed_emitter(_emitter(), ds.input_shape, 3)
    buf = convert.convert_emitter(model, "int8", ds.x_train)
    info = tflite_inspect.inspect_tflite(buf)
    tflite_inspect.check_int8(info, what="powed")  # raises, naming ops, on any float island
    plain = tflite_inspect.inspect_tflite(convert.convert_emitter(_emitter(), "int8", ds.x_train))
    assert [op.name for op in info.ops].count("MUL") == [op.name for op in plain.ops].count("MUL") + 2
    y, _ = tflm.run_tflm(buf, np.zeros((2, *ds.input_shape), np.int8))
    assert y.shape == (2, ds.window, ds.n_classes)


def test_calibration_minmax_is_recorded_and_is_a_cli_choice(run_dir, ds, tmp_path):
    out = tmp_path / "mm"
    rep = convert.convert_run(convert.ConvertConfig(run_dir=str(run_dir), out=str(out), calibration="minmax"), dataset=ds)
    on_disk = json.loads((out / "report.json").read_text())
    assert rep["calibration"] == on_disk["calibration"] == "minmax" and on_disk["calibration_clipped_tensors"] == 0
    assert "| int8 calibration | minmax |" in (out / "report.md").read_text()
    assert convert.build_parser().parse_args([str(run_dir)]).calibration == "mse"
    assert convert.build_parser().parse_args([str(run_dir), "--calibration", "minmax"]).calibration == "minmax"


def test_device_settings_take_a_recordings_grid(tmp_path):
    """A recordings dataset at 10 Hz with 2 s windows and a 1 s hop: model_settings.h must cut the same windows."""
    from keras_tinyloc.data.recordings import load_recordings

    rng = np.random.default_rng(0)
    rows = ["time,ap,rssi,room,session"]
    for s in range(3):
        for k in range(10 * 240):
            room = ("hall", "kitchen")[(k // 600) % 2]
            rows += [f"{0.1 * k:.1f},{ap},{-50 - 25 * (room != loud) - int(rng.integers(0, 5))},{room},s{s}"
                     for ap, loud in (("b1", "hall"), ("b2", "kitchen")) if rng.random() < 0.8]
    (tmp_path / "r.csv").write_text("\n".join(rows) + "\n")
    ds = load_recordings(tmp_path / "r.csv", rate_hz=10, window_s=2, hop_s=1)
    rep = {"input": {"scale": 1 / 255, "zero_point": -128}, "output": {"scale": 0.1, "zero_point": 0},
           "arena_bytes": 4096, "ops": ["FULLY_CONNECTED"]}
    crf = {"transitions": np.zeros((2, 2)).tolist(), "start": [0.0, 0.0], "end": [0.0, 0.0]}
    s = convert._device_settings(rep, ds, crf, 256, "mine")
    assert (s.window, s.hop, s.step_ms, s.ffill_steps) == (20, 10, 100, 10)
    assert s.class_names == ["hall", "kitchen"] and s.feature_names == ["b1", "b2"]


def test_report_names_rooms_and_access_points_and_no_folder_of_the_recordings():
    rep = {"class_names": ["hall", "living room"], "feature_names": [f"b{i}" for i in range(20)]}
    assert convert._names_lines(rep) == [
        "Rooms (class index order): `hall`, `living room`.",
        "Access points (input order): " + ", ".join(f"`b{i}`" for i in range(16)) + " … (20 in all).", ""]
    assert convert._dataset_shown("/home/someone/homes/my_flat.csv") == "my_flat.csv"
    assert convert._dataset_shown("house-a") == "house-a"


def test_convert_run_cortex_m4_adds_the_device_section(run_dir, ds, tmp_path, m4_lib):
    """--target cortex-m4: the device section (emulated M4), the MCU fit on whole-firmware figures, and the M4 arena
    in model_settings.h for 32-bit builds."""
    out = tmp_path / "m4"
    rep = convert.convert_run(convert.ConvertConfig(run_dir=str(run_dir), out=str(out), target="cortex-m4"), dataset=ds)
    dev = rep["device"]
    assert rep["target"] == "cortex-m4" and rep["mcu_fit_basis"] == convert.DEVICE_FIT_BASIS
    assert 0 < dev["arena_bytes"] < rep["arena_bytes"]  # 32-bit structs: less than the host's minimum
    assert dev["flash_bytes"] == sum(dev[f"flash_{p}_bytes"] for p in ("tflm", "model", "app", "libc"))
    assert dev["flash_model_bytes"] >= rep["flatbuffer_bytes"] and dev["ram_bytes"] == sum(dev["ram_split"].values())
    assert dev["outputs_identical_share"] == 1.0 and dev["n_compared"] == min(len(ds.x_test),
                                                                               convert.DEVICE_COMPARE_WINDOWS)
    fit = mcu.fit(dev["ram_bytes"], dev["flash_bytes"])
    assert rep["mcu_fit"] == fit and rep["ram_classes"] == mcu.ram_classes(dev["ram_bytes"], dev["flash_bytes"])
    assert json.loads((out / "report.json").read_text())["device"]["arena_bytes"] == dev["arena_bytes"]
    settings = (out / "model_settings.h").read_text()
    assert "#if UINTPTR_MAX > 0xFFFFFFFFu" in settings
    assert f"constexpr int kArenaMeasuredBytes = {dev['arena_bytes']};" in settings
    assert f"constexpr int kArenaMeasuredBytes = {rep['arena_bytes']};" in settings
    md = (out / "report.md").read_text()
    assert "## Device: QEMU mps2-an386" in md
    assert f"| tensor arena, minimal working on the M4 | {dev['arena_bytes']:,} B (host 64-bit: {rep['arena_bytes']:,} B" in md
    assert f"| flash = whole firmware (text + data) | {dev['flash_bytes']:,} B = TFLM {dev['flash_tflm_bytes']:,}" in md
    msp = next(ln for ln in md.splitlines() if ln.startswith("| MSP430FR5969 (2 KB / 64 KB) | MSP430 (16-bit), 16 MHz | "))
    assert msp.endswith("| no | no | – | – |")  # runs TFLM: no; fits: no; no latency or energy


def test_target_is_checked_before_any_work(run_dir, tmp_path, capsys, monkeypatch):
    out = tmp_path / "never"
    rc, err = _cli(capsys, [str(run_dir), "--out", str(out), "--target", "cortex-m4", "--quant", "dynamic"])
    assert rc == 2 and err == ["error: --target cortex-m4 needs --quant int8 (the device runs the int8 model), got "
                               "--quant dynamic"]
    monkeypatch.setenv("TFLM_DIR", str(tmp_path))  # not a kit: an explicit device target fails, auto falls back
    rc, err = _cli(capsys, [str(run_dir), "--out", str(out), "--target", "cortex-m4"])
    assert rc == 2 and len(err) == 1 and err[0].startswith(f"error: --target cortex-m4: $TFLM_DIR={tmp_path}: not a TFLM kit")
    assert not out.exists()
    assert convert.resolve_target("auto", "int8") == "host" and convert.resolve_target("host", "int8") == "host"
    with pytest.raises(TinyLocError, match="--target 'm7'"):
        convert.resolve_target("m7", "int8")
