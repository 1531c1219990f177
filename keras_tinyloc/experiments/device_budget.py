"""The device benchmark (``benchmarks/device.py`` -> ``docs/results/device.md``): per model family, the whole firmware
on an emulated Cortex-M4F, what build flags and TFLM options buy (the flash diet), and where a streaming step model's
tensor arena goes, node by node.

Models (:func:`build_cases`), trained briefly with the project's own pipeline — the figures here are sizes and
instruction counts, which depend on the architecture and the graph, not on how well the weights were trained:

* ``mamba-h8l1`` — Mamba H8L1 on ``house-a`` (T = 20 steps of 8 APs, 4 rooms), the windowed sketch (stm32/main.cc);
* ``mdcsa-h16l1`` — MDCSA H16L1 on ``house-a``;
* ``mamba-step`` / ``mamba-step-folded`` — the streaming step model of that Mamba (one 5 Hz step per invoke; plain and
  folded graph, :func:`keras_tinyloc.models.mamba_step.build_step_model`), the streaming sketch;
* ``uji-mlp`` — the int8 MLP of docs/results/beyond_uji.md (row ``pow3-aug-h64`` on ``uji-zones``: x^3, Dense(64),
  59 zones), the windowed sketch with T = 1.

Per model (:func:`measure_case`): :func:`keras_tinyloc.deploy.m4.measure_device` (the full device figures) and
:func:`keras_tinyloc.deploy.flash_diet.measure_variants`; for step models also :func:`arena_breakdown`
(RecordingMicroAllocator per type and per node, on the M4) and :func:`fixed_plan_arena` (the minimal arena when the
activation plan is a recorded table instead of TFLM's planning at boot).
"""
from __future__ import annotations

import dataclasses
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np

from keras_tinyloc.deploy import export_c, flash_diet, m4, mcu, tflm, tflm_kit
from keras_tinyloc.errors import TinyLocError

TARGET_FLASH_BYTES = 64 * 1024  # the targets: the streaming Mamba and the UJI MLP firmware in 64 KiB of flash
TARGET_STEP_ARENA_BYTES = 8 * 1024  # and the streaming step model's M4 arena within 8 KiB
CASE_NAMES = ("mamba-h8l1", "mdcsa-h16l1", "mamba-step", "mamba-step-folded", "uji-mlp")


@dataclasses.dataclass
class Case:
    """One model to measure: its int8 flatbuffer, device settings, and for a step model the io map (``step_io``)."""

    name: str
    what: str
    tflite_bytes: bytes
    settings: export_c.DeviceSettings
    step_io: dict | None = None
    test_f1_int8: float | None = None


def _train(work: Path, dataset: str, model: str, hidden: int, layers: int, epochs: int, log, ds=None):
    from keras_tinyloc.training.train import TrainConfig, load_run, train

    run_dir = work / dataset / f"{model}_h{hidden}l{layers}"
    if not (run_dir / "metrics.json").is_file():
        log(f"training {model} H{hidden}L{layers} on {dataset} ({epochs} epochs at most)")
        train(TrainConfig(dataset=dataset, model=model, hidden=hidden, layers=layers, out=str(run_dir), epochs=epochs,
                          patience=max(3, epochs // 4), seed=0, overwrite=True, verbose=False), dataset=ds, log=log)
    return run_dir, load_run(run_dir)


def _windowed_case(name: str, what: str, run_dir: Path, ds) -> Case:
    from keras_tinyloc.deploy import convert

    out = run_dir / "tflite-int8"
    if not (out / "report.json").is_file():
        convert.convert_run(convert.ConvertConfig(run_dir=str(run_dir), out=str(out), overwrite=True, target="host"),
                            dataset=ds)
    import json

    rep = json.loads((out / "report.json").read_text())
    return Case(name, what, (out / "model.tflite").read_bytes(), export_c.read_device_settings(out),
                test_f1_int8=rep.get("test_f1_int8"))


def _step_case(name: str, what: str, tagger, config: dict, ds, folded: bool, work: Path) -> Case:
    from keras_tinyloc.deploy import export_stream, streaming
    from keras_tinyloc.models import mamba_step
    from keras_tinyloc.models.mamba import calibrate_state_scales

    em = tagger.emitter
    calibrate_state_scales(em, ds.x_train)
    step = mamba_step.build_step_model(em, folded=folded)
    buf, io = streaming.convert_step_model(step, ds.x_train)
    crf = {k: np.asarray(config["crf"][k]) for k in ("transitions", "start", "end")}
    d = work / name
    export_stream.export_step_model(d, buf, io, step, ds, crf, tflm.minimal_arena(buf).arena_bytes, lag=5,
                                    arena_margin_bytes=256, model_name=name.replace("-", "_"))
    sizes = {n: int(np.prod(s)) for n, s in mamba_step.state_shapes_from_model(step)}
    return Case(name, what, buf, export_c.read_device_settings(d), {"io": io, "state_sizes": sizes, "lag": 5})


def build_cases(work: Path, names=CASE_NAMES, epochs: int = 10, log: Callable[[str], None] = print) -> list[Case]:
    """The models of the module docstring (trained into ``work``, reused when already there)."""
    from keras_tinyloc.data.registry import load_dataset

    work = Path(work)
    cases: list[Case] = []
    need_house = any(n != "uji-mlp" for n in names)
    ds = load_dataset("house-a") if need_house else None
    if any(n.startswith("mamba") for n in names):
        run_dir, (tagger, config, _) = _train(work, "house-a", "mamba", 8, 1, epochs, log, ds)
        if "mamba-h8l1" in names:
            cases.append(_windowed_case("mamba-h8l1", "Mamba H8L1, house-a, T=20 window", run_dir, ds))
        for folded in (False, True):
            name = "mamba-step-folded" if folded else "mamba-step"
            if name in names:
                cases.append(_step_case(name, f"its streaming step model ({'folded' if folded else 'plain'} graph)",
                                        tagger, config, ds, folded, work))
    if "mdcsa-h16l1" in names:
        run_dir, _ = _train(work, "house-a", "mdcsa", 16, 1, epochs, log, ds)
        cases.append(_windowed_case("mdcsa-h16l1", "MDCSA H16L1, house-a, T=20 window", run_dir, ds))
    if "uji-mlp" in names:
        from keras_tinyloc.experiments import beyond

        cfg = beyond.row_config("uji-zones", "pow3-aug-h64", out=str(work / "beyond"), epochs=epochs)
        row = beyond.run_row(cfg, log=log)
        out = cfg.run_dir() / "tflite-int8"
        cases.append(Case("uji-mlp", f"UJI MLP x^3 H64, {row['n_features']} APs, 59 zones (beyond row pow3-aug-h64)",
                          (out / "model.tflite").read_bytes(), export_c.read_device_settings(out),
                          test_f1_int8=row.get("test_f1_int8")))
    order = {n: i for i, n in enumerate(names)}
    return sorted(cases, key=lambda c: order[c.name])


def arena_breakdown(case: Case) -> dict[str, Any]:
    """Where the M4 arena of ``case`` goes: minimal arena vs ``arena_used_bytes()``; RecordingMicroAllocator's
    categories; persistent bytes per op type (sum over its nodes) and the ten largest nodes."""
    import tempfile

    lib = tflm_kit.library("m4")
    with tempfile.TemporaryDirectory(prefix="tinyloc-arena-") as tmp:
        probe = m4.build_probe(case.tflite_bytes, lib, Path(tmp))
        found = m4.minimal_arena(probe.path)
        rec = m4.arena_record(probe.path, max(found.arena_bytes * 2, 64 * 1024))
    by_op: dict[str, dict[str, int]] = {}
    for n in rec["per_node"]:
        d = by_op.setdefault(n["op"], {"nodes": 0, "persistent": 0})
        d["nodes"] += 1
        d["persistent"] += n["init"] + n["prepare"]
    top = sorted(({"index": i, **n, "persistent": n["init"] + n["prepare"]} for i, n in enumerate(rec["per_node"])),
                 key=lambda n: -n["persistent"])[:10]
    return {"arena_bytes": found.arena_bytes, "arena_used_bytes_reported": found.used_reported,
            "recorded": {k: rec.get(k) for k in ("total", "head", "tail", "nodes", "tensors",
                                                  "persistent_buffers_outside_nodes")},
            "types": rec["types"], "by_op": dict(sorted(by_op.items(), key=lambda kv: -kv[1]["persistent"])),
            "top_nodes": top}


def fixed_plan_arena(case: Case, n_random: int = 16) -> dict[str, Any]:
    """The minimal M4 arena when the activation plan is a fixed table (``tflm_app/probe/fixed_plan.h``) instead of
    TFLM's greedy planning at boot, whose working arrays must fit in the arena once.

    The probe is built twice: with ``TINYLOC_PLAN_RECORD`` (the greedy planner plans; its offsets for every buffer are
    read back), then with ``TINYLOC_FIXED_PLAN`` and those offsets in ``plan.h``. Returns the fixed-plan minimal arena,
    the buffers planned and the head they span, the plan's size as a table (offset + size, int32 each) and whether
    the outputs on ``n_random`` random inputs still equal the host TFLM's.
    """
    import re
    import tempfile

    from keras_tinyloc.deploy import qemu

    lib = tflm_kit.library("m4")
    with tempfile.TemporaryDirectory(prefix="tinyloc-plan-") as tmp:
        rec = m4.build_probe(case.tflite_bytes, lib, Path(tmp) / "record", app_defs=("-DTINYLOC_PLAN_RECORD",))
        r = qemu.run(rec.path, ["arena", str(m4.PROBE_MAX_ARENA)], timeout=m4.PROBE_TIMEOUT_S)
        m = re.search(r"^plan n=(\d+) offsets=([-\d,]*) sizes=([-\d,]*)$", r.stdout, re.M)
        if r.returncode != 0 or m is None:
            raise TinyLocError(f"{case.name}: the plan-recording probe failed (exit {r.returncode}): "
                               f"{r.stdout.strip()[-300:]}")
        n = int(m.group(1))
        offsets = [int(v) for v in m.group(2).split(",") if v]
        sizes = [int(v) for v in m.group(3).split(",") if v]
        if len(offsets) != n or len(sizes) != n or min(offsets, default=0) < 0:
            raise TinyLocError(f"{case.name}: the recorded plan is incomplete ({n} buffers, {len(offsets)} offsets)")
        src = Path(tmp) / "fixed" / "probe_src"
        src.mkdir(parents=True)
        (src / "plan.h").write_text(
            f"// Recorded by keras_tinyloc.experiments.device_budget.fixed_plan_arena ({case.name}).\n"
            f"constexpr int kPlanCount = {n};\n"
            f"constexpr int kPlanOffsets[{max(n, 1)}] = {{{', '.join(map(str, offsets)) or '0'}}};\n"
            f"constexpr int kPlanSizes[{max(n, 1)}] = {{{', '.join(map(str, sizes)) or '0'}}};\n")
        fixed = m4.build_probe(case.tflite_bytes, lib, Path(tmp) / "fixed", app_defs=("-DTINYLOC_FIXED_PLAN",))
        found = m4.minimal_arena(fixed.path)
        xs = m4.random_inputs(case.tflite_bytes, n_random)
        got, _ = m4.run_inputs(fixed.path, found.arena_bytes, case.tflite_bytes, xs, Path(tmp))
        want = m4.host_outputs(case.tflite_bytes, xs)
        same = np.all([np.all((g == w).reshape(len(g), -1), axis=1) for g, w in zip(got, want)], axis=0)
    return {"arena_bytes": found.arena_bytes, "arena_used_bytes_reported": found.used_reported, "buffers": n,
            "head_bytes": max((o + z for o, z in zip(offsets, sizes)), default=0), "plan_table_bytes": 8 * n,
            "outputs_identical_share": float(np.mean(same)), "n_compared": int(len(same))}


def measure_case(case: Case, variants=flash_diet.VARIANTS, log: Callable[[str], None] = print) -> dict[str, Any]:
    """Device figures, flash-diet variants and (step models) the arena breakdown of one case."""
    t0 = time.monotonic()
    log(f"{case.name}: device figures")
    dev = m4.measure_device(case.tflite_bytes, case.settings, step_io=case.step_io)
    log(f"{case.name}: flash {dev['flash_bytes']} B, RAM {dev['ram_bytes']} B, arena {dev['arena_bytes']} B; variants")
    rows = flash_diet.measure_variants(case.tflite_bytes, case.settings, variants, step_io=case.step_io, log=log)
    out = {"name": case.name, "what": case.what, "flatbuffer_bytes": len(case.tflite_bytes),
           "host_arena_bytes": case.settings.arena_bytes, "test_f1_int8": case.test_f1_int8,
           "n_features": case.settings.n_features, "n_classes": case.settings.n_classes,
           "window": case.settings.window,
           "ops": sorted(set(case.settings.ops)), "device": dev, "variants": rows}
    if case.step_io is not None:
        out["arena"] = arena_breakdown(case)
        log(f"{case.name}: arena with a fixed activation plan")
        out["arena"]["fixed_plan"] = fixed_plan_arena(case)
    out["seconds"] = round(time.monotonic() - t0, 1)
    return out


def notes(results: list[dict]) -> list[str]:
    """The report's findings, computed from the measurements: the issue's targets met or not, and by what."""
    out = []
    for c in results:
        d = c["device"]
        share = d["flash_tflm_bytes"] / d["flash_bytes"]
        out.append(f"{c['name']}: TFLM is {100 * share:.0f} % of the default firmware's flash "
                   f"({d['flash_tflm_bytes']:,} of {d['flash_bytes']:,} B; the model {d['flash_model_bytes']:,} B); "
                   f"M4 arena {d['arena_bytes']:,} B = {100 * d['arena_bytes'] / c['host_arena_bytes']:.0f} % of the "
                   f"host figure.")
        if c["name"] in ("mamba-step", "mamba-step-folded", "uji-mlp"):
            best = min(c["variants"], key=lambda v: v["flash_bytes"])
            ok = best["flash_bytes"] <= TARGET_FLASH_BYTES
            line = (f"{c['name']}: 64 KiB flash target {'met' if ok else 'NOT met'}: smallest variant "
                    f"`{best['variant']}` {best['flash_bytes']:,} B (default {c['variants'][0]['flash_bytes']:,} B): "
                    f"TFLM {best['flash_tflm_bytes']:,} + model {best['flash_model_bytes']:,} + app "
                    f"{best['flash_app_bytes']:,} + libc {best['flash_libc_bytes']:,} B.")
            if not ok:
                over = best["flash_bytes"] - TARGET_FLASH_BYTES
                ops = c.get("ops") or []
                line += (f" {over:,} B too many: with the same model, app and libc, TFLM would have to fit in "
                         f"{best['flash_tflm_bytes'] - over:,} B ({100 * over / best['flash_tflm_bytes']:.0f} % less "
                         f"kernel and interpreter code than now; the graph uses {len(ops)} op types"
                         + (f": {', '.join(ops)}" if ops else "") + ").")
            out.append(line)
        n_c = c.get("n_classes")
        if n_c and 4 * n_c * n_c >= 4096:
            if c.get("window") == 1:
                out.append(f"{c['name']}: T = 1, so the firmware links no CRF transition matrix ({n_c} x {n_c} float32 "
                           f"= {4 * n_c * n_c:,} B; the core's decode reads start + emission + end only): its app part "
                           f"({d['flash_app_bytes']:,} B) is the sketch, the core and model_settings.h's other arrays.")
            else:
                out.append(f"{c['name']}: its app part ({d['flash_app_bytes']:,} B) holds model_settings.h's arrays, "
                           f"among them the CRF transition matrix: {n_c} x {n_c} float32 = {4 * n_c * n_c:,} B.")
        if "arena" in c:
            a, rec = c["arena"]["arena_bytes"], c["arena"]["recorded"]
            out.append(f"{c['name']}: 8 KiB arena target {'met' if a <= TARGET_STEP_ARENA_BYTES else 'NOT met'}: "
                       f"{a:,} B on the M4 = persistent tail {rec['tail']:,} B + planned head {rec['head']:,} B + "
                       f"{a - rec['total']:,} B needed only while planning (TFLM reports "
                       f"{c['arena']['arena_used_bytes_reported']:,} B used after allocation). Within 8,192 B it "
                       f"would need {a - TARGET_STEP_ARENA_BYTES:,} B less: fewer nodes and tensors (32 B per node, "
                       f"12 B per tensor in the tail, and the planner's working arrays scale with them) or a smaller "
                       f"persistent kernel state.")
            fp = c["arena"].get("fixed_plan")
            if fp:
                met = fp["arena_bytes"] <= TARGET_STEP_ARENA_BYTES
                out.append(f"{c['name']}: with the activation plan as a fixed table (tflm_app/probe/fixed_plan.h: "
                           f"{fp['buffers']} buffer offsets recorded from TFLM's greedy planner, "
                           f"{fp['plan_table_bytes']:,} B as an int32 table) the minimal M4 arena is "
                           f"{fp['arena_bytes']:,} B, {a - fp['arena_bytes']:,} B less: the 8 KiB target is "
                           f"{'met' if met else 'NOT met'} this way"
                           + ("" if met else f" ({fp['arena_bytes'] - TARGET_STEP_ARENA_BYTES:,} B over)")
                           + f"; outputs = host TFLM on {100 * fp['outputs_identical_share']:.0f} % of "
                           f"{fp['n_compared']} inputs.")
    return out


# ----------------------------------------------------------------------------------------------- report
def _kib(v) -> str:
    return "–" if v is None else f"{v / 1024:.1f}"


def _num(v) -> str:
    return "–" if v is None else f"{v:,}"


def _pct(v) -> str:
    return "–" if v is None else f"{100 * v:.0f} %"


def markdown(doc: dict) -> str:
    """docs/results/device.md from the benchmark's JSON (``{"meta", "cases": [measure_case ...]}``)."""
    meta, cases = doc["meta"], doc["cases"]
    a = mcu.COST_ASSUMPTIONS
    out = [
        "# Device truth: the firmware on an emulated Cortex-M4F, and what the build buys",
        "",
        f"Measured with `{meta['command']}` ({meta['date']}, {meta['seconds']:.0f} s). TFLM from the offline kit "
        f"(tflite-micro 90b983c, CMSIS-NN kernels), arm-none-eabi-gcc {meta['compiler']}, newlib-nano, run on QEMU "
        "mps2-an386 (Cortex-M4F). Method: tflm_app/README.md section 7. Models trained briefly with this project's "
        "pipeline (sizes and instruction counts depend on the graph, not on training); KiB = 1024 bytes.",
        "",
        "## Whole firmware per model (the exported sketch, -Os, exactly the model's ops)",
        "",
        "| model | flatbuffer | flash: TFLM + model + app + libc = total | M4 arena (host) | RAM = arena + static + "
        "stack | instructions / invoke | outputs = host TFLM |",
        "|---|---|---|---|---|---|---|",
    ]
    for c in cases:
        d = c["device"]
        r = d["ram_split"]
        out.append(
            f"| {c['name']}: {c['what']} | {_kib(c['flatbuffer_bytes'])} | {_kib(d['flash_tflm_bytes'])} + "
            f"{_kib(d['flash_model_bytes'])} + {_kib(d['flash_app_bytes'])} + {_kib(d['flash_libc_bytes'])} = "
            f"**{_kib(d['flash_bytes'])}** | {d['arena_bytes']:,} B ({c['host_arena_bytes']:,}) | "
            f"{_kib(d['ram_bytes'])} = {_kib(r['arena'])} + {_kib(r['static'])} + {_kib(r['stack'])} | "
            f"{d['instructions_per_invoke']:,} per {d['invoke_per']} | "
            f"{100 * d['outputs_identical_share']:.0f} % of {d['n_compared']} |")
    out += ["", "Sizes in KiB unless marked B. M4 arena: minimal working arena on the M4 (the host 64-bit figure in "
            "brackets); RAM adds the sketch's static data without its arena buffer, heap (0 here) and the stack "
            "high-water mark measured while the sketch ran a session.", ""]
    out += ["## Which MCU each firmware fits (whole flash and RAM, on a core that runs TFLM)", "",
            "| model | " + " | ".join(f"{m.name} ({m.ram_kb}/{m.flash_kb} KiB{'' if m.runs_tflm else ', no TFLM'})"
                                      for m in mcu.MCUS) + " |",
            "|---|" + "---|" * len(mcu.MCUS)]
    for c in cases:
        cells = []
        for m in mcu.MCUS:
            row = c["device"]["mcu"][m.name]
            if not m.runs_tflm:
                cells.append("no (core)")
            elif row["fits"]:
                cells.append(f"**yes**, {row['latency_ms']:.2f} ms, {row['energy_uj']:.0f} µJ")
            else:
                why = "RAM" if not row["ram"] else "flash" if not row["flash"] else "?"
                cells.append(f"no ({why})")
        out.append(f"| {c['name']} | " + " | ".join(cells) + " |")
    out += ["", f"Latency and energy per invoke: {a['note']}", ""]
    out += ["## The flash diet: what each build option buys", "",
            "Each variant is the same sketch built another way; flash in KiB (TFLM part in brackets), the change vs "
            "the default; arena and instructions from the probe firmware built the same way (– where the board "
            "would not start: an all-ops resolver fails the sketch's op-count check). What an option costs besides "
            "flash: `strip_errors` and `release` — TFLM's messages are gone (an arena too small is still reported "
            "by the sketch, without TFLM's reason); `release` — TFLM's debug assertions (DCHECKs) are compiled out, "
            "as in TFLM's own release build; `no_op_names` — a model op that model_settings.h lacks is named by its "
            "builtin code at boot; `int8_kernels` — only int8 models run. The protocol output is the same in every "
            "variant.", ""]
    for c in cases:
        base = c["variants"][0]
        out += [f"### {c['name']}", "",
                "| variant | flash (TFLM) | Δ flash | static RAM B | M4 arena B | instructions / invoke | "
                "outputs = host |", "|---|---|---|---|---|---|---|"]
        for v in c["variants"]:
            delta = "" if v is base else f"{(v['flash_bytes'] - base['flash_bytes']) / 1024:+.1f}"
            out.append(f"| {v['variant']}: {v['what']} | {_kib(v['flash_bytes'])} ({_kib(v['flash_tflm_bytes'])}) | "
                       f"{delta} | {v['static_ram_bytes']:,} | {_num(v.get('arena_bytes'))} | "
                       f"{_num(v.get('instructions_per_invoke'))} | {_pct(v.get('outputs_identical_share'))} |")
        best = min(c["variants"], key=lambda v: v["flash_bytes"])
        verdict = "within" if best["flash_bytes"] <= TARGET_FLASH_BYTES else "above"
        out += ["", f"Smallest: `{best['variant']}`, {_kib(best['flash_bytes'])} KiB, {verdict} the 64 KiB target.",
                ""]
        if base.get("tflm_objects"):
            out += ["Largest TFLM members in the default firmware (bytes; a kernel links all the types it "
                    "dispatches on at run time, e.g. float, int16 and int4 paths next to the int8 one): "
                    + ", ".join(f"{name} {n:,}" for name, n in base["tflm_objects"]) + ".", ""]
    steps = [c for c in cases if "arena" in c]
    if steps:
        out += ["## The streaming step model's arena, node by node (RecordingMicroAllocator, M4)", ""]
        for c in steps:
            ar = c["arena"]
            rec, t = ar["recorded"], ar["types"]
            out += [f"### {c['name']}: minimal arena {ar['arena_bytes']:,} B (target {TARGET_STEP_ARENA_BYTES:,} B); "
                    f"TFLM reports {ar['arena_used_bytes_reported']:,} B used", "",
                    f"{rec['nodes']} nodes, {rec['tensors']} tensors. After allocation: head (planned tensor buffers "
                    f"and scratch) {rec['head']:,} B + tail (persistent) {rec['tail']:,} B = {rec['total']:,} B. The "
                    f"{ar['arena_bytes'] - rec['total']:,} B between that and the minimum is needed only while "
                    "AllocateTensors plans the buffers (the memory planner's working arrays, released afterwards).",
                    "", "| tail category | bytes | count |", "|---|---|---|"]
            out += [f"| {k} | {v['used']:,} | {v['count']} |" for k, v in t.items() if v["used"]]
            out += ["", "| op type | nodes | persistent bytes (Init + Prepare) |", "|---|---|---|"]
            out += [f"| {op} | {v['nodes']} | {v['persistent']:,} |" for op, v in ar["by_op"].items()]
            out += [""]
            fp = ar.get("fixed_plan")
            if fp:
                out += [f"With a fixed activation plan (`tflm_app/probe/fixed_plan.h`: the offsets TFLM's greedy "
                        f"planner gives the {fp['buffers']} buffers, recorded once and passed back as a table through "
                        "`MicroAllocator::Create(arena, size, planner)`, so AllocateTensors needs no planner working "
                        f"arrays): minimal arena **{fp['arena_bytes']:,} B** (TFLM reports "
                        f"{fp['arena_used_bytes_reported']:,} B used; planned head {fp['head_bytes']:,} B), outputs = "
                        f"host TFLM on {100 * fp['outputs_identical_share']:.0f} % of {fp['n_compared']} random "
                        "inputs. The table (8 B per buffer) belongs to one model and one library build (kernels' "
                        "scratch buffers are planned too); the sketches do not use it yet.", ""]
    out += ["## Notes", ""] + [f"- {n}" for n in doc.get("notes", [])] + [""]
    return "\n".join(out)
