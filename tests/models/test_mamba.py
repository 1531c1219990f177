"""Mamba emitter: the TFLM-form selective scan equals the textbook ZOH recurrence; model shape, causality,
.keras round trip, T = 1; full-int8 conversion has only TFLM-runnable int8 ops and TFLM matches LiteRT. The float-only
variants (learned A, Euler input term) equal the NumPy references and are refused by the int8 converter by name."""
import math

import keras
import numpy as np
import pytest

from keras_tinyloc.errors import TinyLocError
from keras_tinyloc.models.mamba import (
    NegInvSoftplusDt,
    SelectiveScan,
    build_mamba_emitter,
    calibrate_state_scales,
    float_only_options,
    set_scan_chunks,
)

# QUANTIZE is checked separately: int8 -> int8 requantisation (a same-scale PACK/CONCATENATION input) is allowed.
FORBIDDEN_OPS = {"EXP", "LOG", "SQRT", "GELU", "NEG", "SQUARE", "WHILE", "DEQUANTIZE"}


def scan_textbook(x, u, bm, cm, a_log, d):
    """Gu & Dao 2023 Algorithm 2 in float64: delta = softplus(u), A = -exp(A_log), ZOH for A and B.

    x, u (B,T,E); bm, cm (B,T,N); a_log (E,N); d (E,) -> y (B,T,E).
    """
    x, u, bm, cm = (np.asarray(v, np.float64) for v in (x, u, bm, cm))
    delta = np.logaddexp(0.0, u)  # softplus
    a = -np.exp(np.asarray(a_log, np.float64))  # (E,N)
    h = np.zeros(x.shape[:1] + a.shape)
    ys = []
    for t in range(x.shape[1]):
        da = np.exp(delta[:, t, :, None] * a)  # exp(delta A), (B,E,N)
        db = (da - 1.0) / a * bm[:, t, None, :]  # ZOH: (delta A)^-1 (exp(delta A) - I) delta B, (B,E,N)
        h = da * h + db * x[:, t, :, None]
        ys.append((h * cm[:, t, None, :]).sum(-1) + d * x[:, t])
    return np.stack(ys, axis=1)


@pytest.mark.parametrize("t_len, chunks", [(1, 1), (9, 1), (1, 3), (9, 4)])
def test_selective_scan_equals_textbook_zoh(t_len, chunks):
    rng = np.random.default_rng(t_len)
    b, e, n = 3, 5, 16
    x = rng.normal(size=(b, t_len, e)).astype("float32")
    u = rng.normal(-1.0, 3.0, size=(b, t_len, e)).astype("float32")  # delta from ~0.0003 to ~10
    bm = rng.normal(size=(b, t_len, n)).astype("float32")
    cm = rng.normal(size=(b, t_len, n)).astype("float32")
    layer = SelectiveScan(scan_chunks=chunks)
    layer.build((x.shape, x.shape, bm.shape, cm.shape))
    d = rng.normal(size=e).astype("float32")
    layer.D.assign(d)
    a_log = np.asarray(layer.A_log)
    np.testing.assert_allclose(a_log, np.log(np.tile(np.arange(1, n + 1), (e, 1))), rtol=1e-6)
    y = np.asarray(layer((x, -u, bm, cm)))  # the layer takes v = -u
    ref = scan_textbook(x, u, bm, cm, a_log, d)
    np.testing.assert_allclose(y, ref, rtol=2e-5, atol=2e-5 * np.abs(ref).max())
    assert not layer.A_log.trainable and layer.D.trainable


def scan_reference_euler(x, u, bm, cm, a_log, d):
    """mamba-minimal's ``selective_scan`` / mamba's ``selective_scan_ref`` in float64: ZOH for A, **Euler** for B:
    ``h_t = exp(delta A) h_{t-1} + delta B_t x_t``. Shapes as :func:`scan_textbook`."""
    x, u, bm, cm = (np.asarray(v, np.float64) for v in (x, u, bm, cm))
    delta = np.logaddexp(0.0, u)
    a = -np.exp(np.asarray(a_log, np.float64))
    h = np.zeros(x.shape[:1] + a.shape)
    ys = []
    for t in range(x.shape[1]):
        h = np.exp(delta[:, t, :, None] * a) * h + (delta[:, t, :, None] * bm[:, t, None, :]) * x[:, t, :, None]
        ys.append((h * cm[:, t, None, :]).sum(-1) + d * x[:, t])
    return np.stack(ys, axis=1)


def test_the_scan_is_not_the_reference_euler_scan_and_never_reads_a_log():
    """What the module docstring says deviates from mamba-minimal, checked: (1) the input term is the ZOH
    (1 - a^n)/n B x, not Euler's delta B x — the two agree for small n delta only; (2) A is frozen at -n: A_log is
    not read by the graph (changing it changes nothing), so a checkpoint's learned A cannot be loaded."""
    rng = np.random.default_rng(0)
    b, t_len, e, n = 2, 8, 4, 16
    x = rng.normal(size=(b, t_len, e)).astype("float32")
    bm = rng.normal(size=(b, t_len, n)).astype("float32")
    cm = rng.normal(size=(b, t_len, n)).astype("float32")
    layer = SelectiveScan()
    layer.build((x.shape, x.shape, bm.shape, cm.shape))
    a_log, d = np.asarray(layer.A_log), np.ones(e)
    u_big = rng.normal(0.0, 1.0, size=(b, t_len, e)).astype("float32")  # delta ~ 0.3 .. 2: n delta >> 1
    y = np.asarray(layer((x, -u_big, bm, cm)))
    euler = scan_reference_euler(x, u_big, bm, cm, a_log, d)
    assert np.abs(y - euler).max() > 0.2 * np.abs(euler).max()
    u_small = np.full((b, t_len, e), -9.0, "float32")  # delta ~ 1.2e-4: n delta << 1, the two terms agree
    y_small = np.asarray(layer((x, -u_small, bm, cm)))
    euler_small = scan_reference_euler(x, u_small, bm, cm, a_log, d)
    np.testing.assert_allclose(y_small, euler_small, rtol=0, atol=1e-3 * np.abs(euler_small).max())
    layer.A_log.assign(rng.normal(size=(e, n)).astype("float32"))  # a learned A would be ignored
    np.testing.assert_array_equal(np.asarray(layer((x, -u_big, bm, cm))), y)


def test_state_scales_keep_float_output_and_bound_states():
    rng = np.random.default_rng(5)
    x, u = rng.normal(size=(2, 6, 4)), rng.normal(size=(2, 6, 4))
    bm, cm = rng.normal(size=(2, 6, 16)) * np.linspace(0.1, 10, 16), rng.normal(size=(2, 6, 16))
    inputs = tuple(np.float32(v) for v in (x, -u, bm, cm))
    layer = SelectiveScan()
    ref = np.asarray(layer(inputs))
    g = np.abs(np.asarray(layer.states(inputs)))  # unscaled states, (B,T,E,N)
    s_e, s_n = rng.uniform(0.01, 5, 4), rng.uniform(0.01, 5, 16)
    layer.set_state_scales(s_e, s_n)
    np.testing.assert_allclose(np.asarray(layer(inputs)), ref, rtol=1e-5, atol=1e-5)
    assert layer.get_config()["state_scale_n"] == pytest.approx(list(s_n))
    with pytest.raises(TinyLocError):
        layer.set_state_scales(np.ones(3), np.ones(16))  # E = 4
    with pytest.raises(TinyLocError):
        layer.set_state_scales(np.ones(4), -np.ones(16))
    # textbook check of the states: g = n h, an exponential moving average of B x, so |g| <= max |B x|
    assert g.max() <= np.abs(x[..., None] * bm[:, :, None, :]).max() * (1 + 1e-5)


@pytest.mark.parametrize("d_state", [5, 8])
def test_selective_scan_other_state_sizes(d_state):
    rng = np.random.default_rng(d_state)
    x, u = rng.normal(size=(2, 4, 3)), rng.normal(size=(2, 4, 3))
    bm, cm = rng.normal(size=(2, 4, d_state)), rng.normal(size=(2, 4, d_state))
    layer = SelectiveScan()
    y = np.asarray(layer(tuple(np.float32(v) for v in (x, -u, bm, cm))))
    ref = scan_textbook(x, u, bm, cm, np.asarray(layer.A_log), np.ones(3))
    np.testing.assert_allclose(y, ref, rtol=2e-5, atol=1e-5)


def test_dt_bias_init_gives_log_uniform_steps():
    b = np.asarray(NegInvSoftplusDt(1e-3, 1e-1, seed=3)((4000,)))
    delta = np.logaddexp(0.0, -b.astype(np.float64))  # delta = softplus(-bias) with weights 0
    assert delta.min() >= 1e-3 * 0.999 and delta.max() <= 1e-1 * 1.001
    assert abs(np.median(np.log(delta)) - math.log(1e-2)) < 0.15  # log-uniform: median at the geometric mean


def test_emitter_shape_causality_and_round_trip(tmp_path):
    keras.utils.set_random_seed(0)
    model = build_mamba_emitter((12, 6), n_classes=5, hidden=8, layers=2)
    x = np.random.default_rng(0).random((3, 12, 6), dtype="float32")
    y = np.asarray(model(x))
    assert y.shape == (3, 12, 5) and np.isfinite(y).all()
    x2 = x.copy()
    x2[:, 7] += 0.5  # a change at step 7 must not reach steps 0..6 (causal conv + forward scan)
    y2 = np.asarray(model(x2))
    np.testing.assert_array_equal(y2[:, :7], y[:, :7])
    assert np.abs(y2[:, 7:] - y[:, 7:]).max() > 1e-3
    model.save(tmp_path / "mamba.keras")
    loaded = keras.saving.load_model(tmp_path / "mamba.keras")
    np.testing.assert_array_equal(np.asarray(loaded(x)), y)
    assert loaded.get_layer("mamba_block_1").get_config()["dt_rank"] == 1


def test_calibrate_state_scales_bounds_scaled_state(tmp_path):
    keras.utils.set_random_seed(3)
    model = build_mamba_emitter((10, 6), n_classes=3, hidden=8, layers=2)
    x = np.random.default_rng(3).random((32, 10, 6), dtype="float32")
    y = np.asarray(model(x))
    report = calibrate_state_scales(model, x)
    assert [r["block"] for r in report] == ["mamba_block_0", "mamba_block_1"]
    assert all(r["spread_after"] < r["spread_before"] for r in report)
    np.testing.assert_allclose(np.asarray(model(x)), y, rtol=1e-4, atol=1e-5)
    block = model.get_layer("mamba_block_1")
    h = model.get_layer("mamba_block_0")(model.get_layer("embedding")(x))
    (xs, v, bm, cm), _ = block.scan_inputs(h)
    s_e, s_n = np.array(block.scan.state_scale_e), np.array(block.scan.state_scale_n)
    np.testing.assert_allclose(s_e, np.abs(np.asarray(xs)).max(axis=(0, 1)), rtol=1e-6)
    np.testing.assert_allclose(s_n, np.abs(np.asarray(bm)).max(axis=(0, 1)), rtol=1e-6)
    g = np.abs(np.asarray(block.scan.states((xs, v, bm, cm))))  # unscaled states (B,T,E,N)
    assert (g / np.outer(s_e, s_n)).max() <= 1.0 + 1e-5  # EMA of (x/s_e)(B/s_n), both in [-1, 1]
    model.save(tmp_path / "calibrated.keras")
    loaded = keras.saving.load_model(tmp_path / "calibrated.keras")
    assert loaded.get_layer("mamba_block_1").scan.state_scale_e == block.scan.state_scale_e
    np.testing.assert_array_equal(np.asarray(loaded(x)), np.asarray(model(x)))
    with pytest.raises(TinyLocError):
        calibrate_state_scales(model, x[:, :5])
    with pytest.raises(TinyLocError):
        calibrate_state_scales(model, x, strength=2.0)
    calibrate_state_scales(model, x, strength=0.5)  # square roots of the full scales
    np.testing.assert_allclose(block.scan.state_scale_e, np.sqrt(s_e), rtol=1e-5)
    set_scan_chunks(model, 3)  # float-exact too
    assert model.get_layer("mamba_block_1").get_config()["scan_chunks"] == 3
    np.testing.assert_allclose(np.asarray(model(x)), y, rtol=1e-4, atol=1e-5)


def test_uji_shape_t1():
    model = build_mamba_emitter((1, 520), n_classes=59, hidden=8, layers=1)
    y = np.asarray(model(np.random.default_rng(1).random((4, 1, 520), dtype="float32")))
    assert y.shape == (4, 1, 59) and np.isfinite(y).all()


@pytest.mark.parametrize(
    "kwargs",
    [{"hidden": 0}, {"layers": -1}, {"n_classes": 2.5}, {"d_state": 0}, {"input_shape": (20,)}, {"scan_chunks": 0}],
)
def test_bad_sizes_raise(kwargs):
    args = {"input_shape": (20, 8), "n_classes": 4, "hidden": 8, "layers": 1} | kwargs
    with pytest.raises(TinyLocError):
        build_mamba_emitter(**args)


def _convert_int8(model, rep):
    """The project's converter (fixed batch 1, full int8, retried on the quantizer's intermittent float island)."""
    from keras_tinyloc.deploy.convert import convert_emitter

    return convert_emitter(model, "int8", rep, n_calibration=len(rep))


def test_int8_conversion_runs_in_tflm_and_matches_litert():
    from ai_edge_litert import interpreter as litert
    from tflite_micro.python.tflite_micro import runtime

    keras.utils.set_random_seed(1)
    model = build_mamba_emitter((20, 8), n_classes=4, hidden=8, layers=1)
    rng = np.random.default_rng(1)
    rep, x = rng.random((64, 20, 8), dtype="float32"), rng.random((8, 20, 8), dtype="float32")
    calibrate_state_scales(model, rep)
    buf = _convert_int8(model, rep)

    ref = litert.Interpreter(
        model_content=buf, experimental_op_resolver_type=litert.OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES
    )
    details = ref._get_ops_details()
    ops = {op["op_name"] for op in details}
    assert not ops & FORBIDDEN_OPS, ops & FORBIDDEN_OPS
    assert {"LOGISTIC", "BATCH_MATMUL", "UNPACK", "DEPTHWISE_CONV_2D"} <= ops
    dtypes = {t["index"]: t["dtype"] for t in ref.get_tensor_details()}
    assert set(dtypes.values()) <= {np.int8, np.int32}  # no float tensor anywhere, input and output included
    requant = [op for op in details if op["op_name"] == "QUANTIZE"]
    assert len(requant) <= 2 and all(dtypes[i] == np.int8 for op in requant for i in [*op["inputs"], *op["outputs"]])
    assert len(details) < 100  # H8L1, T=20: 87 nodes (the unrolled recurrence is 2 ops per step)

    ref.allocate_tensors()
    i_det, o_det = ref.get_input_details()[0], ref.get_output_details()[0]
    (si, zi), (so, zo) = i_det["quantization"], o_det["quantization"]
    xq = np.clip(np.round(x / si) + zi, -128, 127).astype(np.int8)
    micro = runtime.Interpreter.from_bytes(buf, arena_size=256 * 1024)
    y_ref, y_micro = [], []
    for q in xq:
        ref.set_tensor(i_det["index"], q[None])
        ref.invoke()
        y_ref.append(ref.get_tensor(o_det["index"])[0].astype(int))
        micro.set_input(q[None], 0)
        micro.invoke()
        y_micro.append(micro.get_output(0)[0].astype(int))
    y_ref, y_micro = np.array(y_ref), np.array(y_micro)
    assert np.abs(y_micro - y_ref).max() <= 2  # TFLM and LiteRT kernels round a few ops differently
    assert np.mean(y_micro == y_ref) > 0.9

    y_float = np.asarray(model(x))
    err = np.abs((y_ref - zo) * so - y_float)
    assert err.mean() < 0.05 * y_float.std()  # int8 keeps the emissions close to the float model's


# ------------------------------------------------------------------ float-only variants (docs/results/mamba_fidelity.md)
def _scan_inputs(seed, b=3, t_len=9, e=5, n=16):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(b, t_len, e)).astype("float32")
    u = rng.normal(-1.0, 3.0, size=(b, t_len, e)).astype("float32")  # delta from ~0.0003 to ~10
    bm = rng.normal(size=(b, t_len, n)).astype("float32")
    cm = rng.normal(size=(b, t_len, n)).astype("float32")
    return rng, x, u, bm, cm


@pytest.mark.parametrize("chunks", [1, 4])
def test_learned_a_at_its_initial_value_equals_the_frozen_layer(chunks):
    """A learned A starts at A_n = -n: exp(delta A) = exp(-n softplus(u)) vs sigmoid(-u)^n, and 1/exp(log n) vs
    1/n — the same numbers up to float32 rounding."""
    _, x, u, bm, cm = _scan_inputs(1)
    frozen, learned = SelectiveScan(scan_chunks=chunks), SelectiveScan(a_mode="learned", scan_chunks=chunks)
    y_frozen, y_learned = np.asarray(frozen((x, -u, bm, cm))), np.asarray(learned((x, -u, bm, cm)))
    np.testing.assert_array_equal(np.asarray(learned.A_log), np.asarray(frozen.A_log))
    np.testing.assert_allclose(y_learned, y_frozen, rtol=0, atol=1e-6 * np.abs(y_frozen).max())
    assert learned.A_log.trainable and not frozen.A_log.trainable


@pytest.mark.parametrize("a_mode, input_term, chunks",
                         [("learned", "zoh", 1), ("learned", "zoh", 3), ("frozen", "euler", 1),
                          ("learned", "euler", 1), ("learned", "euler", 4)])
def test_float_variants_equal_the_numpy_references(a_mode, input_term, chunks):
    """ZOH with a learned A = the textbook scan with that A; Euler = mamba-minimal's scan (frozen or learned A)."""
    rng, x, u, bm, cm = _scan_inputs(2 + chunks)
    e, n = x.shape[-1], bm.shape[-1]
    layer = SelectiveScan(scan_chunks=chunks, a_mode=a_mode, input_term=input_term)
    layer.build((x.shape, x.shape, bm.shape, cm.shape))
    d = rng.normal(size=e).astype("float32")
    layer.D.assign(d)
    if a_mode == "learned":  # some other A: decay rates spread around -n
        layer.A_log.assign((np.log(np.arange(1, n + 1)) + rng.normal(0.0, 0.7, size=(e, n))).astype("float32"))
    a_log = np.asarray(layer.A_log)
    ref = (scan_textbook if input_term == "zoh" else scan_reference_euler)(x, u, bm, cm, a_log, d)
    y = np.asarray(layer((x, -u, bm, cm)))
    np.testing.assert_allclose(y, ref, rtol=2e-5, atol=2e-5 * np.abs(ref).max())
    # the states are g = -A h, the exponential-moving-average form the calibration reads
    g = np.asarray(layer.states((x, -u, bm, cm)))
    assert g.shape == (x.shape[0], x.shape[1], e, n)


def test_learned_a_gets_gradients_and_frozen_a_does_not():
    import tensorflow as tf

    _, x, u, bm, cm = _scan_inputs(4)
    for a_mode in ("frozen", "learned"):
        layer = SelectiveScan(a_mode=a_mode)
        layer((x, -u, bm, cm))
        with tf.GradientTape() as tape:
            loss = tf.reduce_sum(layer((x, -u, bm, cm)) ** 2)
        grads = dict(zip([w.name for w in layer.trainable_weights], tape.gradient(loss, layer.trainable_weights)))
        assert sorted(grads) == (["A_log", "D"] if a_mode == "learned" else ["D"])
        if a_mode == "learned":
            assert np.abs(np.asarray(grads["A_log"])).max() > 0


def test_variant_emitter_round_trip_config_and_name(tmp_path):
    keras.utils.set_random_seed(2)
    model = build_mamba_emitter((6, 4), n_classes=3, hidden=8, layers=1, a_mode="learned", input_term="euler")
    assert model.name == "mamba_h8l1_float-only_a_mode-learned_input_term-euler"
    block = model.get_layer("mamba_block_0")
    assert block.get_config()["a_mode"] == "learned" and block.get_config()["input_term"] == "euler"
    block.scan.A_log.assign(block.scan.A_log + 0.3)  # a trained A must survive the round trip
    x = np.random.default_rng(2).random((4, 6, 4), dtype="float32")
    y = np.asarray(model(x))
    model.save(tmp_path / "variant.keras")
    loaded = keras.saving.load_model(tmp_path / "variant.keras")
    np.testing.assert_array_equal(np.asarray(loaded(x)), y)
    assert loaded.get_layer("mamba_block_0").scan.A_log.trainable
    # the default model's saved config carries no variant keys (its files are as before the options existed)
    default = build_mamba_emitter((6, 4), n_classes=3, hidden=8, layers=1)
    assert default.name == "mamba_h8l1"
    assert not {"a_mode", "input_term"} & set(default.get_layer("mamba_block_0").get_config())
    assert not {"a_mode", "input_term"} & set(default.get_layer("mamba_block_0").scan.get_config())


def test_bad_scan_options_are_one_line_errors():
    with pytest.raises(TinyLocError, match=r"^mamba a_mode='free': choose from frozen, learned$"):
        build_mamba_emitter((4, 3), 2, 8, 1, a_mode="free")
    with pytest.raises(TinyLocError, match=r"^mamba input_term='rk4': choose from zoh, euler$"):
        SelectiveScan(input_term="rk4")
    assert float_only_options() == []
    assert [s.split(" ")[0] for s in float_only_options("learned", "euler")] == ["a_mode=learned", "input_term=euler"]


def test_int8_converter_names_a_float_only_variant():
    """The int8 check rejects the EXP/LOG a learned A / Euler term needs, and its message names the option."""
    keras.utils.set_random_seed(0)
    model = build_mamba_emitter((4, 3), n_classes=2, hidden=4, layers=1, d_state=4, a_mode="learned",
                                input_term="euler")
    rep = np.random.default_rng(0).random((16, 4, 3), dtype="float32")
    with pytest.raises(TinyLocError) as err:
        _convert_int8(model, rep)
    msg = str(err.value)
    assert "a_mode-learned_input_term-euler" in msg and "not deployable as full int8" in msg and "EXP" in msg


def test_build_tagger_forwards_the_scan_options():
    """``models.build_tagger(..., a_mode=..., input_term=...)`` (the option path of train/fit): same weights counted."""
    from keras_tinyloc.models import build_tagger
    from keras_tinyloc.training.train import count_params

    variant = build_tagger("mamba", (6, 4), 3, 8, 1, a_mode="learned", input_term="euler")
    default = build_tagger("mamba", (6, 4), 3, 8, 1)
    assert variant.emitter.get_layer("mamba_block_0").scan.a_mode == "learned"
    assert count_params(variant) == count_params(default)
