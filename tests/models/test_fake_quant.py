"""Simulated int8: fq is inert outside a simulation, the STE forward/backward, observed ranges, the MSE range math."""
import numpy as np
import pytest

from keras_tinyloc.deploy.quantize import dequantize, quantize
from keras_tinyloc.errors import TinyLocError
from keras_tinyloc.models import fake_quant as fqm

T, F, C = 6, 5, 3


def test_fq_is_the_identity_outside_a_simulation():
    x = np.arange(6, dtype=np.float32)
    assert fqm.fq(x, "any") is x


def test_fake_quant_ste_forward_is_the_int8_round_trip_and_backward_is_straight_through():
    import tensorflow as tf

    lo, hi = -1.0, 3.0
    v = tf.constant(np.random.default_rng(0).uniform(-2, 4, 500).astype(np.float32))
    with tf.GradientTape() as tape:
        tape.watch(v)
        out = fqm.fake_quant_ste(v, lo, hi)
        total = tf.reduce_sum(out)
    grad = tape.gradient(total, v).numpy()
    np.testing.assert_allclose(out.numpy(), fqm.fake_quant(v.numpy(), lo, hi), atol=1e-5)
    s = (hi - lo) / 255
    z = np.round(-128 - lo / s)
    inside = (v.numpy() > (-128 - z) * s) & (v.numpy() < (127 - z) * s)
    assert np.all(grad[inside] == 1.0) and np.all(grad[~inside] == 0.0)


def _mamba():
    import keras

    from keras_tinyloc.models import build_emitter

    keras.utils.set_random_seed(0)
    return build_emitter("mamba", (T, F), C, 4, 1)


def test_observation_covers_layers_and_scan_internals_with_fixed_kernel_ranges():
    em = _mamba()
    x = np.random.default_rng(0).uniform(0, 1, (32, T, F)).astype(np.float32)
    sim = fqm.QuantSim("minmax")
    view = fqm.simulated_emitter(em)
    fqm.observe(sim, view, x)
    keys = set(sim.ranges)
    assert {"embedding", "emissions", "norm_f/l2", "mamba_block_0/scan/g", "mamba_block_0/scan/powers/p16",
            "mamba_block_0/residual"} <= keys
    assert sim.ranges["mamba_block_0/scan/a"] == fqm.LOGISTIC_RANGE and sim.ranges["norm_f/l2"] == fqm.L2NORM_RANGE
    ref = np.asarray(em(x))  # min-max ranges: the embedding range is exactly the observed extremes
    emb = np.asarray(em.get_layer("embedding")(x))
    assert sim.ranges["embedding"] == pytest.approx((min(emb.min(), 0), max(emb.max(), 0)), rel=1e-6)
    with fqm.simulating(sim):
        sim_out = np.asarray(view(x))
    err = np.abs(sim_out - ref)
    assert 0 < err.mean() < 0.1 * np.abs(ref).mean()  # int8 noise, not garbage
    assert np.array_equal(np.asarray(view(x)), ref)  # outside the simulation the view is the float model
    with fqm.simulating(fqm.QuantSim()), pytest.raises(TinyLocError, match="not seen in the observation pass"):
        view(x)


def test_fake_quant_is_the_int8_affine_round_trip():
    lo, hi = -2.0, 6.0
    s = (hi - lo) / 255.0
    z = int(np.round(-128 - lo / s))
    v = np.random.default_rng(0).uniform(-3, 7, 1001)  # no exact .5 ties: np.round and C roundf agree
    fq = fqm.fake_quant(v, lo, hi)
    ref = dequantize(quantize(v.astype(np.float32), s, z), s, z)  # the project's device-side definition
    assert np.allclose(fq, ref, atol=1e-5)
    inside = (v >= lo) & (v <= hi)
    assert np.max(np.abs(fq - v)[inside]) <= s / 2 + 1e-9  # rounding only inside the range
    assert fq.max() == pytest.approx((127 - z) * s) and fq.min() == pytest.approx((-128 - z) * s)  # saturation


def _hist(v, lo, hi, bins=fqm.BINS):
    counts, edges = np.histogram(v, bins=bins, range=(lo, hi))
    return 0.5 * (edges[:-1] + edges[1:]), counts


def _raw_error(v, lo, hi):
    return np.mean((fqm.fake_quant(v, lo, hi) - v) ** 2)


def test_mse_alpha_keeps_a_filled_range():
    rng = np.random.default_rng(0)
    for v in (rng.uniform(-1, 1, 20000), np.concatenate([rng.normal(0, 1, 20000), [9.0, -7.0]])):
        lo, hi = v.min(), v.max()
        alpha, ratio = fqm.mse_alpha(*_hist(v, lo, hi), lo, hi)
        # squared error punishes saturating even two outliers more than it rewards a finer step for the bulk
        assert alpha >= 0.9 and ratio > 0.9
        assert _raw_error(v, alpha * lo, alpha * hi) <= _raw_error(v, lo, hi) * 1.01


def test_mse_alpha_shrinks_a_range_wider_than_the_values():
    """A recorded range far wider than the tensor's values (as the converter records for the per-step slices of the
    unrolled scan, which inherit the whole sequence's range) is shrunk to about the values' extent."""
    v = np.random.default_rng(1).uniform(-0.8, 1.0, 20000)
    alpha, ratio = fqm.mse_alpha(*_hist(v, -8.0, 10.0), -8.0, 10.0)
    assert 0.1 <= alpha <= 0.16 and ratio < 0.05
    assert _raw_error(v, -8 * alpha, 10 * alpha) == pytest.approx(ratio * _raw_error(v, -8.0, 10.0), rel=0.2)
