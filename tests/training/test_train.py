"""train(): RUN_DIR contents, repeatability, early stopping, bad input; load_run() round trip and errors."""
import json

import numpy as np
import pytest

from keras_tinyloc.training import train as train_mod
from keras_tinyloc.errors import TinyLocError
from keras_tinyloc.training.metrics import window_metrics
from keras_tinyloc.training.train import TrainConfig, load_run, train

from helpers import toy_dataset as _dataset


def _cfg(out, **kw):
    base = dict(dataset="toy", model="mlp", hidden=8, layers=1, out=str(out), epochs=3, patience=3,
                batch_size=32, lr=1e-2, seed=0, jit_compile=False, verbose=False)
    base.update(kw)
    return TrainConfig(**base)


def test_train_writes_run_and_is_repeatable(tmp_path):
    ds = _dataset()
    lines = []
    m1 = train(_cfg(tmp_path / "r1", verbose=True), dataset=ds, log=lines.append)
    m2 = train(_cfg(tmp_path / "r2"), dataset=ds)
    assert sorted(p.name for p in (tmp_path / "r1").iterdir()) == [".keras_tinyloc.json", "config.json", "metrics.json",
                                                                   "model.keras"]
    for key in ("val_f1", "val_acc", "test_f1", "test_acc"):
        assert 0.0 <= m1[key] <= 1.0 and m1[key] == m2[key]
    assert m1["epochs_run"] == 3 and m1["params"] == (3 * 8 + 8) + (8 * 3 + 3) + 9 + 6
    assert sum(line.startswith("epoch") for line in lines) == 3
    tagger, config, metrics = load_run(tmp_path / "r1")
    assert metrics == json.loads((tmp_path / "r1" / "metrics.json").read_text())
    assert config["input_shape"] == [4, 3] and config["class_names"] == ["a", "b", "c"]
    assert config["scaling"] == {"low": [-110.0] * 3, "high": [-40.0] * 3} and config["model"] == "mlp"
    np.testing.assert_allclose(config["crf"]["transitions"], tagger.crf.transitions.numpy(), rtol=1e-7)
    # the saved metrics are those of the restored (best) weights
    m = window_metrics(ds.y_test, tagger.decode(ds.x_test))
    assert metrics["test_f1"] == pytest.approx(m["f1"]) and metrics["test_acc"] == pytest.approx(m["acc"])
    assert metrics["val_f1"] == max(h["val_f1"] for h in metrics["history"])


def test_refuses_occupied_run_dir_unless_overwrite(tmp_path):
    out = tmp_path / "run"
    out.mkdir()
    (out / "keep.txt").write_text("x")
    with pytest.raises(TinyLocError, match="not empty"):
        train(_cfg(out, epochs=1), dataset=_dataset())
    assert (out / "keep.txt").exists()
    with pytest.raises(TinyLocError) as exc:  # --overwrite never deletes a file keras_tinyloc did not write
        train(_cfg(out, epochs=1, overwrite=True), dataset=_dataset())
    assert str(exc.value) == (f"--out {out}: --overwrite would delete what keras_tinyloc did not write there "
                              f"(keep.txt); move it away or choose another folder")
    (out / "keep.txt").unlink()
    train(_cfg(out, epochs=1), dataset=_dataset())
    first = (out / "model.keras").read_bytes()
    with pytest.raises(TinyLocError, match="not empty"):
        train(_cfg(out, epochs=1), dataset=_dataset())
    train(_cfg(out, epochs=2, overwrite=True), dataset=_dataset())  # an earlier run is replaced
    assert (out / "model.keras").read_bytes() != first


@pytest.mark.parametrize(
    "kw,match",
    [({"model": "lstm"}, "unknown model"), ({"hidden": 0}, "hidden"), ({"layers": -1}, "layers"),
     ({"epochs": 0}, "epochs"), ({"lr": float("nan")}, "lr"), ({"weight_decay": -1.0}, "weight-decay"),
     ({"ap_dropout": 1.0}, "ap-dropout")],
)
def test_bad_config(tmp_path, kw, match):
    with pytest.raises(TinyLocError, match=match):
        train(_cfg(tmp_path / "run", **kw), dataset=_dataset())
    assert not (tmp_path / "run").exists()


def test_nan_loss_stops_and_writes_nothing(tmp_path):
    ds = _dataset()
    ds.x_train[3, 0, 0] = np.nan
    with pytest.raises(TinyLocError, match="NaN"):
        train(_cfg(tmp_path / "run", epochs=2), dataset=ds)
    assert list(tmp_path.iterdir()) == []


def test_bad_labels(tmp_path):
    ds = _dataset()
    ds.y_val[0, 0] = 3
    with pytest.raises(TinyLocError, match="y_val has label 3"):
        train(_cfg(tmp_path / "run"), dataset=ds)
    ds = _dataset()
    ds.y_test[:, -1] = -1
    with pytest.raises(TinyLocError, match="test split has no window with a labelled last step"):
        train(_cfg(tmp_path / "run"), dataset=ds)


def test_load_run_errors(tmp_path):
    with pytest.raises(TinyLocError, match="no such run"):
        load_run(tmp_path / "nope")
    run = tmp_path / "run"
    run.mkdir()
    with pytest.raises(TinyLocError, match="config.json: missing"):
        load_run(run)
    (run / "config.json").write_text('{"model": "mlp"}')
    (run / "metrics.json").write_text("{")
    with pytest.raises(TinyLocError, match="metrics.json: cannot read JSON"):
        load_run(run)
    (run / "metrics.json").write_text("{}")
    with pytest.raises(TinyLocError, match="model.keras: missing"):
        load_run(run)
    (run / "model.keras").write_bytes(b"not a zip")
    with pytest.raises(TinyLocError, match="model.keras: cannot load"):
        load_run(run)


def test_cli_errors_exit_2(tmp_path, capsys):
    out = tmp_path / "run"
    args = ["--model", "mlp", "--hidden", "4", "--layers", "1", "--out", str(out)]
    assert train_mod.main(["--dataset", "nowhere", *args]) == 2
    assert "unknown dataset 'nowhere'" in capsys.readouterr().err
    assert train_mod.main(["--dataset", "uji", *args[:2], "--hidden", "-3", *args[4:]]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: --hidden -3") and err.count("\n") == 1
    assert not out.exists()


def test_ap_dropout_augmentation():
    from keras_tinyloc.training.train import make_dataset, scaled_floor

    ds = _dataset()
    floor = scaled_floor(ds)
    np.testing.assert_allclose(floor, 0.0)  # fill -120 dBm is below the scaling's low (-110): clipped to 0
    rng = np.random.default_rng(1)
    x = rng.uniform(0.1, 1.0, size=(400, 4, 3)).astype("float32")
    x[:, 0, :] = 0.0  # steps at the floor stay there
    y = rng.integers(0, 3, size=(400, 4)).astype("int32")
    batches = list(make_dataset(x, y, 100, shuffle=False, seed=3, ap_dropout=0.3, floor=floor))
    xa = np.concatenate([b[0].numpy() for b in batches])
    np.testing.assert_array_equal(np.concatenate([b[1].numpy() for b in batches]), y)
    dropped = xa != x
    assert np.all(xa[dropped] == 0.0) and not dropped[:, 0, :].any()
    assert abs(dropped[:, 1:, :].mean() - 0.3) < 0.03
    again = np.concatenate([b[0].numpy() for b in make_dataset(x, y, 100, False, 3, 0.3, floor)])
    np.testing.assert_array_equal(again, xa)
    plain = np.concatenate([b[0].numpy() for b in make_dataset(x, y, 100, shuffle=False, seed=3)])
    np.testing.assert_array_equal(plain, x)


def test_input_power_and_offset_augmentation_round_trip(tmp_path):
    """--input-power K puts x**K inside the saved model; --offset-db trains through the augmenting train step."""
    ds = _dataset()
    metrics = train(_cfg(tmp_path / "pow", model_options={"input_power": 3}, offset_db=8.0), dataset=ds)
    tagger, config, saved = load_run(tmp_path / "pow")
    assert saved["test_f1"] == metrics["test_f1"] and config["offset_db"] == 8.0
    assert config["model_options"] == {"input_power": 3}
    names = [layer.name for layer in tagger.emitter.layers]
    assert names[1:3] == ["pow_2", "pow_3"]
    x = ds.x_test[:5]
    inner = tagger.emitter.layers[-1]  # the family's emitter, fed x**3 by the two Multiply layers
    np.testing.assert_allclose(np.asarray(tagger.emitter(x)), np.asarray(inner(x ** 3)), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("kw, match", [({"offset_db": -1.0}, "--offset-db -1.0"),
                                       ({"model_options": {"input_power": 0}}, "--input-power 0")])
def test_bad_augmentation_and_power(tmp_path, kw, match):
    with pytest.raises(TinyLocError, match=match):
        train(_cfg(tmp_path / "bad", **kw), dataset=_dataset())
    assert not (tmp_path / "bad").exists()


def test_cli_accepts_input_power_and_offset(tmp_path):
    ns = train_mod.build_parser().parse_args(["--dataset", "toy", "--model", "mlp", "--hidden", "4", "--layers", "1",
                                              "--out", str(tmp_path / "r"), "--input-power", "3", "--offset-db", "8"])
    kw = train_mod.config_kwargs(ns)
    assert kw["model_options"] == {"input_power": 3} and kw["offset_db"] == 8.0

def test_a_recordings_path_and_its_options_are_recorded_and_reloaded(tmp_path):
    """--dataset PATH with --window-s/--hop-s: config.json records the options and the names, and load_run_dataset
    (what convert, distill and qat call) rebuilds byte-identical windows."""
    from keras_tinyloc.data.registry import load_dataset

    rng = np.random.default_rng(0)
    rows = ["time,ap,rssi,room,session"]
    for s in range(3):
        for k in range(5 * 240):
            room = ("hall", "kitchen")[(k // 300) % 2]
            for ap, loud in (("b1", "hall"), ("b2", "kitchen")):
                if rng.random() < 0.8:
                    rows.append(f"{0.2 * k:.1f},{ap},{-50 - 25 * (room != loud) - int(rng.integers(0, 5))},{room},s{s}")
    f = tmp_path / "house.csv"
    f.write_text("\n".join(rows) + "\n")
    out = tmp_path / "run"
    assert train_mod.main(["--dataset", str(f), "--window-s", "2", "--hop-s", "1", "--model", "mlp", "--hidden", "4",
                           "--layers", "1", "--epochs", "1", "--out", str(out), "--quiet"]) == 0
    config = json.loads((out / "config.json").read_text())
    assert config["dataset"] == str(f) and config["dataset_options"] == {"window_s": 2.0, "hop_s": 1.0}
    assert config["class_names"] == ["hall", "kitchen"] and config["feature_names"] == ["b1", "b2"]
    assert config["input_shape"] == [10, 2]
    again = train_mod.load_run_dataset(config)
    ref = load_dataset(str(f), window_s=2.0, hop_s=1.0)
    assert again.x_test.tobytes() == ref.x_test.tobytes() and again.meta["hop"] == 5
    assert train_mod.main(["--dataset", "house-a", "--rate-hz", "10", "--model", "mlp", "--hidden", "4", "--layers",
                           "1", "--out", str(tmp_path / "r2")]) == 2


@pytest.mark.parametrize("name", ["config.json", "metrics.json"])
def test_load_run_refuses_json_that_is_not_an_object(tmp_path, name):
    train(_cfg(tmp_path / "run", epochs=1), dataset=_dataset())
    (tmp_path / "run" / name).write_text("[1, 2, 3]\n")
    with pytest.raises(TinyLocError) as exc:
        load_run(tmp_path / "run")
    assert str(exc.value) == f"{tmp_path / 'run' / name}: not a JSON object (found list)"
