"""device_budget: the report's tables and findings from a measured-shaped document (pure functions; the measuring
itself is keras_tinyloc.deploy.m4 / flash_diet, tested in tests/deploy), and the fixed-plan arena experiment on the
emulated M4 (tflm_app/probe/fixed_plan.h)."""
import os

import numpy as np
import pytest

from keras_tinyloc.deploy import mcu
from keras_tinyloc.experiments import device_budget as db


def _case(name, flash, tflm_part, arena, host_arena, diet_flash, step=False):
    costs = mcu.device_costs(200_000, arena + 3000, flash)
    dev = {"flash_bytes": flash, "flash_tflm_bytes": tflm_part, "flash_model_bytes": 5000, "flash_app_bytes": 4000,
           "flash_libc_bytes": flash - tflm_part - 9000, "arena_bytes": arena, "ram_bytes": arena + 3000,
           "ram_split": {"arena": arena, "static": 2000, "heap": 0, "stack": 1000}, "instructions_per_invoke": 200_000,
           "invoke_per": "200 ms step" if step else "window", "outputs_identical_share": 1.0, "n_compared": 16,
           "mcu": costs}
    variants = [{"variant": "default", "what": "the sketch", "flash_bytes": flash, "flash_tflm_bytes": tflm_part,
                 "flash_model_bytes": 5000, "flash_app_bytes": 4000, "flash_libc_bytes": flash - tflm_part - 9000,
                 "static_ram_bytes": 2000, "arena_bytes": arena, "instructions_per_invoke": 200_000,
                 "outputs_identical_share": 1.0},
                {"variant": "all_ops", "what": "every op", "flash_bytes": flash + 90_000,
                 "flash_tflm_bytes": tflm_part + 90_000, "static_ram_bytes": 4000},
                {"variant": "diet", "what": "strip + int8", "flash_bytes": diet_flash,
                 "flash_tflm_bytes": tflm_part - (flash - diet_flash), "flash_model_bytes": 5000,
                 "flash_app_bytes": 4000, "flash_libc_bytes": diet_flash - (tflm_part - (flash - diet_flash)) - 9000,
                 "static_ram_bytes": 1900, "arena_bytes": arena, "instructions_per_invoke": 199_000,
                 "outputs_identical_share": 1.0}]
    c = {"name": name, "what": name, "flatbuffer_bytes": 5000, "host_arena_bytes": host_arena, "device": dev,
         "variants": variants, "test_f1_int8": None, "n_features": 8, "n_classes": 59 if name == "uji-mlp" else 4}
    if step:
        c["arena"] = {"arena_bytes": arena, "arena_used_bytes_reported": arena - 3000,
                      "recorded": {"total": arena - 3000, "head": 900, "tail": arena - 3900, "nodes": 51,
                                   "tensors": 82, "persistent_buffers_outside_nodes": 24},
                      "types": {"node_and_registration": {"used": 1632, "requested": 1632, "count": 51}},
                      "by_op": {"FULLY_CONNECTED": {"nodes": 6, "persistent": 1308}}, "top_nodes": []}
    return c


def test_notes_state_the_targets_from_the_figures():
    cases = [_case("mamba-step", 140_000, 100_000, 10_800, 14_800, 60_000, step=True),
             _case("uji-mlp", 80_000, 43_000, 2_272, 3_008, 70_000)]
    n = db.notes(cases)
    assert "mamba-step: TFLM is 71 % of the default firmware's flash (100,000 of 140,000 B" in n[0]
    assert "M4 arena 10,800 B = 73 % of the host figure" in n[0]
    assert n[1] == ("mamba-step: 64 KiB flash target met: smallest variant `diet` 60,000 B (default 140,000 B): "
                    "TFLM 20,000 + model 5,000 + app 4,000 + libc 31,000 B.")
    assert n[2].startswith("mamba-step: 8 KiB arena target NOT met: 10,800 B on the M4 = persistent tail 6,900 B + "
                           "planned head 900 B + 3,000 B needed only while planning (TFLM reports 7,800 B")
    assert "would need 2,608 B less" in n[2]
    assert "uji-mlp: 64 KiB flash target NOT met: smallest variant `diet` 70,000 B" in n[4]
    assert n[5] == ("uji-mlp: its app part (4,000 B) holds model_settings.h's arrays, among them the CRF transition "
                    "matrix: 59 x 59 float32 = 13,924 B.")


def test_markdown_tables():
    doc = {"meta": {"command": "python benchmarks/device.py", "date": "2026-12-05", "seconds": 100.0,
                    "compiler": "12.2.1"},
           "cases": [_case("mamba-step", 140_000, 100_000, 10_800, 14_800, 60_000, step=True)], "notes": ["x"]}
    md = db.markdown(doc)
    assert "| mamba-step: mamba-step | 4.9 | 97.7 + 4.9 + 3.9 + 30.3 = **136.7** | 10,800 B (14,800) |" in md
    assert "| all_ops: every op | 224.6 (185.5) | +87.9 | 4,000 | – | – | – |" in md
    assert "| diet: strip + int8 | 58.6 (19.5) | -78.1 | 1,900 | 10,800 | 199,000 | 100 % |" in md
    assert "Smallest: `diet`, 58.6 KiB, within the 64 KiB target." in md
    assert "| node_and_registration | 1,632 | 51 |" in md and "| FULLY_CONNECTED | 6 | 1,308 |" in md
    # per MCU: the 8/16-bit cores never fit; a fitting Cortex-M row shows latency and energy
    row = next(ln for ln in md.splitlines() if ln.startswith("| mamba-step | "))
    assert row.count("no (core)") == 3 and "**yes**, 2.50 ms" in row  # 200,000 instructions at 80 MHz (STM32L4)


def test_notes_for_a_window_of_one_what_is_left_and_the_fixed_plan():
    step = _case("mamba-step", 140_000, 100_000, 10_800, 14_800, 90_000, step=True)
    step["ops"] = ["ADD", "MUL"]
    step["arena"]["fixed_plan"] = {"arena_bytes": 8_000, "arena_used_bytes_reported": 7_700, "buffers": 59,
                                   "head_bytes": 928, "plan_table_bytes": 472, "outputs_identical_share": 1.0,
                                   "n_compared": 16}
    uji = _case("uji-mlp", 80_000, 43_000, 2_272, 3_008, 70_000)
    uji["window"] = 1
    n = db.notes([step, uji])
    # 90,000 B smallest: 24,464 B over 64 KiB; TFLM part 100,000 - 50,000 = 50,000 B would have to be 25,536 B
    assert n[1].endswith("24,464 B too many: with the same model, app and libc, TFLM would have to fit in 25,536 B "
                         "(49 % less kernel and interpreter code than now; the graph uses 2 op types: ADD, MUL).")
    assert n[3] == ("mamba-step: with the activation plan as a fixed table (tflm_app/probe/fixed_plan.h: 59 buffer "
                    "offsets recorded from TFLM's greedy planner, 472 B as an int32 table) the minimal M4 arena is "
                    "8,000 B, 2,800 B less: the 8 KiB target is met this way; outputs = host TFLM on 100 % of 16 "
                    "inputs.")
    assert n[-1].startswith("uji-mlp: T = 1, so the firmware links no CRF transition matrix (59 x 59 float32 = "
                            "13,924 B;")
    md = db.markdown({"meta": {"command": "python benchmarks/device.py", "date": "2026-12-05", "seconds": 1.0,
                               "compiler": "12.2.1"}, "cases": [step], "notes": n})
    assert "minimal arena **8,000 B** (TFLM reports 7,700 B used; planned head 928 B)" in md


@pytest.fixture(scope="module")
def small_case():
    """An int8 MLP (1, 8) -> 16 -> 16 -> 4 as a device_budget Case, on the emulated M4 (skipped without the kit,
    the Arm toolchain or QEMU; under $CI a missing tool fails)."""
    import keras

    from keras_tinyloc.deploy import convert, m4

    missing = m4.tools_missing_reason()
    if missing:
        if os.environ.get("CI", "").lower() in ("1", "true", "yes") and "kit" not in missing:
            pytest.fail(f"CI: {missing}")
        pytest.skip(missing)
    keras.utils.set_random_seed(2)
    inp = keras.Input((1, 8))
    h = keras.layers.Dense(16, activation="relu")(keras.layers.Dense(16, activation="relu")(inp))
    x = np.random.default_rng(2).uniform(0, 1, (64, 1, 8)).astype(np.float32)
    buf = convert.strip_tensor_names(convert.convert_emitter(keras.Model(inp, keras.layers.Dense(4)(h)), "int8", x,
                                                             n_calibration=64))
    return db.Case("mlp", "test MLP", buf, None)


def test_fixed_plan_needs_no_more_arena_and_gives_the_same_outputs(small_case):
    from keras_tinyloc.deploy import m4, tflm_kit

    got = db.fixed_plan_arena(small_case, n_random=8)
    with __import__("tempfile").TemporaryDirectory() as tmp:
        default = m4.minimal_arena(m4.build_probe(small_case.tflite_bytes, tflm_kit.library("m4"), tmp).path)
    assert got["outputs_identical_share"] == 1.0 and got["n_compared"] == 8
    assert got["buffers"] >= 3 and got["plan_table_bytes"] == 8 * got["buffers"] and got["head_bytes"] > 0
    assert got["arena_bytes"] < default.arena_bytes  # the greedy planner's working arrays are not needed


def test_a_plan_of_another_model_fails_allocation(small_case, tmp_path):
    """fixed_plan.h refuses a plan whose buffer sizes are not this model's (AllocateTensors fails; no wrong layout)."""
    from keras_tinyloc.deploy import m4, qemu, tflm_kit

    src = tmp_path / "probe_src"
    src.mkdir()
    # room for more buffers than the model has, every size 7 bytes: the first buffer's size differs
    (src / "plan.h").write_text("constexpr int kPlanCount = 64;\nconstexpr int kPlanOffsets[64] = {0};\n"
                                "constexpr int kPlanSizes[64] = {" + ", ".join(["7"] * 64) + "};\n")
    fw = m4.build_probe(small_case.tflite_bytes, tflm_kit.library("m4"), tmp_path, app_defs=("-DTINYLOC_FIXED_PLAN",))
    r = qemu.run(fw.path, ["arena", str(64 * 1024)], timeout=60)
    assert r.returncode == 1 and "probe alloc_failed" in r.stdout, r.stdout
