"""augment: offset, noise and AP drop-out arithmetic (NumPy and TF twins) against independent per-value checks."""
from __future__ import annotations

import numpy as np
import pytest

from keras_tinyloc.training.augment import AugmentConfig, augment_numpy, augment_tf, inverse_span
from keras_tinyloc.errors import TinyLocError

LOW = np.array([-110, -100, -90, -80, -50], np.float32)
HIGH = np.array([-30, -40, -50, -80, 0], np.float32)  # feature 3 has zero span (never heard)


def _x(n=3000, seed=0):
    rng = np.random.default_rng(seed)
    x = (rng.random((n, 2, 5)) * (rng.random((n, 2, 5)) < 0.6)).astype(np.float32)
    x[:, :, 3] = 0.0
    return x


def test_inverse_span():
    np.testing.assert_allclose(inverse_span(LOW, HIGH), [1 / 80, 1 / 60, 1 / 40, 0.0, 1 / 50], rtol=1e-6)
    with pytest.raises(TinyLocError):
        inverse_span([0.0, 1.0], [1.0, 0.0])


def _check_offset(x, out, inv):
    """Each window's heard values moved by one dB offset; pushed <= 0 -> 0; clipped at 1; unheard stay 0."""
    span = np.where(inv > 0, 1 / np.where(inv > 0, inv, 1), 0)
    assert np.all(out[x == 0] == 0)
    for b in range(len(x)):
        heard = x[b] > 0
        inner = heard & (out[b] > 0) & (out[b] < 1)
        if not inner.any():
            continue
        d = ((out[b] - x[b]) * span[None, :])[inner]  # the offset in dB, the same for every inner value
        np.testing.assert_allclose(d, d[0], atol=2e-3)
        expect = x[b] + d[0] * inv[None, :]
        np.testing.assert_allclose(out[b][heard], np.where(expect > 0, np.minimum(expect, 1), 0)[heard], atol=1e-5)


def test_offset_numpy_and_tf():
    import keras

    x, inv = _x(300), inverse_span(LOW, HIGH)
    cfg = AugmentConfig(offset_db=12.0)
    out = augment_numpy(x, inv, cfg, np.random.default_rng(1))
    _check_offset(x, out, inv)
    out_tf = augment_tf(x, inv, cfg, keras.random.SeedGenerator(3)).numpy()
    _check_offset(x, out_tf, inv)
    assert not np.allclose(out_tf, x)
    assert out.min() >= 0 and out.max() <= 1 and out_tf.min() >= 0 and out_tf.max() <= 1


def test_drop_rate_and_whole_window_drop():
    import keras

    x, inv = _x(), inverse_span(LOW, HIGH)
    cfg = AugmentConfig(p_drop=0.3)
    for out in (augment_numpy(x, inv, cfg, np.random.default_rng(2)),
                augment_tf(x, inv, cfg, keras.random.SeedGenerator(5)).numpy()):
        kept = out > 0
        assert np.all(out[kept] == x[kept])  # no offset: kept values unchanged
        # a dropped (window, AP) is silent at every step: kept pattern is x's pattern times a per-(b, f) mask
        both = (x[:, 0] > 0) & (x[:, 1] > 0)
        assert np.array_equal(kept[:, 0][both], kept[:, 1][both])
        rate = 1 - kept[x > 0].mean()
        assert abs(rate - 0.3) < 0.02


def test_noise_statistics_and_identity():
    import keras

    x, inv = _x(), inverse_span(LOW, HIGH)
    assert augment_tf(x, inv, AugmentConfig(), keras.random.SeedGenerator(0)) is x
    np.testing.assert_array_equal(augment_numpy(x, inv, AugmentConfig(), np.random.default_rng(0)), x)
    out = augment_numpy(x, inv, AugmentConfig(noise_db=2.0), np.random.default_rng(4))
    inner = (x > 0) & (out > 0) & (out < 1) & (x > 0.2) & (x < 0.8)
    d_db = ((out - x) / np.where(inv > 0, inv, 1)[None, None, :])[inner]
    assert abs(d_db.mean()) < 0.1 and abs(d_db.std() - 2.0) < 0.1


@pytest.mark.parametrize("kw", [dict(p_drop=1.0), dict(p_drop=-0.1), dict(offset_db=-1), dict(noise_db=float("nan"))])
def test_bad_config(kw):
    with pytest.raises(TinyLocError):
        AugmentConfig(**kw)
