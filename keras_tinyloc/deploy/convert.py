"""Convert a trained run's emitter to TFLite (full int8, dynamic range or float), verify it in TFLM, report.

``python -m keras_tinyloc convert RUN_DIR [--quant int8|dynamic|float] [--out DIR] [--sketch DIR]`` writes to
DIR (default ``RUN_DIR/tflite-<quant>``), atomically (all files or none):

* ``model.tflite``; for int8 also ``model_data.cc/.h`` and ``model_settings.h`` (via :mod:`keras_tinyloc.deploy.export_c`);
* ``report.json`` (see :func:`convert_model`) and ``report.md``.

Modes: **int8** = full-integer post-training quantization (TFLITE_BUILTINS_INT8, int8 input and output, calibrated
on training windows), rejected if any float op, QUANTIZE/DEQUANTIZE island or op TFLM cannot run remains; evaluated
**through TFLM**. **dynamic** = dynamic-range (int8 weights, float activations): host-only, evaluated with LiteRT,
not deployable to TFLM. **float** = float32 reference, evaluated through TFLM.

Targets (``--target``): **host** = the figures above (arena from the 64-bit host TFLM: an upper bound for an MCU;
MCU fit on arena + flatbuffer, a lower bound of the need). **cortex-m4** (int8 only) = also a ``device`` section,
measured with real TFLM (CMSIS-NN) on an emulated Cortex-M4F (:func:`keras_tinyloc.deploy.m4.measure_device`: minimal
M4 arena, whole-firmware flash split, RAM with stack and static data, exact instructions per invoke, outputs vs the
host TFLM, latency and energy per MCU); the MCU fit then uses the whole firmware's flash and RAM, and
``model_settings.h`` gets the M4 arena for 32-bit builds. The command line's default is ``cortex-m4`` when the TFLM kit
and the Arm toolchain are present (``auto``), else ``host``; :class:`ConvertConfig`'s default is ``host`` (library
callers — sweeps, benchmarks, tests — ask for the device explicitly: it costs ~10-30 s per model, plus a one-time
TFLM library build of a few minutes, cached).

Only the emitter ``(B,T,F) -> (B,T,C)`` is converted, with the batch fixed at 1 (as on the device; it also removes
the SHAPE/GATHER/PACK ops a dynamic batch puts around every reshape); the shipped flatbuffer has its tensor names
stripped (:func:`strip_tensor_names`: up to 3/4 of a small model's flash). CRF Viterbi decoding runs on the host on the
(dequantized) emissions with the run's transition/start/end scores, exactly as the device does.
"""
from __future__ import annotations

import argparse
import contextlib
import dataclasses
import io
import os
import sys
import time
from pathlib import Path

import numpy as np

from keras_tinyloc.deploy import calibrate, mcu, tflite_inspect, tflm
from keras_tinyloc.errors import TinyLocError, check_ints, check_seed, cli_errors
from keras_tinyloc.paths import (atomic_dir, atomic_write_bytes, atomic_write_json, atomic_write_text, check_output,
                                 claimed_output)
from keras_tinyloc.data.windows import representative_sample
from keras_tinyloc.deploy.quantize import dequantize, quantize, representative_dataset
from keras_tinyloc.training.train import check_run_contract, load_run, load_run_dataset

QUANT_MODES = ("int8", "dynamic", "float")
TARGETS = ("host", "cortex-m4", "auto")
DEVICE_COMPARE_WINDOWS = 64  # test windows run on the emulated M4 and compared with the host TFLM


@dataclasses.dataclass
class ConvertConfig:
    """One conversion.

    Attributes:
        run_dir: a run directory written by ``train``/``distill`` (model.keras, config.json, metrics.json).
        quant: ``int8`` | ``dynamic`` | ``float``.
        out: output directory; None = ``run_dir/tflite-<quant>``.
        sketch: if set, also export the device files next to this sketch (``keras_tinyloc.deploy.sketch``).
        n_calibration: training windows in the representative dataset; seed: which ones.
        calibration: int8 activation ranges: ``mse`` (MSE-optimal clipping, default) or ``minmax`` (converter's own).
        arena_margin_bytes: added to the measured arena in ``model_settings.h``.
        overwrite: replace an existing non-empty ``out``.
        data_dir: override the run's data directory (None = the one in config.json).
        target: ``host`` (default here), ``cortex-m4`` (adds the ``device`` section; int8 only) or ``auto``
            (cortex-m4 when :func:`keras_tinyloc.deploy.m4.tools_missing_reason` is None, else host).
    """

    run_dir: str
    quant: str = "int8"
    out: str | None = None
    sketch: str | None = None
    n_calibration: int = 200
    seed: int = 0
    calibration: str = "mse"
    arena_margin_bytes: int = 256
    overwrite: bool = False
    data_dir: str | None = None
    target: str = "host"

    def out_dir(self) -> Path:
        return Path(self.out) if self.out is not None else Path(self.run_dir) / f"tflite-{self.quant}"

    def validate(self) -> None:
        """Check every option and the output folders (:func:`keras_tinyloc.paths.check_output`) before any work;
        one-line :class:`TinyLocError` otherwise."""
        if self.quant not in QUANT_MODES:
            raise TinyLocError(f"--quant {self.quant!r}: choose from {', '.join(QUANT_MODES)}")
        if self.sketch is not None and self.quant != "int8":
            raise TinyLocError(f"--sketch needs --quant int8 (the device runs the int8 model), got --quant {self.quant}")
        if self.calibration not in calibrate.CALIBRATIONS:
            raise TinyLocError(f"--calibration {self.calibration!r}: choose from {', '.join(calibrate.CALIBRATIONS)}")
        check_ints(1, 100_000, n_calibration=self.n_calibration)
        check_ints(0, 1 << 20, arena_margin_bytes=self.arena_margin_bytes)
        check_seed(self.seed)
        check_output(self.out if self.out is not None else self.out_dir(), self.overwrite)
        if self.sketch is not None:
            check_output(self.sketch, self.overwrite, flag="--sketch")


# ----------------------------------------------------------------------------------------------- conversion
def fixed_batch(emitter, batch: int = 1):
    """Wrap a functional emitter ``(None,T,F) -> (None,T,C)`` as ``(batch,T,F) -> (batch,T,C)`` (same weights)."""
    import keras

    shape = emitter.input_shape
    if len(shape) != 3 or shape[1] is None or shape[2] is None:
        raise TinyLocError(f"emitter input shape {shape}: expected (B,T,F) with static T and F")
    inp = keras.Input(batch_shape=(batch, int(shape[1]), int(shape[2])), dtype="float32", name="rssi")
    return keras.Model(inp, emitter(inp, training=False), name=f"{emitter.name}_b{batch}")


def check_representative(rep_x, emitter) -> np.ndarray:
    """Representative windows must be ``(B,T,F)`` float with the emitter's T and F, finite."""
    x = np.asarray(rep_x)
    _, steps, feats = emitter.input_shape
    if x.ndim != 3 or x.shape[1:] != (steps, feats) or len(x) == 0:
        raise TinyLocError(f"representative data has shape {x.shape}; the emitter takes (B,{steps},{feats})")
    if not np.issubdtype(x.dtype, np.floating) or not np.all(np.isfinite(x)):
        raise TinyLocError(f"representative data must be finite floats (got dtype {x.dtype})")
    return x.astype(np.float32)


INT8_ATTEMPTS = 4  # see convert_emitter: the int8 quantizer is not deterministic


def convert_emitter(emitter, quant: str = "int8", rep_x: np.ndarray | None = None,
                    n_calibration: int = 200, seed: int = 0, calibration: str = "mse",
                    calibration_log: list | None = None) -> bytes:
    """Convert an emitter ``(B,T,F) -> (B,T,C)`` to a .tflite flatbuffer with batch 1.

    Args:
        quant: ``int8`` (full integer, int8 input/output; needs ``rep_x``), ``dynamic`` or ``float``.
        rep_x: ``(B,T,F)`` float32 training windows for calibration (int8 only); ``n_calibration`` of them are used.
        calibration: int8 activation ranges, ``mse`` (default: MSE-optimal clipping per tensor) or ``minmax`` (the
            converter's own); see :mod:`keras_tinyloc.deploy.calibrate`.
        calibration_log: if a list, the clipped tensors' records (``calibrate.clip_ranges``) are appended to it.
    Raises TinyLocError for bad representative data, a converter failure, or (int8) a graph that is not integer-only
    or uses ops TFLM cannot run — naming the ops.
    """
    import tensorflow as tf

    if quant not in QUANT_MODES:
        raise TinyLocError(f"--quant {quant!r}: choose from {', '.join(QUANT_MODES)}")
    if calibration not in calibrate.CALIBRATIONS:
        raise TinyLocError(f"--calibration {calibration!r}: choose from {', '.join(calibrate.CALIBRATIONS)}")
    model = fixed_batch(emitter)
    conv = tf.lite.TFLiteConverter.from_keras_model(model)
    if quant == "int8":
        if rep_x is None:
            raise TinyLocError("int8 conversion needs representative data (training windows)")
        rep = check_representative(rep_x, emitter)
        conv.optimizations = [tf.lite.Optimize.DEFAULT]
        conv.representative_dataset = representative_dataset(rep, n=n_calibration, seed=seed)
        rep_sample = representative_sample(rep, n=n_calibration, seed=seed)
        conv.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        conv.inference_input_type = tf.int8
        conv.inference_output_type = tf.int8
    elif quant == "dynamic":
        conv.optimizations = [tf.lite.Optimize.DEFAULT]
    # The TF 2.21 quantizer is not deterministic: about 1 conversion in 10 of a Mamba emitter leaves one UNPACK
    # float (DEQUANTIZE -> UNPACK -> QUANTIZE) for the same model and calibration data. A float island is therefore
    # retried (a fresh conversion) up to INT8_ATTEMPTS times; a graph that stays non-integer is rejected, naming
    # the ops. Any island in the returned model is impossible: check_int8 runs on it.
    for attempt in range(1, (INT8_ATTEMPTS if quant == "int8" else 1) + 1):
        noise = io.StringIO()
        try:
            with contextlib.redirect_stdout(noise), tflm.capture_fd(2) as cap:
                if quant == "int8":
                    buf, clipped = calibrate.quantize_with_calibration(conv, rep_sample, calibration)
                else:
                    buf = conv.convert()
        except Exception as exc:  # the converter raises many types; report its first line
            first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
            detail = tflm.tflm_error_lines(cap["text"]) if "cap" in locals() else ""
            raise TinyLocError(f"TFLite converter failed ({quant}): {first[:300]} {detail[:200]}".strip()) from None
        if quant != "int8":
            break
        try:
            tflite_inspect.check_int8(tflite_inspect.inspect_tflite(buf), what=f"emitter {emitter.name!r}")
            if calibration_log is not None:
                calibration_log.extend(clipped)
            break
        except TinyLocError as exc:
            if attempt == INT8_ATTEMPTS or "float op" not in str(exc):
                raise TinyLocError(f"{exc} (after {attempt} conversion attempt(s))") from None
    return bytes(buf)


def strip_tensor_names(tflite_bytes: bytes) -> bytes:
    """Rename every tensor ``t<index>`` and repack, keeping each constant buffer 16-byte aligned.

    The converter's fused tensor names ("a;b;c/Tensordot/MatMul") can be most of a small model's flatbuffer
    (a Mamba H8L1: 66 KB of 89 KB). TFLM never reads them; the graph, weights and quantization are unchanged.
    """
    import flatbuffers

    from tflite_micro.tensorflow.lite.micro.python import schema_py_generated as schema

    model = schema.ModelT.InitFromObj(schema.Model.GetRootAsModel(bytearray(tflite_bytes), 0))
    for sub in model.subgraphs or []:
        for i, t in enumerate(sub.tensors or []):
            t.name = f"t{i}".encode()
    model.buffers = [_AlignedBuffer(b) for b in (model.buffers or [])]
    builder = flatbuffers.Builder(len(tflite_bytes))
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    return bytes(builder.Output())


class _AlignedBuffer:
    """A schema BufferT whose data vector is packed 16-byte aligned (the object API packs it 1-byte aligned)."""

    ALIGN = 16

    def __init__(self, buf):
        self.data = None if buf.data is None else np.asarray(buf.data, np.uint8)
        self.offset, self.size = buf.offset, buf.size

    def Pack(self, builder):  # noqa: N802 - flatbuffers object-API name
        from tflite_micro.tensorflow.lite.micro.python import schema_py_generated as schema

        data = None
        if self.data is not None and len(self.data):
            raw = self.data.tobytes()
            builder.StartVector(1, len(raw), self.ALIGN)
            builder.head = builder.head - len(raw)
            builder.Bytes[builder.head : builder.head + len(raw)] = raw
            builder.vectorNumElems = len(raw)
            data = builder.EndVector()
        schema.BufferStart(builder)
        if data is not None:
            schema.BufferAddData(builder, data)
        schema.BufferAddOffset(builder, self.offset)
        schema.BufferAddSize(builder, self.size)
        return schema.BufferEnd(builder)


# ----------------------------------------------------------------------------------------------- evaluation
def decode_metrics(emissions: np.ndarray, y: np.ndarray, crf: dict) -> tuple[dict, np.ndarray]:
    """Viterbi on emissions ``(B,T,C)`` with the CRF scores, then window metrics against ``y (B,T)``."""
    from keras_tinyloc.training.metrics import window_metrics
    from keras_tinyloc.models.crf import viterbi_numpy

    pred = viterbi_numpy(emissions, np.asarray(crf["transitions"]), np.asarray(crf["start"]), np.asarray(crf["end"]))
    return window_metrics(y, pred), pred


def convert_model(emitter, crf: dict, ds, quant: str = "int8", n_calibration: int = 200, seed: int = 0,
                  name: str = "model", calibration: str = "mse") -> tuple[bytes, dict]:
    """Convert ``emitter``, run it (TFLM for int8/float, LiteRT for dynamic), measure and evaluate on ``ds``'s test split.

    Args:
        emitter: functional ``(B,T,F) -> (B,T,C)``.  crf: ``{"transitions" (C,C), "start" (C,), "end" (C,)}``.
        ds: a :class:`~keras_tinyloc.data.base.WindowDataset` (x_train for calibration, x_test/y_test to evaluate).
    Returns:
        ``(tflite_bytes, report)``: the flatbuffer that ships (tensor names stripped, :func:`strip_tensor_names`)
        and the report; report keys: quant, flatbuffer_bytes (+ _with_names), ops, op_types, float_ops, tensors,
        input/output quantization, arena_bytes/head/tail (+ note, search cost), test_{f1,acc}_float (Keras),
        test_{f1,acc}_<quant> (through TFLM, or LiteRT for dynamic), tflm_matches_litert, invoke_us_tflm,
        invoke_us_litert, deployable_tflm, mcu_fit, ram_classes.
    """
    t0 = time.perf_counter()
    clipped: list[dict] = []
    named = convert_emitter(emitter, quant, ds.x_train, n_calibration=n_calibration, seed=seed,
                            calibration=calibration, calibration_log=clipped)
    t_conv = time.perf_counter() - t0
    summ = tflite_inspect.summary(tflite_inspect.inspect_tflite(named))  # the converter's tensor names, for people
    buf = strip_tensor_names(named)  # what ships: same graph, names "t<i>"
    info = tflite_inspect.inspect_tflite(buf)
    rep: dict = {"name": name, "quant": quant, "flatbuffer_bytes": len(buf),
                 "flatbuffer_bytes_with_names": len(named), "convert_seconds": round(t_conv, 3),
                 "calibration": calibration if quant == "int8" else None,
                 "calibration_clipped_tensors": len(clipped) if quant == "int8" else None,
                 "ops": summ["op_types"], "op_sequence": summ["ops"], "n_ops": len(summ["ops"]),
                 "float_ops": summ["float_ops"], "tensors": summ["tensors"], "input": summ["input"],
                 "output": summ["output"]}

    x_test, y_test = ds.x_test.astype(np.float32), ds.y_test
    em_float = np.asarray(emitter.predict(x_test, batch_size=1024, verbose=0), np.float32)
    m_float, pred_float = decode_metrics(em_float, y_test, crf)
    rep.update(test_f1_float=m_float["f1"], test_acc_float=m_float["acc"], n_test_windows=m_float["n"])

    if quant == "dynamic":
        y_lite, us_lite = tflm.run_litert(buf, x_test)
        m_q, _ = decode_metrics(y_lite.astype(np.float32), y_test, crf)
        rep.update(deployable_tflm=False, eval_backend="ai_edge_litert (host only: TFLM has no hybrid kernels)",
                   arena_bytes=None, arena_head_bytes=None, arena_tail_bytes=None, invoke_us_tflm=None,
                   invoke_us_litert=round(us_lite, 1), tflm_matches_litert=None)
    else:
        arena = tflm.minimal_arena(buf)
        if quant == "int8":
            sx, zx = info.input().scale, info.input().zero_point
            so, zo = info.output().scale, info.output().zero_point
            x_in = quantize(x_test, sx, zx)
        else:
            x_in = x_test
        y_tflm, us_tflm = tflm.run_tflm(buf, x_in, arena.arena_bytes)
        y_lite, us_lite = tflm.run_litert(buf, x_in)
        em_q = dequantize(y_tflm, so, zo) if quant == "int8" else y_tflm.astype(np.float32)
        em_l = dequantize(y_lite, so, zo) if quant == "int8" else y_lite.astype(np.float32)
        m_q, pred_q = decode_metrics(em_q, y_test, crf)
        _, pred_l = decode_metrics(em_l, y_test, crf)
        if quant == "int8":
            match = tflm.agreement(y_tflm, y_lite)
            match["share_elements_identical"] = float(np.mean(y_tflm == y_lite))
        else:
            d = np.abs(y_tflm.astype(np.float64) - y_lite.astype(np.float64)).reshape(len(y_tflm), -1)
            match = {"share_identical": float(np.mean(d.max(axis=1) == 0)), "max_abs_diff": float(d.max()),
                     "n_windows": int(len(d))}
        match["share_same_window_prediction"] = float(np.mean(pred_q[:, -1] == pred_l[:, -1]))
        rep.update(deployable_tflm=True, eval_backend="tflite_micro (TFLM host build)",
                   arena_bytes=arena.arena_bytes, arena_head_bytes=arena.head_bytes, arena_tail_bytes=arena.tail_bytes,
                   arena_reported_total_bytes=arena.reported_total_bytes, arena_note=arena.note,
                   arena_search={"probes": arena.probes, "seconds": arena.seconds},
                   invoke_us_tflm=round(us_tflm, 1), invoke_us_litert=round(us_lite, 1), tflm_matches_litert=match,
                   share_same_prediction_as_float=float(np.mean(pred_q[:, -1] == pred_float[:, -1])))
    rep[f"test_f1_{quant}"] = m_q["f1"]
    rep[f"test_acc_{quant}"] = m_q["acc"]
    rep["f1_drop_points"] = round(100.0 * (m_float["f1"] - m_q["f1"]), 3)
    rep["mcu_fit"] = mcu.fit(rep["arena_bytes"], len(buf))
    rep["ram_classes"] = mcu.ram_classes(rep["arena_bytes"], len(buf))
    rep["mcu_fit_basis"] = HOST_FIT_BASIS
    rep["seconds"] = round(time.perf_counter() - t0, 3)
    return buf, rep


HOST_FIT_BASIS = ("host: tensor arena (64-bit host TFLM) vs RAM, flatbuffer vs flash — a lower bound of the need "
                  "(no TFLM code, app, stack or static data)")
DEVICE_FIT_BASIS = ("device: whole firmware flash (TFLM + model + app + libc) and RAM (arena + static + heap + stack), "
                    "Cortex-M4 build on QEMU mps2-an386")


def resolve_target(target: str, quant: str) -> str:
    """``host`` or ``cortex-m4`` for a requested target; TinyLocError (before any work) if it cannot be met."""
    from keras_tinyloc.deploy import m4

    if target not in TARGETS:
        raise TinyLocError(f"--target {target!r}: choose from {', '.join(TARGETS)}")
    if target == "host":
        return "host"
    missing = m4.tools_missing_reason()
    if target == "auto":
        return "cortex-m4" if missing is None and quant == "int8" else "host"
    if quant != "int8":
        raise TinyLocError(f"--target cortex-m4 needs --quant int8 (the device runs the int8 model), got --quant {quant}")
    if missing:
        raise TinyLocError(f"--target cortex-m4: {missing}")
    return "cortex-m4"


def add_device_figures(rep: dict, buf: bytes, settings, x_test_q: np.ndarray | None = None) -> dict:
    """Measure ``buf`` on the emulated Cortex-M4 (:func:`keras_tinyloc.deploy.m4.measure_device`) and put the result
    in ``rep["device"]``; the MCU fit switches to whole-firmware figures. ``x_test_q``: int8 windows ``(B,T,F)`` for
    the output comparison (the first :data:`DEVICE_COMPARE_WINDOWS`)."""
    from keras_tinyloc.deploy import m4

    inputs = None if x_test_q is None else [np.asarray(x_test_q[:DEVICE_COMPARE_WINDOWS])[:, None]]
    dev = m4.measure_device(buf, settings, inputs=inputs)
    rep["device"] = dev
    rep["mcu_fit"] = {k: {f: v[f] for f in ("ram", "flash", "runs_tflm", "fits")} for k, v in dev["mcu"].items()}
    rep["ram_classes"] = mcu.ram_classes(dev["ram_bytes"], dev["flash_bytes"])
    rep["mcu_fit_basis"] = DEVICE_FIT_BASIS
    return dev


# ----------------------------------------------------------------------------------------------- the run
def _crf_scores(tagger, config: dict) -> dict:
    if hasattr(tagger, "crf_weights"):
        return tagger.crf_weights()
    if "crf" in config:
        return config["crf"]
    raise TinyLocError("run has no CRF scores (model.crf or config.json 'crf')")


def convert_run(cfg: ConvertConfig, dataset=None) -> dict:
    """Convert, measure and write one run's model (see module docstring). Returns the report dict.

    ``dataset``: the run's :class:`~keras_tinyloc.data.base.WindowDataset` if already in memory (sweep, tests);
    None loads it through the registry from ``config.json``.
    """
    cfg.validate()
    target = resolve_target(cfg.target, cfg.quant)
    with contextlib.ExitStack() as claims:  # both outputs locked until written: one writer per folder
        claims.enter_context(claimed_output(cfg.out_dir(), cfg.overwrite))
        if cfg.sketch is not None:
            claims.enter_context(claimed_output(cfg.sketch, cfg.overwrite, flag="--sketch"))
        return _convert_run(cfg, target, dataset)


def _convert_run(cfg: ConvertConfig, target: str, dataset) -> dict:
    out = cfg.out_dir()
    tagger, config, metrics = load_run(cfg.run_dir)
    ds = dataset if dataset is not None else load_run_dataset(config, cfg.data_dir, str(cfg.run_dir))
    check_run_contract(config, ds, str(cfg.run_dir))
    crf = _crf_scores(tagger, config)
    name = Path(cfg.run_dir).resolve().name
    buf, rep = convert_model(tagger.emitter, crf, ds, cfg.quant, cfg.n_calibration, cfg.seed, name=name,
                             calibration=cfg.calibration)
    params = metrics.get("params") or int(sum(int(np.prod(w.shape)) for w in tagger.weights))
    # run_dir as seen from the report's folder: no absolute path of this machine in a report
    rep = {"run_dir": os.path.relpath(cfg.run_dir, out), "dataset": config.get("dataset"),
           "model": config.get("model"),
           "hidden": config.get("hidden"), "layers": config.get("layers"), "params": int(params),
           "run_test_f1": metrics.get("test_f1"), "class_names": list(ds.class_names),
           "feature_names": list(ds.feature_names), **rep}
    rep["target"] = target
    settings = _device_settings(rep, ds, crf, cfg.arena_margin_bytes, name) if cfg.quant == "int8" else None
    if target == "cortex-m4":
        x_q = quantize(ds.x_test.astype(np.float32), rep["input"]["scale"], rep["input"]["zero_point"])
        dev = add_device_figures(rep, buf, settings, x_q)
        settings = dataclasses.replace(settings, arena_device_bytes=dev["arena_bytes"])
    with atomic_dir(out, overwrite=cfg.overwrite) as tmp:
        atomic_write_bytes(tmp / "model.tflite", buf)
        if settings is not None:
            rep["device_files"] = _write_device_files(tmp, buf, settings)
            rep["arena_margin_bytes"] = int(cfg.arena_margin_bytes)
        atomic_write_json(tmp / "report.json", rep)
        atomic_write_text(tmp / "report.md", report_markdown(rep))
    if cfg.sketch is not None:
        rep["sketch"] = str(_export_sketch(out, cfg.sketch, cfg.overwrite))
    return rep


def _device_settings(rep: dict, ds, crf: dict, margin: int, name: str):
    from keras_tinyloc.deploy import export_c

    return export_c.DeviceSettings(
        model_name=name, window=ds.window, n_features=ds.n_features, n_classes=ds.n_classes,
        class_names=list(ds.class_names), feature_names=list(ds.feature_names),
        scale_low=[float(v) for v in ds.scaling.low], scale_high=[float(v) for v in ds.scaling.high],
        fill_dbm=float(ds.fill_value), input_scale=rep["input"]["scale"], input_zero_point=rep["input"]["zero_point"],
        output_scale=rep["output"]["scale"], output_zero_point=rep["output"]["zero_point"],
        transitions=[[float(v) for v in row] for row in crf["transitions"]], start=[float(v) for v in crf["start"]],
        end=[float(v) for v in crf["end"]], arena_bytes=int(rep["arena_bytes"]), arena_margin_bytes=int(margin),
        ops=list(rep["ops"]),
        feature_index=ds.meta.get("feature_index"),  # which raw AP each input reads (AP selection)
        # the grid of a recordings file (--rate-hz, --hop-s): the device must cut the windows the model was trained on
        **{k: int(ds.meta[k]) for k in ("hop", "step_ms", "ffill_steps") if k in ds.meta},
    )


def _write_device_files(out: Path, buf: bytes, settings) -> list[str]:
    from keras_tinyloc.deploy import export_c

    before = {p.name for p in out.iterdir()}
    export_c.write_model_data(out, buf)
    export_c.write_model_settings(out, settings)
    return sorted({p.name for p in out.iterdir()} - before)


def _export_sketch(out: Path, sketch_dir: str, overwrite: bool) -> Path:
    from keras_tinyloc.deploy.sketch import export_sketch

    return export_sketch(out, sketch_dir, overwrite=overwrite)


# ----------------------------------------------------------------------------------------------- report.md
def _fmt(v, pct: bool = False) -> str:
    if v is None:
        return "–"
    if pct:
        return f"{100 * v:.2f} %"
    return f"{v:,}" if isinstance(v, int) else str(v)


def _dataset_shown(name) -> str:
    """A recordings path by its file name (no folder of this machine in a report); a registry name as it is."""
    from keras_tinyloc.data.registry import is_recordings_path

    return Path(str(name)).name if name and is_recordings_path(str(name)) else str(name)


def _names_lines(rep: dict) -> list[str]:
    """The rooms (class index order) and access points (input order), as model_settings.h and the board use them."""
    def shown(names):
        names = [f"`{n}`" for n in names]
        return ", ".join(names[:16]) + (f" … ({len(names)} in all)" if len(names) > 16 else "")

    out = []
    if rep.get("class_names"):
        out.append(f"Rooms (class index order): {shown(rep['class_names'])}.")
    if rep.get("feature_names"):
        out.append(f"Access points (input order): {shown(rep['feature_names'])}.")
    return out + ([""] if out else [])


def report_markdown(rep: dict) -> str:
    """A human summary of a report dict."""
    q = rep["quant"]
    lines = [
        f"# Conversion report: {rep.get('name')} ({q})",
        "",
        f"Dataset `{_dataset_shown(rep.get('dataset'))}`, model `{rep.get('model')}` "
        f"H{rep.get('hidden')}L{rep.get('layers')}, {_fmt(rep.get('params'))} parameters.",
        "",
        *_names_lines(rep),
        "| quantity | value |",
        "|---|---|",
        f"| flatbuffer (flash), tensor names stripped | {_fmt(rep['flatbuffer_bytes'])} B "
        f"(converter output {_fmt(rep.get('flatbuffer_bytes_with_names'))} B) |",
        f"| tensor arena (RAM), minimal working, host 64-bit | {_fmt(rep.get('arena_bytes'))} B |",
        f"| arena head (tensor buffers) / tail (persistent) | {_fmt(rep.get('arena_head_bytes'))} B / "
        f"{_fmt(rep.get('arena_tail_bytes'))} B |",
        f"| test macro-F1 float (Keras) | {_fmt(rep['test_f1_float'], True)} |",
        f"| test macro-F1 {q} ({rep.get('eval_backend')}) | {_fmt(rep[f'test_f1_{q}'], True)} |",
        f"| test accuracy float / {q} | {_fmt(rep['test_acc_float'], True)} / {_fmt(rep[f'test_acc_{q}'], True)} |",
        f"| F1 drop | {rep['f1_drop_points']} points |",
        f"| int8 calibration | {rep.get('calibration') or '–'}"
        + (f" ({rep['calibration_clipped_tensors']} activation ranges clipped)" if rep.get("calibration") == "mse" else "")
        + " |",
        f"| TFLM invoke (host) | {_fmt(rep.get('invoke_us_tflm'))} µs |",
        f"| ops ({rep['n_ops']} nodes) | {', '.join(rep['ops'])} |",
        f"| float ops | {', '.join(rep['float_ops']) or 'none'} |",
        f"| deployable to TFLM | {'yes' if rep.get('deployable_tflm') else 'no (host only)'} |",
    ]
    m = rep.get("tflm_matches_litert")
    if m and "max_diff_steps" in m:
        lines.append(f"| TFLM vs ai-edge-litert (int8 outputs) | {100 * m['share_identical']:.1f} % of windows "
                     f"bit-identical, {100 * m['share_elements_identical']:.2f} % of values, max diff "
                     f"{m['max_diff_steps']} steps; same decoded room on "
                     f"{100 * m['share_same_window_prediction']:.2f} % of windows |")
    elif m:
        lines.append(f"| TFLM vs ai-edge-litert (float outputs) | max abs diff {m['max_abs_diff']:.3g}; same decoded "
                     f"room on {100 * m['share_same_window_prediction']:.2f} % of windows |")
    if rep.get("arena_note"):
        lines += ["", f"Arena: {rep['arena_note']}."]
    dev = rep.get("device")
    if dev:
        lines += device_markdown(dev, rep.get("arena_bytes"))
    basis = rep.get("mcu_fit_basis") or HOST_FIT_BASIS
    lines += ["", f"MCU fit ({basis}):", ""]
    if dev:
        lines += ["| MCU (paper Table 1) | core, clock | RAM | flash | runs TFLM | fits | latency / invoke | "
                  "energy / invoke |", "|---|---|---|---|---|---|---|---|"]
    else:
        lines += ["| MCU (paper Table 1) | core, clock | RAM | flash | runs TFLM | fits |", "|---|---|---|---|---|---|"]
    for mm in mcu.MCUS:
        f = rep["mcu_fit"][mm.name]
        row = (f"| {mm.name} ({mm.ram_kb} KB / {mm.flash_kb} KB) | {mm.core}, {mm.clock_mhz:g} MHz | "
               f"{'yes' if f['ram'] else 'no'} | {'yes' if f['flash'] else 'no'} | "
               f"{'yes' if mm.runs_tflm else 'no'} | {'**yes**' if f['fits'] else 'no'} |")
        if dev:
            c = dev["mcu"][mm.name]
            row += (f" {c['latency_ms']:.2f} ms | {c['energy_uj']:.1f} µJ |" if c["latency_ms"] is not None
                    else " – | – |")
        lines.append(row)
    if dev:
        a = dev["cost_assumptions"]
        lines += ["", f"Latency and energy per invoke: {a['note']}"]
    return "\n".join(lines) + "\n"


def device_markdown(dev: dict, host_arena: int | None = None) -> list[str]:
    """The ``device`` section of report.md (figures of :func:`keras_tinyloc.deploy.m4.measure_device`)."""
    per = dev.get("invoke_per", "window")
    r, s = dev["ram_split"], dev["arena_search"]
    lo, hi = dev["instructions_range"]
    return [
        "", f"## Device: {dev['board']}", "",
        f"TFLM {dev['tflm']}; firmware = {dev['app']} linked for this model (-Os, --gc-sections, newlib-nano).", "",
        "| device figure | value |", "|---|---|",
        f"| tensor arena, minimal working on the M4 | {_fmt(dev['arena_bytes'])} B (host 64-bit: "
        f"{_fmt(host_arena)} B; TFLM's arena_used_bytes() says {_fmt(dev['arena_used_bytes_reported'])} B, which is "
        f"not the minimum; {s['probes']} probes, each its own emulator run, {s['crashed']} crashed) |",
        f"| RAM = arena + static + heap + stack | {_fmt(dev['ram_bytes'])} B = {_fmt(r['arena'])} + {_fmt(r['static'])} "
        f"+ {_fmt(r['heap'])} + {_fmt(r['stack'])} (stack high-water mark) |",
        f"| flash = whole firmware (text + data) | {_fmt(dev['flash_bytes'])} B = TFLM {_fmt(dev['flash_tflm_bytes'])} "
        f"+ model {_fmt(dev['flash_model_bytes'])} + app {_fmt(dev['flash_app_bytes'])} + libc "
        f"{_fmt(dev['flash_libc_bytes'])} |",
        f"| instructions per invoke (one {per}) | {_fmt(dev['instructions_per_invoke'])} (range {_fmt(lo)}–{_fmt(hi)}"
        f" over {dev['n_compared']} inputs; exact count, QEMU TCG plugin) |",
        f"| outputs identical to the host TFLM | {100 * dev['outputs_identical_share']:.1f} % of {dev['n_compared']} "
        f"inputs |",
    ]


# ----------------------------------------------------------------------------------------------- CLI
def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m keras_tinyloc convert",
                                description="Convert a run's emitter to .tflite, run it in TFLM, measure the arena, report.")
    p.add_argument("run_dir", metavar="RUN_DIR", help="run directory written by train/distill")
    p.add_argument("--quant", choices=QUANT_MODES, default="int8", help="int8 (default), dynamic (host only), float")
    p.add_argument("--out", metavar="DIR", help="output directory (default RUN_DIR/tflite-<quant>)")
    p.add_argument("--sketch", metavar="DIR", help="also export the device files next to this sketch")
    p.add_argument("--n-calibration", type=int, default=200, help="training windows used for int8 calibration")
    p.add_argument("--seed", type=int, default=0, help="which calibration windows")
    p.add_argument("--calibration", choices=calibrate.CALIBRATIONS, default="mse",
                   help="int8 activation ranges: mse = clip each tensor's range to minimise its expected squared "
                        "quantization error (default), minmax = the converter's min-max ranges")
    p.add_argument("--arena-margin", type=int, default=256, help="bytes added to the measured arena on the device")
    p.add_argument("--data-dir", help="override the run's data directory")
    p.add_argument("--overwrite", action="store_true", help="replace an existing output directory")
    p.add_argument("--target", choices=TARGETS, default="auto",
                   help="host = host TFLM figures only; cortex-m4 = also measure the model on an emulated Cortex-M4F "
                        "(QEMU, TFLM from the kit: arena, flash, RAM, instructions); auto (default) = cortex-m4 when "
                        "the TFLM kit and the Arm toolchain are here and --quant is int8, else host")
    return p


@cli_errors
def main(argv: list[str] | None = None) -> int:
    a = build_parser().parse_args(argv)
    cfg = ConvertConfig(run_dir=a.run_dir, quant=a.quant, out=a.out, sketch=a.sketch, n_calibration=a.n_calibration,
                        seed=a.seed, calibration=a.calibration, arena_margin_bytes=a.arena_margin,
                        overwrite=a.overwrite, data_dir=a.data_dir, target=a.target)
    rep = convert_run(cfg)
    q = rep["quant"]
    print(f"{cfg.out_dir()}: {q} flatbuffer {rep['flatbuffer_bytes']} B, arena {rep.get('arena_bytes')} B (host), "
          f"F1 float {100 * rep['test_f1_float']:.2f} -> {q} {100 * rep[f'test_f1_{q}']:.2f}")
    dev = rep.get("device")
    if dev:
        print(f"cortex-m4: arena {dev['arena_bytes']} B, RAM {dev['ram_bytes']} B, flash {dev['flash_bytes']} B "
              f"(TFLM {dev['flash_tflm_bytes']}, model {dev['flash_model_bytes']}), "
              f"{dev['instructions_per_invoke']} instructions per invoke")
    return 0


if __name__ == "__main__":
    sys.exit(main())
