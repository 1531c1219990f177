"""The streaming Mamba step model: stepping it T times from zero states equals the windowed emitter (float)."""
from __future__ import annotations

import numpy as np
import pytest

from keras_tinyloc.errors import TinyLocError
from keras_tinyloc.models import mamba_step as MS

from helpers import mamba_windows, small_mamba

T, F, C = 12, 5, 4


def test_float_step_equals_windowed_emissions(calibrated_mamba):
    em, x = calibrated_mamba
    step = MS.build_step_model(em)
    assert [tuple(t.shape) for t in step.inputs] == [(1, F), (1, 3, 16), (1, 16, 16)]
    assert [tuple(t.shape) for t in step.outputs] == [(1, C), (1, 3, 16), (1, 16, 16)]
    # weights are shared, not copied
    assert {id(w) for w in step.weights} <= {id(w) for w in em.weights}
    got, seen = MS.run_float(step, x[:16])
    want = np.asarray(em.predict(x[:16], verbose=0))
    np.testing.assert_allclose(got, want, rtol=0, atol=2e-5 * np.abs(want).max())
    # states fed at t = 0 are the zeros of the windowed model's causal padding and g_{-1} = 0
    assert all(np.all(s[:, 0] == 0) for s in seen)
    # the SSM state is the windowed scan's state (unscaled g = n h, scaled by 1/(s_e s_n))
    blk = em.get_layer("mamba_block_0")
    scan_in, _ = blk.scan_inputs(em.get_layer("embedding")(x[:16]))
    g = np.asarray(blk.scan.states(scan_in)) / np.outer(blk.scan.state_scale_e, blk.scan.state_scale_n)
    np.testing.assert_allclose(seen[1][:, 1:], g[:, :-1], atol=2e-5 * np.abs(g).max())


def test_folded_step_equals_windowed_emissions(calibrated_mamba):
    em, x = calibrated_mamba
    step = MS.build_step_model(em, folded=True)
    assert {id(w) for w in step.weights} <= {id(w) for w in em.weights}
    got, _ = MS.run_float(step, x[:16])
    want = np.asarray(em.predict(x[:16], verbose=0))
    np.testing.assert_allclose(got, want, rtol=0, atol=2e-5 * np.abs(want).max())


def test_two_blocks_and_single_batch_call():
    em = small_mamba(hidden=4, layers=2, seed=3)
    step = MS.build_step_model(em)
    names = [n for n, _ in MS.state_shapes(em)]
    assert names == ["conv_0", "ssm_0", "conv_1", "ssm_1"]
    x = mamba_windows(3, seed=4)
    got, _ = MS.run_float(step, x)
    # one window stepped with the batch-1 model itself
    st = MS.zero_states(step)
    rows = []
    for t in range(T):
        out = step([x[0, t][None]] + st)
        rows.append(np.asarray(out[0])[0])
        st = [np.asarray(o) for o in out[1:]]
    want = np.asarray(em.predict(x, verbose=0))
    np.testing.assert_allclose(np.stack(rows), want[0], atol=2e-5 * np.abs(want).max())
    np.testing.assert_allclose(got, want, atol=2e-5 * np.abs(want).max())


def test_not_a_mamba_emitter():
    import keras

    inp = keras.Input((T, F))
    with pytest.raises(TinyLocError):
        MS.build_step_model(keras.Model(inp, keras.layers.Dense(C, name="emissions")(inp)))


@pytest.mark.parametrize("option", [{"a_mode": "learned"}, {"input_term": "euler"}])
def test_float_only_scan_variant_is_refused(option):
    from keras_tinyloc.models.mamba import build_mamba_emitter

    emitter = build_mamba_emitter((T, F), C, 8, 1, **option)
    name = "-".join(next(iter(option.items())))
    with pytest.raises(TinyLocError, match=rf"mamba_block_0 is a float-only scan variant \({name.replace('-', '=')} "):
        MS.build_step_model(emitter)
