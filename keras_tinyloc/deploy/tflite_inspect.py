"""Read a .tflite flatbuffer without an interpreter: its ops, tensors and types, and the int8 deployability check.

The check that matters: the TFLite converter does **not** fail when part of a "full-int8" graph stays float;
it silently wraps those ops in DEQUANTIZE/QUANTIZE. :func:`check_int8` rejects such graphs, and graphs with ops
TFLM cannot run in int8, naming the ops at fault.
"""
from __future__ import annotations

import dataclasses

import numpy as np

from keras_tinyloc.errors import TinyLocError

# TensorType enum of the TFLite schema -> name.
_TENSOR_TYPES = {
    0: "float32", 1: "float16", 2: "int32", 3: "uint8", 4: "int64", 5: "string", 6: "bool", 7: "int16",
    8: "complex64", 9: "int8", 10: "float64", 11: "complex128", 12: "uint64", 13: "resource", 14: "variant",
    15: "uint32", 16: "uint16", 17: "int4",
}
FLOAT_TYPES = frozenset({"float32", "float16", "float64"})

# Ops the converter can emit in an int8 graph but that TFLM cannot run there (float-only kernel, not registered,
# or a control-flow op whose int8 calibration crashes the converter). Measured with the tflite-micro host wheel:
# EXP/LOG/SQRT fail in Prepare/Invoke on int8 input, GELU has no registration.
TFLM_INT8_UNSUPPORTED: dict[str, str] = {
    "EXP": "TFLM's EXP kernel is float32-only",
    "LOG": "TFLM's LOG kernel is float32-only",
    "SQRT": "TFLM's SQRT kernel is float32-only",
    "GELU": "not registered in TFLM",
    "WHILE": "control flow; the converter's int8 calibration crashes on it: unroll the loop over T",
    "FLEX": "TF (Flex) ops do not exist in TFLM",
    "CUSTOM": "custom op (no TFLM kernel registered)",
}


@dataclasses.dataclass(frozen=True)
class TensorInfo:
    """One tensor: index, name, dtype name, shape, per-tensor quantization (scale, zero point) or None."""

    index: int
    name: str
    dtype: str
    shape: tuple[int, ...]
    scale: float | None
    zero_point: int | None
    is_constant: bool


@dataclasses.dataclass(frozen=True)
class OpInfo:
    """One operator of subgraph 0 in execution order: builtin name, input and output tensor indices."""

    index: int
    name: str
    inputs: tuple[int, ...]
    outputs: tuple[int, ...]


@dataclasses.dataclass(frozen=True)
class ModelInfo:
    """Everything :func:`inspect_tflite` reads: ops in order, tensors, graph inputs and outputs."""

    ops: tuple[OpInfo, ...]
    tensors: tuple[TensorInfo, ...]
    inputs: tuple[int, ...]
    outputs: tuple[int, ...]
    n_subgraphs: int

    @property
    def op_types(self) -> list[str]:
        """Sorted unique builtin op names (the list a ``MicroMutableOpResolver`` needs)."""
        return sorted({op.name for op in self.ops})

    def input(self, i: int = 0) -> TensorInfo:
        return self.tensors[self.inputs[i]]

    def output(self, i: int = 0) -> TensorInfo:
        return self.tensors[self.outputs[i]]


def _schema():
    from tflite_micro.tensorflow.lite.micro.python import schema_py_generated as schema

    return schema


def _op_names(schema) -> dict[int, str]:
    return {v: k for k, v in vars(schema.BuiltinOperator).items() if not k.startswith("_") and isinstance(v, int)}


def inspect_tflite(tflite_bytes: bytes) -> ModelInfo:
    """Parse a flatbuffer: ops (builtin names, subgraph 0 and the rest appended) and every tensor's dtype."""
    schema = _schema()
    try:
        model = schema.ModelT.InitFromObj(schema.Model.GetRootAsModel(bytearray(tflite_bytes), 0))
    except Exception as exc:  # flatbuffers raises assorted errors on garbage
        raise TinyLocError(f"not a valid .tflite flatbuffer ({type(exc).__name__}: {exc})") from None
    if not model.subgraphs:
        raise TinyLocError("not a valid .tflite flatbuffer (no subgraphs)")
    names = _op_names(schema)
    codes = model.operatorCodes or []
    sub = model.subgraphs[0]
    buffers = model.buffers or []
    tensors = []
    for i, t in enumerate(sub.tensors or []):
        q = t.quantization
        scale = zp = None
        if q is not None and q.scale is not None and len(q.scale) >= 1:
            scale = float(q.scale[0])
            zp = int(q.zeroPoint[0]) if q.zeroPoint is not None and len(q.zeroPoint) else 0
        buf = buffers[t.buffer] if 0 < t.buffer < len(buffers) else None
        const = buf is not None and buf.data is not None and len(buf.data) > 0
        name = t.name.decode() if isinstance(t.name, bytes) else str(t.name)
        shape = tuple(int(s) for s in (t.shape if t.shape is not None else []))
        tensors.append(TensorInfo(i, name, _TENSOR_TYPES.get(t.type, f"type{t.type}"), shape, scale, zp, const))
    ops = []
    for k, sg in enumerate(model.subgraphs):
        for j, op in enumerate(sg.operators or []):
            oc = codes[op.opcodeIndex]
            code = max(oc.builtinCode, oc.deprecatedBuiltinCode)
            name = names.get(code, f"BUILTIN_{code}")
            if name == "CUSTOM" and oc.customCode:
                cc = oc.customCode.decode() if isinstance(oc.customCode, bytes) else str(oc.customCode)
                name = "FLEX" if cc.startswith("Flex") else "CUSTOM"
            ins = tuple(int(v) for v in (op.inputs if op.inputs is not None else []))
            outs = tuple(int(v) for v in (op.outputs if op.outputs is not None else []))
            ops.append(OpInfo(len(ops), name, ins if k == 0 else (), outs if k == 0 else ()))
    return ModelInfo(
        ops=tuple(ops),
        tensors=tuple(tensors),
        inputs=tuple(int(v) for v in sub.inputs),
        outputs=tuple(int(v) for v in sub.outputs),
        n_subgraphs=len(model.subgraphs),
    )


def float_ops(info: ModelInfo) -> list[str]:
    """Ops that compute in float: any float input/output tensor, every DEQUANTIZE, a QUANTIZE fed by float.

    An int8 -> int8 QUANTIZE (a requantization) is an integer op and is not listed.
    Returns ``"NAME#index"`` strings in execution order.
    """
    bad = []
    for op in info.ops:
        dtypes = [info.tensors[i].dtype for i in (*op.inputs, *op.outputs) if i >= 0]
        if op.name == "DEQUANTIZE" or any(d in FLOAT_TYPES for d in dtypes):
            bad.append(f"{op.name}#{op.index}")
    return bad


def unsupported_ops(info: ModelInfo) -> list[str]:
    """Op types TFLM cannot run in an int8 graph (see :data:`TFLM_INT8_UNSUPPORTED`), sorted."""
    return sorted({op.name for op in info.ops if op.name in TFLM_INT8_UNSUPPORTED})


def check_int8(info: ModelInfo, what: str = "model") -> None:
    """Raise TinyLocError unless the graph is integer-only end to end and every op runs in TFLM int8."""
    problems = []
    unsup = unsupported_ops(info)
    if unsup:
        problems.append("ops TFLM cannot run in int8: " + ", ".join(f"{n} ({TFLM_INT8_UNSUPPORTED[n]})" for n in unsup))
    fl = float_ops(info)
    if fl:
        problems.append(f"{len(fl)} float op(s) left in the int8 graph: {', '.join(fl[:12])}{' …' if len(fl) > 12 else ''}")
    for role, idx in (("input", info.inputs), ("output", info.outputs)):
        for i in idx:
            if info.tensors[i].dtype != "int8":
                problems.append(f"graph {role} {info.tensors[i].name!r} is {info.tensors[i].dtype}, not int8")
    if info.n_subgraphs > 1:
        problems.append(f"{info.n_subgraphs} subgraphs (control flow)")
    if problems:
        raise TinyLocError(f"{what}: not deployable as full int8: " + "; ".join(problems))


def summary(info: ModelInfo) -> dict:
    """JSON-able listing: ops in order, op types, tensors (name, dtype, shape), float ops."""
    return {
        "ops": [op.name for op in info.ops],
        "op_types": info.op_types,
        "tensors": [{"name": t.name, "dtype": t.dtype, "shape": list(t.shape)} for t in info.tensors],
        "float_ops": float_ops(info),
        "input": {"dtype": info.input().dtype, "shape": list(info.input().shape),
                  "scale": info.input().scale, "zero_point": info.input().zero_point},
        "output": {"dtype": info.output().dtype, "shape": list(info.output().shape),
                   "scale": info.output().scale, "zero_point": info.output().zero_point},
    }
