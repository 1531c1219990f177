"""Streaming Mamba: a one-step model that consumes one 5 Hz step at a time and keeps only its state.

A trained windowed Mamba emitter ``(B,T,F) -> (B,T,C)`` (:func:`keras_tinyloc.models.mamba.build_mamba_emitter`)
is a recurrence over t; :func:`build_step_model` re-wires **the same layer objects** (shared weights, nothing copied)
into a batch-1 model of one step::

    inputs : x_t (1,F), for each block l: conv_l (1,K-1,E), ssm_l (1,E,N)
    outputs: emissions_t (1,C), for each block l: new conv_l (1,K-1,E), new ssm_l (1,E,N)

with K = d_conv (4), E = expand * H, N = d_state. Per block (equations of ``models.mamba``; scales s_e, s_n from
``calibrate_state_scales``)::

    z        = RMSNorm(h_t);  xs, res = split(in_proj(z))        (1,E) each
    w        = concat(conv_l, xs)                                (1,K,E)   the last K pre-conv inputs
    conv_l'  = w[:, 1:]                                          (1,K-1,E) new conv state
    xc       = silu(depthwise_conv_K(w) + bias)                  (1,E)     one valid conv position
    dlt, Bm, Cm = split(x_proj(xc));  v = dt_proj(dlt)           (1,R), (1,N), (1,N); (1,E)
    a        = sigmoid(v);  P_n = a^n                            (1,E), (1,E,N)
    ssm_l'   = P * ssm_l + (1 - P) * (xc / s_e) (Bm / s_n)       (1,E,N)   scaled state g' = g / (s_e s_n), g = n h
    y        = s_e * sum_n (Cm_n s_n / n) ssm_l'_n + D * xc      (1,E)
    h_{t}   <- h_t + out_proj(y * silu(res))                     (1,H)

so that from zero states (the windowed model's causal left padding and g_{-1} = 0), stepping T times reproduces the
windowed emissions exactly up to float32 rounding (checked in tests/models/test_mamba_step.py). The windowed model
restarts from zero at every window; the step model can also run on an unbroken stream (the device's streaming mode).
Its full-int8 conversion and int8 stepping are :mod:`keras_tinyloc.deploy.streaming`.

``folded=True`` builds a 48-node variant (constant scales folded into derived kernels): arena -1.2 KB, int8
agreement mixed (house A 97.6 %, B 97.4 %), so it is not the default.
Glossary: B batch, T steps, F features, H hidden, E inner width, N state size, C classes.
"""
from __future__ import annotations

import numpy as np

from keras_tinyloc.errors import TinyLocError


def _mamba_parts(emitter):
    from keras_tinyloc.models.mamba import MambaBlock, float_only_options

    try:
        emb = emitter.get_layer("embedding")
        norm_f = emitter.get_layer("norm_f")
        head = emitter.get_layer("emissions")
    except ValueError:
        raise TinyLocError(f"emitter {emitter.name!r}: not a Mamba emitter (needs layers embedding, norm_f, emissions)") from None
    blocks = [layer for layer in emitter.layers if isinstance(layer, MambaBlock)]
    if not blocks:
        raise TinyLocError(f"emitter {emitter.name!r}: has no MambaBlock")
    for b in blocks:  # the step equations above are the a^n / zero-order-hold scan only
        why = float_only_options(b.scan.a_mode, b.scan.input_term)
        if why:
            raise TinyLocError(f"emitter {emitter.name!r}: {b.name} is a float-only scan variant ({'; '.join(why)}); "
                               "the step model needs a_mode=frozen, input_term=zoh")
    return emb, blocks, norm_f, head


def state_shapes(emitter) -> list[tuple[str, tuple[int, ...]]]:
    """``[(name, shape)]`` of the step model's state inputs, in input order: ``conv_<l>`` (1,K-1,E), ``ssm_<l>`` (1,E,N)."""
    _, blocks, _, _ = _mamba_parts(emitter)
    out = []
    for i, b in enumerate(blocks):
        out.append((f"conv_{i}", (1, b.d_conv - 1, b.d_inner)))
        out.append((f"ssm_{i}", (1, b.d_inner, b.d_state)))
    return out


def _block_step_folded(block, h, conv_state, ssm_state):
    """:func:`_block_step` with the constant scales folded into derived kernels (same float function, fewer ops).

    Derived in the graph from the shared variables (the converter folds them into constants)::

        v  = xc @ (Wx[:, :R] @ Wdt) + bdt          FULLY_CONNECTED   (x_proj's dt columns composed with dt_proj)
        b' = xc @ (Wx[:, R:R+N] / s_n)             FULLY_CONNECTED   (= Bm / s_n)
        c' = xc @ (Wx[:, R+N:] * s_n / n)          FULLY_CONNECTED   (= Cm s_n / n)
        XB = (xc / s_e) (x) b';  ssm' = XB + P * (ssm - XB)          (= P ssm + (1 - P) XB)
        y' = ssm' c' + D * (xc / s_e);  h' = h + ((y' * silu(res)) @ (s_e[:, None] * Wout))   (y = s_e y')

    v, b' and c' get their own int8 scales (one shared x_proj output tensor in the plain form).
    """
    from keras import ops

    from keras_tinyloc.models.layers import silu
    from keras_tinyloc.models.mamba import _powers

    scan = block.scan
    r, n = block.dt_rank, block.d_state
    s_e = np.ones(block.d_inner, "float32") if scan.state_scale_e is None else np.array(scan.state_scale_e, "float32")
    s_n = np.ones(n, "float32") if scan.state_scale_n is None else np.array(scan.state_scale_n, "float32")
    xz = block.in_proj(block.norm(h))  # (1,2E)
    xs, res = ops.split(xz, 2, axis=-1)
    w = ops.concatenate([conv_state, ops.expand_dims(xs, 1)], axis=1)  # (1,K,E)
    new_conv = w[:, 1:, :]
    xc = silu(ops.squeeze(block.conv(w), 1))  # (1,E)
    wx = block.x_proj.kernel  # (E, R+2N)
    v = ops.add(ops.matmul(xc, ops.matmul(wx[:, :r], block.dt_proj.kernel)), block.dt_proj.bias)  # (1,E)
    b_in = ops.matmul(xc, ops.multiply(wx[:, r:r + n], ops.convert_to_tensor(1.0 / s_n)))  # (1,N)
    c = ops.matmul(xc, ops.multiply(wx[:, r + n:], ops.convert_to_tensor(s_n / np.arange(1, n + 1, dtype="float32"))))
    p = _powers(ops.sigmoid(v), n)  # (1,E,N)
    x_in = ops.multiply(xc, ops.convert_to_tensor(1.0 / s_e))  # (1,E)
    xb = ops.multiply(ops.expand_dims(x_in, -1), ops.expand_dims(b_in, -2))  # (1,E,N)
    new_ssm = ops.add(xb, ops.multiply(p, ops.subtract(ssm_state, xb)))
    y = ops.squeeze(ops.matmul(new_ssm, ops.expand_dims(c, -1)), -1)  # (1,E) = y / s_e
    y = ops.add(y, ops.multiply(x_in, scan.D))
    w_out = ops.multiply(ops.convert_to_tensor(s_e[:, None]), block.out_proj.kernel)  # (E,H)
    h = ops.add(h, ops.matmul(ops.multiply(y, silu(res)), w_out))
    return h, new_conv, new_ssm


def _block_step(block, h, conv_state, ssm_state):
    """One step of a :class:`MambaBlock` on symbolic tensors: ``h (1,H)`` -> ``(h' (1,H), conv' (1,K-1,E), ssm' (1,E,N))``."""
    from keras import ops

    from keras_tinyloc.models.layers import silu
    from keras_tinyloc.models.mamba import _powers

    scan = block.scan
    e, r, n = block.d_inner, block.dt_rank, block.d_state
    xz = block.in_proj(block.norm(h))  # (1,2E)
    xs, res = ops.split(xz, 2, axis=-1)  # (1,E) each
    w = ops.concatenate([conv_state, ops.expand_dims(xs, 1)], axis=1)  # (1,K,E)
    new_conv = w[:, 1:, :]  # (1,K-1,E)
    xc = silu(ops.squeeze(block.conv(w), 1))  # (1,E): the single valid position of the depthwise conv
    dlt, bm, cm = ops.split(block.x_proj(xc), [r, r + n], axis=-1)
    v = block.dt_proj(dlt)  # (1,E)
    p = _powers(ops.sigmoid(v), n)  # (1,E,N)
    c_gain = 1.0 / np.arange(1, n + 1, dtype="float32")
    x_in, b_in = xc, bm
    if scan.state_scale_e is not None:
        x_in = ops.multiply(xc, ops.convert_to_tensor(1.0 / np.array(scan.state_scale_e, "float32")))
        b_in = ops.multiply(bm, ops.convert_to_tensor(1.0 / np.array(scan.state_scale_n, "float32")))
        c_gain = c_gain * np.array(scan.state_scale_n, "float32")
    u = ops.multiply(ops.multiply(ops.subtract(1.0, p), ops.expand_dims(x_in, -1)), ops.expand_dims(b_in, -2))
    new_ssm = ops.add(ops.multiply(p, ssm_state), u)  # (1,E,N)
    c = ops.multiply(cm, ops.convert_to_tensor(c_gain))  # (1,N)
    y = ops.squeeze(ops.matmul(new_ssm, ops.expand_dims(c, -1)), -1)  # (1,E)
    if scan.state_scale_e is not None:
        y = ops.multiply(y, ops.convert_to_tensor(np.array(scan.state_scale_e, "float32")))
    y = ops.add(y, ops.multiply(xc, scan.D))
    h = ops.add(h, block.out_proj(ops.multiply(y, silu(res))))
    return h, new_conv, new_ssm


def _step_cell_class():
    import keras

    @keras.saving.register_keras_serializable(package="keras_tinyloc")
    class MambaBlockStep(keras.layers.Layer):
        """One step of a :class:`~keras_tinyloc.models.mamba.MambaBlock` (equations: module docstring).

        Inputs ``[h (1,H), conv (1,K-1,E), ssm (1,E,N)]`` -> ``[h' (1,H), conv' (1,K-1,E), ssm' (1,E,N)]``; the
        block (and so every weight) is the trained one, held as a sub-layer. A cell per block keeps the step model's
        layer names unique (every block has sub-layers called ``norm``, ``in_proj``, ...).
        """

        def __init__(self, block, folded: bool = False, **kwargs):
            super().__init__(**kwargs)
            self.folded = bool(folded)
            if isinstance(block, dict):
                block = keras.saving.deserialize_keras_object(block)
            self.block = block

        def call(self, inputs):
            h, conv, ssm = inputs
            fn = _block_step_folded if self.folded else _block_step
            return list(fn(self.block, h, conv, ssm))

        def compute_output_shape(self, input_shape):
            return [tuple(s) for s in input_shape]

        def get_config(self) -> dict:
            config = super().get_config()
            config.update({"block": keras.saving.serialize_keras_object(self.block), "folded": self.folded})
            return config

    return MambaBlockStep


def build_step_model(emitter, folded: bool = False):
    """The one-step model of a trained Mamba emitter (module docstring), sharing its weights.

    Returns a functional ``keras.Model`` with batch-1 inputs ``[x_t (1,F), conv_0, ssm_0, conv_1, ...]`` and outputs
    ``[emissions_t (1,C), conv_0', ssm_0', ...]`` (same order). Calibrate the state scales on the emitter first if the
    step model is to be converted to int8 (they are read when the graph is built).
    """
    import keras

    emb, blocks, norm_f, head = _mamba_parts(emitter)
    f = int(emitter.input_shape[-1])
    x_t = keras.Input(batch_shape=(1, f), dtype="float32", name="x_t")
    states = [keras.Input(batch_shape=shape, dtype="float32", name=name) for name, shape in state_shapes(emitter)]
    h = emb(x_t)  # (1,H)
    new_states = []
    cell = _step_cell_class()
    for i, block in enumerate(blocks):
        h, conv, ssm = cell(block, folded, name=f"{block.name}_step")([h, states[2 * i], states[2 * i + 1]])
        new_states += [conv, ssm]
    emissions = head(norm_f(h))  # (1,C)
    return keras.Model([x_t] + states, [emissions] + new_states, name=f"{emitter.name}_step")


def zero_states(step_model) -> list[np.ndarray]:
    """Zero initial states for ``step_model`` (the windowed model's start of window), float32."""
    return [np.zeros(tuple(t.shape), np.float32) for t in step_model.inputs[1:]]


def run_float(step_model, x: np.ndarray, states=None, batch: int | None = None):
    """Step the float model over windows ``x (B,T,F)`` from zero states (each window independently).

    Batch-1 graphs are applied to all B windows at once by calling the step model's layers on (B, ...) tensors (the
    layers are batch-agnostic). Returns ``(emissions (B,T,C), states_seen)`` where ``states_seen`` lists, per state
    input, the ``(B,T,...)`` float32 states fed at each step (the calibration set of :func:`convert_step_model`).
    """
    import keras

    x = np.asarray(x, np.float32)
    if x.ndim != 3 or x.shape[2] != step_model.inputs[0].shape[-1]:
        raise TinyLocError(f"windows of shape {x.shape}: expected (B,T,{step_model.inputs[0].shape[-1]})")
    bsz, steps, _ = x.shape
    import tensorflow as tf

    # the same graph with a free batch dimension (shares every weight)
    ins = [keras.Input(shape=tuple(t.shape[1:]), dtype="float32") for t in step_model.inputs]
    model = keras.Model(ins, step_model(ins))

    fn = tf.function(lambda args: model(args, training=False))
    st = [np.zeros((bsz,) + tuple(t.shape[1:]), np.float32) for t in step_model.inputs[1:]] if states is None else states
    ems, seen = [], [[] for _ in st]
    for t in range(steps):
        for i, s in enumerate(st):
            seen[i].append(np.asarray(s))
        out = fn([tf.constant(x[:, t])] + [tf.constant(s) for s in st])
        ems.append(np.asarray(out[0]))
        st = [np.asarray(o) for o in out[1:]]
    return np.stack(ems, 1), [np.stack(s, 1) for s in seen]


def state_shapes_from_model(step_model) -> list[tuple[str, tuple[int, ...]]]:
    """``[(name, shape)]`` of a step model's state inputs (names ``conv_<l>``/``ssm_<l>``), in Keras input order."""
    return [(t.name, tuple(t.shape)) for t in step_model.inputs[1:]]
