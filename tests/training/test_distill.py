"""Distiller: loss = alpha*L_S + (1-alpha)*L_D against NumPy/brute force; frozen teacher; distill() run dir."""
import itertools

import keras
import numpy as np
import pytest

from keras_tinyloc.training.distill import DistillConfig, Distiller, distill
from keras_tinyloc.errors import TinyLocError
from keras_tinyloc.models import build_tagger
from keras_tinyloc.models.crf import marginals_numpy, viterbi_numpy
from keras_tinyloc.training.train import TrainConfig, load_run, train
from helpers import toy_dataset as _dataset


def _brute_nll(em, labels, trans, start, end):
    steps, c = em.shape
    scores = {}
    for y in itertools.product(range(c), repeat=steps):
        s = start[y[0]] + end[y[-1]] + sum(em[t, y[t]] for t in range(steps))
        scores[y] = s + sum(trans[y[t - 1], y[t]] for t in range(1, steps))
    allv = np.array(list(scores.values()))
    keep = np.array([v for y, v in scores.items() if all(l < 0 or l == yt for l, yt in zip(labels, y))])
    return np.log(np.exp(allv).sum()) - np.log(np.exp(keep).sum())


def _randomise_crf(tagger, rng):
    c = tagger.n_classes
    tagger.crf.transitions.assign(rng.normal(size=(c, c)).astype("float32"))
    tagger.crf.start.assign(rng.normal(size=c).astype("float32"))
    tagger.crf.end.assign(rng.normal(size=c).astype("float32"))


def _weights(t):
    return [np.asarray(v, np.float64) for v in t.crf.get_weights()]


@pytest.mark.parametrize("temperature", [None, 2.0])
def test_loss_equals_formula(temperature):
    rng = np.random.default_rng(0)
    student = build_tagger("mlp", (3, 2), 3, hidden=4, layers=1, seed=1)
    teacher = build_tagger("mlp", (3, 2), 3, hidden=6, layers=1, seed=2)
    _randomise_crf(student, rng)
    _randomise_crf(teacher, rng)
    x = rng.uniform(size=(6, 3, 2)).astype("float32")
    y = rng.integers(0, 3, size=(6, 3)).astype("int32")
    y[0] = -1
    y[1, :2] = -1
    alpha = 0.3
    dist = Distiller(student, teacher, alpha=alpha, temperature=temperature)
    dist.compile(optimizer="adam")
    got = dist.evaluate(x, y, batch_size=6, verbose=0, return_dict=True)

    em_s, em_t = student.emissions(x).astype(np.float64), teacher.emissions(x).astype(np.float64)
    nll = [_brute_nll(em_s[b], y[b], *_weights(student)) for b in range(6) if (y[b] >= 0).any()]
    l_s = np.mean(nll)
    if temperature is None:
        target = np.eye(3)[viterbi_numpy(em_t, *_weights(teacher))]
        p = marginals_numpy(em_s, *_weights(student))
        l_d = np.mean(-(target * np.log(p)).sum(-1))
    else:
        target = marginals_numpy(em_t, *_weights(teacher), temperature=temperature)
        p = marginals_numpy(em_s, *_weights(student), temperature=temperature)
        l_d = temperature**2 * np.mean(-(target * np.log(p)).sum(-1))
    assert got["student_loss"] == pytest.approx(l_s, rel=1e-4)
    assert got["distill_loss"] == pytest.approx(l_d, rel=1e-4)
    assert got["loss"] == pytest.approx(alpha * l_s + (1 - alpha) * l_d, rel=1e-4)


def test_teacher_frozen_student_trained():
    ds = _dataset()
    student = build_tagger("mlp", ds.input_shape, 3, hidden=4, layers=1, seed=1)
    teacher = build_tagger("mlp", ds.input_shape, 3, hidden=8, layers=1, seed=2)
    before_t, before_s = teacher.get_weights(), student.get_weights()
    dist = Distiller(student, teacher)
    dist.compile(optimizer=keras.optimizers.Adam(1e-2))
    dist.fit(ds.x_train, ds.y_train, batch_size=32, epochs=2, verbose=0)
    for a, b in zip(before_t, teacher.get_weights()):
        np.testing.assert_array_equal(a, b)
    assert any(not np.array_equal(a, b) for a, b in zip(before_s, student.get_weights()))
    assert {v.path for v in dist.trainable_variables} == {v.path for v in student.trainable_variables}


def test_distill_writes_student_run(tmp_path):
    ds = _dataset()
    common = dict(dataset="toy", model="mlp", layers=1, epochs=2, patience=2, batch_size=32, lr=1e-2,
                  jit_compile=False, verbose=False)
    train(TrainConfig(hidden=16, out=str(tmp_path / "teacher"), **common), dataset=ds)
    cfg = DistillConfig(hidden=4, out=str(tmp_path / "student"), teacher=str(tmp_path / "teacher"),
                        temperature=2.0, **common)
    metrics = distill(cfg, dataset=ds)
    student, config, saved = load_run(tmp_path / "student")
    assert saved["test_f1"] == metrics["test_f1"] and 0 <= metrics["test_f1"] <= 1
    assert config["teacher"] == str(tmp_path / "teacher") and config["alpha"] == 0.1 and config["temperature"] == 2.0
    assert config["hidden"] == 4 and student.count_params() == saved["params"] == (3 * 4 + 4) + (4 * 3 + 3) + 15
    assert saved["teacher_test_f1"] == load_run(tmp_path / "teacher")[2]["test_f1"]


def test_distill_bad_input(tmp_path):
    ds = _dataset()
    base = dict(dataset="toy", model="mlp", hidden=4, layers=1, epochs=1, jit_compile=False, verbose=False)
    with pytest.raises(TinyLocError, match="alpha"):
        distill(DistillConfig(out=str(tmp_path / "s"), teacher="t", alpha=1.5, **base), dataset=ds)
    with pytest.raises(TinyLocError, match="no such run"):
        distill(DistillConfig(out=str(tmp_path / "s"), teacher=str(tmp_path / "none"), **base), dataset=ds)
    train(TrainConfig(out=str(tmp_path / "t"), **base), dataset=ds)
    teacher = tmp_path / "t"
    ds.class_names = ["a", "b", "c", "d"]
    with pytest.raises(TinyLocError) as exc:
        distill(DistillConfig(out=str(tmp_path / "s"), teacher=str(teacher), **base), dataset=ds)
    assert str(exc.value) == (f"--teacher {teacher}: the data does not match what the model was trained on — rooms: "
                              f"the run has 3 rooms, the data 4; not in the run: d")
    ds.class_names = ["a", "b", "c"]
    ds.feature_names = ["ap2", "ap1", "ap3"]  # the same beacons, read in another order: the teacher would be misled
    with pytest.raises(TinyLocError) as exc:
        distill(DistillConfig(out=str(tmp_path / "s"), teacher=str(teacher), **base), dataset=ds)
    assert str(exc.value) == (f"--teacher {teacher}: the data does not match what the model was trained on — access "
                              f"points: same access points in another order (position 0: the run has 'ap1', the "
                              f"data 'ap2')")
    assert not (tmp_path / "s").exists()


def test_cli_errors_exit_2(tmp_path, capsys):
    from keras_tinyloc.training import distill as distill_mod

    args = ["--dataset", "toy", "--model", "mlp", "--hidden", "4", "--layers", "1", "--out", str(tmp_path / "s")]
    assert distill_mod.main(["--teacher", str(tmp_path / "none"), *args]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "no such run directory" in err and err.count("\n") == 1
    assert distill_mod.main(["--teacher", str(tmp_path), *args, "--temperature", "0"]) == 2
    assert "--temperature 0.0" in capsys.readouterr().err
    assert distill_mod.main(["--teacher", str(tmp_path), *args, "--offset-db", "8"]) == 2
    assert capsys.readouterr().err.strip() == (
        "error: --offset-db: not supported by distill (the Distiller's train step has no augmentation)")
    assert not (tmp_path / "s").exists()


def test_help_does_not_import_tensorflow():
    """``distill --help`` answers without importing TensorFlow (the Distiller class is built on first use)."""
    import subprocess
    import sys

    code = ("import sys, contextlib, io\n"
            "from keras_tinyloc.training import distill\n"
            "with contextlib.redirect_stdout(io.StringIO()) as out:\n"
            "    try:\n"
            "        distill.main(['--help'])\n"
            "    except SystemExit:\n"
            "        pass\n"
            "print('--teacher' in out.getvalue(), 'tensorflow' in sys.modules)")
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert res.stdout.split() == ["True", "False"], res.stderr
    from keras_tinyloc.training import distill as module

    assert module.Distiller is module.distiller_class() is Distiller  # and the class is there when asked for
