"""Generate the C/C++ headers a TFLM sketch needs: ``model_data.cc/.h`` and ``model_settings.h``.

* :func:`write_model_data` turns a ``.tflite`` flatbuffer into a 16-byte aligned ``const unsigned char`` array
  (TFLM reads the flatbuffer in place, so the alignment matters) plus its length.
* :func:`write_model_settings` writes ``model_settings.h``: ``constexpr`` values for T, F, C, the class and AP
  names, the min-max scaling, the int8 quantization parameters, the CRF scores (with T = 1, ``kSettings`` leaves the
  C×C transitions out: the core's decode never reads them then), the tensor-arena size (measured
  minimum + a stated margin), a template ``AddModelOps(resolver)`` that adds exactly the model's ops to a
  ``tflite::MicroMutableOpResolver<kNumOps>``, and ``kSettings``, a ``tinyloc::Settings`` for
  ``tflm_app/core/tinyloc_core.h``.
* ``device_settings.json`` (same values, :func:`read_device_settings`) lets ``replay`` compute the host's rooms.
* :func:`resolver_calls` maps TFLite builtin op names (``"FULLY_CONNECTED"``) to resolver methods
  (``"AddFullyConnected"``).

Floats are written so that the C++ ``float`` equals the Python float32 value exactly (shortest round-trip repr of
the float32 value, ``f`` suffix): the device's scaling and CRF arithmetic depend on it (see ``keras_tinyloc.deploy.device``).
"""
from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path

import numpy as np

from keras_tinyloc.errors import TinyLocError
from keras_tinyloc.paths import atomic_write_json, atomic_write_text

SETTINGS_JSON = "device_settings.json"

# TFLite builtin operator name -> tflite::MicroMutableOpResolver method (tensorflow/lite/micro/micro_mutable_op_resolver.h
# of the kit's TFLM, commit 90b983c; tests/deploy/test_export_c.py checks every method exists there).
# Builtin ops that convert but that this TFLM cannot run at all (no kernel, no resolver method).
NO_TFLM_KERNEL: dict[str, str] = {
    "GELU": "this TFLM has no GELU kernel (MicroMutableOpResolver has no AddGelu)",
}

# Ops with an int8-only kernel registration in TFLM (tensorflow/lite/micro/kernels/<op>.h, all included by
# micro_mutable_op_resolver.h): in a CMSIS-NN build it links only the int8 path (no float/int16 code); in a build with
# the reference kernels it is the generic kernel. model_settings.h uses them when TINYLOC_INT8_KERNELS is defined.
INT8_REGISTRATIONS: dict[str, str] = {
    "ADD": "Register_ADD_INT8",
    "AVERAGE_POOL_2D": "Register_AVERAGE_POOL_2D_INT8",
    "BATCH_MATMUL": "Register_BATCH_MATMUL_INT8",
    "CONV_2D": "Register_CONV_2D_INT8",
    "DEPTHWISE_CONV_2D": "Register_DEPTHWISE_CONV_2D_INT8",
    "FULLY_CONNECTED": "Register_FULLY_CONNECTED_INT8",
    "MAX_POOL_2D": "Register_MAX_POOL_2D_INT8",
    "MAXIMUM": "Register_MAXIMUM_INT8",
    "MINIMUM": "Register_MINIMUM_INT8",
    "MUL": "Register_MUL_INT8",
    "SOFTMAX": "Register_SOFTMAX_INT8",
    "SVDF": "Register_SVDF_INT8",
    "TRANSPOSE_CONV": "Register_TRANSPOSE_CONV_INT8",
    "UNIDIRECTIONAL_SEQUENCE_LSTM": "Register_UNIDIRECTIONAL_SEQUENCE_LSTM_INT8",
}

RESOLVER_METHODS: dict[str, str] = {
    "ABS": "AddAbs",
    "ADD": "AddAdd",
    "ADD_N": "AddAddN",
    "ARG_MAX": "AddArgMax",
    "ARG_MIN": "AddArgMin",
    "ASSIGN_VARIABLE": "AddAssignVariable",
    "AVERAGE_POOL_2D": "AddAveragePool2D",
    "BATCH_MATMUL": "AddBatchMatMul",
    "BATCH_TO_SPACE_ND": "AddBatchToSpaceNd",
    "BROADCAST_ARGS": "AddBroadcastArgs",
    "BROADCAST_TO": "AddBroadcastTo",
    "CALL_ONCE": "AddCallOnce",
    "CAST": "AddCast",
    "CEIL": "AddCeil",
    "CONCATENATION": "AddConcatenation",
    "CONV_2D": "AddConv2D",
    "COS": "AddCos",
    "CUMSUM": "AddCumSum",
    "DEPTH_TO_SPACE": "AddDepthToSpace",
    "DEPTHWISE_CONV_2D": "AddDepthwiseConv2D",
    "DEQUANTIZE": "AddDequantize",
    "DIV": "AddDiv",
    "ELU": "AddElu",
    "EMBEDDING_LOOKUP": "AddEmbeddingLookup",
    "EQUAL": "AddEqual",
    "EXP": "AddExp",
    "EXPAND_DIMS": "AddExpandDims",
    "FILL": "AddFill",
    "FLOOR": "AddFloor",
    "FLOOR_DIV": "AddFloorDiv",
    "FLOOR_MOD": "AddFloorMod",
    "FULLY_CONNECTED": "AddFullyConnected",
    "GATHER": "AddGather",
    "GATHER_ND": "AddGatherNd",
    "GREATER": "AddGreater",
    "GREATER_EQUAL": "AddGreaterEqual",
    "HARD_SWISH": "AddHardSwish",
    "IF": "AddIf",
    "L2_NORMALIZATION": "AddL2Normalization",
    "L2_POOL_2D": "AddL2Pool2D",
    "LEAKY_RELU": "AddLeakyRelu",
    "LESS": "AddLess",
    "LESS_EQUAL": "AddLessEqual",
    "LOG": "AddLog",
    "LOG_SOFTMAX": "AddLogSoftmax",
    "LOGICAL_AND": "AddLogicalAnd",
    "LOGICAL_NOT": "AddLogicalNot",
    "LOGICAL_OR": "AddLogicalOr",
    "LOGISTIC": "AddLogistic",
    "MAX_POOL_2D": "AddMaxPool2D",
    "MAXIMUM": "AddMaximum",
    "MEAN": "AddMean",
    "MINIMUM": "AddMinimum",
    "MIRROR_PAD": "AddMirrorPad",
    "MUL": "AddMul",
    "NEG": "AddNeg",
    "NOT_EQUAL": "AddNotEqual",
    "PACK": "AddPack",
    "PAD": "AddPad",
    "PADV2": "AddPadV2",
    "PRELU": "AddPrelu",
    "QUANTIZE": "AddQuantize",
    "READ_VARIABLE": "AddReadVariable",
    "REDUCE_MAX": "AddReduceMax",
    "REDUCE_MIN": "AddReduceMin",
    "RELU": "AddRelu",
    "RELU6": "AddRelu6",
    "RESHAPE": "AddReshape",
    "RESIZE_BILINEAR": "AddResizeBilinear",
    "RESIZE_NEAREST_NEIGHBOR": "AddResizeNearestNeighbor",
    "REVERSE_V2": "AddReverseV2",
    "ROUND": "AddRound",
    "RSQRT": "AddRsqrt",
    "SELECT_V2": "AddSelectV2",
    "SHAPE": "AddShape",
    "SIN": "AddSin",
    "SLICE": "AddSlice",
    "SOFTMAX": "AddSoftmax",
    "SPACE_TO_BATCH_ND": "AddSpaceToBatchNd",
    "SPACE_TO_DEPTH": "AddSpaceToDepth",
    "SPLIT": "AddSplit",
    "SPLIT_V": "AddSplitV",
    "SQRT": "AddSqrt",
    "SQUARE": "AddSquare",
    "SQUARED_DIFFERENCE": "AddSquaredDifference",
    "SQUEEZE": "AddSqueeze",
    "STRIDED_SLICE": "AddStridedSlice",
    "SUB": "AddSub",
    "SUM": "AddSum",
    "SVDF": "AddSvdf",
    "TANH": "AddTanh",
    "TRANSPOSE": "AddTranspose",
    "TRANSPOSE_CONV": "AddTransposeConv",
    "UNIDIRECTIONAL_SEQUENCE_LSTM": "AddUnidirectionalSequenceLSTM",
    "UNPACK": "AddUnpack",
    "VAR_HANDLE": "AddVarHandle",
    "WHILE": "AddWhile",
    "ZEROS_LIKE": "AddZerosLike",
}


# Limits of tinyloc::CheckSettings (tflm_app/core/tinyloc_core.h: kMaxWindow, kMaxFeatures, kMaxAbsDbm, kMaxScale,
# kMaxAbsScore); tests/deploy/test_core_sanitizers.py reads them from the header and compares.
DEVICE_MAX_WINDOW = 4096
DEVICE_MAX_FEATURES = 4096
DEVICE_MAX_ABS_DBM = np.float32(1e6)
DEVICE_MAX_SCALE = np.float32(1e6)
DEVICE_MAX_ABS_SCORE = np.float32(1e30)
INT32_MAX = 2**31 - 1


@dataclasses.dataclass
class DeviceSettings:
    """Everything the device needs besides the flatbuffer (written to ``model_settings.h``).

    Attributes:
        model_name: a label for comments and the boot banner.
        window: T, steps per window.  n_features: F (APs).  n_classes: C.
        class_names: C room names.  feature_names: F AP names.
        scale_low, scale_high: ``(F,)`` min-max scaling of raw dBm (``data.base.MinMaxScaling``).
        fill_dbm: the "not heard" value (−120).
        input_scale, input_zero_point, output_scale, output_zero_point: int8 quantization of the model's
            input and output tensors.
        transitions: ``C×C`` CRF scores i→j; start, end: ``C`` scores.
        arena_bytes: measured minimal tensor arena, host TFLM (64-bit: an upper bound for a 32-bit MCU);
            arena_margin_bytes: added on top in ``kTensorArenaSize``.
        arena_device_bytes: minimal arena measured on the Cortex-M4 (:mod:`keras_tinyloc.deploy.m4`), or None.
            When set, a 32-bit build of the sketch uses it (+ the margin) and a 64-bit (host) build ``arena_bytes``.
        ops: TFLite builtin op names used by the model (``"FULLY_CONNECTED"``); duplicates are ignored.
        hop, step_ms, ffill_steps: the pre-processing of ``data/windows.py`` (defaults = that module's).
        feature_index: optional ``(F,)`` raw AP index each model input reads (an access-point selection, e.g.
            ``beyond`` on UJIIndoorLoc); written as ``kFeatureIndex``. None (default) = inputs are the raw APs in order.
    """

    model_name: str
    window: int
    n_features: int
    n_classes: int
    class_names: list[str]
    feature_names: list[str]
    scale_low: list[float]
    scale_high: list[float]
    fill_dbm: float
    input_scale: float
    input_zero_point: int
    output_scale: float
    output_zero_point: int
    transitions: list[list[float]]
    start: list[float]
    end: list[float]
    arena_bytes: int
    arena_margin_bytes: int
    ops: list[str]
    hop: int = 10
    step_ms: int = 200
    ffill_steps: int = 5
    feature_index: list[int] | None = None
    arena_device_bytes: int | None = None

    def validate(self) -> None:
        """Raise TinyLocError naming the first field that is inconsistent.

        The same rules as ``tinyloc::CheckSettings`` (``tflm_app/core/tinyloc_core.h``; ``device.check_settings``
        gives its status), on the float32 values the header holds, plus what only Python can see (list lengths).
        """
        name = f"device settings of {self.model_name!r}"
        for field in ("window", "n_features", "n_classes", "hop", "step_ms"):
            if int(getattr(self, field)) < 1:
                raise TinyLocError(f"{name}: {field} = {getattr(self, field)} must be >= 1")
        if self.n_classes > 255:
            raise TinyLocError(f"{name}: n_classes = {self.n_classes}; the device decoder supports at most 255")
        for field, most in (("window", DEVICE_MAX_WINDOW), ("n_features", DEVICE_MAX_FEATURES),
                            ("hop", INT32_MAX), ("step_ms", INT32_MAX), ("ffill_steps", INT32_MAX)):
            if int(getattr(self, field)) > most:
                raise TinyLocError(f"{name}: {field} = {getattr(self, field)}; the device core supports at most {most}")
        if int(self.ffill_steps) < 0:
            raise TinyLocError(f"{name}: ffill_steps = {self.ffill_steps} must be >= 0")
        if not self.ops:
            raise TinyLocError(f"{name}: ops is empty (the model uses no operator?)")
        sizes = {
            "class_names": (len(self.class_names), self.n_classes),
            "feature_names": (len(self.feature_names), self.n_features),
            "scale_low": (len(self.scale_low), self.n_features),
            "scale_high": (len(self.scale_high), self.n_features),
            "start": (len(self.start), self.n_classes),
            "end": (len(self.end), self.n_classes),
            "transitions": (len(self.transitions), self.n_classes),
        }
        for field, (got, want) in sizes.items():
            if got != want:
                raise TinyLocError(f"{name}: {field} has {got} entries, expected {want}")
        for i, row in enumerate(self.transitions):
            if len(row) != self.n_classes:
                raise TinyLocError(f"{name}: transitions row {i} has {len(row)} entries, expected {self.n_classes}")
        with np.errstate(over="ignore", invalid="ignore", divide="ignore"):  # float32 as on the device
            for field in ("input_scale", "output_scale"):
                v = float(getattr(self, field))
                if not (v > 0 and math.isfinite(v) and 0 < np.float32(v) <= DEVICE_MAX_SCALE):
                    raise TinyLocError(f"{name}: {field} = {v} must be in (0, {DEVICE_MAX_SCALE:g}] as a float32")
            dbm = {"fill_dbm": np.float32([self.fill_dbm]), "scale_low": np.asarray(self.scale_low, np.float32),
                   "scale_high": np.asarray(self.scale_high, np.float32)}
            for field, v in dbm.items():
                bad = np.flatnonzero(~(np.abs(v) <= DEVICE_MAX_ABS_DBM))
                if len(bad):
                    where = "" if field == "fill_dbm" else f"[{bad[0]}]"
                    raise TinyLocError(f"{name}: {field}{where} = {float(v[bad[0]])} is not a finite dBm value "
                                       f"within +-{DEVICE_MAX_ABS_DBM:g}")
            span = dbm["scale_high"] - dbm["scale_low"]
            inv = np.float32(1) / np.where(span > 0, span, np.float32(1))
            bad = np.flatnonzero((span > 0) & ~np.isfinite(inv))
            if len(bad):
                raise TinyLocError(f"{name}: scale_high[{bad[0]}] - scale_low[{bad[0]}] = {float(span[bad[0]])!r} is "
                                   "too small to divide by in float32")
            for field in ("transitions", "start", "end"):
                v = np.asarray(getattr(self, field), np.float32).reshape(-1)
                bad = np.flatnonzero(~(np.abs(v) <= DEVICE_MAX_ABS_SCORE))
                if len(bad):
                    raise TinyLocError(f"{name}: {field} value {float(v[bad[0]])} is not finite or beyond "
                                       f"+-{DEVICE_MAX_ABS_SCORE:g}")
        for field in ("input_zero_point", "output_zero_point"):
            v = int(getattr(self, field))
            if not -128 <= v <= 127:
                raise TinyLocError(f"{name}: {field} = {v} is outside the int8 range")
        if self.feature_index is not None:
            if len(self.feature_index) != self.n_features:
                raise TinyLocError(
                    f"{name}: feature_index has {len(self.feature_index)} entries, expected {self.n_features}"
                )
            if any(int(v) < 0 for v in self.feature_index) or len(set(map(int, self.feature_index))) != self.n_features:
                raise TinyLocError(f"{name}: feature_index must hold distinct non-negative indices")
        if self.arena_bytes < 0 or self.arena_margin_bytes < 0 or (self.arena_device_bytes or 0) < 0:
            raise TinyLocError(f"{name}: arena sizes must be >= 0")
        resolver_calls(self.ops)


def resolver_calls(ops: list[str]) -> list[str]:
    """``["FULLY_CONNECTED", "RESHAPE", "FULLY_CONNECTED"]`` -> ``["AddFullyConnected", "AddReshape"]``.

    Order of first appearance, duplicates removed. Raises TinyLocError for an op TFLM's resolver does not know.
    """
    out: list[str] = []
    for op in ops:
        key = str(op).upper()
        if key in NO_TFLM_KERNEL:
            raise TinyLocError(f"op {op!r}: {NO_TFLM_KERNEL[key]}")
        if key not in RESOLVER_METHODS:
            raise TinyLocError(f"op {op!r}: no tflite::MicroMutableOpResolver method known for it")
        method = RESOLVER_METHODS[key]
        if method not in out:
            out.append(method)
    return out


def builtin_op_codes(op_names: list[str]) -> list[int]:
    """TFLite builtin operator codes (``tflite::BuiltinOperator``) of op names: ``["FULLY_CONNECTED"]`` -> ``[9]``.

    From the schema the ``tflite_micro`` wheel generates from TFLite's ``schema.fbs`` (codes are append-only, so they
    agree with every TFLM tree); written as ``kOpCodes`` so the sketch checks a model's ops by number: built with
    ``TINYLOC_NO_OP_NAMES`` it needs no table of TFLM's ~200 op names (3.3 KiB of flash on a Cortex-M).
    """
    from tflite_micro.tensorflow.lite.micro.python import schema_py_generated as schema

    out = []
    for op in op_names:
        code = getattr(schema.BuiltinOperator, str(op).upper(), None)
        if not isinstance(code, int):
            raise TinyLocError(f"op {op!r}: not a TFLite builtin operator")
        out.append(code)
    return out


def c_string(text: str) -> str:
    """A C string literal for ``text`` (UTF-8, escaped)."""
    out = []
    for b in str(text).encode("utf-8"):
        ch = chr(b)
        if ch in ('"', "\\"):
            out.append("\\" + ch)
        elif 32 <= b < 127 and ch != "?":
            out.append(ch)
        else:
            out.append(f"\\{b:03o}")
    return '"' + "".join(out) + '"'


def c_float(value: float) -> str:
    """A C++ float literal equal to ``np.float32(value)`` exactly."""
    v = np.float32(value)
    if not np.isfinite(v):
        raise TinyLocError(f"value {value!r} is not finite; cannot write it to a C header")
    text = repr(float(v))
    if "e" not in text and "." not in text:
        text += ".0"
    return text + "f"


def _array(values, per_line: int = 8) -> str:
    items = list(values)
    lines = [", ".join(items[i : i + per_line]) for i in range(0, len(items), per_line)]
    return "{\n    " + ",\n    ".join(lines) + "}"


def model_data_source(tflite_bytes: bytes, symbol: str = "g_model") -> tuple[str, str]:
    """Return the text of ``model_data.cc`` and ``model_data.h`` for a flatbuffer."""
    if not symbol.isidentifier():
        raise TinyLocError(f"symbol {symbol!r} is not a C identifier")
    data = bytes(tflite_bytes)
    if len(data) < 8:
        raise TinyLocError(f"model flatbuffer has {len(data)} bytes; too short to be a .tflite file")
    header = (
        "// Generated by keras_tinyloc.deploy.export_c: the .tflite flatbuffer as a C array. Do not edit.\n"
        "#ifndef TINYLOC_MODEL_DATA_H_\n#define TINYLOC_MODEL_DATA_H_\n\n"
        f"// {len(data)} bytes, 16-byte aligned (TFLM reads the flatbuffer in place).\n"
        f"extern const unsigned char {symbol}[];\n"
        f"extern const unsigned int {symbol}_len;\n\n"
        "#endif  // TINYLOC_MODEL_DATA_H_\n"
    )
    hexes = [f"0x{b:02x}" for b in data]
    body = ",\n  ".join(", ".join(hexes[i : i + 12]) for i in range(0, len(hexes), 12))
    source = (
        "// Generated by keras_tinyloc.deploy.export_c: the .tflite flatbuffer as a C array. Do not edit.\n"
        '#include "model_data.h"\n\n'
        f"alignas(16) const unsigned char {symbol}[] = {{\n  {body}}};\n"
        f"const unsigned int {symbol}_len = {len(data)};\n"
    )
    return source, header


def write_model_data(out_dir, tflite_bytes: bytes, symbol: str = "g_model") -> tuple[Path, Path]:
    """Write ``model_data.cc`` and ``model_data.h`` into ``out_dir``; return their paths."""
    out_dir = Path(out_dir)
    source, header = model_data_source(tflite_bytes, symbol)
    cc, h = out_dir / "model_data.cc", out_dir / "model_data.h"
    atomic_write_text(h, header)
    atomic_write_text(cc, source)
    return cc, h


def model_settings_source(settings: DeviceSettings) -> str:
    """Return the text of ``model_settings.h`` for ``settings`` (validated first)."""
    s = settings
    s.validate()
    methods = resolver_calls(s.ops)
    op_names = []
    for op in s.ops:
        if str(op).upper() not in op_names:
            op_names.append(str(op).upper())
    trans = [c_float(v) for row in s.transitions for v in row]
    add_ops = add_ops_body(op_names)
    op_codes = [f"{c} /* {n} */" for c, n in zip(builtin_op_codes(op_names), op_names)]
    # T = 1: tinyloc::Decode reads start + emissions + end only (argmax), so kSettings points at no transition table and
    # the windowed sketch's firmware carries none (59 classes: 13.9 KB of flash); kTransitions stays for the streaming
    # sketch's OnlineViterbi, which names it directly (an unreferenced constexpr array takes no flash).
    settings_transitions = "nullptr" if int(s.window) == 1 else "kTransitions"
    trans_note = ("\n// Not in kSettings: with kWindow = 1 no step follows another in a window (the streaming sketch's decoder "
                  "uses it).") if int(s.window) == 1 else ""
    feature_index = "" if s.feature_index is None else (
        "\n// Access-point selection: model input i reads raw AP kFeatureIndex[i] (0-based column of the raw scan).\n"
        f"constexpr int kFeatureIndex[kNumFeatures] = {_array(str(int(v)) for v in s.feature_index)};\n"
    )
    return f"""// Generated by keras_tinyloc.deploy.export_c for model {c_string(s.model_name)[1:-1]}. Do not edit:
// re-run `python -m keras_tinyloc convert` instead. Values match the Python pipeline exactly
// (floats are the float32 values used on the host).
#ifndef TINYLOC_MODEL_SETTINGS_H_
#define TINYLOC_MODEL_SETTINGS_H_

#include <stdint.h>

#include "tinyloc_core.h"

namespace model_settings {{

constexpr const char* kModelName = {c_string(s.model_name)};

// Shapes: input (1, kWindow, kNumFeatures) int8, output (1, kWindow, kNumClasses) int8.
constexpr int kWindow = {int(s.window)};
constexpr int kNumFeatures = {int(s.n_features)};
constexpr int kNumClasses = {int(s.n_classes)};

// Pre-processing (keras_tinyloc/data/windows.py): 5 Hz grid, forward-fill, windows of kWindow steps every kHop.
constexpr int kStepMs = {int(s.step_ms)};
constexpr int kFfillSteps = {int(s.ffill_steps)};
constexpr int kHop = {int(s.hop)};
constexpr float kFillDbm = {c_float(s.fill_dbm)};

// Min-max scaling of raw dBm: clip((raw - low) / (high - low), 0, 1), 0 where high == low.
constexpr float kScaleLow[kNumFeatures] = {_array(c_float(v) for v in s.scale_low)};
constexpr float kScaleHigh[kNumFeatures] = {_array(c_float(v) for v in s.scale_high)};

// int8 quantization: q = clamp(round_half_away(x / scale) + zero_point, -128, 127); x = (q - zero_point) * scale.
constexpr float kInputScale = {c_float(s.input_scale)};
constexpr int kInputZeroPoint = {int(s.input_zero_point)};
constexpr float kOutputScale = {c_float(s.output_scale)};
constexpr int kOutputZeroPoint = {int(s.output_zero_point)};

// CRF scores: kTransitions[i * kNumClasses + j] = score of class i followed by class j.{trans_note}
constexpr float kTransitions[kNumClasses * kNumClasses] = {_array(trans)};
constexpr float kStart[kNumClasses] = {_array(c_float(v) for v in s.start)};
constexpr float kEnd[kNumClasses] = {_array(c_float(v) for v in s.end)};

constexpr const char* kClassNames[kNumClasses] = {_array((c_string(n) for n in s.class_names), 4)};
constexpr const char* kFeatureNames[kNumFeatures] = {_array((c_string(n) for n in s.feature_names), 4)};
{feature_index}
{_arena_block(s)}

// The model's ops, exactly: declare tflite::MicroMutableOpResolver<kNumOps> and call AddModelOps on it.
constexpr int kNumOps = {len(methods)};
constexpr const char* kOpNames[kNumOps] = {_array((c_string(n) for n in op_names), 4)};
// The same ops as TFLite builtin operator codes (tflite::BuiltinOperator): the sketch's boot check compares these.
constexpr int kOpCodes[kNumOps] = {_array(op_codes, 4)};

// Adds exactly the model's ops; returns how many were added (== kNumOps on success). With TINYLOC_INT8_KERNELS
// defined (TFLM's micro_mutable_op_resolver.h included before this header), ops that TFLM has an int8-only kernel
// for are registered with it: a CMSIS-NN build then links no float/int16 code for them (less flash).
template <typename Resolver>
int AddModelOps(Resolver& resolver) {{
  int added = 0;
{add_ops}
  return added;
}}

// The settings the portable core (tflm_app/core/tinyloc_core.h) runs with.
constexpr tinyloc::Settings kSettings = {{
    kWindow, kNumFeatures, kNumClasses, kHop, kStepMs, kFfillSteps, kFillDbm,
    kScaleLow, kScaleHigh,
    kInputScale, kInputZeroPoint, kOutputScale, kOutputZeroPoint,
    {settings_transitions}, kStart, kEnd, kClassNames, kNumOps}};

}}  // namespace model_settings

#endif  // TINYLOC_MODEL_SETTINGS_H_
"""


def add_ops_body(op_names: list[str]) -> str:
    """The body of ``AddModelOps``: one resolver call per op; an ``#if defined(TINYLOC_INT8_KERNELS)`` branch with
    the int8-only registrations (:data:`INT8_REGISTRATIONS`) when any op has one."""
    methods = resolver_calls(op_names)
    plain = "\n".join(f"  if (resolver.{m}() == 0) ++added;" for m in methods)
    keys = list(dict.fromkeys(str(op).upper() for op in op_names))
    if not any(k in INT8_REGISTRATIONS for k in keys):
        return plain
    int8 = "\n".join(f"  if (resolver.{RESOLVER_METHODS[k]}(" + (f"tflite::{INT8_REGISTRATIONS[k]}()" if k in
                                                                 INT8_REGISTRATIONS else "") + ") == 0) ++added;"
                     for k in keys)
    return f"#if defined(TINYLOC_INT8_KERNELS)\n{int8}\n#else\n{plain}\n#endif"


def _arena_block(s: DeviceSettings) -> str:
    """The tensor-arena constants of ``model_settings.h``: the measured minimum(s) + the margin."""
    host, margin = int(s.arena_bytes), int(s.arena_margin_bytes)
    if s.arena_device_bytes is None:
        return (f"// Tensor arena: {host} bytes measured as the minimal working arena with TFLM on a 64-bit host (an upper\n"
                f"// bound for a 32-bit MCU) + a margin of {margin} bytes.\n"
                f"constexpr int kArenaMeasuredBytes = {host};\n"
                f"constexpr int kArenaMarginBytes = {margin};\n"
                f"constexpr int kTensorArenaSize = {host + margin};")
    dev = int(s.arena_device_bytes)
    return (f"// Tensor arena: the minimal working arena, measured with TFLM on a Cortex-M4 (CMSIS-NN kernels, QEMU\n"
            f"// mps2-an386): {dev} bytes; on a 64-bit host: {host} bytes (pointers and TFLM's structs are larger).\n"
            f"// Plus a margin of {margin} bytes. A 32-bit build takes the Cortex-M4 figure, a 64-bit build the host's.\n"
            f"#if UINTPTR_MAX > 0xFFFFFFFFu\n"
            f"constexpr int kArenaMeasuredBytes = {host};\n"
            f"#else\n"
            f"constexpr int kArenaMeasuredBytes = {dev};\n"
            f"#endif\n"
            f"constexpr int kArenaMarginBytes = {margin};\n"
            f"constexpr int kTensorArenaSize = kArenaMeasuredBytes + kArenaMarginBytes;")


def write_model_settings(out_dir, settings: DeviceSettings) -> Path:
    """Write ``model_settings.h`` (and its JSON twin ``device_settings.json``, read by ``replay``) into ``out_dir``.

    Returns the path of ``model_settings.h``.
    """
    path = Path(out_dir) / "model_settings.h"
    atomic_write_text(path, model_settings_source(settings))
    atomic_write_json(Path(out_dir) / SETTINGS_JSON, dataclasses.asdict(settings))
    return path


def read_device_settings(path) -> DeviceSettings:
    """Load ``device_settings.json`` (written by :func:`write_model_settings`); one-line errors naming the file."""
    path = Path(path)
    if path.suffix != ".json":  # a convert output directory
        path = path / SETTINGS_JSON
    try:
        raw = json.loads(path.read_text())
    except FileNotFoundError:
        raise TinyLocError(f"{path}: not found (convert the run with --quant int8 first)") from None
    except (OSError, ValueError) as exc:
        raise TinyLocError(f"{path}: cannot read device settings ({exc})") from None
    names = {f.name for f in dataclasses.fields(DeviceSettings)}
    missing = [f.name for f in dataclasses.fields(DeviceSettings)
               if f.name not in raw and f.default is dataclasses.MISSING]
    if not isinstance(raw, dict) or missing:
        raise TinyLocError(f"{path}: missing field(s) {', '.join(missing) or '(not an object)'}")
    settings = DeviceSettings(**{k: v for k, v in raw.items() if k in names})
    try:
        settings.validate()
    except TinyLocError as exc:
        raise TinyLocError(f"{path}: {exc}") from None
    return settings
