"""Streaming Mamba: a one-step model that consumes one 5 Hz step at a time and keeps only its state (issue 7).

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
windowed emissions exactly up to float32 rounding (checked in tests/test_streaming.py). The windowed model restarts
from zero at every window; the step model can also run on an unbroken stream (the device's streaming mode).

Full int8 (:func:`convert_step_model`): every input and output is an int8 tensor with its own scale, so the device
requantises each new state into the matching input's scale before the next step (:func:`requantize`, the same
arithmetic in ``tflm_app/core/tinyloc_online.cpp``). The representative dataset holds realistic states: the float
step model run over training windows, every step of every window a calibration sample.

Online CRF decoding (:class:`OnlineViterbi`, :class:`ForwardFilter`): the windowed model decodes a window with
Viterbi; on a stream a label must be emitted with bounded delay.

* Fixed-lag Viterbi with lag D (steps; 5 Hz, so D = 5 is 1 s): after step t it emits the label of step t - D on the
  best path of the prefix 0..t, the prefix scored **as if it ended at t** (the CRF's ``end`` added)::

      delta_0[j] = start[j] + e_0[j]
      delta_t[j] = max_i (delta_{t-1}[i] + trans[i, j]) + e_t[j],  bp_t[j] = argmax_i (lowest index on ties)
      label(t - D) = back-trace D steps along bp from argmax_j (delta_t[j] + end[j])

  It is therefore exactly ``viterbi_numpy(e[:t+1])[t - D]``: D = 0 is the windowed decoder's last-step label when
  the stream starts with the window; a longer lag lets later evidence revise a step. Memory: C scores and a ring of
  D + 1 rows of C back-pointers. ``delta`` is shifted by its maximum after every step (no growth on an unbroken
  stream; arg-maxes unchanged). Arithmetic is float32 in this order, like the C++ twin, so labels match exactly.
* Forward filtering: ``alpha_t = logsumexp_i(alpha_{t-1}[i] + trans[i, j]) + e_t[j]``, label = argmax_j alpha_t[j]
  (the filtering posterior's mode, lag 0, no ``end``). Python only (it needs EXP/LOG per step on the device).

Measured (docs/results/streaming.md, ``benchmarks/streaming.py``; host x86-64 TFLM): the H8L1 step graph has 52
nodes, flatbuffer 14.8 KB, minimal arena 15.1 KB of which 928 B are tensor buffers (head) and the rest per-node /
per-tensor bookkeeping (H4L1 14.9 KB, H16L1 15.8 KB, H32L1 17.1 KB; the windowed T=20 H8L1 needs 38 KB), the same
for any T. House A int8 step model (TFLM) vs float windowed decoded labels: H8L1 98.8 %, H4L1 97.5 % (the int8
*windowed* model: 98.7 % / 97.9 %). On unbroken streams (no reset between windows) the int8 H8L1 step model loses
up to 12 F1 points (house C) where the float step model loses 0.2: an 8-bit state cannot represent decays slower
than ~1 - 1/256 per step (the state freezes), which 20-step windows never expose; staggered resets (two state sets
reset every T steps, T/2 apart) bound every context to < T steps (figures in the results file).
``folded=True`` builds a 48-node variant (constant scales folded into derived kernels): arena -1.2 KB, int8
agreement mixed (house A 97.6 %, B 97.4 %), so it is not the default.

Also here: :func:`build_window_mlp`, the per-window MLP baseline (flattened window -> last-step label) the houses
comparison uses. Glossary: B batch, T steps, F features, H hidden, E inner width, N state size, C classes.
"""
from __future__ import annotations

import numpy as np

from keras_tinyloc.errors import TinyLocError


# ------------------------------------------------------------------------------------------------ the step model
def _mamba_parts(emitter):
    from keras_tinyloc.models.mamba import MambaBlock

    try:
        emb = emitter.get_layer("embedding")
        norm_f = emitter.get_layer("norm_f")
        head = emitter.get_layer("emissions")
    except ValueError:
        raise TinyLocError(f"emitter {emitter.name!r}: not a Mamba emitter (needs layers embedding, norm_f, emissions)") from None
    blocks = [layer for layer in emitter.layers if isinstance(layer, MambaBlock)]
    if not blocks:
        raise TinyLocError(f"emitter {emitter.name!r}: has no MambaBlock")
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


# ------------------------------------------------------------------------------------------------ int8
def _signature_order(tflite_bytes: bytes) -> tuple[list[str], list[str]]:
    """Input and output names (the Keras input names / output positions) in the flatbuffer's subgraph order."""
    from ai_edge_litert import interpreter as litert

    it = litert.Interpreter(model_content=bytes(tflite_bytes),
                            experimental_op_resolver_type=litert.OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES)
    sig = it._get_full_signature_list()["serving_default"]
    by_in = {idx: name for name, idx in sig["inputs"].items()}
    by_out = {idx: name for name, idx in sig["outputs"].items()}
    ins = [by_in[d["index"]] for d in it.get_input_details()]
    outs = [by_out[d["index"]] for d in it.get_output_details()]
    return ins, outs


def convert_step_model(step_model, x_train: np.ndarray, n_windows: int = 64, n_calibration: int = 400, seed: int = 0,
                       retries: int = 3, calibration: str = "mse") -> tuple[bytes, dict]:
    """Full-int8 flatbuffer of ``step_model`` (tensor names stripped) and its I/O map.

    Calibration: the float step model runs over ``n_windows`` training windows ``(B,T,F)`` from zero states; every
    (window, step) pair gives one sample ``[x_t, states fed at t]``; ``n_calibration`` of them (seeded) calibrate.
    Returns ``(tflite_bytes, io)`` with ``io = {"inputs": [names in subgraph order], "outputs": [...],
    "input_q": [(scale, zero_point)], "output_q": [...]}``; names are ``x_t``, ``conv_<l>``, ``ssm_<l>`` and for outputs
    ``emissions``, ``conv_<l>``, ``ssm_<l>``. Raises TinyLocError when the graph is not integer-only (retried
    ``retries`` times first: the converter occasionally leaves a float island). ``calibration``: activation ranges,
    ``mse`` (clipped, :mod:`keras_tinyloc.calibrate`) or ``minmax`` (the converter's own).
    """
    import contextlib
    import io as io_

    import tensorflow as tf

    from keras_tinyloc import calibrate, convert, tflite_inspect, tflm

    rng = np.random.default_rng(seed)
    x_train = np.asarray(x_train, np.float32)
    pick = rng.choice(len(x_train), size=min(n_windows, len(x_train)), replace=False)
    xw = x_train[pick]
    _, seen = run_float(step_model, xw)
    bsz, steps = xw.shape[:2]
    pairs = [(b, t) for b in range(bsz) for t in range(steps)]
    order = rng.permutation(len(pairs))[:n_calibration]
    keras_in = [t.name for t in step_model.inputs]
    samples = [[xw[b, t][None]] + [s[b, t][None] for s in seen] for b, t in (pairs[i] for i in order)]

    def rep():  # keyed by the signature's input names: the flatbuffer's input order is not the Keras order
        for s in samples:
            yield {name: np.asarray(a, np.float32) for name, a in zip(keras_in, s)}

    in_names = ["x_t"] + [name for name, _ in state_shapes_from_model(step_model)]
    out_names = ["emissions"] + [name for name, _ in state_shapes_from_model(step_model)]
    last = None
    for _ in range(max(1, retries)):
        conv = tf.lite.TFLiteConverter.from_keras_model(step_model)
        conv.optimizations = [tf.lite.Optimize.DEFAULT]
        conv.representative_dataset = rep
        conv.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        conv.inference_input_type = tf.int8
        conv.inference_output_type = tf.int8
        with contextlib.redirect_stdout(io_.StringIO()), tflm.capture_fd(2):
            buf, _ = calibrate.quantize_with_calibration(conv, list(rep()), calibration)
        try:
            tflite_inspect.check_int8(tflite_inspect.inspect_tflite(buf), what=f"step model {step_model.name!r}")
        except TinyLocError as exc:
            last = exc
            continue
        break
    else:
        raise last
    sig_in, sig_out = _signature_order(buf)
    # the signature names inputs by the Keras input names and outputs output_0.. in model output order
    io = {"inputs": [in_names[keras_in.index(n)] if n in keras_in else n for n in sig_in],
          "outputs": [out_names[int(n.rsplit("_", 1)[1])] for n in sig_out]}
    buf = convert.strip_tensor_names(buf)
    info = tflite_inspect.inspect_tflite(buf)
    io["input_q"] = [(float(info.input(i).scale), int(info.input(i).zero_point)) for i in range(len(info.inputs))]
    io["output_q"] = [(float(info.output(i).scale), int(info.output(i).zero_point)) for i in range(len(info.outputs))]
    return buf, io


def state_shapes_from_model(step_model) -> list[tuple[str, tuple[int, ...]]]:
    """``[(name, shape)]`` of a step model's state inputs (names ``conv_<l>``/``ssm_<l>``), in Keras input order."""
    return [(t.name, tuple(t.shape)) for t in step_model.inputs[1:]]


def requantize(q: np.ndarray, src: tuple[float, int], dst: tuple[float, int]) -> np.ndarray:
    """int8 ``q`` in quantization ``src=(scale, zp)`` -> int8 in ``dst``: ``clamp(round_half_away((q - zs) * ss / sd) + zd)``.

    Computed in float32 in this order (``(float)(q - zs) * (ss / sd)``) like the C++ twin, so both round identically.
    """
    from keras_tinyloc.quantize import round_half_away

    ratio = np.float32(np.float32(src[0]) / np.float32(dst[0]))
    v = (np.asarray(q, np.int32) - src[1]).astype(np.float32) * ratio
    return np.clip(round_half_away(v) + dst[1], -128, 127).astype(np.int8)


class Int8Stepper:
    """Runs an int8 step model (TFLM or LiteRT) one step at a time, carrying the requantised states.

    ``backend``: ``"tflm"`` (the tflite-micro host interpreter, as on the device) or ``"litert"``.
    ``x_t`` is fed as float ``(F,)`` and quantized with the input's scale; :meth:`step` returns the int8 emissions
    ``(C,)``. :meth:`reset` zeroes the states (quantized zero = the zero point).
    """

    def __init__(self, tflite_bytes: bytes, io: dict, backend: str = "tflm", arena: int | None = None):
        self.io = io
        self.backend = backend
        if backend == "tflm":
            from tflite_micro.python.tflite_micro import runtime

            self.it = runtime.Interpreter.from_bytes(bytes(tflite_bytes), arena_size=int(arena or 64 * 1024))
            self.in_shapes = [tuple(self.it.get_input_details(i)["shape"]) for i in range(len(io["inputs"]))]
        elif backend == "litert":
            from ai_edge_litert import interpreter as litert

            self.it = litert.Interpreter(model_content=bytes(tflite_bytes), num_threads=1,
                                         experimental_op_resolver_type=litert.OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES)
            self.it.allocate_tensors()
            self._din, self._dout = self.it.get_input_details(), self.it.get_output_details()
            self.in_shapes = [tuple(d["shape"]) for d in self._din]
        else:
            raise TinyLocError(f"backend {backend!r}: choose tflm or litert")
        self.out_of = {name: i for i, name in enumerate(io["outputs"])}
        self.reset()

    def reset(self) -> None:
        self.states = {name: np.full(shape, q[1], np.int8) for name, shape, q in
                       zip(self.io["inputs"], self.in_shapes, self.io["input_q"]) if name != "x_t"}

    def step(self, x_t: np.ndarray) -> np.ndarray:
        from keras_tinyloc.quantize import quantize

        feeds = []
        for name, shape, q in zip(self.io["inputs"], self.in_shapes, self.io["input_q"]):
            feeds.append(quantize(np.asarray(x_t, np.float32), *q).reshape(shape) if name == "x_t" else self.states[name])
        if self.backend == "tflm":
            for i, a in enumerate(feeds):
                self.it.set_input(np.ascontiguousarray(a), i)
            self.it.invoke()
            outs = [np.array(self.it.get_output(i), copy=True) for i in range(len(self.io["outputs"]))]
        else:
            for d, a in zip(self._din, feeds):
                self.it.set_tensor(d["index"], np.ascontiguousarray(a))
            self.it.invoke()
            outs = [np.array(self.it.get_tensor(d["index"]), copy=True) for d in self._dout]
        for j, name in enumerate(self.io["outputs"]):
            if name != "emissions":
                i = self.io["inputs"].index(name)
                self.states[name] = requantize(outs[j], self.io["output_q"][j], self.io["input_q"][i]).reshape(self.in_shapes[i])
        return outs[self.out_of["emissions"]].reshape(-1)

    def emission_q(self) -> tuple[float, int]:
        return self.io["output_q"][self.out_of["emissions"]]

    def run_windows(self, x: np.ndarray) -> np.ndarray:
        """int8 emissions ``(B,T,C)`` for windows ``x (B,T,F)``, each from zero states."""
        out = []
        for w in np.asarray(x, np.float32):
            self.reset()
            out.append(np.stack([self.step(w[t]) for t in range(len(w))]))
        return np.stack(out)


# ------------------------------------------------------------------------------------------------ online CRF
class OnlineViterbi:
    """Fixed-lag Viterbi over a stream of emissions ``e_t (C,)`` (module docstring: equations, exactness, memory).

    ``lag`` D >= 0 steps. :meth:`push` returns ``(index, label)`` of step t - D once t >= D, else None.
    float32 throughout, with a strict ``>`` scan (lowest index wins ties), as in ``tinyloc_online.cpp``.
    """

    def __init__(self, transitions, start, end, lag: int = 0, use_end: bool = True):
        self.trans = np.asarray(transitions, np.float32)
        self.start = np.asarray(start, np.float32)
        self.end = np.asarray(end, np.float32) if use_end else np.zeros_like(self.start)
        c = len(self.start)
        if self.trans.shape != (c, c) or self.end.shape != (c,):
            raise TinyLocError(f"CRF scores: transitions {self.trans.shape}, start {self.start.shape}, end {self.end.shape}")
        if isinstance(lag, bool) or int(lag) != lag or lag < 0:
            raise TinyLocError(f"lag={lag!r}: must be a non-negative integer")
        self.lag = int(lag)
        self.reset()

    def reset(self) -> None:
        self.t = 0
        self.delta = None
        self.bp = np.zeros((self.lag + 1, len(self.start)), np.int32)  # ring: row t % (D+1) = bp_t

    def push(self, e: np.ndarray):
        e = np.asarray(e, np.float32).reshape(-1)
        c = len(self.start)
        if self.delta is None:
            new = (self.start + e).astype(np.float32)
        else:
            new = np.empty(c, np.float32)
            row = self.bp[self.t % (self.lag + 1)]
            for j in range(c):
                best, arg = np.float32(self.delta[0] + self.trans[0, j]), 0
                for i in range(1, c):
                    v = np.float32(self.delta[i] + self.trans[i, j])
                    if v > best:
                        best, arg = v, i
                new[j] = np.float32(best + e[j])
                row[j] = arg
        m = np.float32(new.max())
        self.delta = (new - m).astype(np.float32)
        t = self.t
        self.t += 1
        if t < self.lag:
            return None
        fin = (self.delta + self.end).astype(np.float32)
        lab = 0
        for j in range(1, c):
            if fin[j] > fin[lab]:
                lab = j
        for s in range(t, t - self.lag, -1):  # back-trace D steps: label(s-1) = bp_s[label(s)]
            lab = int(self.bp[s % (self.lag + 1), lab])
        return t - self.lag, int(lab)

    def run(self, emissions: np.ndarray) -> np.ndarray:
        """Labels ``(T,)`` of a whole stream ``(T,C)``: the fixed-lag output, then the last D steps flushed from the
        final back-trace (``viterbi_numpy`` of the full stream for those)."""
        self.reset()
        em = np.asarray(emissions, np.float32)
        out = np.full(len(em), -1, np.int32)
        for e in em:
            r = self.push(e)
            if r is not None:
                out[r[0]] = r[1]
        if len(em):
            out[out < 0] = flush_tail(self, len(em))[out < 0]
        return out


def flush_tail(dec: OnlineViterbi, steps: int) -> np.ndarray:
    """Back-trace the whole ring at the end of a stream: labels of the last min(D+1, steps) steps (others -1)."""
    c = len(dec.start)
    fin = (dec.delta + dec.end).astype(np.float32)
    lab = 0
    for j in range(1, c):
        if fin[j] > fin[lab]:
            lab = j
    out = np.full(steps, -1, np.int32)
    t = steps - 1
    out[t] = lab
    for s in range(t, max(t - dec.lag, 0), -1):
        lab = int(dec.bp[s % (dec.lag + 1), lab])
        out[s - 1] = lab
    return out


class ForwardFilter:
    """Forward filtering: ``alpha_t = logsumexp_i(alpha_{t-1} + trans[:, j]) + e_t``; label = argmax alpha_t (lag 0).

    float64; ``alpha`` is normalised to log-probabilities after every step (:attr:`log_probs`).
    """

    def __init__(self, transitions, start):
        self.trans = np.asarray(transitions, np.float64)
        self.start = np.asarray(start, np.float64)
        self.reset()

    def reset(self) -> None:
        self.alpha = None

    def push(self, e: np.ndarray) -> int:
        e = np.asarray(e, np.float64).reshape(-1)
        if self.alpha is None:
            a = self.start + e
        else:
            z = self.alpha[:, None] + self.trans
            m = z.max(axis=0)
            a = m + np.log(np.exp(z - m).sum(axis=0)) + e
        mx = a.max()
        self.alpha = a - (mx + np.log(np.exp(a - mx).sum()))
        return int(np.argmax(self.alpha))

    @property
    def log_probs(self) -> np.ndarray:
        return self.alpha

    def run(self, emissions: np.ndarray) -> np.ndarray:
        self.reset()
        return np.array([self.push(e) for e in np.asarray(emissions)], np.int32)


# ------------------------------------------------------------------------------------------------ unbroken streams
def contiguous_streams(x: np.ndarray, y: np.ndarray, hop: int = 10) -> list[dict]:
    """Rebuild the unbroken step streams behind overlapping windows, for decoding without resets.

    Windows ``x (B,T,F)``, ``y (B,T)`` cut with ``hop`` (``data/windows.py``: T = 20, hop 10, inside contiguous
    blocks). Window i+1 continues window i when its first T - hop steps equal window i's last T - hop steps (features
    and labels). Returns one dict per stream: ``x (L,F)``, ``y (L,)``, ``windows`` (indices into B) and ``ends``
    (each window's last step as a position in the stream), with L = T + hop * (windows - 1).
    """
    x, y = np.asarray(x), np.asarray(y)
    if x.ndim != 3 or y.shape != x.shape[:2] or not 0 < hop <= x.shape[1]:
        raise TinyLocError(f"windows {x.shape} / labels {y.shape} / hop {hop}: expected (B,T,F), (B,T), 0 < hop <= T")
    steps = x.shape[1]
    keep = steps - hop
    out, cur = [], None
    for i in range(len(x)):
        if cur is not None and np.array_equal(x[i, :keep], cur["x"][-keep:]) and np.array_equal(y[i, :keep], cur["y"][-keep:]):
            cur["x"] = np.concatenate([cur["x"], x[i, keep:]])
            cur["y"] = np.concatenate([cur["y"], y[i, keep:]])
            cur["windows"].append(i)
            cur["ends"].append(len(cur["x"]) - 1)
            continue
        cur = {"x": x[i].copy(), "y": y[i].copy(), "windows": [i], "ends": [steps - 1]}
        out.append(cur)
    for c in out:
        c["windows"], c["ends"] = np.array(c["windows"]), np.array(c["ends"])
    return out


# ------------------------------------------------------------------------------------------------ baseline MLP
def build_window_mlp(input_shape, n_classes: int, hidden: int, layers: int = 1, seed: int = 0):
    """Per-window MLP ``(B,T,F)`` -> flatten ``(B,T*F)`` -> L x Dense(H, relu) -> Dense(C) logits ``(B,C)``.

    Predicts the window's last-step label (softmax cross-entropy): the baseline a sequence model must beat.
    """
    import keras

    if len(tuple(input_shape)) != 2:
        raise TinyLocError(f"window MLP input_shape {tuple(input_shape)!r}: expected (T, F)")
    keras.utils.set_random_seed(seed)
    t, f = (int(s) for s in input_shape)
    inp = keras.Input(shape=(t, f), dtype="float32", name="rssi")
    h = keras.layers.Flatten()(inp)
    for i in range(layers):
        h = keras.layers.Dense(hidden, activation="relu", name=f"dense_{i}")(h)
    out = keras.layers.Dense(n_classes, name="logits")(h)
    return keras.Model(inp, out, name=f"window_mlp_h{hidden}l{layers}")
