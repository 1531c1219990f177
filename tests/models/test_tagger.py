"""CRFTagger: training step equals the CRF NLL, .keras round-trip, decode = Viterbi; build_tagger dispatch."""
import numpy as np
import pytest
import keras
import tensorflow as tf

from keras_tinyloc.errors import TinyLocError
from keras_tinyloc.models import build_tagger
from keras_tinyloc.models.crf import viterbi_numpy
from keras_tinyloc.models.tagger import CRFTagger


def _data(n=64, steps=5, feats=4, c=3, seed=0):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, c, size=(n, steps)).astype("int32")
    x = (np.eye(c, feats)[y] * 0.8 + rng.uniform(0, 0.2, size=(n, steps, feats))).astype("float32")
    y[::4, :2] = -1
    return x, y


def test_build_tagger_mlp_shapes_and_seed():
    a = build_tagger("mlp", (5, 4), 3, hidden=8, layers=2, seed=1)
    b = build_tagger("mlp", (5, 4), 3, hidden=8, layers=2, seed=1)
    assert isinstance(a, CRFTagger) and a.n_classes == 3 and a.window_shape == (5, 4)
    x, _ = _data()
    assert a(x[:2]).shape == (2, 5, 3)
    for wa, wb in zip(a.get_weights(), b.get_weights()):
        np.testing.assert_array_equal(wa, wb)
    # emitter (4*8+8 + 8*8+8 + 8*3+3) + CRF (9 + 3 + 3)
    assert a.count_params() == 40 + 72 + 27 + 15


@pytest.mark.parametrize(
    "args",
    [("lstm", (5, 4), 3, 8, 1), ("mlp", (5, 4), 3, 0, 1), ("mlp", (5, 4), 3, 8, -1), ("mlp", (5, 4), 0, 8, 1)],
)
def test_build_tagger_rejects_bad_input(args):
    with pytest.raises(TinyLocError):
        build_tagger(*args)


def test_train_step_loss_is_mean_nll_and_decreases():
    x, y = _data()
    model = build_tagger("mlp", (5, 4), 3, hidden=8, layers=1, seed=0)
    model.compile(optimizer=keras.optimizers.Adam(1e-2))
    em = model(x, training=False)
    nll = model.crf.nll(em, y).numpy()
    labelled = (y >= 0).any(axis=1)
    expected = nll[labelled].mean()
    assert model.evaluate(x, y, batch_size=len(x), verbose=0) == pytest.approx(expected, rel=1e-5)
    hist = model.fit(x, y, batch_size=16, epochs=5, verbose=0)
    assert hist.history["loss"][-1] < hist.history["loss"][0]


def test_unlabelled_batch_gives_zero_loss():
    x, y = _data(n=8)
    y[:] = -1
    model = build_tagger("mlp", (5, 4), 3, hidden=4, layers=1)
    model.compile(optimizer="adam")
    assert model.evaluate(x, y, verbose=0) == 0.0


def test_keras_round_trip_and_decode(tmp_path):
    x, y = _data()
    model = build_tagger("mlp", (5, 4), 3, hidden=8, layers=1, seed=2)
    model.compile(optimizer=keras.optimizers.Adam(1e-2))
    model.fit(x, y, batch_size=16, epochs=2, verbose=0)
    path = tmp_path / "m.keras"
    model.save(path)
    loaded = keras.models.load_model(path)
    assert isinstance(loaded, CRFTagger)
    np.testing.assert_allclose(loaded.emissions(x), model.emissions(x), atol=1e-6)
    for a, b in zip(loaded.crf.get_weights(), model.crf.get_weights()):
        np.testing.assert_array_equal(a, b)
    dec = model.decode(x, batch_size=7)
    np.testing.assert_array_equal(loaded.decode(x), dec)
    w = model.crf_weights()
    np.testing.assert_array_equal(dec, viterbi_numpy(model.emissions(x), w["transitions"], w["start"], w["end"]))


def test_single_step_windows():
    rng = np.random.default_rng(0)
    x = rng.uniform(size=(32, 1, 6)).astype("float32")
    y = (x[:, :, 0] > 0.5).astype("int32")
    model = build_tagger("mlp", (1, 6), 2, hidden=4, layers=1)
    model.compile(optimizer=keras.optimizers.Adam(1e-2))
    model.fit(x, y, epochs=1, verbose=0)
    em = model.emissions(x)
    expected = np.argmax(em[:, 0] + model.crf.start.numpy() + model.crf.end.numpy(), axis=1)
    np.testing.assert_array_equal(model.decode(x)[:, 0], expected)
