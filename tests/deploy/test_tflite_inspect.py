"""Reading ops/tensors of a flatbuffer and rejecting float islands and ops TFLM cannot run in int8."""
import numpy as np
import pytest

from keras_tinyloc.deploy import tflite_inspect as ti
from keras_tinyloc.errors import TinyLocError

T, F, C = 6, 5, 3


def _model(kind):
    import keras

    inp = keras.Input(batch_shape=(1, T, F))
    h = keras.layers.Dense(8, activation="relu")(inp)
    if kind == "conv":
        h = keras.layers.Conv1D(8, 3, padding="causal")(h)
    elif kind == "layernorm":
        h = keras.layers.LayerNormalization()(h)
    elif kind == "exp":
        h = keras.layers.Lambda(lambda v: keras.ops.exp(v))(h)
    return keras.Model(inp, keras.layers.Dense(C)(h))


@pytest.fixture(scope="module")
def xcal():
    return np.random.default_rng(0).random((20, T, F)).astype(np.float32)


def test_int8_graph_ops_tensors_and_io_quantization(xcal, raw_int8):
    from ai_edge_litert import interpreter as litert

    buf = raw_int8(_model("conv"), xcal)
    info = ti.inspect_tflite(buf)
    assert {"FULLY_CONNECTED", "CONV_2D"} <= set(info.op_types)
    assert ti.float_ops(info) == []
    assert {t.dtype for t in info.tensors} <= {"int8", "int32"}
    ti.check_int8(info)  # no exception
    # the independent reader (LiteRT) sees the same graph inputs/outputs and quantization
    it = litert.Interpreter(model_content=buf)
    din, dout = it.get_input_details()[0], it.get_output_details()[0]
    assert info.input().name == din["name"] and info.input().shape == tuple(din["shape"])
    assert info.input().scale == pytest.approx(din["quantization"][0]) and info.input().zero_point == din["quantization"][1]
    assert info.output().scale == pytest.approx(dout["quantization"][0])
    assert [(t.name, t.dtype) for t in info.tensors] == [(d["name"], np.dtype(d["dtype"]).name) for d in it.get_tensor_details()]
    assert len(info.ops) == len(it._get_ops_details())
    assert [op.name for op in info.ops] == [d["op_name"] for d in it._get_ops_details()]


def test_layernorm_float_island_is_rejected_with_op_names(xcal, raw_int8):
    info = ti.inspect_tflite(raw_int8(_model("layernorm"), xcal))
    bad = ti.float_ops(info)
    assert bad, "LayerNormalization should leave a float island in the int8 graph"
    with pytest.raises(TinyLocError) as err:
        ti.check_int8(info)
    assert "float op" in str(err.value) and bad[0] in str(err.value)


def test_exp_is_named_as_unsupported_in_tflm(xcal, raw_int8):
    info = ti.inspect_tflite(raw_int8(_model("exp"), xcal))
    assert ti.unsupported_ops(info) == ["EXP"]
    with pytest.raises(TinyLocError, match="EXP"):
        ti.check_int8(info)


def test_float_model_fails_the_int8_check():
    import tensorflow as tf

    buf = tf.lite.TFLiteConverter.from_keras_model(_model("plain")).convert()
    info = ti.inspect_tflite(buf)
    assert len(ti.float_ops(info)) == len(info.ops) > 0
    with pytest.raises(TinyLocError, match="float32, not int8"):
        ti.check_int8(info)


def test_garbage_bytes_are_a_user_error():
    with pytest.raises(TinyLocError, match="not a valid .tflite"):
        ti.inspect_tflite(b"\x00" * 7 + b"garbage" * 3)
