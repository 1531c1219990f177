"""Online CRF decoding: fixed-lag Viterbi equals prefix Viterbi, forward filtering equals prefix marginals."""
from __future__ import annotations

import numpy as np
import pytest

from keras_tinyloc.errors import TinyLocError
from keras_tinyloc.models import online_crf as OC
from keras_tinyloc.models.crf import marginals_numpy, viterbi_numpy

C = 4


def _crf(rng, c=C):
    return (rng.normal(0, 1, (c, c)).astype(np.float32), rng.normal(0, 1, c).astype(np.float32),
            rng.normal(0, 1, c).astype(np.float32))


@pytest.mark.parametrize("lag", [0, 1, 3, 7])
def test_fixed_lag_viterbi_is_prefix_viterbi(lag):
    rng = np.random.default_rng(lag)
    trans, start, end = _crf(rng)
    em = rng.normal(0, 2, (40, C)).astype(np.float32)
    em[10:14] = em[10:14, :1]  # ties
    dec = OC.OnlineViterbi(trans, start, end, lag=lag)
    for t in range(len(em)):
        r = dec.push(em[t])
        if t < lag:
            assert r is None
            continue
        assert r == (t - lag, int(viterbi_numpy(em[: t + 1], trans, start, end)[t - lag]))
    full = viterbi_numpy(em, trans, start, end)
    got = dec.run(em)
    np.testing.assert_array_equal(got[-(lag + 1):], full[-(lag + 1):])
    # lag 0 on a window is the windowed decoder's last step
    if lag == 0:
        np.testing.assert_array_equal(got, [viterbi_numpy(em[: t + 1], trans, start, end)[-1] for t in range(len(em))])


def test_fixed_lag_bad_lag():
    trans, start, end = _crf(np.random.default_rng(0))
    with pytest.raises(TinyLocError):
        OC.OnlineViterbi(trans, start, end, lag=-1)


def test_forward_filter_is_prefix_marginal():
    rng = np.random.default_rng(5)
    trans, start, _ = _crf(rng)
    em = rng.normal(0, 2, (15, C))
    ff = OC.ForwardFilter(trans, start)
    for t in range(len(em)):
        lab = ff.push(em[t])
        want = marginals_numpy(em[: t + 1], trans, start, np.zeros(C))[-1]
        np.testing.assert_allclose(np.exp(ff.log_probs), want, rtol=1e-9, atol=1e-12)
        assert lab == int(np.argmax(want))
