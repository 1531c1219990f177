"""The streaming Mamba on the device: full-int8 conversion of the step model and int8 stepping.

The step model (:mod:`keras_tinyloc.models.mamba_step`) consumes one 5 Hz step and its states. Full int8
(:func:`convert_step_model`): every input and output is an int8 tensor with its own scale, so the device requantises
each new state into the matching input's scale before the next step (:func:`requantize`, the same arithmetic in
``tflm_app/core/tinyloc_online.cpp``). The representative dataset holds realistic states: the float step model run
over training windows, every step of every window a calibration sample. :class:`Int8Stepper` runs the int8 step
model (TFLM or LiteRT) one step at a time, carrying the requantised states, as the device does.

Measured (docs/results/streaming.md, ``benchmarks/streaming.py``; host x86-64 TFLM): the H8L1 step graph has 52
nodes, flatbuffer 14.8 KB, minimal arena 15.1 KB of which 928 B are tensor buffers (head) and the rest per-node /
per-tensor bookkeeping (H4L1 14.9 KB, H16L1 15.8 KB, H32L1 17.1 KB; the windowed T=20 H8L1 needs 38 KB), the same
for any T. House A int8 step model (TFLM) vs float windowed decoded labels: H8L1 98.8 %, H4L1 97.5 % (the int8
*windowed* model: 98.7 % / 97.9 %). On unbroken streams (no reset between windows) the int8 H8L1 step model loses
up to 12 F1 points (house C) where the float step model loses 0.2: an 8-bit state cannot represent decays slower
than ~1 - 1/256 per step (the state freezes), which 20-step windows never expose; staggered resets (two state sets
reset every T steps, T/2 apart) bound every context to < T steps (figures in the results file).
Glossary: B batch, T steps, F features, H hidden, E inner width, N state size, C classes.
"""
from __future__ import annotations

import numpy as np

from keras_tinyloc.errors import TinyLocError
from keras_tinyloc.models.mamba_step import run_float, state_shapes_from_model


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
    ``mse`` (clipped, :mod:`keras_tinyloc.deploy.calibrate`) or ``minmax`` (the converter's own).
    """
    import contextlib
    import io as io_

    import tensorflow as tf

    from keras_tinyloc.deploy import calibrate, convert, tflite_inspect, tflm

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


def requantize(q: np.ndarray, src: tuple[float, int], dst: tuple[float, int]) -> np.ndarray:
    """int8 ``q`` in quantization ``src=(scale, zp)`` -> int8 in ``dst``: ``clamp(round_half_away((q - zs) * ss / sd) + zd)``.

    Computed in float32 in this order (``(float)(q - zs) * (ss / sd)``) like the C++ twin, so both round identically;
    total like it too: a ``dst`` scale that is not > 0 gives ratio 0, a NaN product rounds to 0, +-inf saturates, zero
    points are applied exactly (64-bit integers).
    """
    from keras_tinyloc.deploy.quantize import round_half_away

    with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
        sd = np.float32(dst[0])
        ratio = np.float32(np.float32(src[0]) / sd) if sd > 0 else np.float32(0)
        v = (np.asarray(q, np.int64) - int(src[1])).astype(np.float32) * ratio
        big = np.float32(2**40)  # as the C++: beyond it every zero point saturates the same way
        r = np.clip(round_half_away(np.where(np.isnan(v), np.float32(0), v)), -big, big).astype(np.int64)
    return np.clip(r + int(dst[1]), -128, 127).astype(np.int8)


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
        from keras_tinyloc.deploy.quantize import quantize

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
