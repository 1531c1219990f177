"""quantize/dequantize against hand values and an exact decimal oracle; the calibration sample."""
from decimal import ROUND_HALF_UP, Decimal

import numpy as np
import pytest

from keras_tinyloc.errors import TinyLocError
from keras_tinyloc.data.windows import representative_sample
from keras_tinyloc.deploy.quantize import dequantize, quantize, representative_dataset, round_half_away


def test_quantize_hand_values_with_ties_away_from_zero():
    x = np.array([0.25, -0.25, 0.75, -0.75, 0.2, -0.2, 0.0, 100.0, -100.0], np.float32)
    # x / 0.5 = 0.5, -0.5, 1.5, -1.5, 0.4, -0.4, 0, 200, -200
    np.testing.assert_array_equal(quantize(x, 0.5, 0), [1, -1, 2, -2, 0, 0, 0, 127, -128])
    # 200 - 128 = 72 stays in range; -200 - 128 clips
    np.testing.assert_array_equal(quantize(x, 0.5, -128), [-127, -128, -126, -128, -128, -128, -128, 72, -128])
    np.testing.assert_array_equal(quantize(np.float32([2.5, -2.5, 3.5]), 1.0, 3), [6, 0, 7])
    assert quantize(np.float32(0.3), 0.1, 0).dtype == np.int8


def test_round_half_away_is_exact_below_one_half():
    below = np.nextafter(np.float32(0.5), np.float32(0))  # 0.49999997: floor(v + 0.5) wrongly gives 1
    assert round_half_away(below) == 0
    assert round_half_away(-below) == 0
    big = np.float32(8388609.0)  # odd integer above 2**23: v + 0.5 is not representable
    assert round_half_away(big) == big


def test_round_half_away_matches_decimal_oracle():
    rng = np.random.default_rng(0)
    v = np.concatenate([rng.uniform(-300, 300, 2000), np.arange(-20, 20) + 0.5]).astype(np.float32)
    want = [float(Decimal(float(a)).quantize(Decimal(1), rounding=ROUND_HALF_UP)) for a in v]
    np.testing.assert_array_equal(round_half_away(v), np.float32(want))


def test_dequantize_hand_values_and_round_trip():
    np.testing.assert_array_equal(dequantize(np.int8([-128, 0, 127]), 0.5, -128), np.float32([0.0, 64.0, 127.5]))
    scale, zp = 1 / 255, -128
    x = np.linspace(0, 1, 1001, dtype=np.float32)
    back = dequantize(quantize(x, scale, zp), scale, zp)
    assert np.max(np.abs(back - x)) <= scale / 2 + 1e-7


def test_quantize_rejects_bad_scale():
    with pytest.raises(TinyLocError, match="scale"):
        quantize(np.zeros(3), 0.0, 0)


def test_representative_dataset_yields_distinct_training_windows_deterministically():
    x = np.arange(50 * 4 * 3, dtype=np.float32).reshape(50, 4, 3)
    gen = representative_dataset(x, n=10, seed=1)
    got = [batch[0] for batch in gen()]
    assert len(got) == 10 and all(g.shape == (1, 4, 3) and g.dtype == np.float32 for g in got)
    firsts = {int(g[0, 0, 0]) // 12 for g in got}
    assert len(firsts) == 10 and firsts <= set(range(50))
    again = [batch[0] for batch in gen()]
    assert all(np.array_equal(a, b) for a, b in zip(got, again))
    assert len(representative_sample(x, n=500)) == 50


def test_representative_dataset_rejects_wrong_shape():
    with pytest.raises(TinyLocError, match=r"\(B,T,F\)"):
        representative_dataset(np.zeros((10, 3)), n=5)
