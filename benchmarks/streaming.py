"""Benchmark (issue 7, "Houses: a streaming Mamba"): the step model of a trained Mamba, full int8 in TFLM, against the
windowed model and against a per-window int8 MLP. Writes docs/results/streaming.{json,md}.

Per house (house-a..d, simulated) and Mamba configuration: train briefly (early stopping on validation F1), calibrate
the state scales, build the step model (shared weights), check float stepping == windowed emissions, convert the step
model to full int8 (representative states from float stepping over training windows), find its minimal TFLM arena
(host x86-64 build) and run every test window step by step **through TFLM** from zero states (requantising the states
between steps as the device does). Labels: CRF Viterbi on each window's dequantised emissions, last step (the
project's window metric). Baseline: a per-window MLP (flattened window -> last-step label) in full int8 through TFLM.

    .venv/bin/python benchmarks/streaming.py [--houses house-a house-b house-c house-d] [--epochs 40]
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402

from keras_tinyloc.data import windows  # noqa: E402
from keras_tinyloc.models import mamba_step as MS, online_crf as OC  # noqa: E402

CONFIGS = {"house-a": ((8, 1), (4, 1), (16, 1), (32, 1))}
DEFAULT_CONFIGS = ((8, 1), (4, 1))
MLP_HIDDEN = 32


def train_mamba(ds, house, hidden, layers, epochs, cache):
    from keras_tinyloc.training.train import TrainConfig, load_run, train

    run_dir = cache / house / f"mamba_h{hidden}l{layers}"
    if not (run_dir / "metrics.json").is_file():
        train(TrainConfig(dataset=house, model="mamba", hidden=hidden, layers=layers, out=str(run_dir), epochs=epochs,
                          patience=10, seed=0, overwrite=True, verbose=False), dataset=ds)
    tagger, cfg, metrics = load_run(run_dir)
    return tagger, cfg, metrics


def eval_mamba(ds, tagger, cfg, n_float=64):
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
            "flatbuffer_bytes": len(buf), "arena_bytes": arena.arena_bytes,
            "f1_float": window_metrics(ds.y_test[:, -1], p_float)["f1"],
            "f1_int8_tflm": window_metrics(ds.y_test[:, -1], p_q)["f1"],
            "acc_int8_tflm": window_metrics(ds.y_test[:, -1], p_q)["acc"], "tflm_us": round(us, 1)}


def ablation_folded(houses, cache) -> dict:
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
            out[f"{house} {'folded' if folded else 'plain'}"] = {
                "nodes": len(tflite_inspect.summary(tflite_inspect.inspect_tflite(buf))["ops"]),
                "arena_bytes": arena.arena_bytes, "arena_head_bytes": arena.head_bytes,
                "agree_int8_step_vs_float_window": float(np.mean(p == p_w))}
            print(house, folded, out[f"{house} {'folded' if folded else 'plain'}"], flush=True)
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


def _classes(arena, flash) -> str:
    from keras_tinyloc.deploy import mcu

    got = [k for k, ok in mcu.ram_classes(arena, flash).items() if ok]
    return ", ".join(got) or "none"


def markdown(res: dict, argv: list[str]) -> str:
    lines = [
        "# Streaming Mamba (issue 7, houses)", "",
        f"Generated by `.venv/bin/python benchmarks/streaming.py {' '.join(argv)}` on {res['generated']} "
        "(2 CPU cores, tflite-micro host build). Short training runs (early stopping on validation F1, seed 0): the "
        "absolute F1 values are those of brief runs; the comparisons are like for like.", "",
        "* **step model**: one 5 Hz step, inputs x_t (1,F) + per block conv state (1,3,E) and SSM state (1,E,N); "
        "full int8; run through **TFLM** over every test window from zero states, states requantised between steps.",
        "* **float step = window**: max |emission difference| between stepping the float step model over test windows "
        "and the windowed Keras model (float32 rounding).",
        "* **arena**: minimal working TFLM arena by bisection, **host x86-64 build** (head = tensor buffers, equal on "
        "a Cortex-M build; tail = persistent bookkeeping, larger on 64-bit, so an upper bound). Independent of T "
        "(the step graph has no time axis).",
        "* **agree**: share of test windows whose decoded last-step label from the int8 step model (TFLM) equals the "
        "float windowed model's.",
        "* **int8 ranges**: the step model and the windowed model are converted with MSE-clipped activation ranges "
        "(`convert`'s default, `keras_tinyloc/deploy/calibrate.py`). Against the converter's min-max ranges (the previous "
        "run of this benchmark, same trained models) the step-vs-float agreement moved by -0.5 … +1.1 points and "
        "reached 99 % in neither setting for H8L1: house-a 98.79 -> 98.31 %, house-b 96.94 -> 97.51 %, house-c "
        "97.39 -> 96.92 %, house-d 95.82 -> 96.88 % (H4L1: 97.51 -> 97.64, 99.00 -> 99.00, 98.98 -> 98.74, "
        "97.89 -> 98.20 %).",
        "* **MLP**: per-window MLP (T*F -> H relu -> C, `models.mlp.build_window_mlp`), trained on the last-step label "
        "(cross-entropy, early stopping on validation macro-F1), full int8 through TFLM.",
        "* **classes**: the paper's RAM classes the int8 model fits (arena and flatbuffer, `keras_tinyloc.deploy.mcu`).",
        "* **TFLM µs/step**: wall time per step of the host Python loop around the TFLM invoke (NumPy quantize / "
        "requantize included; 2 busy shared cores), not a device timing.", "",
        "Reproduce: `KERAS_BACKEND=tensorflow .venv/bin/python benchmarks/streaming.py` (all four houses, ~15 min on "
        "2 shared cores; trained runs cached under `$KERAS_TINYLOC_CACHE/streaming`), "
        "`.venv/bin/python benchmarks/streaming.py --markdown-only` rewrites this file from the JSON; tests: "
        "`.venv/bin/python -m pytest -q tests/deploy/test_streaming.py` (float step == window, fixed-lag Viterbi == prefix "
        "Viterbi, forward filter == prefix marginals, int8 step model in TFLM, C++ decoder byte/label-exact on the "
        "host and on a Cortex-M4 under QEMU, step_settings.h wiring).",
        "Device files: `keras_tinyloc.deploy.export_stream.export_step_model(out, tflite, io, step_model, ds, crf, arena, "
        "lag=5)` writes model_data.cc/.h, model_settings.h (window 1, hop 1) and step_settings.h for the sketch "
        "`tflm_app/arduino/tflm_app_stream` (copy tinyloc_core.* and tinyloc_online.* next to it; build with "
        "`-DTINYLOC_STAGGER=20` for the staggered resets measured below).", "",
        "Online decoding lag: fixed-lag Viterbi with D = 5 steps (1 s at 5 Hz) on the device by default "
        "(`step_settings::kLag`); D = 0 gives exactly the windowed decoder's last-step label when states start with "
        "the window. Forward filtering (lag 0) is measured in Python only.", "",
        "| house | model | params | float step = window (max abs diff) | nodes | flash B | arena B (head/tail) | "
        "TFLM µs/step | agree int8 step vs float window | agree int8 step vs int8 window | agree int8 window vs float "
        "window | F1 float window | F1 int8 window | F1 int8 step (TFLM) | F1 fwd filter |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for house, h in res["houses"].items():
        for name, r in h["mamba"].items():
            lines.append(
                f"| {house} | {name} | {r['params']} | {r['float_step_max_abs_diff']:.1e} | {r['step_nodes']} | "
                f"{r['step_flatbuffer_bytes']:,} | {r['arena_bytes']:,} ({r['arena_head_bytes']:,}/"
                f"{r['arena_tail_bytes']:,}) | {r['tflm_us_per_step']} | "
                f"{100 * r['agree_int8_step_vs_float_window_all']:.2f} % | "
                f"{100 * r['agree_int8_step_vs_int8_window']:.2f} % | {100 * r['agree_int8_window_vs_float_window']:.2f} % | "
                f"{100 * r['f1_float_window']:.2f} | {100 * r['f1_int8_window_litert']:.2f} | "
                f"{100 * r['f1_int8_step_tflm']:.2f} | {100 * r['f1_forward_filter_int8']:.2f} |")
    lines += ["", "## Unbroken streams (the sketch's streaming mode): no state reset between windows", "",
              "The int8 step model runs through TFLM over each test stream rebuilt from the overlapping windows "
              "(`data.windows.contiguous_streams`), states carried across window boundaries; labels read at each window's "
              "last step. lag 0 = fixed-lag Viterbi emitting the current step; lag 5 = the label of each step printed "
              "1 s later; forward = argmax of the filtering posterior.", "",
              "| house | model | streams (mean steps) | F1 windowed (reset per window) | F1 stream lag 0 | F1 stream lag 5 | "
              "F1 stream forward | F1 stream float lag 0 | agree lag 0 vs float window | F1 staggered resets lag 0 |",
              "|---|---|---|---|---|---|---|---|---|---|"]
    for house, h in res["houses"].items():
        for name, r in h["mamba"].items():
            c = r["continuous"]
            fl = f"{100 * c['f1_float_lag0']:.2f}" if "f1_float_lag0" in c else "–"
            sg = f"{100 * c['f1_staggered_lag0']:.2f}" if "f1_staggered_lag0" in c else "–"
            lines.append(f"| {house} | {name} | {c['streams']} ({c['mean_stream_steps']:.0f}) | "
                         f"{100 * r['f1_int8_step_tflm']:.2f} | {100 * c['f1_lag0']:.2f} | {100 * c['f1_lag5']:.2f} | "
                         f"{100 * c['f1_forward']:.2f} | {fl} | {100 * c['agree_lag0_vs_float_window']:.2f} % | "
                         f"{sg} |")
    lines += ["", "## Sequence model vs per-window int8 MLP (free-living test split, macro-F1, int8 through TFLM)", "",
              "| house | Mamba H8L1 step int8 | Mamba H4L1 step int8 | MLP (H, params) int8 | MLP arena B (classes) | "
              "Mamba H8L1 step arena B (classes) | winner |", "|---|---|---|---|---|---|---|"]
    for house, h in res["houses"].items():
        m8, m4, mlp = h["mamba"].get("H8L1"), h["mamba"].get("H4L1"), h["mlp"]
        best_seq = max(r["f1_int8_step_tflm"] for r in (m8, m4) if r)
        win = "Mamba" if best_seq > mlp["f1_int8_tflm"] else "**MLP** (sequence model does not win)"
        lines.append(f"| {house} | {100 * m8['f1_int8_step_tflm']:.2f} | {100 * m4['f1_int8_step_tflm']:.2f} | "
                     f"{100 * mlp['f1_int8_tflm']:.2f} (H{mlp['hidden']}, {mlp['params']}) | {mlp['arena_bytes']:,} "
                     f"({_classes(mlp['arena_bytes'], mlp['flatbuffer_bytes'])}) | {m8['arena_bytes']:,} "
                     f"({_classes(m8['arena_bytes'], m8['step_flatbuffer_bytes'])}) | {win} |")
    if res.get("ablation_folded"):
        lines += ["", "## Ablation: folding the constant scales into derived kernels (H8L1)", "",
                  "`build_step_model(emitter, folded=True)`: x_proj's dt columns composed with dt_proj, B / s_n and "
                  "C s_n / n as their own FULLY_CONNECTEDs (own int8 scales), s_e folded into out_proj, state update "
                  "as XB + P (g - XB). Same float function (tested); int8 agreement via LiteRT. Reproduce: "
                  "`benchmarks/streaming.py --ablation-folded`.", "",
                  "| run | nodes | arena B (head) | agree int8 step vs float window |", "|---|---|---|---|"]
        for k, r in res["ablation_folded"].items():
            lines.append(f"| {k} | {r['nodes']} | {r['arena_bytes']:,} ({r['arena_head_bytes']:,}) | "
                         f"{100 * r['agree_int8_step_vs_float_window']:.2f} % |")
    lines += targets_section(res)
    return "\n".join(lines) + "\n"


def targets_section(res: dict) -> list[str]:
    """The issue's targets, judged from the measured numbers (no hand-edited verdicts)."""
    out = ["", "## Targets (issue 7) — measured verdicts", ""]
    rows = [(h, n, r) for h, hh in res["houses"].items() for n, r in hh["mamba"].items()]
    worst = max(r["float_step_max_abs_diff"] / r["emission_abs_max"] for _, _, r in rows)
    out.append(f"* Float stepping == windowed emissions: worst max |diff| / max |emission| = {worst:.1e} over "
               f"{len(rows)} models (float32 rounding): **met**.")
    small = [(h, n, r) for h, n, r in rows if n in ("H8L1", "H4L1")]
    met = all(r["arena_bytes"] <= 8192 for _, _, r in small)
    arenas = ", ".join(f"{h} {n} {r['arena_bytes']:,} B (head {r['arena_head_bytes']:,})" for h, n, r in small)
    out.append(f"* Arena independent of T (the step graph has no time axis) and <= 8 KiB for the 32 KB-class "
               f"configurations: host x86-64 TFLM minimal arenas {arenas}: **{'met' if met else 'not met'}** on the "
               "host figure. The planned tensor buffers (head, equal on a Cortex-M build) are under 1 KiB; the rest "
               "is per-node/per-tensor bookkeeping whose 64-bit host size overstates a Cortex-M's (see breakdown "
               "below); no Cortex-M TFLM build exists in this workplace to measure it, and no factor is guessed.")
    bd = res["houses"].get("house-a", {}).get("mamba", {}).get("H8L1", {}).get("arena_tail_breakdown_host")
    if bd:
        out.append("  House A H8L1 host allocation record (print_allocations): " +
                   "; ".join(f"{k} {v:,} B" for k, v in bd.items()) + ".")
    ha = res["houses"].get("house-a", {}).get("mamba", {})
    for n in ("H8L1", "H4L1"):
        if n in ha:
            r = ha[n]
            ok = r["agree_int8_step_vs_float_window_all"] >= 0.99
            out.append(f"* house-a {n}: int8 step model (TFLM) decoded last-step labels agree with the float windowed "
                       f"model on {100 * r['agree_int8_step_vs_float_window_all']:.2f} % of {r['test_windows']} test "
                       f"windows (**{'met' if ok else 'not met'}**, target 99 %); with the int8 windowed model on "
                       f"{100 * r['agree_int8_step_vs_int8_window']:.2f} %; the int8 windowed model itself agrees "
                       f"with float on {100 * r['agree_int8_window_vs_float_window']:.2f} %.")
    houses = res["houses"]
    wins = [h for h, hh in houses.items()
            if max(hh["mamba"][n]["f1_int8_step_tflm"] for n in ("H8L1", "H4L1") if n in hh["mamba"])
            > hh["mlp"]["f1_int8_tflm"]]
    losses = [h for h in houses if h not in wins]
    ratio = np.mean([hh["mamba"]["H8L1"]["arena_bytes"] / hh["mlp"]["arena_bytes"] for hh in houses.values()])
    same = all(_classes(hh["mamba"]["H8L1"]["arena_bytes"], hh["mamba"]["H8L1"]["step_flatbuffer_bytes"])
               == _classes(hh["mlp"]["arena_bytes"], hh["mlp"]["flatbuffer_bytes"]) for hh in houses.values())
    out.append(f"* Sequence model vs per-window int8 MLP ({'same' if same else 'different'} RAM classes; the MLP's "
               f"arena {ratio:.1f}x smaller than the H8L1 step model's): the streaming "
               f"Mamba (best of H8L1/H4L1, int8 TFLM) wins on {', '.join(wins) or 'no house'} and **does not win on "
               f"{', '.join(losses) or 'any house'}**.")
    drops = []
    for h, hh in houses.items():
        for n, r in hh["mamba"].items():
            c = r.get("continuous", {})
            if "f1_lag0" in c:
                fl = c.get("f1_float_lag0")
                drops.append(f"{h} {n} {100 * (c['f1_lag0'] - r['f1_int8_step_tflm']):+.1f}"
                             + (f" (float {100 * (fl - r['f1_float_window']):+.1f})" if fl is not None else ""))
    out.append("* Unbroken streams vs reset per window (F1 points, int8 stream lag 0 minus int8 windowed; float stream "
               "minus float windowed in brackets): " + "; ".join(drops) + ". The models were trained on 20-step windows "
               "from zero state; carried over thousands of steps the small models' states leave that regime. Where the "
               "float stream loses too, it is the model (train on longer windows or reset periodically), not int8; "
               "where only int8 loses, the likely cause (not proven) is the 8-bit state, which cannot hold slow decays (a^n near 1 rounds so that P g == g: "
               "the state freezes instead of forgetting), which 20-step windows never expose.")
    if res.get("slow_decay"):
        out.append("  Evidence (`--slow-decay`): share of the float H8L1 decay factors P = a^n at or above 1 - 1/256 "
                   "(1 - 1/128): " + "; ".join(f"{h} {100 * d['share_ge_1_minus_1_256']:.1f} % "
                                               f"({100 * d['share_ge_1_minus_1_128']:.1f} %)"
                                               for h, d in res["slow_decay"].items())
                   + ". Calibrating the int8 ranges on states from long training streams (an ad-hoc run, LiteRT, not kept) made the "
                   "stream F1 worse (house C 60.2 -> 58.0, house B 63.8 -> 61.9), so the ranges are not the cause.")
    stag = [f"{h} {n} {100 * (r['continuous']['f1_staggered_lag0'] - r['f1_int8_step_tflm']):+.1f}"
            for h, hh in houses.items() for n, r in hh["mamba"].items() if "f1_staggered_lag0" in r.get("continuous", {})]
    if stag:
        out.append("* Staggered resets (two state sets, each reset every T steps, T/2 apart; each step uses the one "
                   "with T/2..T-1 steps of context: 2 invokes per step, 2x the state bytes, same arena), int8 stream "
                   "lag 0 minus int8 windowed, F1 points: " + "; ".join(stag) + ".")
    return out


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--houses", nargs="+", default=["house-a", "house-b", "house-c", "house-d"])
    p.add_argument("--epochs", type=int, default=40)
    p.add_argument("--out", default=str(ROOT / "docs/results/streaming"))
    p.add_argument("--markdown-only", action="store_true", help="rewrite the .md from the existing .json")
    p.add_argument("--slow-decay", action="store_true", help="share of slow state decays (H8L1), for the stream analysis")
    p.add_argument("--ablation-folded", action="store_true", help="plain vs folded step graph on the cached H8L1 runs")
    ns = p.parse_args(argv)
    from keras_tinyloc import paths
    from keras_tinyloc.data.registry import load_dataset

    cache = paths.user_cache_dir() / "streaming"
    out_json = Path(ns.out + ".json")
    res = json.loads(out_json.read_text()) if out_json.is_file() else {"houses": {}}
    if ns.slow_decay:
        res["slow_decay"] = slow_decay(ns.houses, paths.user_cache_dir() / "streaming")
        paths.atomic_write_json(out_json, res)
        ns.markdown_only = True
    if ns.ablation_folded:
        res["ablation_folded"] = ablation_folded(ns.houses, paths.user_cache_dir() / "streaming")
        paths.atomic_write_json(out_json, res)
        ns.markdown_only = True
    if ns.markdown_only:
        paths.atomic_write_text(Path(ns.out + ".md"), markdown(res, res.get("argv", [])))
        return 0
    for house in ns.houses:
        t0 = time.perf_counter()
        ds = load_dataset(house)
        h = {"mamba": {}}
        for hidden, layers in CONFIGS.get(house, DEFAULT_CONFIGS):
            tagger, cfg, metrics = train_mamba(ds, house, hidden, layers, ns.epochs, cache)
            r = eval_mamba(ds, tagger, cfg)
            r["params"] = metrics["params"]
            r["train_seconds"] = metrics.get("train_seconds")
            h["mamba"][f"H{hidden}L{layers}"] = r
            print(house, f"H{hidden}L{layers}", {k: r[k] for k in ("float_step_max_abs_diff", "arena_bytes",
                  "agree_int8_step_vs_float_window_all", "f1_float_window", "f1_int8_step_tflm")}, flush=True)
        h["mlp"] = eval_mlp(ds, MLP_HIDDEN, ns.epochs * 2)
        print(house, "mlp", h["mlp"], flush=True)
        h["seconds"] = round(time.perf_counter() - t0, 1)
        res["houses"][house] = h
    res["generated"] = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    res["argv"] = argv if argv is not None else sys.argv[1:]
    paths.atomic_write_json(out_json, res)
    paths.atomic_write_text(Path(ns.out + ".md"), markdown(res, argv if argv is not None else sys.argv[1:]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
