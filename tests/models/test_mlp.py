"""MLP emitters: powed input, the hierarchical head folded exactly into one Dense, the per-window baseline."""
from __future__ import annotations

import numpy as np
import pytest

from keras_tinyloc.errors import TinyLocError
from keras_tinyloc.models import mlp

T, F, C = 12, 5, 4


def test_window_mlp_shapes():
    m = mlp.build_window_mlp((T, F), C, 16)
    assert m.output_shape == (None, C)
    assert m.count_params() == T * F * 16 + 16 + 16 * C + C
    with pytest.raises(TinyLocError):
        mlp.build_window_mlp((F,), C, 16)


def test_powed_emitter_is_dense_of_x_cubed():
    x = np.random.default_rng(0).random((5, 1, F)).astype(np.float32)
    powed = mlp.build_mlp_emitter((1, F), C, hidden=4, layers=2, dropout=0.3, power=3)
    plain = mlp.build_mlp_emitter((1, F), C, hidden=4, layers=2, dropout=0.3, power=1)
    plain.set_weights(powed.get_weights())
    np.testing.assert_allclose(powed.predict(x, verbose=0), plain.predict(x ** 3, verbose=0), rtol=1e-5, atol=1e-6)
    assert [layer.name for layer in powed.layers if layer.name.startswith("pow_")] == ["pow_2", "pow_3"]


def test_the_folded_hierarchical_emitter_is_exact():
    import keras

    names = ["B0-F0-Z00", "B0-F0-Z01", "B0-F1-Z00", "B1-F0-Z00", "B1-F0-Z01"]
    of_class = [0, 0, 1, 2, 2]
    keras.utils.set_random_seed(0)
    hier, floor = mlp.build_hier_emitter((1, F), len(names), of_class, hidden=6, layers=2, dropout=0.2, power=3)
    for layer in hier.layers:  # non-trivial head weights
        if layer.name in ("zone_head", "floor_head"):
            layer.set_weights([w + np.float32(0.3) for w in layer.get_weights()])
    x = np.random.default_rng(1).random((7, 1, F)).astype(np.float32)
    em, fl = np.asarray(hier(x)), np.asarray(floor(x))
    zone = np.asarray(keras.Model(hier.input, hier.get_layer("zone_head").output)(x))
    np.testing.assert_allclose(em, zone + fl[..., of_class], rtol=1e-5, atol=1e-6)  # zone + its floor's score
    folded = mlp.fold_hier_emitter(hier, (1, F), len(names), hidden=6, layers=2, power=3)
    np.testing.assert_allclose(np.asarray(folded(x)), em, rtol=1e-5, atol=1e-5)
    assert [lay.name for lay in folded.layers if "head" in lay.name or "floor" in lay.name] == []
