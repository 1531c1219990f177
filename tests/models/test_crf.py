"""CRF layer vs brute-force enumeration of every label sequence on tiny cases (T <= 4, C <= 3)."""
import itertools
import os

os.environ.setdefault("KERAS_BACKEND", "tensorflow")

import keras
import numpy as np
import pytest
import tensorflow as tf

from keras_tinyloc.models.crf import CRF, marginals_numpy, viterbi_numpy


def _random_crf(c, rng):
    crf = CRF(c)
    crf.transitions.assign(rng.normal(size=(c, c)).astype("float32"))
    crf.start.assign(rng.normal(size=c).astype("float32"))
    crf.end.assign(rng.normal(size=c).astype("float32"))
    return crf


def _score(em, y, trans, start, end):
    s = start[y[0]] + end[y[-1]] + sum(em[t, y[t]] for t in range(len(y)))
    return s + sum(trans[y[t - 1], y[t]] for t in range(1, len(y)))


def _brute(em, trans, start, end):
    """All sequences of one window (T,C) -> (sequences, log-probabilities)."""
    steps, c = em.shape
    seqs = list(itertools.product(range(c), repeat=steps))
    scores = np.array([_score(em, y, trans, start, end) for y in seqs], np.float64)
    logz = np.log(np.sum(np.exp(scores - scores.max()))) + scores.max()
    return seqs, scores - logz


CASES = [(1, 3), (2, 2), (3, 3), (4, 3), (4, 2)]


@pytest.mark.parametrize("steps,c", CASES)
def test_nll_matches_enumeration_with_partial_labels(steps, c):
    rng = np.random.default_rng(steps * 10 + c)
    crf = _random_crf(c, rng)
    w = [v.numpy().astype(np.float64) for v in (crf.transitions, crf.start, crf.end)]
    em = rng.normal(size=(5, steps, c)).astype("float32") * 2
    labels = rng.integers(0, c, size=(5, steps))
    labels[1, 0] = -1  # partially labelled
    labels[2, :] = -1  # unlabelled window
    labels[3, :-1] = -1  # only the last step labelled
    got = crf.nll(em, labels).numpy()
    for b in range(5):
        seqs, logp = _brute(em[b].astype(np.float64), *w)
        keep = [i for i, y in enumerate(seqs) if all(l < 0 or l == yt for l, yt in zip(labels[b], y))]
        expected = -np.log(np.sum(np.exp(logp[keep])))
        assert got[b] == pytest.approx(expected, abs=1e-4)
    assert got[2] == 0.0


@pytest.mark.parametrize("steps,c", CASES)
def test_viterbi_and_marginals_match_enumeration(steps, c):
    rng = np.random.default_rng(100 + steps * 10 + c)
    crf = _random_crf(c, rng)
    w = [v.numpy().astype(np.float64) for v in (crf.transitions, crf.start, crf.end)]
    em = rng.normal(size=(6, steps, c)).astype("float32") * 2
    vit_tf = crf.viterbi(em).numpy()
    vit_np = viterbi_numpy(em, *w)
    marg_tf = crf.marginals(em).numpy()
    marg_np = marginals_numpy(em, *w)
    assert vit_tf.dtype == np.int32 and vit_tf.shape == (6, steps)
    for b in range(6):
        seqs, logp = _brute(em[b].astype(np.float64), *w)
        best = seqs[int(np.argmax(logp))]
        np.testing.assert_array_equal(vit_np[b], best)
        np.testing.assert_array_equal(vit_tf[b], best)
        p = np.exp(logp)
        expected = np.zeros((steps, c))
        for y, py in zip(seqs, p):
            expected[np.arange(steps), list(y)] += py
        np.testing.assert_allclose(marg_np[b], expected, atol=1e-9)
        np.testing.assert_allclose(marg_tf[b], expected, atol=1e-5)
        np.testing.assert_allclose(crf.log_marginals(em).numpy()[b], np.log(expected), atol=1e-4)


def test_log_partition_and_temperature_match_enumeration():
    rng = np.random.default_rng(7)
    crf = _random_crf(3, rng)
    w = [v.numpy().astype(np.float64) for v in (crf.transitions, crf.start, crf.end)]
    em = rng.normal(size=(2, 3, 3)).astype("float32")
    tau = 2.5
    for b in range(2):
        seqs, logp = _brute(em[b].astype(np.float64), *w)
        scores = np.array([_score(em[b], y, *w) for y in seqs])
        assert crf.log_partition(em).numpy()[b] == pytest.approx(float(scores[0] - logp[0]), abs=1e-4)
        # tempered distribution p(y) ∝ exp(s(y)/tau)
        q = np.exp(scores / tau - np.max(scores / tau))
        q /= q.sum()
        expected = np.zeros((3, 3))
        for y, qy in zip(seqs, q):
            expected[np.arange(3), list(y)] += qy
        np.testing.assert_allclose(marginals_numpy(em[b], *w, temperature=tau), expected, atol=1e-9)
        np.testing.assert_allclose(crf.marginals(em, temperature=tau).numpy()[b], expected, atol=1e-5)


def test_viterbi_numpy_ties_pick_lowest_index():
    c = 3
    em = np.zeros((1, 2, c))
    path = viterbi_numpy(em, np.zeros((c, c)), np.zeros(c), np.zeros(c))
    np.testing.assert_array_equal(path, [[0, 0]])
    em[0, 1, 2] = 1.0
    np.testing.assert_array_equal(viterbi_numpy(em[0], np.zeros((c, c)), np.zeros(c), np.zeros(c)), [0, 2])


def test_compiled_gradients_and_jit():
    rng = np.random.default_rng(3)
    crf = _random_crf(3, rng)
    em = tf.constant(rng.normal(size=(4, 4, 3)).astype("float32"))
    labels = tf.constant([[0, -1, 2, 1], [-1, -1, -1, -1], [1, 1, 1, 1], [-1, 2, -1, 0]])

    @tf.function(jit_compile=True)
    def step(e):
        with tf.GradientTape() as tape:
            tape.watch(e)
            loss = tf.reduce_sum(crf.nll(e, labels))
        return loss, tape.gradient(loss, [e, crf.transitions]), crf.viterbi(e), crf.marginals(e)

    loss, (ge, gt), vit, marg = step(em)
    assert np.isfinite(ge.numpy()).all() and np.isfinite(gt.numpy()).all()
    # the unlabelled window has no gradient; labelled windows do
    np.testing.assert_array_equal(ge.numpy()[1], 0.0)
    assert np.abs(ge.numpy()[0]).sum() > 0
    assert loss.numpy() == pytest.approx(float(tf.reduce_sum(crf.nll(em, labels))), rel=1e-5)
    np.testing.assert_array_equal(vit.numpy(), crf.viterbi(em).numpy())
    np.testing.assert_allclose(marg.numpy(), crf.marginals(em).numpy(), atol=1e-6)


def test_get_config_round_trip():
    crf = _random_crf(3, np.random.default_rng(0))
    clone = CRF.from_config(crf.get_config())
    assert clone.n_classes == 3 and clone.transitions.shape == (3, 3)
    clone.set_weights(crf.get_weights())
    em = np.random.default_rng(1).normal(size=(2, 4, 3)).astype("float32")
    np.testing.assert_array_equal(clone.viterbi(em).numpy(), crf.viterbi(em).numpy())
    restored = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(crf))
    assert isinstance(restored, CRF) and restored.n_classes == 3
