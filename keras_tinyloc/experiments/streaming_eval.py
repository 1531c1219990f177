"""The streaming Mamba study (issue 7, "Houses: a streaming Mamba"), the measurements of ``benchmarks/streaming.py``:
the step model of a trained Mamba, full int8 in TFLM, against the windowed model and a per-window int8 MLP.

Per house and Mamba configuration (:func:`evaluate_house`): train briefly (:func:`train_mamba`, early stopping on
validation F1, cached), then :func:`eval_mamba` — calibrate the state scales, build the step model (shared weights),
check float stepping == windowed emissions, convert the step model to full int8 (representative states from float
stepping over training windows), find its minimal TFLM arena (host x86-64 build) and run every test window step by
step **through TFLM** from zero states (requantising the states between steps as the device does); labels: CRF
Viterbi on each window's dequantised emissions, last step (the project's window metric), and the online decoders
(fixed-lag Viterbi, forward filtering). :func:`eval_continuous` runs the unbroken test streams (no state reset, and
staggered resets); :func:`eval_mlp` is the baseline, a per-window MLP (flattened window -> last-step label) in full
int8 through TFLM. :func:`ablation_folded` and :func:`slow_decay` are the two follow-up analyses of the cached
H8L1 runs. :func:`device_figures` adds, for a stored row, the device figures of its step model and of its windowed
model — real TFLM on an emulated Cortex-M4F (:func:`keras_tinyloc.deploy.m4.measure_device`: minimal M4 arena,
whole-firmware flash and RAM, exact instructions per invoke, outputs vs the host TFLM) — after checking that the
cached run and its rebuilt int8 models reproduce the row's figures. The report is
:mod:`keras_tinyloc.experiments.streaming_report`.

Shapes: windows ``x`` ``(B,T,F)``, labels ``y`` ``(B,T)`` (-1 = unlabelled), emissions ``(B,T,C)``; a stream is
``(S,F)`` steps. The MLP's training loop is written here (Keras ``fit`` one epoch at a time) because its early
stopping is on validation macro-F1, which Keras' callbacks do not compute.
"""
from __future__ import annotations

import time
from pathlib import Path
from typing import Callable

import numpy as np

from keras_tinyloc.data import windows
from keras_tinyloc.models import mamba_step as MS
from keras_tinyloc.models import online_crf as OC

CONFIGS = {"house-a": ((8, 1), (4, 1), (16, 1), (32, 1))}
DEFAULT_CONFIGS = ((8, 1), (4, 1))
MLP_HIDDEN = 32


def train_mamba(ds, house, hidden, layers, epochs, cache):
    """``(tagger, config, metrics)`` of a Mamba HxLy trained on ``ds`` (``train``: up to ``epochs``, patience 10,
    seed 0) into ``cache/<house>/mamba_h<H>l<L>``, or read from there when it already holds a finished run."""
    from keras_tinyloc.training.train import TrainConfig, load_run, train

    run_dir = cache / house / f"mamba_h{hidden}l{layers}"
    if not (run_dir / "metrics.json").is_file():
        train(TrainConfig(dataset=house, model="mamba", hidden=hidden, layers=layers, out=str(run_dir), epochs=epochs,
                          patience=10, seed=0, overwrite=True, verbose=False), dataset=ds)
    tagger, cfg, metrics = load_run(run_dir)
    return tagger, cfg, metrics


def eval_mamba(ds, tagger, cfg, n_float=64):
    """The step model of a trained Mamba, measured (see the module doc); ``cfg`` = the run's config (its CRF).

    Calibrates the emitter's state scales on ``ds.x_train`` in place. Float stepping is compared with the windowed
    emissions on the first ``n_float`` test windows. Returns one row: step graph (nodes, op types, flash, arena
    head/tail), agreement of decoded last-step labels (int8 step vs float window, vs int8 window; int8 window vs
    float window), F1 of each, the online decoders' F1 (forward filter, fixed-lag D = 5 at step T-6), TFLM µs per
    step, TFLM == LiteRT share, the host allocation record and ``"continuous"`` (:func:`eval_continuous`).
    """
    from keras_tinyloc.deploy import streaming as S
    from keras_tinyloc.deploy import tflite_inspect, tflm
    from keras_tinyloc.training.metrics import window_metrics
    from keras_tinyloc.models.crf import viterbi_numpy
    from keras_tinyloc.models.mamba import calibrate_state_scales
    from keras_tinyloc.deploy.quantize import dequantize

    crf = [np.asarray(cfg["crf"][k]) for k in ("transitions", "start", "end")]
    em = tagger.emitter
    calibrate_state_scales(em, ds.x_train)
    step = MS.build_step_model(em)
    x_test = ds.x_test.astype(np.float32)
    e_win = np.asarray(em.predict(x_test, batch_size=1024, verbose=0), np.float32)
    e_step, _ = MS.run_float(step, x_test[:n_float])
    float_diff = float(np.abs(e_step - e_win[:n_float]).max())
    t0 = time.perf_counter()
    buf, io = S.convert_step_model(step, ds.x_train)
    t_conv = time.perf_counter() - t0
    summ = tflite_inspect.summary(tflite_inspect.inspect_tflite(buf))
    arena = tflm.minimal_arena(buf)
    stepper = S.Int8Stepper(buf, io, "tflm", arena.arena_bytes)
    t0 = time.perf_counter()
    q = stepper.run_windows(x_test)
    t_run = time.perf_counter() - t0
    e_q = dequantize(q, *stepper.emission_q())
    p_win = viterbi_numpy(e_win, *crf)
    p_q = viterbi_numpy(e_q, *crf)
    lab = ds.y_test[:, -1] >= 0
    # the windowed model in full int8 (LiteRT: the reference int8 interpreter; TFLM matched it on 99.8-100 % of
    # house windows in docs/results/convert_targets.md), to tell the step model's own error from int8's
    from keras_tinyloc.deploy import convert
    from keras_tinyloc.deploy.quantize import quantize

    wbuf = convert.convert_emitter(em, "int8", ds.x_train)
    winfo = tflite_inspect.inspect_tflite(wbuf)
    wq, _ = tflm.run_litert(wbuf, quantize(x_test, winfo.input().scale, winfo.input().zero_point))
    p_wq = viterbi_numpy(dequantize(wq, winfo.output().scale, winfo.output().zero_point), *crf)
    alloc = {}
    with tflm.capture_fd(2) as cap:
        it = tflm._interpreter(buf, arena.arena_bytes)
        it.print_allocations()
    for line in cap["text"].splitlines():
        if "used" in line and "'" in line:
            alloc[line.split("'")[1]] = int(line.split("used ")[1].split(" ")[0])
    # TFLM == LiteRT on a subset (bit-exact int8 outputs)
    lite = S.Int8Stepper(buf, io, "litert").run_windows(x_test[:100])
    # online decoders on the int8 emissions: fixed-lag Viterbi lag 0 (== last-step Viterbi), forward filtering
    ov = OC.OnlineViterbi(*crf, lag=0)
    p_lag0 = np.array([ov.run(e)[-1] for e in e_q])
    ff = OC.ForwardFilter(crf[0], crf[1])
    p_ff = np.array([ff.run(e)[-1] for e in e_q])
    # fixed-lag D = 5 (1 s) on each window: label of step T-1-D vs the full-window Viterbi's at that step
    d = 5
    ov5 = OC.OnlineViterbi(*crf, lag=d)
    p_lag5 = []
    for e in e_q:
        ov5.reset()
        out = [r for r in (ov5.push(v) for v in e) if r is not None]
        p_lag5.append(out[-1][1])
    lab_d = ds.y_test[:, -1 - d] >= 0
    m_d = window_metrics(ds.y_test[:, -1 - d], np.array(p_lag5))
    cont = eval_continuous(ds, stepper, crf, p_win[:, -1], step_float=step)
    return {
        "continuous": cont,
        "params": int(tagger.count_params()) if hasattr(tagger, "count_params") else None,
        "float_step_max_abs_diff": float_diff, "float_step_windows": n_float,
        "emission_abs_max": float(np.abs(e_win[:n_float]).max()),
        "step_nodes": len(summ["ops"]), "step_op_types": summ["op_types"], "float_ops": summ["float_ops"],
        "step_flatbuffer_bytes": len(buf), "convert_seconds": round(t_conv, 2),
        "arena_bytes": arena.arena_bytes, "arena_head_bytes": arena.head_bytes, "arena_tail_bytes": arena.tail_bytes,
        "io": io,
        "tflm_us_per_step": round(1e6 * t_run / (len(x_test) * x_test.shape[1]), 1),
        "tflm_equals_litert_share": float(np.mean(q[:100] == lite)),
        "test_windows": int(len(x_test)),
        "agree_int8_step_vs_float_window_all": float(np.mean(p_q[:, -1] == p_win[:, -1])),
        "agree_int8_step_vs_float_window_labelled": float(np.mean(p_q[lab, -1] == p_win[lab, -1])),
        "agree_int8_step_vs_int8_window": float(np.mean(p_q[:, -1] == p_wq[:, -1])),
        "agree_int8_window_vs_float_window": float(np.mean(p_wq[:, -1] == p_win[:, -1])),
        "f1_int8_window_litert": window_metrics(ds.y_test, p_wq)["f1"],
        "arena_tail_breakdown_host": alloc,
        "emission_mean_abs_err": float(np.abs(e_q - e_win).mean()),
        "f1_float_window": window_metrics(ds.y_test, p_win)["f1"],
        "acc_float_window": window_metrics(ds.y_test, p_win)["acc"],
        "f1_int8_step_tflm": window_metrics(ds.y_test, p_q)["f1"],
        "acc_int8_step_tflm": window_metrics(ds.y_test, p_q)["acc"],
        "online_lag0_equals_window_viterbi": bool(np.array_equal(p_lag0, p_q[:, -1])),
        "f1_forward_filter_int8": window_metrics(ds.y_test[:, -1], p_ff)["f1"],
        "agree_forward_filter_vs_viterbi": float(np.mean(p_ff == p_q[:, -1])),
        "f1_lag5_at_step_T-6": m_d["f1"], "n_lag5": int(lab_d.sum()),
        "f1_window_viterbi_at_step_T-6": window_metrics(ds.y_test[:, -1 - d], p_q[:, -1 - d])["f1"],
    }


def eval_continuous(ds, stepper, crf, p_window_float, lag=5, step_float=None):
    """The device's streaming mode: the int8 step model (TFLM) runs over each unbroken test stream without state
    resets (streams rebuilt from the overlapping windows); labels at every window's last step from fixed-lag Viterbi
    lag 0 and lag ``lag`` (printed ``lag`` steps later) and forward filtering, vs the true labels and vs the float
    windowed model's decoded labels."""
    from keras_tinyloc.training.metrics import window_metrics
    from keras_tinyloc.deploy.quantize import dequantize

    streams = windows.contiguous_streams(ds.x_test.astype(np.float32), ds.y_test, hop=ds.x_test.shape[1] // 2)
    n = len(ds.x_test)
    preds = {k: np.full(n, -1, np.int64) for k in ("lag0", f"lag{lag}", "forward")}
    sq = stepper.emission_q()
    for st in streams:
        stepper.reset()
        e = dequantize(np.stack([stepper.step(v) for v in st["x"]]), *sq)
        lab0 = OC.OnlineViterbi(*crf, lag=0).run(e)
        labd = OC.OnlineViterbi(*crf, lag=lag).run(e)
        labf = OC.ForwardFilter(crf[0], crf[1]).run(e)
        for key, lab in (("lag0", lab0), (f"lag{lag}", labd), ("forward", labf)):
            preds[key][st["windows"]] = lab[st["ends"]]
    if step_float is not None:  # the float step model on the same streams (zero-padded at the end: causal)
        longest = max(len(st["x"]) for st in streams)
        xs = np.zeros((len(streams), longest, ds.x_test.shape[2]), np.float32)
        for i, st in enumerate(streams):
            xs[i, : len(st["x"])] = st["x"]
        e_float, _ = MS.run_float(step_float, xs)
        preds["float_lag0"] = np.full(n, -1, np.int64)
        for i, st in enumerate(streams):
            lab = OC.OnlineViterbi(*crf, lag=0).run(e_float[i, : len(st["x"])])
            preds["float_lag0"][st["windows"]] = lab[st["ends"]]
    # staggered resets: two state sets, each reset every T steps, offset by T/2; step t uses the set whose context
    # is T/2..T-1 steps long (at a window end: exactly the windowed model's context). Same interpreter, 2 invokes/step.
    steps_t = ds.x_test.shape[1]
    half = steps_t // 2
    preds["staggered_lag0"] = np.full(n, -1, np.int64)
    for st in streams:
        em = []
        sets = [None, None]
        for t, v in enumerate(st["x"]):
            outs = []
            for k, off in enumerate((0, half)):
                if t >= off and (t - off) % steps_t == 0:
                    stepper.reset()
                    sets[k] = {name: a.copy() for name, a in stepper.states.items()}
                if sets[k] is None:
                    outs.append(None)
                    continue
                stepper.states = sets[k]
                outs.append(stepper.step(v))
                sets[k] = {name: a.copy() for name, a in stepper.states.items()}
            ctx = [((t - off) % steps_t) if t >= off else -1 for off in (0, half)]
            pick = 0 if t < half or ctx[0] >= half else 1
            em.append(outs[pick])
        e = dequantize(np.stack(em), *sq)
        lab = OC.OnlineViterbi(*crf, lag=0).run(e)
        preds["staggered_lag0"][st["windows"]] = lab[st["ends"]]
    y_last = ds.y_test[:, -1]
    out = {"streams": len(streams), "mean_stream_steps": float(np.mean([len(s["x"]) for s in streams])),
           "windows_covered": int(sum(len(s["windows"]) for s in streams))}
    for key, p in preds.items():
        m = window_metrics(y_last, p)
        out[f"f1_{key}"], out[f"acc_{key}"] = m["f1"], m["acc"]
        out[f"agree_{key}_vs_float_window"] = float(np.mean(p == p_window_float))
    return out


def eval_mlp(ds, hidden, epochs, seed=0):
    """The per-window int8 MLP baseline: ``models.mlp.build_window_mlp`` (T*F -> H relu -> C) trained on the
    windows with a labelled last step (Adam 3e-3, cross-entropy, batch 128, up to ``epochs``, early stopping on
    validation macro-F1 with patience 10, best weights kept), converted to full int8 (names stripped) and run
    through TFLM on the test windows. Returns ``{"hidden", "params", "train_seconds", "flatbuffer_bytes",
    "arena_bytes", "val_f1_float"`` (the kept weights' validation macro-F1, float), ``"f1_float", "f1_int8_tflm",
    "acc_int8_tflm", "tflm_us"}``."""
    import keras

    from keras_tinyloc.deploy import convert, tflm
    from keras_tinyloc.training.metrics import window_metrics
    from keras_tinyloc.models.mlp import build_window_mlp
    from keras_tinyloc.deploy.quantize import quantize
    from keras_tinyloc.deploy import tflite_inspect

    def last(x, y):
        keep = y[:, -1] >= 0
        return x[keep].astype(np.float32), y[keep, -1]

    xtr, ytr = last(ds.x_train, ds.y_train)
    xva, yva = last(ds.x_val, ds.y_val)
    model = build_window_mlp(ds.x_train.shape[1:], ds.n_classes, hidden, 1, seed=seed)
    model.compile(keras.optimizers.Adam(3e-3), keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    best, best_w, wait = -1.0, None, 0
    t0 = time.perf_counter()
    for _ in range(epochs):  # early stopping on validation macro-F1 (as train.py does), patience 10
        model.fit(xtr, ytr, batch_size=128, epochs=1, verbose=0, shuffle=True)
        f1 = window_metrics(yva, np.argmax(model.predict(xva, verbose=0), -1))["f1"]
        if f1 > best:
            best, best_w, wait = f1, model.get_weights(), 0
        else:
            wait += 1
            if wait >= 10:
                break
    model.set_weights(best_w)
    t_train = time.perf_counter() - t0
    x_test = ds.x_test.astype(np.float32)
    p_float = np.argmax(model.predict(x_test, verbose=0), -1)
    buf = convert.strip_tensor_names(convert.convert_emitter(model, "int8", ds.x_train))
    info = tflite_inspect.inspect_tflite(buf)
    arena = tflm.minimal_arena(buf)
    xq = quantize(x_test, info.input().scale, info.input().zero_point)
    q, us = tflm.run_tflm(buf, xq, arena.arena_bytes)
    p_q = np.argmax(q.reshape(len(q), -1), -1)
    return {"hidden": hidden, "params": int(model.count_params()), "train_seconds": round(t_train, 1),
            "val_f1_float": float(best),
            "flatbuffer_bytes": len(buf), "arena_bytes": arena.arena_bytes,
            "f1_float": window_metrics(ds.y_test[:, -1], p_float)["f1"],
            "f1_int8_tflm": window_metrics(ds.y_test[:, -1], p_q)["f1"],
            "acc_int8_tflm": window_metrics(ds.y_test[:, -1], p_q)["acc"], "tflm_us": round(us, 1)}


def ablation_folded(houses, cache, log: Callable[[str], None] = print) -> dict:
    """Plain vs folded step graph (``build_step_model(folded=...)``) for the cached H8L1 runs: nodes, arena, and
    agreement of the int8 step model (LiteRT) with the float windowed model's decoded last-step labels."""
    from keras_tinyloc.deploy import streaming as S
    from keras_tinyloc.deploy import tflite_inspect, tflm
    from keras_tinyloc.training.train import load_run_dataset
    from keras_tinyloc.models.crf import viterbi_numpy
    from keras_tinyloc.models.mamba import calibrate_state_scales
    from keras_tinyloc.deploy.quantize import dequantize
    from keras_tinyloc.training.train import load_run

    out = {}
    for house in houses:
        tagger, cfg, _ = load_run(cache / house / "mamba_h8l1")
        ds = load_run_dataset(cfg)
        em = tagger.emitter
        calibrate_state_scales(em, ds.x_train)
        crf = [np.asarray(cfg["crf"][k]) for k in ("transitions", "start", "end")]
        x = ds.x_test.astype(np.float32)
        p_w = viterbi_numpy(np.asarray(em.predict(x, verbose=0)), *crf)[:, -1]
        for folded in (False, True):
            buf, io = S.convert_step_model(MS.build_step_model(em, folded=folded), ds.x_train)
            arena = tflm.minimal_arena(buf)
            st = S.Int8Stepper(buf, io, "litert")
            p = viterbi_numpy(dequantize(st.run_windows(x), *st.emission_q()), *crf)[:, -1]
            key = f"{house} {'folded' if folded else 'plain'}"
            out[key] = {
                "nodes": len(tflite_inspect.summary(tflite_inspect.inspect_tflite(buf))["ops"]),
                "arena_bytes": arena.arena_bytes, "arena_head_bytes": arena.head_bytes,
                "agree_int8_step_vs_float_window": float(np.mean(p == p_w))}
            log(f"{house} {folded} {out[key]}")
    return out


def slow_decay(houses, cache, n_windows=500) -> dict:
    """Share of the float model's per-step decay factors P = a^n (test windows, H8L1) at or above 1 - 1/256 and
    1 - 1/128: decays slower than int8 can tell from 1 (state time constants beyond ~128-256 steps)."""
    from keras_tinyloc.training.train import load_run_dataset
    from keras_tinyloc.training.train import load_run

    out = {}
    for house in houses:
        tagger, cfg, _ = load_run(cache / house / "mamba_h8l1")
        ds = load_run_dataset(cfg)
        em = tagger.emitter
        (_, v, _, _), _ = em.get_layer("mamba_block_0").scan_inputs(em.get_layer("embedding")(ds.x_test[:n_windows]))
        a = 1.0 / (1.0 + np.exp(-np.asarray(v, np.float64)))
        p = a[..., None] ** np.arange(1, em.get_layer("mamba_block_0").d_state + 1)
        out[house] = {"share_ge_1_minus_1_256": float(np.mean(p >= 1 - 1 / 256)),
                      "share_ge_1_minus_1_128": float(np.mean(p >= 1 - 1 / 128)), "median_a": float(np.median(a))}
    return out


def validation_f1(house: str, name: str, row: dict, epochs: int, cache: Path, dataset=None) -> float:
    """The validation macro-F1 of the Mamba run a stored row ``name`` (``H<H>L<L>``) of ``house`` was measured on,
    for rows written before :func:`evaluate_house` recorded it: the run from :func:`train_mamba` (cached under
    ``cache``, else trained again with the same settings — seed 0, ``epochs`` max — which reproduces it), accepted
    only when its float test macro-F1 equals the row's ``f1_float_window`` (same model); otherwise a
    :class:`~keras_tinyloc.errors.TinyLocError` naming both figures."""
    from keras_tinyloc.data.registry import load_dataset
    from keras_tinyloc.errors import TinyLocError

    hidden, layers = (int(v) for v in name[1:].split("L"))
    ds = load_dataset(house) if dataset is None else dataset
    _, _, metrics = train_mamba(ds, house, hidden, layers, epochs, cache)
    if abs(metrics["test_f1"] - row["f1_float_window"]) > 1e-9:
        raise TinyLocError(f"{house} {name}: the run under {cache / house} has float test F1 {metrics['test_f1']:.6f}, "
                           f"the stored row {row['f1_float_window']:.6f}: not the run the row was measured on")
    return float(metrics["val_f1"])


def evaluate_house(house: str, epochs: int, cache: Path, log: Callable[[str], None] = print, dataset=None) -> dict:
    """Every Mamba configuration of ``house`` (:data:`CONFIGS`, else :data:`DEFAULT_CONFIGS`) trained
    (:func:`train_mamba`, ``epochs`` max, cached under ``cache``) and measured (:func:`eval_mamba`, plus its
    ``params`` and ``train_seconds``), and the per-window MLP (:func:`eval_mlp`, H = :data:`MLP_HIDDEN`,
    ``2 * epochs`` max). ``dataset``: the house's WindowDataset (default: ``load_dataset(house)``, timed with the
    rest). Returns ``{"mamba": {"H8L1": ..., ...}, "mlp": ..., "seconds"}``; each Mamba row holds ``val_f1`` (the
    trained float model's validation macro-F1 of the decoded last step, :func:`keras_tinyloc.training.train.evaluate`)
    and the MLP row its best validation macro-F1 (``val_f1_float``), so that the report selects by validation."""
    from keras_tinyloc.data.registry import load_dataset

    t0 = time.perf_counter()
    ds = load_dataset(house) if dataset is None else dataset
    h = {"mamba": {}}
    for hidden, layers in CONFIGS.get(house, DEFAULT_CONFIGS):
        tagger, cfg, metrics = train_mamba(ds, house, hidden, layers, epochs, cache)
        r = eval_mamba(ds, tagger, cfg)
        r["params"] = metrics["params"]
        r["train_seconds"] = metrics.get("train_seconds")
        r["val_f1"] = metrics["val_f1"]  # the float run's validation macro-F1: what selects among configurations
        h["mamba"][f"H{hidden}L{layers}"] = r
        log(f"{house} H{hidden}L{layers} " + str({k: r[k] for k in ("float_step_max_abs_diff", "arena_bytes",
                                                                       "agree_int8_step_vs_float_window_all",
                                                                       "f1_float_window", "f1_int8_step_tflm")}))
    h["mlp"] = eval_mlp(ds, MLP_HIDDEN, epochs * 2)
    log(f"{house} mlp {h['mlp']}")
    h["seconds"] = round(time.perf_counter() - t0, 1)
    return h


DEVICE_INPUT_STEPS = (4, 9, 14, 19)  # steps of each of the first 4 test windows fed to the M4 for the output check


def step_inputs(stepper, x: np.ndarray, steps=DEVICE_INPUT_STEPS) -> list[np.ndarray]:
    """Real int8 inputs of a step model: stepping each window of ``x (B,T,F)`` from zero states, the feeds (x_t and the
    carried states, in the model's input order) of the given ``steps``; one array ``(B * len(steps), *shape)`` per
    input."""
    from keras_tinyloc.deploy.quantize import quantize

    per_input: list[list[np.ndarray]] = [[] for _ in stepper.io["inputs"]]
    for w in np.asarray(x, np.float32):
        stepper.reset()
        for t in range(max(steps) + 1):
            if t in steps:
                for i, (name, shape, q) in enumerate(zip(stepper.io["inputs"], stepper.in_shapes,
                                                         stepper.io["input_q"])):
                    per_input[i].append(quantize(w[t], *q).reshape(shape) if name == "x_t"
                                        else stepper.states[name].copy())
            stepper.step(w[t])
    return [np.stack(v) for v in per_input]


def device_figures(house: str, name: str, row: dict, epochs: int, cache: Path, dataset=None,
                   log: Callable[[str], None] = print) -> dict:
    """Device figures of a stored Mamba row ``name`` (``H<H>L<L>``) of ``house``: its step model (the streaming sketch)
    and its windowed int8 model (``stm32/main.cc``), each measured on the emulated Cortex-M4F by
    :func:`keras_tinyloc.deploy.m4.measure_device`.

    The run is the row's (:func:`train_mamba`, cached or retrained with the same settings), accepted only when its
    float test macro-F1 equals the row's; the step model is rebuilt and converted as :func:`eval_mamba` does and must
    reproduce the row's flatbuffer size and host arena (what the device figures depend on: the graph and its tensor
    sizes) — otherwise a :class:`~keras_tinyloc.errors.TinyLocError` naming both figures, and no figure is attached.
    The int8 F1 of the rebuilt models (step through TFLM, window through LiteRT, as in the row) is measured again and
    recorded next to the row's in ``checked``: the int8 conversion and the code around it may have moved since the
    row was measured, and the report says where they differ. The windowed model is converted as ``convert`` does
    (MSE ranges, seed 0, names stripped). Output comparison: 16 real step inputs (:func:`step_inputs`) for the step
    model, the first 16 test windows for the windowed model. Returns ``{"step": device dict, "window": device dict,
    "checked": {...}}``.
    """
    import tempfile

    from keras_tinyloc.data.registry import load_dataset
    from keras_tinyloc.deploy import convert, export_c, export_stream, m4, tflm
    from keras_tinyloc.deploy import streaming as S
    from keras_tinyloc.deploy.quantize import dequantize, quantize
    from keras_tinyloc.errors import TinyLocError
    from keras_tinyloc.models.crf import viterbi_numpy
    from keras_tinyloc.models.mamba import calibrate_state_scales
    from keras_tinyloc.training.metrics import window_metrics

    hidden, layers = (int(v) for v in name[1:].split("L"))
    ds = load_dataset(house) if dataset is None else dataset
    tagger, cfg, metrics = train_mamba(ds, house, hidden, layers, epochs, cache)

    def same(what, got, want, tol=1e-9):
        if abs(got - want) > tol:
            raise TinyLocError(f"{house} {name}: {what} {got} here, {want} in the stored row: not the model the row "
                               f"was measured on")

    same("float test F1", metrics["test_f1"], row["f1_float_window"])
    crf = {k: np.asarray(cfg["crf"][k]) for k in ("transitions", "start", "end")}
    em = tagger.emitter
    calibrate_state_scales(em, ds.x_train)
    step = MS.build_step_model(em)
    buf, io = S.convert_step_model(step, ds.x_train)
    same("step flatbuffer bytes", len(buf), row["step_flatbuffer_bytes"], 0)
    arena = tflm.minimal_arena(buf)
    same("step host arena bytes", arena.arena_bytes, row["arena_bytes"], 0)
    x_test = ds.x_test.astype(np.float32)
    stepper = S.Int8Stepper(buf, io, "tflm", arena.arena_bytes)
    q = stepper.run_windows(x_test)
    p_q = viterbi_numpy(dequantize(q, *stepper.emission_q()), crf["transitions"], crf["start"], crf["end"])
    f1_step = window_metrics(ds.y_test, p_q)["f1"]
    model_name = f"{house}_{name}".replace("-", "_").lower()
    with tempfile.TemporaryDirectory(prefix="tinyloc-stream-dev-") as tmp:
        export_stream.export_step_model(tmp, buf, io, step, ds, crf, arena.arena_bytes, lag=5, arena_margin_bytes=256,
                                        model_name=model_name + "_step")
        settings = export_c.read_device_settings(tmp)
    sizes = {n: int(np.prod(s)) for n, s in MS.state_shapes_from_model(step)}
    log(f"{house} {name}: step model on the M4")
    dev_step = m4.measure_device(buf, settings, step_io={"io": io, "state_sizes": sizes, "lag": 5},
                                 inputs=step_inputs(stepper, x_test[:4]))
    wbuf, rep = convert.convert_model(em, crf, ds, "int8", name=model_name)
    i, o = rep["input"], rep["output"]
    wq, _ = tflm.run_litert(wbuf, quantize(x_test, i["scale"], i["zero_point"]))
    p_wq = viterbi_numpy(dequantize(wq, o["scale"], o["zero_point"]), crf["transitions"], crf["start"], crf["end"])
    f1_win = window_metrics(ds.y_test, p_wq)["f1"]
    log(f"{house} {name}: windowed model on the M4")
    wsettings = convert._device_settings(rep, ds, crf, 256, model_name)
    dev_win = m4.measure_device(wbuf, wsettings, inputs=[quantize(x_test[:16], i["scale"], i["zero_point"])[:, None]])
    return {"step": dev_step, "window": dev_win, "checked": {
        "float_test_f1": metrics["test_f1"], "step_flatbuffer_bytes": len(buf), "step_host_arena_bytes":
        arena.arena_bytes, "f1_int8_step_tflm_now": f1_step, "f1_int8_step_tflm_row": row["f1_int8_step_tflm"],
        "f1_int8_window_litert_now": f1_win, "f1_int8_window_litert_row": row["f1_int8_window_litert"],
        "window_flatbuffer_bytes": len(wbuf), "window_host_arena_bytes": rep["arena_bytes"],
        "window_f1_int8_tflm_now": rep["test_f1_int8"]}}
