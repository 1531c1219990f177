"""data/windows.py: the shared 5 Hz grid, windows and time-block split, against hand-computed cases."""
import numpy as np
import pytest

from keras_tinyloc.data import windows
from keras_tinyloc.errors import TinyLocError


def test_grid_latest_reading_wins_and_forward_fill_up_to_one_second():
    # AP 0 heard at 0 ms (-60) and 150 ms (-62, same step: latest wins), then silent; AP 1 heard at 1000 ms only.
    t = np.array([0, 150, 1000])
    grid = windows.packets_to_grid(t, np.array([0, 0, 1]), np.array([-60, -62, -70]), n_aps=2, n_steps=12)
    expect0 = [-62.0] * 6 + [-120.0] * 6  # step 0 + forward-filled steps 1..5 (1 s), then the fill value
    expect1 = [-120.0] * 5 + [-70.0] * 6 + [-120.0]  # heard in step 5, filled through step 10
    assert grid[:, 0].tolist() == expect0
    assert grid[:, 1].tolist() == expect1


def test_grid_t0_and_out_of_order_readings():
    t = np.array([1400, 1000, 1200])  # not sorted; t0 = 1000
    grid = windows.packets_to_grid(t, np.array([0, 0, 0]), np.array([-50, -70, -60]), n_aps=1)
    assert grid[:, 0].tolist() == [-70.0, -60.0, -50.0]


@pytest.mark.parametrize(
    "ap, rssi, match",
    [([0, 3], [-50, -60], "AP index 3 out of range 0..1"), ([0, 1], [-50, np.nan], "non-numeric RSSI")],
)
def test_grid_bad_input_names_the_problem(ap, rssi, match):
    with pytest.raises(TinyLocError, match=match):
        windows.packets_to_grid(np.array([0, 200]), np.array(ap), np.array(rssi, float), n_aps=2, source="rx.dat")


def test_make_windows_hop_and_labels():
    grid = np.arange(45, dtype=np.float32).reshape(45, 1)
    labels = np.arange(45) % 3
    x, y = windows.make_windows(grid, labels, window=20, hop=10)
    assert x.shape == (3, 20, 1) and y.shape == (3, 20)
    assert x[:, 0, 0].tolist() == [0, 10, 20] and y[2].tolist() == (np.arange(20, 40) % 3).tolist()
    x, y = windows.make_windows(grid[:19], labels[:19])
    assert x.shape == (0, 20, 1)


def test_split_recording_blocks_never_straddle():
    n = 1200  # 4 blocks of 300 steps: block 3 -> validation
    grid = np.arange(n, dtype=np.float32).reshape(n, 1)
    parts = windows.split_recording(grid, np.zeros(n, int))
    assert [s for s, *_ in windows.block_masks(n)] == ["train", "train", "train", "val"]
    xv = parts["val"][0][:, :, 0]
    xt = parts["train"][0][:, :, 0]
    assert xv.min() >= 900 and xv.max() < 1200  # validation windows lie inside block 3
    assert not ((xt < 300) & (xt.max(axis=1, keepdims=True) >= 300)).any()  # no training window crosses a block edge
    assert len(xt) == 3 * 29 and len(xv) == 29


def test_contiguous_streams_rebuilds_the_grid():
    rng = np.random.default_rng(3)
    a, b = rng.normal(size=(60, 3)), rng.normal(size=(40, 3))
    ya, yb = rng.integers(0, 3, 60), rng.integers(-1, 3, 40)

    def cut(s, ys):
        return [s[k:k + 20] for k in range(0, len(s) - 19, 10)], [ys[k:k + 20] for k in range(0, len(s) - 19, 10)]

    xa, la = cut(a, ya)
    xb, lb = cut(b, yb)
    streams = windows.contiguous_streams(np.array(xa + xb), np.array(la + lb), hop=10)
    assert len(streams) == 2
    np.testing.assert_array_equal(streams[0]["x"], a)
    np.testing.assert_array_equal(streams[1]["y"], yb)
    np.testing.assert_array_equal(streams[0]["ends"], [19, 29, 39, 49, 59])
    np.testing.assert_array_equal(streams[1]["windows"], [5, 6, 7])
    for st in streams:  # every window's last step is the stream's step at its end position
        for w, e in zip(st["windows"], st["ends"]):
            np.testing.assert_array_equal(np.array(xa + xb)[w][-1], st["x"][e])


def test_grid_step_of_another_rate():
    # 10 Hz: 100 ms steps; forward fill given in steps (10 = 1 s)
    t = np.array([0, 50, 1000])
    grid = windows.packets_to_grid(t, np.array([0, 0, 0]), np.array([-60, -62, -70]), n_aps=1, n_steps=22,
                                   ffill_steps=10, step_ms=100)
    assert grid[:, 0].tolist() == [-62.0] * 10 + [-70.0] * 11 + [-120.0]  # step 0 (+9 filled), step 10 (+10 filled)
