"""MDCSA emitter: shapes, parameter counts, an independent NumPy forward pass, .keras round trip, the int8-friendly
LayerNorm / ELU of ``models.layers``, and a full-int8 conversion that runs in TFLM with no float islands."""
import math

import keras
import numpy as np
import pytest
import tensorflow as tf

from keras_tinyloc.errors import TinyLocError
from keras_tinyloc.models.layers import Int8ELU, Int8LayerNorm
from keras_tinyloc.models.mdcsa import (
    build_mdcsa_emitter,
    crf_params,
    positional_encoding,
)

# ----------------------------------------------------------------------------------------------- NumPy reference


def _np_pe(length, hidden):
    """The reference's positional-encoding loops, written out element by element."""
    pe = np.zeros((length, hidden))
    for pos in range(length):
        for i in range(0, hidden, 2):
            pe[pos, i] = math.sin(pos / (10000 ** ((2 * i) / hidden)))
            pe[pos, i + 1] = math.cos(pos / (10000 ** ((2 * (i + 1)) / hidden)))
    return pe


def _np_ln(x, gamma, beta, eps=1e-5):
    mu = x.mean(-1, keepdims=True)
    var = x.var(-1, keepdims=True)
    return (x - mu) / np.sqrt(var + eps) * gamma + beta


def _np_conv(x, kernel, bias, stride=1, left_pad=0):
    """Conv1D over time: x (B,T,Hin), kernel (k,Hin,Hout) -> (B,T',Hout); zero left padding."""
    kernel = kernel[None] if kernel.ndim == 2 else kernel  # a kernel-1 conv is held as a Dense (H,H)
    k = kernel.shape[0]
    x = np.pad(x, ((0, 0), (left_pad, 0), (0, 0)))
    steps = (x.shape[1] - k) // stride + 1
    return np.stack(
        [sum(x[:, t * stride + j] @ kernel[j] for j in range(k)) + bias for t in range(steps)], axis=1
    )


def _np_attn(q, k, v):
    s = q @ np.swapaxes(k, 1, 2) / np.sqrt(q.shape[-1])
    w = np.exp(s - s.max(-1, keepdims=True))
    return (w / w.sum(-1, keepdims=True)) @ v


def _np_forward(model, x, layers):
    """MDCSA forward pass (module eqs. 1-5) in float64 NumPy from the model's weights, looked up by layer name."""
    w = {layer.name: [np.asarray(v, dtype=np.float64) for v in layer.get_weights()] for layer in model.layers}
    hidden = w["embed"][0].shape[1]
    e = x @ w["embed"][0] + w["embed"][1]
    e = e * np.sqrt(hidden) + _np_pe(x.shape[1], hidden)[None]
    branches = []
    for k in [1, 4, 7][:layers]:
        n = f"dcsa{k}"
        q = np.tanh(_np_conv(e, *w[f"{n}_q"], left_pad=k - 1))
        kk = np.tanh(_np_conv(e, *w[f"{n}_k"], left_pad=k - 1))
        u = _np_ln(_np_attn(q, kk, e) + e, *w[f"{n}_norm"])
        g = u @ w[f"{n}_grn_fc1"][0] + w[f"{n}_grn_fc1"][1]
        g = np.where(g > 0, g, np.expm1(g))
        g = g @ w[f"{n}_grn_fc2"][0] + w[f"{n}_grn_fc2"][1]
        value = g @ w[f"{n}_grn_glu_value"][0] + w[f"{n}_grn_glu_value"][1]
        gate = 1 / (1 + np.exp(-(g @ w[f"{n}_grn_glu_gate"][0] + w[f"{n}_grn_glu_gate"][1])))
        branches.append(_np_ln(value * gate + u, *w[f"{n}_grn_norm"]))
    b, t, h = branches[0].shape
    s = np.stack(branches, axis=2).reshape(b, t * layers, h)  # token t*L + i = branch i at step t
    z = _np_attn(s, s, s)
    if layers > 1:
        z = _np_conv(z, *w["fusion_fold"], stride=layers)
    z = _np_ln(z, *w["fusion_norm"])
    return z @ w["emissions"][0] + w["emissions"][1]


def _randomise(model, seed=0, scale=0.4):
    rng = np.random.default_rng(seed)
    model.set_weights([rng.normal(0, scale, v.shape).astype("float32") for v in model.get_weights()])


# ---------------------------------------------------------------------------------------------------- structure


@pytest.mark.parametrize("layers", [1, 3])
@pytest.mark.parametrize("steps,features,classes", [(20, 8, 4), (1, 520, 59)])
def test_shapes_and_numpy_forward(layers, steps, features, classes):
    keras.utils.set_random_seed(1)
    model = build_mdcsa_emitter((steps, features), classes, hidden=8, layers=layers)
    _randomise(model)
    x = np.random.default_rng(2).uniform(0, 1, (3, steps, features)).astype("float32")
    y = model(x, training=False).numpy()
    assert y.shape == (3, steps, classes)
    np.testing.assert_allclose(y, _np_forward(model, x.astype(np.float64), layers), rtol=1e-4, atol=2e-4)


def test_parameter_counts_against_paper_shapes():
    """Counts include the CRF (C^2 + 2C). Paper: 10,588 / 2,812 / 23,290 (see the module docstring)."""

    def used(features, classes, hidden, layers):  # independent per-layer formula of the used parameters
        conv = lambda k: k * hidden * hidden + hidden  # noqa: E731
        ln = 2 * hidden
        fc1, fc2 = hidden * 4 * hidden + 4 * hidden, 4 * hidden * 4 * hidden + 4 * hidden
        grn = fc1 + fc2 + 2 * (4 * hidden * hidden + hidden) + ln  # GLU = value + gate Dense(4H->H)
        dcsa = lambda k: 2 * conv(k) + ln + grn  # noqa: E731
        fold = conv(layers) if layers > 1 else 0
        return (features * hidden + hidden) + sum(dcsa(3 * i + 1) for i in range(layers)) + fold + ln + (
            hidden * classes + classes) + classes * classes + 2 * classes

    cases = {((20, 8), 4, 16, 1): 8204, ((20, 8), 4, 8, 1): 2196, ((1, 520), 59, 16, 1): 20906,
             ((20, 8), 4, 16, 3): 29468}
    for (shape, classes, hidden, layers), expected in cases.items():
        count = build_mdcsa_emitter(shape, classes, hidden, layers).count_params() + crf_params(classes)
        assert count == expected == used(shape[1], classes, hidden, layers), (shape, hidden, layers, count)
    # the paper's House A H16L1 = ours + the reference's 1,600 unused + its 784-parameter fusion conv
    assert 8204 + 1600 + (3 * 16 * 16 + 16) == 10588


def test_interleave_order_and_causal_convolutions():
    keras.utils.set_random_seed(3)
    model = build_mdcsa_emitter((6, 5), 3, hidden=4, layers=3)
    names = ["dcsa1_grn_norm", "dcsa4_grn_norm", "dcsa7_grn_norm", "interleave", "dcsa7_q"]
    probe = keras.Model(model.input, [model.get_layer(n).output for n in names])
    x = np.random.default_rng(4).uniform(0, 1, (2, 6, 5)).astype("float32")
    b1, b4, b7, tokens, q7 = (v.numpy() for v in probe(x))
    for t in range(6):
        for i, branch in enumerate([b1, b4, b7]):
            np.testing.assert_array_equal(tokens[:, 3 * t + i], branch[:, t])
    # the causal conv at step t sees only steps <= t: changing step 3 leaves steps 0..2 unchanged
    x2 = x.copy()
    x2[:, 3] += 0.5
    q7b = probe(x2)[4].numpy()
    np.testing.assert_array_equal(q7b[:, :3], q7[:, :3])
    assert np.abs(q7b[:, 3:] - q7[:, 3:]).min() > 0


def test_embedding_trains_and_dropout_only_in_training():
    keras.utils.set_random_seed(5)
    model = build_mdcsa_emitter((20, 8), 4, hidden=8, layers=1)
    x = tf.constant(np.random.default_rng(6).uniform(0, 1, (4, 20, 8)).astype("float32"))
    with tf.GradientTape() as tape:
        loss = tf.reduce_sum(model(x, training=True) ** 2)
    grad = tape.gradient(loss, model.get_layer("embed").kernel)
    assert float(tf.reduce_max(tf.abs(grad))) > 0  # the reference's no-grad embedding is not reproduced
    np.testing.assert_array_equal(model(x, training=False).numpy(), model(x, training=False).numpy())
    assert not np.allclose(model(x, training=True).numpy(), model(x, training=False).numpy())


def test_keras_round_trip(tmp_path):
    keras.utils.set_random_seed(7)
    model = build_mdcsa_emitter((20, 8), 4, hidden=8, layers=3)
    _randomise(model, seed=8)
    path = tmp_path / "mdcsa.keras"
    model.save(path)
    loaded = keras.models.load_model(path)
    x = np.random.default_rng(9).uniform(0, 1, (2, 20, 8)).astype("float32")
    np.testing.assert_array_equal(loaded(x, training=False).numpy(), model(x, training=False).numpy())


@pytest.mark.parametrize(
    "kwargs",
    [dict(input_shape=(20, 8), n_classes=4, hidden=7, layers=1),
     dict(input_shape=(161, 8), n_classes=4, hidden=8, layers=1),
     dict(input_shape=(20, 8), n_classes=4, hidden=8, layers=0),
     dict(input_shape=(20, 8), n_classes=0, hidden=8, layers=1),
     dict(input_shape=(20,), n_classes=4, hidden=8, layers=1),
     dict(input_shape=(20, 8), n_classes=4, hidden=8, layers=1, norm="rms")],
)
def test_bad_sizes_raise(kwargs):
    with pytest.raises(TinyLocError):
        build_mdcsa_emitter(**kwargs)


# ---------------------------------------------------------------------------------------- int8-friendly layers


def test_positional_encoding_formula():
    np.testing.assert_allclose(positional_encoding(160, 16), _np_pe(160, 16), atol=1e-6)
    model = build_mdcsa_emitter((20, 8), 4, hidden=16, layers=1)
    pe_out = keras.Model(model.input, model.get_layer("pos_enc").output)
    embed = model.get_layer("embed")
    embed.set_weights([np.zeros_like(v) for v in embed.get_weights()])  # Dense output 0 -> the layer adds PE only
    np.testing.assert_allclose(pe_out(np.ones((1, 20, 8), "float32")).numpy()[0], _np_pe(20, 16), atol=1e-6)


@pytest.mark.parametrize("method", ["l2norm", "range_safe", "textbook"])
def test_int8_layernorm_equals_keras_layernormalization(method):
    rng = np.random.default_rng(10)
    x = rng.normal(1.5, 3.0, (4, 7, 16)).astype("float32")
    x[0, 0] = 2.0  # a constant token: both give beta
    gamma, beta = rng.normal(1, 0.5, 16).astype("float32"), rng.normal(0, 0.5, 16).astype("float32")
    for eps, atol in ((1e-5, 2e-4), (1e-9, 1e-5)):
        ours = Int8LayerNorm(epsilon=eps, method=method)
        ref = keras.layers.LayerNormalization(epsilon=eps)
        ours.build(x.shape)
        ref.build(x.shape)
        ours.set_weights([gamma, beta])
        ref.set_weights([gamma, beta])
        # (Keras' own result on the constant token x[0, 0] is rounding noise times rsqrt(eps); compare the rest)
        np.testing.assert_allclose(ours(x).numpy()[1:], ref(x).numpy()[1:], atol=atol)
        # range-safe: exactly LayerNorm with the per-token epsilon eps * max|x - mean|^2 (Int8LayerNorm docstring)
        x64 = x.astype(np.float64)
        m = np.abs(x64 - x64.mean(-1, keepdims=True)).max(-1, keepdims=True) + 1e-6
        np_eps = eps * m**2 if method == "range_safe" else eps
        np.testing.assert_allclose(ours(x).numpy()[1:], _np_ln(x64, gamma, beta, eps=np_eps)[1:], atol=1e-5)
    if method != "textbook":  # the textbook order's constant token is rounding noise times rsqrt(eps), like Keras'
        np.testing.assert_allclose(ours(x).numpy()[0, 0], beta, atol=1e-6)


def test_int8_elu_equals_elu_values_and_gradients():
    x = tf.constant(np.concatenate([np.linspace(-30, 30, 601), [0.0, -1e-4, 1e-4]]).astype("float32"))
    with tf.GradientTape(persistent=True) as tape:
        tape.watch(x)
        ours, ref = Int8ELU()(x), tf.nn.elu(x)
    np.testing.assert_allclose(ours.numpy(), ref.numpy(), atol=1e-6)
    np.testing.assert_allclose(tape.gradient(ours, x).numpy(), tape.gradient(ref, x).numpy(), atol=1e-5)


# ------------------------------------------------------------------------------------------- int8 TFLite / TFLM

TFLM_INT8_OPS = {"ABS", "ADD", "BATCH_MATMUL", "CONCATENATION", "CONV_2D", "DIV", "FULLY_CONNECTED", "L2_NORMALIZATION",
                 "LOGISTIC", "MEAN", "MUL", "PAD", "REDUCE_MAX", "RESHAPE", "RSQRT", "SOFTMAX", "SUB", "TANH"}


def _fixed_batch(model):
    """Same weights, batch fixed to 1 (a None batch leaves SHAPE/GATHER/REDUCE_PROD ops TFLM cannot run)."""
    x = keras.Input(tuple(model.input_shape[1:]), batch_size=1)
    return keras.Model(x, model(x))


def _int8_tflite(model, steps, features, seed=0):
    rng = np.random.default_rng(seed)
    samples = [rng.uniform(0, 1, (1, steps, features)).astype("float32") for _ in range(32)]
    conv = tf.lite.TFLiteConverter.from_keras_model(_fixed_batch(model))
    conv.optimizations = [tf.lite.Optimize.DEFAULT]
    conv.representative_dataset = lambda: ([s] for s in samples)
    conv.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    conv.inference_input_type = conv.inference_output_type = tf.int8
    return conv.convert()


@pytest.mark.parametrize("hidden,layers,norm", [(8, 1, "l2norm"), (8, 3, "l2norm"), (8, 1, "range_safe")])
def test_full_int8_conversion_runs_in_tflm(hidden, layers, norm):
    from ai_edge_litert.interpreter import Interpreter, OpResolverType
    from tflite_micro.python.tflite_micro import runtime

    keras.utils.set_random_seed(11)
    model = build_mdcsa_emitter((20, 8), 4, hidden=hidden, layers=layers, norm=norm)
    buf = _int8_tflite(model, 20, 8)
    lite = Interpreter(model_content=buf,
                       experimental_op_resolver_type=OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES)
    op_names = {op["op_name"] for op in lite._get_ops_details()}
    assert op_names <= TFLM_INT8_OPS, op_names - TFLM_INT8_OPS  # no QUANTIZE/DEQUANTIZE/ELU/NEG/EXP/... islands
    assert ("CONCATENATION" in op_names) == (layers > 1) == ("CONV_2D" in op_names)  # kernel-1 convs are FCs
    assert ("L2_NORMALIZATION" in op_names) == (norm == "l2norm")  # one fused op per LayerNorm
    assert ({"ABS", "REDUCE_MAX", "RSQRT"} <= op_names) == (norm == "range_safe")
    dtypes = {np.dtype(t["dtype"]).name for t in lite.get_tensor_details()}
    assert dtypes <= {"int8", "int32"}, dtypes  # int32 = biases and shape constants; no float tensor anywhere
    lite.allocate_tensors()
    inp, out = lite.get_input_details()[0], lite.get_output_details()[0]
    (in_scale, in_zero), (out_scale, out_zero) = inp["quantization"], out["quantization"]
    micro = runtime.Interpreter.from_bytes(buf, arena_size=256 * 1024)

    x = np.random.default_rng(12).uniform(0, 1, (6, 1, 20, 8)).astype("float32")
    ref = model(x[:, 0], training=False).numpy()
    span = ref.max() - ref.min()
    for i in range(len(x)):
        q = np.clip(np.round(x[i] / in_scale + in_zero), -128, 127).astype(np.int8)
        lite.set_tensor(inp["index"], q)
        lite.invoke()
        y_lite = lite.get_tensor(out["index"]).astype(np.int32)
        micro.set_input(q, 0)
        micro.invoke()
        y_micro = micro.get_output(0).astype(np.int32)
        assert y_micro.shape == (1, 20, 4)
        # TFLM's LOGISTIC/SOFTMAX/DIV round differently from LiteRT's in ~0.1 % of elements (1 LSB each, seen in
        # one-op models); LayerNorm can amplify that to a few LSB. Measured here: max 3, mean <= 0.5 LSB.
        lsb = np.abs(y_micro - y_lite)
        assert lsb.max() <= 6 and lsb.mean() <= 1.0, (lsb.max(), lsb.mean())
        err = np.abs((y_micro - out_zero) * out_scale - ref[i])  # measured: max <= 0.03, mean <= 0.01 of span
        assert err.max() < 0.06 * span and err.mean() < 0.02 * span, (err.max() / span, err.mean() / span)
