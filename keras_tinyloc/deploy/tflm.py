"""All TFLM interaction: run a model in the real TFLM interpreter, measure its arena, and the LiteRT twin.

* :func:`run_tflm` and :func:`run_litert` are twins: same arguments, same return value; one runs TFLM
  (``tflite_micro``'s host build of the C++ interpreter the MCU runs), the other ai-edge-litert
  (``ai_edge_litert.interpreter``, default delegates off: XNNPACK's int8 BATCH_MATMUL is not a reference).
* :func:`minimal_arena` finds the smallest tensor arena TFLM accepts, by bisection. A too-small arena can
  **segfault** TFLM instead of raising, so every probe runs in a forked grandchild of a fresh child process
  (the child imports only TFLM, never TensorFlow, so forking it is safe and cheap).
* :func:`allocations` parses ``print_allocations()``, which writes to the C-level stderr (fd 2).

Figures are from the 64-bit host build: the planned tensor buffers ("head") equal a Cortex-M build's; the
persistent part ("tail": node structs, eval tensors, kernel buffers) is larger on the host, so the host arena is
an upper bound for a 32-bit MCU.

Shapes: ``x`` ``(B,T,F)`` in the model's input dtype; outputs ``(B,T,C)`` in the model's output dtype.
"""
from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Iterator

import numpy as np

from keras_tinyloc.errors import TinyLocError

ALIGN = 16  # TFLM aligns arena allocations to 16 bytes; bisection granularity
ARENA_CAP = 16 * 1024 * 1024  # give up beyond this: the model cannot allocate at all
HOST_NOTE = "host x86-64 TFLM build: head (tensor buffers) equals a Cortex-M build's; tail (persistent) is larger on the host, so this arena is an upper bound for a 32-bit MCU"


# --------------------------------------------------------------------------- C-level stderr capture
@contextlib.contextmanager
def capture_fd(fd: int = 2) -> Iterator[dict]:
    """Redirect the C-level file descriptor ``fd`` to a temp file; yields a dict whose ``"text"`` is set on exit."""
    out: dict = {"text": ""}
    with tempfile.TemporaryFile(mode="w+b") as tmp:
        for stream in (sys.stdout, sys.stderr):
            with contextlib.suppress(Exception):
                stream.flush()
        saved = os.dup(fd)
        os.dup2(tmp.fileno(), fd)
        try:
            yield out
        finally:
            os.dup2(saved, fd)
            os.close(saved)
            tmp.seek(0)
            out["text"] = tmp.read().decode("utf-8", "replace")


_ALLOC_RE = re.compile(r"Arena allocation (total|head|tail) (\d+) bytes")


def parse_allocations(text: str) -> dict[str, int]:
    """``print_allocations()`` text -> ``{"total", "head", "tail"}`` bytes (missing keys absent)."""
    return {k: int(v) for k, v in _ALLOC_RE.findall(text)}


def tflm_error_lines(text: str) -> str:
    """The TFLM error lines of a captured stderr, joined into one line (allocation chatter removed)."""
    lines = [ln.strip() for ln in text.splitlines() if ln.strip() and "RecordingMicroAllocator" not in ln]
    return " | ".join(dict.fromkeys(lines))[:400]


def _interpreter(tflite_bytes: bytes, arena: int):
    from tflite_micro.python.tflite_micro import runtime

    return runtime.Interpreter.from_bytes(bytes(tflite_bytes), arena_size=int(arena))


def allocations(tflite_bytes: bytes, arena: int) -> dict[str, int]:
    """Build + invoke once with ``arena`` bytes (in this process: the arena must be known to work), parse the print-out."""
    with capture_fd(2) as cap:
        it = _interpreter(tflite_bytes, arena)
        _invoke_zeros(it)
        it.print_allocations()
    return parse_allocations(cap["text"])


def _invoke_zeros(it) -> None:
    d = it.get_input_details(0)
    it.set_input(np.zeros(tuple(int(s) for s in d["shape"]), dtype=d["dtype"]), 0)
    it.invoke()


# --------------------------------------------------------------------------- minimal arena (child process)
@dataclasses.dataclass
class ArenaResult:
    """Minimal working arena and how it was found.

    Attributes:
        arena_bytes: smallest multiple of 16 bytes with which TFLM builds and invokes the model.
        head_bytes, tail_bytes, reported_total_bytes: ``print_allocations()`` figures (host 64-bit).
        probes: number of interpreter builds tried; seconds: wall time of the search.
    """

    arena_bytes: int
    head_bytes: int
    tail_bytes: int
    reported_total_bytes: int
    probes: int
    seconds: float
    note: str = HOST_NOTE


def minimal_arena(tflite_bytes: bytes, timeout_s: float = 300.0) -> ArenaResult:
    """Bisect the smallest working arena; every probe runs in a forked grandchild of one fresh child process.

    Lower bound: the ``print_allocations()`` total of a probe with a large arena (it underestimates the need, and
    is often exact: then 3 probes suffice); otherwise gallop upward from it to a working size and bisect at 16-byte
    granularity. Measured: 3-12 probes, 0.3-1 s per model on the 2-core machine (a fresh process per probe with
    plain bisection: 14 probes, ~7 s). Raises TinyLocError with TFLM's own
    message (e.g. an op it cannot run) if even a 16 MiB arena fails.
    """
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="tinyloc-arena-") as tmp:
        model = Path(tmp) / "model.tflite"
        model.write_bytes(bytes(tflite_bytes))
        code = "import sys; from keras_tinyloc.deploy.tflm import _arena_child; sys.exit(_arena_child(sys.argv[1]))"
        env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
        try:
            proc = subprocess.run([sys.executable, "-c", code, str(model)], capture_output=True, text=True,
                                  timeout=timeout_s, env=env, cwd=str(Path(__file__).resolve().parent.parent))
        except subprocess.TimeoutExpired:
            raise TinyLocError(f"TFLM arena search: no answer within {timeout_s:.0f} s") from None
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("{")]
    if proc.returncode != 0 or not lines:
        raise TinyLocError(f"TFLM arena search failed (child exit {proc.returncode}): {proc.stderr.strip()[-300:]}")
    res = json.loads(lines[-1])
    if res.get("error"):
        raise TinyLocError(f"TFLM cannot run the model: {res['error']}")
    return ArenaResult(res["arena_bytes"], res["head"], res["tail"], res["total"], res["probes"],
                       round(time.perf_counter() - t0, 3))


def _probe(tflite_bytes: bytes, arena: int, log_path: str, report: bool = False) -> tuple[bool, str]:
    """Fork; the grandchild builds + invokes with ``arena`` bytes, output to ``log_path``. Returns (ok, log text)."""
    pid = os.fork()
    if pid == 0:  # grandchild: never returns
        try:
            fd = os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            os.dup2(fd, 1)
            os.dup2(fd, 2)
            it = _interpreter(tflite_bytes, arena)
            _invoke_zeros(it)
            if report:
                it.print_allocations()
            sys.stdout.flush()
            os._exit(0)
        except BaseException as exc:  # noqa: BLE001 - report anything as a failed probe
            with contextlib.suppress(Exception):
                os.write(2, f"{type(exc).__name__}: {exc}\n".encode())
            os._exit(1)
    _, status = os.waitpid(pid, 0)
    ok = os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0
    text = Path(log_path).read_text(errors="replace") if os.path.exists(log_path) else ""
    if os.WIFSIGNALED(status):
        text += f"\n(killed by signal {os.WTERMSIG(status)})"
    return ok, text


def _arena_child(model_path: str) -> int:
    """Child process entry: print one JSON line with the minimal arena (or an error)."""
    from tflite_micro.python.tflite_micro import runtime  # noqa: F401 - import once before forking

    buf = Path(model_path).read_bytes()
    log = model_path + ".log"
    probes = 0

    def works(n: int, report: bool = False) -> tuple[bool, str]:
        nonlocal probes
        probes += 1
        return _probe(buf, n, log, report)

    big = max(256 * 1024, 16 * len(buf))
    ok, text = works(big, report=True)
    while not ok and big < ARENA_CAP:
        big = min(ARENA_CAP, big * 4)
        ok, text = works(big, report=True)
    if not ok:
        print(json.dumps({"error": tflm_error_lines(text) or "allocation failed", "probes": probes}))
        return 0
    rep = parse_allocations(text)
    units = lambda n: -(-n // ALIGN)  # noqa: E731 - bytes -> 16-byte units, rounded up
    total_u = units(rep.get("total", 0))
    # The print-out's total is a lower bound and often exact: try total - 16 (expected to fail) and total first.
    lo_u, hi_u = total_u - 1, None
    if lo_u > 0 and works(lo_u * ALIGN)[0]:
        lo_u, hi_u = 0, lo_u  # not a lower bound after all: bisect below it
    elif total_u > 0 and works(total_u * ALIGN)[0]:
        lo_u, hi_u = total_u - 1, total_u
    else:
        lo_u = max(total_u, 0)
        step = max(total_u // 16, 16)  # gallop: +1/16, +3/16, +7/16 ... of the total until a size works
        cand = lo_u + step
        while cand < units(big):
            if works(cand * ALIGN)[0]:
                hi_u = cand
                break
            lo_u, step = cand, step * 2
            cand = lo_u + step
        if hi_u is None:
            hi_u = units(big)
    while hi_u - lo_u > 1:
        mid = (lo_u + hi_u) // 2
        if works(mid * ALIGN)[0]:
            hi_u = mid
        else:
            lo_u = mid
    print(json.dumps({"arena_bytes": hi_u * ALIGN, "head": rep.get("head", 0), "tail": rep.get("tail", 0),
                      "total": rep.get("total", 0), "probes": probes, "error": None}))
    return 0


def arena_works(tflite_bytes: bytes, arena: int) -> bool:
    """Whether TFLM builds and invokes with exactly ``arena`` bytes (probe in a child process; for tests)."""
    with tempfile.TemporaryDirectory(prefix="tinyloc-probe-") as tmp:
        model = Path(tmp) / "model.tflite"
        model.write_bytes(bytes(tflite_bytes))
        code = ("import sys; from keras_tinyloc.deploy.tflm import _probe; "
                "ok, _ = _probe(open(sys.argv[1], 'rb').read(), int(sys.argv[2]), sys.argv[1] + '.log'); "
                "sys.exit(0 if ok else 1)")
        proc = subprocess.run([sys.executable, "-c", code, str(model), str(int(arena))], capture_output=True,
                              timeout=120, cwd=str(Path(__file__).resolve().parent.parent))
    return proc.returncode == 0


# --------------------------------------------------------------------------- the twins: TFLM and LiteRT
def _check_input(x: np.ndarray, shape, dtype, who: str) -> np.ndarray:
    x = np.asarray(x)
    want = tuple(int(s) for s in shape)
    if x.ndim != len(want) or tuple(x.shape[1:]) != want[1:]:
        raise TinyLocError(f"{who}: input of shape {x.shape} does not match the model's (B,{','.join(map(str, want[1:]))})")
    if x.dtype != np.dtype(dtype):
        raise TinyLocError(f"{who}: input dtype {x.dtype} but the model takes {np.dtype(dtype)}")
    return x


def run_tflm(tflite_bytes: bytes, x: np.ndarray, arena: int | None = None) -> tuple[np.ndarray, float]:
    """Run every window through TFLM: ``x (B,T,F)`` -> ``(y (B,T,C), mean µs per invoke)``.

    ``arena`` must be known to work (e.g. from :func:`minimal_arena`); None uses 1 MiB. Batch 1 per invoke,
    as on the device. TFLM errors become TinyLocError with TFLM's own message.
    """
    arena = int(arena) if arena else 1024 * 1024
    with capture_fd(2) as cap:
        try:
            it = _interpreter(tflite_bytes, arena)
            err = None
        except RuntimeError as exc:
            it, err = None, exc
    if it is None:
        raise TinyLocError(f"TFLM cannot build the model with a {arena}-byte arena: {tflm_error_lines(cap['text']) or err}")
    d = it.get_input_details(0)
    x = _check_input(x, d["shape"], d["dtype"], "TFLM")
    outs, total = [], 0.0
    with capture_fd(2) as cap:
        try:
            for i in range(len(x)):
                it.set_input(np.ascontiguousarray(x[i : i + 1]), 0)
                t = time.perf_counter()
                it.invoke()
                total += time.perf_counter() - t
                outs.append(np.array(it.get_output(0), copy=True))
        except RuntimeError as exc:
            err = exc
    if err is not None:
        raise TinyLocError(f"TFLM invoke failed: {tflm_error_lines(cap['text']) or err}")
    return np.concatenate(outs, axis=0), 1e6 * total / max(len(x), 1)


def run_litert(tflite_bytes: bytes, x: np.ndarray) -> tuple[np.ndarray, float]:
    """Twin of :func:`run_tflm` on ai-edge-litert (builtin kernels, no default delegates, one thread)."""
    from ai_edge_litert import interpreter as litert

    try:
        it = litert.Interpreter(
            model_content=bytes(tflite_bytes), num_threads=1,
            experimental_op_resolver_type=litert.OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES,
        )
        it.allocate_tensors()
    except (RuntimeError, ValueError) as exc:
        raise TinyLocError(f"LiteRT cannot build the model: {str(exc).strip().splitlines()[0]}") from None
    din, dout = it.get_input_details()[0], it.get_output_details()[0]
    x = _check_input(x, din["shape"], din["dtype"], "LiteRT")
    outs, total = [], 0.0
    for i in range(len(x)):
        it.set_tensor(din["index"], np.ascontiguousarray(x[i : i + 1]))
        t = time.perf_counter()
        it.invoke()
        total += time.perf_counter() - t
        outs.append(np.array(it.get_tensor(dout["index"]), copy=True))
    return np.concatenate(outs, axis=0), 1e6 * total / max(len(x), 1)


def agreement(y_a: np.ndarray, y_b: np.ndarray) -> dict:
    """Compare two interpreters' int8 outputs ``(B,T,C)``: share of windows identical, max diff in steps."""
    a, b = np.asarray(y_a).astype(np.int32), np.asarray(y_b).astype(np.int32)
    if a.shape != b.shape:
        raise TinyLocError(f"agreement: shapes differ {a.shape} vs {b.shape}")
    diff = np.abs(a - b).reshape(len(a), -1)
    return {"share_identical": float(np.mean(diff.max(axis=1) == 0)) if len(a) else 1.0,
            "max_diff_steps": int(diff.max()) if diff.size else 0, "n_windows": int(len(a))}


def _keep_all_tensors(micro_bytes: bytes, litert_bytes: bytes, arena: int | None):
    """A TFLM interpreter on ``micro_bytes`` and a LiteRT one (built-in kernels) on ``litert_bytes``, both keeping
    every intermediate tensor (for per-tensor comparisons; arena default 4 MiB)."""
    from ai_edge_litert import interpreter as litert
    from tflite_micro.python.tflite_micro import runtime

    with capture_fd(2):
        micro = runtime.Interpreter.from_bytes(bytes(micro_bytes), arena_size=int(arena or 4 * 1024 * 1024),
                                               intrepreter_config=runtime.InterpreterConfig.kPreserveAllTensors)
    lite = litert.Interpreter(model_content=bytes(litert_bytes), experimental_preserve_all_tensors=True,
                              experimental_op_resolver_type=litert.OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES)
    lite.allocate_tensors()
    return micro, lite


def compare_tensors(tflite_bytes: bytes, x: np.ndarray, arena: int | None = None) -> list[dict]:
    """Where do TFLM and LiteRT diverge? Per op (execution order), compare every op's first output tensor.

    Runs both interpreters with all intermediate tensors preserved on windows ``x (B,T,F)`` (model input dtype).
    Returns one dict per op: ``{"op", "index", "tensor", "share_identical", "max_diff"}`` (differences in the
    tensor's own units: quantization steps for int8). A diagnostic, not for the hot path.
    """
    from keras_tinyloc.deploy.tflite_inspect import inspect_tflite

    info = inspect_tflite(tflite_bytes)
    micro, lite = _keep_all_tensors(tflite_bytes, tflite_bytes, arena)
    d = lite.get_input_details()[0]
    x = _check_input(x, d["shape"], d["dtype"], "compare_tensors")
    same = {op.index: [] for op in info.ops}
    worst = {op.index: 0.0 for op in info.ops}
    for i in range(len(x)):
        micro.set_input(np.ascontiguousarray(x[i : i + 1]), 0)
        micro.invoke()
        lite.set_tensor(d["index"], np.ascontiguousarray(x[i : i + 1]))
        lite.invoke()
        for op in info.ops:
            if not op.outputs:
                continue
            t = op.outputs[0]
            got = micro.GetTensor(t, 0)
            a = np.asarray(got["tensor_data"] if isinstance(got, dict) else got).astype(np.float64).ravel()
            b = np.asarray(lite.get_tensor(t)).astype(np.float64).ravel()
            if a.shape != b.shape:
                continue
            diff = np.abs(a - b)
            same[op.index].append(float(np.mean(diff == 0)))
            worst[op.index] = max(worst[op.index], float(diff.max()) if diff.size else 0.0)
    return [{"op": op.name, "index": op.index, "tensor": info.tensors[op.outputs[0]].name if op.outputs else "",
             "share_identical": float(np.mean(same[op.index])) if same[op.index] else None,
             "max_diff": worst[op.index]} for op in info.ops]


def int8_vs_float(int8_bytes: bytes, float_bytes: bytes, x: np.ndarray, arena: int | None = None) -> list[dict]:
    """Where does int8 lose fidelity? Every int8 activation (TFLM, all tensors preserved) vs the float model's.

    ``int8_bytes`` and ``float_bytes`` must come from the same emitter (same converter, so tensors share names);
    ``x (B,T,F)`` float32 windows. Errors accumulate along the graph: the first op with a large error, or a tensor
    whose float range is far wider than most of its values, is the culprit. Returns rows sorted by
    ``mean_err_steps`` (mean |dequantized int8 - float| in the tensor's quantization steps), each with the op,
    tensor name, scale, the float range seen and the int8 representable range.
    """
    from keras_tinyloc.deploy.quantize import dequantize, quantize
    from keras_tinyloc.deploy.tflite_inspect import inspect_tflite

    qi, fi = inspect_tflite(int8_bytes), inspect_tflite(float_bytes)
    by_name = {t.name: t.index for t in fi.tensors}
    pairs = [(op, op.outputs[0]) for op in qi.ops if op.outputs and qi.tensors[op.outputs[0]].dtype == "int8"
             and qi.tensors[op.outputs[0]].name in by_name]
    micro, ref = _keep_all_tensors(int8_bytes, float_bytes, arena)
    x = np.asarray(x, np.float32)
    xq = quantize(x, qi.input().scale, qi.input().zero_point)
    errs: dict[int, list[float]] = {t: [] for _, t in pairs}
    lo = {t: np.inf for _, t in pairs}
    hi = {t: -np.inf for _, t in pairs}
    for i in range(len(x)):
        micro.set_input(xq[i : i + 1], 0)
        micro.invoke()
        ref.set_tensor(ref.get_input_details()[0]["index"], x[i : i + 1])
        ref.invoke()
        for _, t in pairs:
            info = qi.tensors[t]
            got = micro.GetTensor(t, 0)
            q = np.asarray(got["tensor_data"] if isinstance(got, dict) else got)
            f = np.asarray(ref.get_tensor(by_name[info.name]), np.float64)
            if q.size != f.size:
                continue
            d = dequantize(q.reshape(f.shape), info.scale, info.zero_point).astype(np.float64)
            errs[t].append(float(np.mean(np.abs(d - f))) / info.scale)
            lo[t], hi[t] = min(lo[t], float(f.min())), max(hi[t], float(f.max()))
    rows = []
    for op, t in pairs:
        if not errs[t]:
            continue
        info = qi.tensors[t]
        rows.append({"op": op.name, "index": op.index, "tensor": info.name, "scale": info.scale,
                     "mean_err_steps": float(np.mean(errs[t])), "float_range": [lo[t], hi[t]],
                     "int8_range": [(-128 - info.zero_point) * info.scale, (127 - info.zero_point) * info.scale]})
    return sorted(rows, key=lambda r: -r["mean_err_steps"])
