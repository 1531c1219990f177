"""Parameter counts: exact paper totals for the Mamba emitter + CRF, and count_params on plain layers."""
import keras
import numpy as np
import pytest

from keras_tinyloc.errors import TinyLocError
from keras_tinyloc.models.mamba import build_mamba_emitter
from keras_tinyloc.models.params import count_params, crf_param_count, paper_param_count


@pytest.mark.parametrize(
    "input_shape, n_classes, hidden, expected",
    [((20, 8), 4, 32, 10_392), ((20, 8), 4, 8, 1_432), ((1, 520), 59, 8, 9_543)],
    ids=["house-a-H32L1", "house-a-H8L1", "uji-H8L1"],
)
def test_mamba_paper_totals(input_shape, n_classes, hidden, expected):
    emitter = build_mamba_emitter(input_shape, n_classes, hidden, 1)
    assert paper_param_count(emitter, n_classes) == expected


def test_mamba_block_alone_and_frozen_A_log():
    # reference notes: block without its norm H=8 -> 1,296, H=32 -> 9,920; A_log (E,N) is the only frozen weight
    for hidden, mixer in ((8, 1_296), (32, 9_920)):
        emitter = build_mamba_emitter((20, 8), 4, hidden, 1)
        block = count_params(emitter.get_layer("mamba_block_0"))
        assert block["total"] - hidden == mixer
        assert block["non_trainable"] == 2 * hidden * 16


def test_count_params_dense_and_shared_weights():
    dense = keras.layers.Dense(5)
    inp = keras.Input((3,))
    model = keras.Model(inp, dense(dense(keras.layers.Dense(5, use_bias=False)(inp))))  # dense used twice
    assert count_params(dense) == {"trainable": 5 * 5 + 5, "non_trainable": 0, "total": 30}
    assert count_params(model)["total"] == 3 * 5 + 5 * 5 + 5
    bn = keras.layers.BatchNormalization()
    bn.build((None, 4))
    assert count_params(bn) == {"trainable": 8, "non_trainable": 8, "total": 16}


def test_crf_count_and_errors():
    assert crf_param_count(4) == 4 * 4 + 2 * 4
    assert crf_param_count(np.int64(59)) == 59 * 59 + 118
    with pytest.raises(TinyLocError):
        crf_param_count(0)
    with pytest.raises(TinyLocError, match="not built"):
        count_params(keras.layers.Dense(3))
