"""Quantization-aware fine-tuning: fq is inert outside QAT, the STE forward/backward, observed ranges, a full run."""
import json

import numpy as np
import pytest

from keras_tinyloc.errors import TinyLocError

from keras_tinyloc.training import qat

T, F, C = 6, 5, 3


@pytest.fixture(scope="module")
def toy():
    from keras_tinyloc.data.base import MinMaxScaling, WindowDataset

    rng = np.random.default_rng(0)

    def split(n):
        y = np.repeat(rng.integers(0, C, (n, 1)), T, axis=1).astype(np.int32)
        x = np.clip(0.3 * rng.random((n, T, F)) + 0.5 * np.eye(C, F)[y], 0, 1).astype(np.float32)
        return x, y

    (xtr, ytr), (xv, yv), (xte, yte) = split(160), split(40), split(60)
    return WindowDataset("toy", xtr, ytr, xv, yv, xte, yte, [f"r{i}" for i in range(C)],
                         [f"ap{i}" for i in range(F)],
                         MinMaxScaling(np.full(F, -110, np.float32), np.zeros(F, np.float32)))


@pytest.fixture(scope="module")
def mamba_run(tmp_path_factory, toy):
    from keras_tinyloc.training.train import TrainConfig, train

    out = tmp_path_factory.mktemp("runs") / "mamba"
    train(TrainConfig(dataset="toy", model="mamba", hidden=4, layers=1, out=str(out), epochs=3, patience=3,
                      batch_size=32, lr=1e-2, verbose=False), dataset=toy, log=lambda s: None)
    return out


def test_qat_finetune_writes_a_float_run_that_converts(mamba_run, toy, tmp_path):
    from keras_tinyloc.deploy import convert
    from keras_tinyloc.training.train import load_run

    out = tmp_path / "qat"
    lines: list[str] = []
    metrics = qat.qat_finetune(qat.QATConfig(run_dir=str(mamba_run), out=str(out), epochs=2, patience=2,
                                             verbose=True), dataset=toy, log=lines.append)
    assert len(lines) == 3 and "simulated int8" in lines[-1]
    config = json.loads((out / "config.json").read_text())
    assert config["qat"]["from"] == str(mamba_run) and config["qat"]["simulated_tensors"] > 20
    assert 0 <= metrics["sim_int8_test_f1"] <= 1 and metrics["epochs_run"] == 2
    tagger, _, on_disk = load_run(out)
    assert not any(layer.name.startswith("fq_tap") for layer in tagger.emitter.layers)  # saved without the taps
    assert on_disk["test_f1"] == pytest.approx(metrics["test_f1"])
    assert config["crf"] == tagger.crf_weights()
    rep = convert.convert_run(convert.ConvertConfig(run_dir=str(out), out=str(tmp_path / "int8")), dataset=toy)
    assert rep["float_ops"] == [] and rep["test_f1_float"] == pytest.approx(metrics["test_f1"], abs=1e-9)


def test_qat_cli_errors_are_one_line(mamba_run, tmp_path, capsys):
    from keras_tinyloc import cli

    for argv, msg in (([str(mamba_run), "--out", str(mamba_run)], "must differ from RUN_DIR"),
                      ([str(mamba_run), "--out", str(tmp_path / "o"), "--epochs", "0"], "--epochs 0"),
                      ([str(tmp_path / "missing"), "--out", str(tmp_path / "o2")], "missing")):
        rc = cli.main(["qat"] + argv)
        err = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
        assert rc == 2 and len(err) == 1 and msg in err[0], (argv, err)
    assert not (tmp_path / "o").exists() and not (tmp_path / "o2").exists()


def test_control_fine_tuning_runs_without_simulation(mamba_run, toy, tmp_path):
    from keras_tinyloc.training.train import load_run

    start, _, _ = load_run(mamba_run)
    metrics = qat.qat_finetune(qat.QATConfig(run_dir=str(mamba_run), out=str(tmp_path / "ctl"), epochs=1, patience=1,
                                             simulate=False), dataset=toy, log=lambda s: None)
    config = json.loads((tmp_path / "ctl" / "config.json").read_text())
    assert config["qat"]["simulate"] is False and config["qat"]["simulated_tensors"] == 0
    assert metrics["sim_int8_test_f1"] is None
    tuned, _, _ = load_run(tmp_path / "ctl")
    assert any(not np.array_equal(a, b) for a, b in zip(start.get_weights(), tuned.get_weights()))  # it trained
    assert qat.build_parser().parse_args([str(mamba_run), "--out", "x", "--no-simulation"]).simulate is False


def test_qat_refuses_data_the_run_was_not_trained_on(mamba_run, toy, tmp_path):
    """The feature contract: 7 of the 8 access points (or the 8 in another order) must not reach the model."""
    import dataclasses

    from keras_tinyloc.training.qat import QATConfig, qat_finetune

    fewer = dataclasses.replace(toy, x_train=toy.x_train[..., 1:], x_val=toy.x_val[..., 1:],
                                x_test=toy.x_test[..., 1:], feature_names=toy.feature_names[1:],
                                scaling=type(toy.scaling)(toy.scaling.low[1:], toy.scaling.high[1:]))
    with pytest.raises(TinyLocError) as exc:
        qat_finetune(QATConfig(run_dir=str(mamba_run), out=str(tmp_path / "q")), dataset=fewer)
    assert str(exc.value) == (f"{mamba_run}: the data does not match what the model was trained on — access points: "
                              f"the run has {F} access points, the data {F - 1}; missing from the data: ap0")
    swapped = dataclasses.replace(toy, feature_names=[toy.feature_names[1], toy.feature_names[0],
                                                      *toy.feature_names[2:]])
    with pytest.raises(TinyLocError, match="same access points in another order .position 0: the run has 'ap0', "
                                           "the data 'ap1'."):
        qat_finetune(QATConfig(run_dir=str(mamba_run), out=str(tmp_path / "q")), dataset=swapped)
    assert not (tmp_path / "q").exists()

