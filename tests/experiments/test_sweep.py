"""sweep.py: the plan, resumability, failures, bad input, and the process-pool and Ray paths (fast, sklearn runs)."""
import dataclasses
import json
import os
import sys
from pathlib import Path

import numpy as np
import pytest

from keras_tinyloc.experiments import sweep as S
from keras_tinyloc.data.base import MinMaxScaling, WindowDataset
from keras_tinyloc.errors import TinyLocError

from helpers import synth_dataset


def make_ds(name, T=3, F=4, C=3, n=40, seed=0):
    rng = np.random.default_rng(seed)
    parts = []
    for count in (n, n // 2, n // 2):
        y = rng.integers(0, C, size=count)
        x = rng.uniform(0, 0.3, size=(count, T, F)).astype(np.float32)
        x[np.arange(count), -1, y] = 0.9
        parts += [x, np.repeat(y[:, None], T, axis=1).astype(np.int32)]
    return WindowDataset(name, *parts, class_names=[f"c{i}" for i in range(C)],
                         feature_names=[f"ap{i}" for i in range(F)],
                         scaling=MinMaxScaling(np.zeros(F, np.float32), np.ones(F, np.float32)))


def classic_cfg(out, names=("synth-a", "synth-b"), plots=False, **kw):
    return S.SweepConfig(profile="quick", out=str(out), datasets=tuple(names), models=(), progress=False,
                         plots=plots, **kw)


def datasets(names=("synth-a", "synth-b")):
    return {n: make_ds(n, seed=i) for i, n in enumerate(names)}


def test_paper_plan_counts_phases_and_paths():
    cfg = S.SweepConfig(profile="paper", out="x")
    tasks = S.plan(cfg)
    per_dataset = (8 * 2 + 8 * 3 + 5 * 2) * 5 + 1  # mdcsa, mamba, mlp grids x 5 techniques + classic
    assert len(tasks) == 7 * per_dataset
    assert [t.phase for t in tasks] == sorted(t.phase for t in tasks)
    t = S.Task("house-a", "mamba", 32, 4, "kd_static_int8")
    assert t.rel == Path("runs/house-a/mamba-H32L4/kd_static_int8") and t.phase == 2
    assert t.parent() == S.Task("house-a", "mamba", 32, 4, "kd")
    assert S.Task("house-a", "mamba", 32, 4, "kd").parent() is None  # teacher chosen after the baselines
    narrow = S.SweepConfig(profile="paper", out="x", datasets=("uji",), models=("mamba",), hidden=(8,),
                           techniques=("baseline", "kd+int8"), classic=False)
    assert [(t.hidden, t.layers, t.technique) for t in S.plan(narrow)] == [
        (8, 1, "baseline"), (8, 2, "baseline"), (8, 4, "baseline"),
        (8, 1, "kd_static_int8"), (8, 2, "kd_static_int8"), (8, 4, "kd_static_int8")]


def test_resume_skips_finished_and_redoes_interrupted(tmp_path):
    out = tmp_path / "sw"
    first = S.run_sweep(classic_cfg(out, plots=True), datasets=datasets())
    assert (first["total"], first["ran"], first["skipped"], first["failed"]) == (2, 2, 0, 0)
    a = out / "runs/synth-a/classic/result.json"
    doc = json.loads(a.read_text())
    assert doc["status"] == "ok" and {r["family"] for r in doc["rows"]} == {"knn", "rf", "lr"}
    doc["marker"] = "finished before"
    a.write_text(json.dumps(doc))
    # synth-b's run was interrupted: only a temporary directory is left
    b = out / "runs/synth-b/classic"
    for p in sorted(b.iterdir()):
        p.unlink()
    b.rmdir()
    stale = out / "runs/synth-b/.classic.tmp-dead"
    stale.mkdir()
    (stale / "half.json").write_text("{")
    second = S.run_sweep(classic_cfg(out), datasets=datasets())
    assert (second["ran"], second["skipped"]) == (1, 1)
    assert json.loads(a.read_text())["marker"] == "finished before"
    assert (b / "result.json").is_file() and not stale.exists()
    csv_text = (out / "results.csv").read_text()
    assert csv_text.count("synth-a") == csv_text.count("synth-b") > 0
    assert (out / "tables.md").is_file() and (out / "plots" / "mcu_fit.png").is_file()
    assert first["files"]["mcu_fit"] == str(out / "plots" / "mcu_fit.png")
    third = S.run_sweep(classic_cfg(out), datasets=datasets())
    assert (third["ran"], third["skipped"]) == (0, 2)


def test_failed_run_is_recorded_and_retried_on_request(tmp_path):
    task = S.Task("synth-a", "mamba", 4, 1, "static_int8")
    final = tmp_path / task.rel
    opts = {"parent": str(tmp_path / "runs/synth-a/mamba-H4L1/baseline/run")}
    rows = S.execute_task(task, final, make_ds("synth-a"), opts)
    assert rows[0]["status"] == "failed" and "baseline run this one starts from is missing" in rows[0]["error"]
    doc = json.loads((final / "result.json").read_text())
    assert doc["status"] == "failed"
    assert S.is_done(tmp_path, task) and not S.is_done(tmp_path, task, retry_failed=True)
    (final / "result.json").write_text(json.dumps({**doc, "error": "old"}))
    assert S.execute_task(task, final, None, opts)[0]["status"] == "failed"
    assert json.loads((final / "result.json").read_text())["error"] == "old"  # not repeated
    S.execute_task(task, final, None, {**opts, "retry_failed": True})
    assert json.loads((final / "result.json").read_text())["error"] != "old"  # repeated


def test_teacher_is_best_baseline_by_validation(tmp_path):
    for config, val, test in (("H8L1", 0.7, 0.9), ("H16L1", 0.8, 0.5), ("H32L1", None, None)):
        d = tmp_path / "runs/house-a" / f"mamba-{config}" / "baseline"
        d.mkdir(parents=True)
        status = "ok" if val is not None else "failed"
        (d / "result.json").write_text(json.dumps(
            {"status": status, "rows": [{"config": config, "val_f1": val, "test_f1": test, "params": 1}]}))
    run, row = S.choose_teacher(tmp_path, "house-a", "mamba")
    assert row["config"] == "H16L1" and run == tmp_path / "runs/house-a/mamba-H16L1/baseline/run"
    assert S.choose_teacher(tmp_path, "house-a", "mdcsa") is None


@pytest.mark.parametrize("argv, message", [
    (["--profile", "huge"], "--profile 'huge': choose from quick, paper"),
    (["--profile", "quick", "--datasets", "house-z"], "--datasets: unknown dataset 'house-z'"),
    (["--profile", "quick", "--backend", "slurm"], "--backend 'slurm': choose from local, ray"),
    (["--profile", "quick", "--jobs", "0"], "--jobs 0: must be an integer >= 1"),
    (["--profile", "quick", "--models", "lstm"], "--models: unknown model 'lstm'"),
    (["--profile", "quick", "--techniques", "pruning"], "--techniques: unknown technique 'pruning'"),
    (["--profile", "quick", "--backend", "ray", "--address", "127.0.0.1:9"], "--address 127.0.0.1:9: cannot reach"),
])
def test_bad_input_one_line_exit_2(tmp_path, capsys, argv, message):
    assert S.main(argv + ["--out", str(tmp_path / "o"), "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and message in err and err.count("\n") == 1


def test_other_profile_refused_and_results_kept(tmp_path, capsys):
    out = tmp_path / "sw"
    S.run_sweep(classic_cfg(out, names=("synth-a",)), datasets=datasets(("synth-a",)))
    before = (out / "results.csv").read_text()
    assert S.main(["--profile", "paper", "--out", str(out), "--no-progress"]) == 2
    assert "holds results of the 'quick' profile" in capsys.readouterr().err
    assert (out / "results.csv").read_text() == before


def test_ray_missing_is_one_line(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)  # import ray -> ImportError
    cfg = classic_cfg(tmp_path / "sw", names=("synth-a",), backend="ray")
    with pytest.raises(TinyLocError, match="Ray is not installed"):
        S.run_sweep(cfg, datasets=datasets(("synth-a",)))
    assert not (tmp_path / "sw" / "runs").exists()


def _rows_without_time(rows):
    return [{k: v for k, v in r.items() if k not in ("seconds", "run_dir")} for r in rows]


def _expected_rows():
    """The same runs computed in this process, independently of the sweep's executors."""
    from keras_tinyloc.experiments import baselines, results

    cfg = baselines.BaselineConfig(**S.PROFILE_SPECS["quick"].baselines)
    return results.sort_rows([r for ds in datasets().values() for r in baselines.sklearn_rows(ds, cfg)])


def _sweep_rows(out):
    from keras_tinyloc.experiments import results

    return results.collect_rows(out)


@pytest.mark.slow
def test_process_pool_gives_the_same_rows_as_serial(tmp_path):
    summary = S.run_sweep(classic_cfg(tmp_path / "pool", jobs=2), datasets=datasets())
    assert summary["ran"] == 2
    assert _rows_without_time(_sweep_rows(tmp_path / "pool")) == _rows_without_time(_expected_rows())


@pytest.mark.slow
def test_ray_local_instance_gives_the_same_rows(tmp_path):
    pytest.importorskip("ray")
    os.environ.setdefault("RAY_DISABLE_USAGE_STATS", "1")
    summary = S.run_sweep(classic_cfg(tmp_path / "ray", backend="ray", jobs=1), datasets=datasets())
    assert summary["ran"] == 2 and summary["failed"] == 0
    assert _rows_without_time(_sweep_rows(tmp_path / "ray")) == _rows_without_time(_expected_rows())
    assert not list((tmp_path / "ray" / "runs").glob("**/.*tmp*"))


@pytest.mark.slow
def test_quick_sweep_end_to_end_through_train_distill_convert(tmp_path):
    """A narrowed quick sweep on the small simulated House A: every run finishes, the rows agree with the run
    files, KD uses the best baseline by validation F1, and a second invocation repeats nothing."""
    from keras_tinyloc.experiments import results

    out = tmp_path / "quick"
    cfg = S.SweepConfig(profile="quick", out=str(out), models=("mamba",), epochs=2, progress=False, plots=False,
                        techniques=("baseline", "static_int8", "kd", "kd_static_int8"))
    summary = S.run_sweep(cfg)
    errors = [json.loads(p.read_text())["error"] for p in out.glob("runs/**/result.json")]
    assert (summary["total"], summary["ran"], summary["failed"]) == (5, 5, 0), errors
    rows = results.read_results_csv(out / "results.csv")
    nn = {r["technique"]: r for r in rows if r["family"] == "mamba"}
    assert set(nn) == {"baseline", "static_int8", "kd", "kd_static_int8"}
    run = out / "runs/house-a/mamba-H2L1"
    metrics = json.loads((run / "baseline/run/metrics.json").read_text())
    assert nn["baseline"]["val_f1"] == pytest.approx(metrics["val_f1"])
    assert nn["baseline"]["test_f1"] == pytest.approx(metrics["test_f1"])
    assert nn["baseline"]["params"] == metrics["params"]
    for tech, sub in (("static_int8", "tflite-int8"), ("kd_static_int8", "tflite-int8"), ("baseline", "tflite-float")):
        rep = json.loads((run / tech / sub / "report.json").read_text())
        assert nn[tech]["flatbuffer_bytes"] == (run / tech / sub / "model.tflite").stat().st_size
        assert nn[tech]["arena_bytes"] == rep["arena_bytes"] > 0
    int8 = json.loads((run / "static_int8/tflite-int8/report.json").read_text())
    assert nn["static_int8"]["test_f1"] == pytest.approx(int8["test_f1_int8"])
    assert nn["static_int8"]["val_f1"] == pytest.approx(int8["val_f1_int8"])
    assert nn["kd"]["teacher"].startswith("H2L1") and nn["kd_static_int8"]["teacher"] == nn["kd"]["teacher"]
    assert {r["family"] for r in rows} == {"mamba", "knn", "rf", "lr"}
    assert "### 32 KB class" in (out / "tables.md").read_text()
    again = S.run_sweep(cfg)
    assert (again["ran"], again["skipped"]) == (0, 5)


def test_remote_body_ships_runs_as_bytes(tmp_path):
    """What a Ray task does, without Ray: the parent run travels in, the finished run travels back as bytes."""
    ds = make_ds("synth-a")
    options = {"baselines": {"knn_k": (1,), "rf": (), "lr_c": ()}, "seed": 0}
    rows, data = S._remote_run(S.Task("synth-a", S.CLASSIC, technique="classic"), options, ds, None, 1)
    S.unpack_dir(data, tmp_path / "back")
    doc = json.loads((tmp_path / "back" / "result.json").read_text())
    assert doc["status"] == "ok" and doc["rows"] == rows and {r["family"] for r in rows} == {"knn"}
    parent = tmp_path / "parent"
    (parent / "run").mkdir(parents=True)
    (parent / "result.json").write_text("{}")
    task = S.Task("synth-a", "mamba", 2, 1, "static_int8")
    rows, data = S._remote_run(task, {}, ds, S.pack_dir(parent), 1)
    assert rows[0]["status"] == "failed" and "parent/run: the baseline run" in rows[0]["error"]


def test_sweep_json_records_profile_and_invocations(tmp_path):
    out = tmp_path / "sw"
    S.run_sweep(classic_cfg(out, names=("synth-a",)), datasets=datasets(("synth-a",)))
    S.run_sweep(classic_cfg(out, names=("synth-b",)), datasets=datasets(("synth-b",)))
    doc = json.loads((out / "sweep.json").read_text())
    assert doc["profile"] == "quick"
    assert [inv["resolved"]["datasets"] for inv in doc["invocations"]] == [["synth-a"], ["synth-b"]]


@pytest.mark.slow
def test_tiny_int8_mlp_goes_through_train_and_tflm(tmp_path):
    ds = synth_dataset(T=3, F=4, n=48)
    rows = S.run_baselines(ds, knn_k=(1,), rf=(), lr_c=(), feature_sets=("last",), mlp_hidden=(8,), mlp_epochs=2,
                           work_dir=str(tmp_path))
    mlp = {r["technique"]: r for r in rows if r["family"] == "mlp"}
    assert set(mlp) == {"baseline", "static_int8"} and all(r["status"] == "ok" for r in mlp.values()), rows
    run = tmp_path / "synth" / "mlp-H8L1"
    tflite = run / "static_int8" / "tflite-int8" / "model.tflite"
    assert mlp["static_int8"]["flatbuffer_bytes"] == tflite.stat().st_size
    assert mlp["static_int8"]["arena_source"] == "tflm-host" and mlp["static_int8"]["arena_bytes"] > 0
    # params of a 4 -> 8 -> 3 per-step MLP + CRF (C^2 + 2C)
    assert mlp["baseline"]["params"] == (4 * 8 + 8) + (8 * 3 + 3) + (9 + 6)


def test_pool_workers_die_with_the_sweep_process(tmp_path):
    """Killing only the sweep's process (SIGKILL: no cleanup runs) takes its workers with it."""
    import signal
    import subprocess
    import time

    code = ("import multiprocessing, os, sys, time\n"
            "from concurrent.futures import ProcessPoolExecutor\n"
            "from keras_tinyloc.experiments import sweep\n"
            "if __name__ == '__main__':\n"
            "    pool = ProcessPoolExecutor(1, mp_context=multiprocessing.get_context('spawn'),\n"
            "                               initializer=sweep._pool_init, initargs=({}, 1, os.getpid()))\n"
            "    print(pool.submit(os.getpid).result(), flush=True)\n"
            "    time.sleep(60)\n")
    script = tmp_path / "parent.py"
    script.write_text(code)
    parent = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE, text=True)
    worker = int(parent.stdout.readline())
    os.kill(worker, 0)  # alive
    parent.send_signal(signal.SIGKILL)
    parent.wait()
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        try:
            os.kill(worker, 0)
        except ProcessLookupError:
            break
        time.sleep(0.1)
    else:
        os.kill(worker, signal.SIGKILL)
        pytest.fail(f"worker {worker} outlived its killed parent")


def test_a_recordings_path_is_a_sweep_dataset_and_its_runs_stay_inside(tmp_path):
    import dataclasses

    rows = ["time,ap,rssi,room,session"] + [f"{0.2 * k:.1f},b{k % 2},-60,{('hall', 'kitchen')[k // 300 % 2]},s{s}"
                                            for s in range(2) for k in range(1500)]
    f = tmp_path / "my house.csv"
    f.write_text("\n".join(rows) + "\n")
    cfg = S.SweepConfig(profile="quick", out=str(tmp_path / "sweep"), datasets=(str(f),),
                        recording_options={"window_s": 2.0})
    cfg.validate()
    assert cfg.dataset_options(str(f)) == {"window_s": 2.0}
    d = S.dataset_dir(str(f))
    assert d.startswith("my_house-") and len(d) == len("my_house-") + 6 and S.dataset_dir("house-a") == "house-a"
    assert S.Task(str(f), "mamba", 8, 1).rel == Path("runs", d, "mamba-H8L1", "baseline")
    opts = S.task_options(dataclasses.replace(cfg, data_dir="/raw"), tmp_path, S.Task(str(f), "mamba", 8, 1))
    assert opts["data_dir"] is None and opts["dataset_options"] == {"window_s": 2.0}
    with pytest.raises(TinyLocError, match=r"^--datasets: unknown dataset 'nope' \(choose from uji, "):
        S.SweepConfig(profile="quick", out=str(tmp_path / "s2"), datasets=("nope",)).validate()
    with pytest.raises(TinyLocError, match=r"^--rate-hz: only for recordings paths in --datasets$"):
        S.SweepConfig(profile="quick", out=str(tmp_path / "s3"), datasets=("house-a",),
                      recording_options={"rate_hz": 10.0}).validate()
    ns = S.build_parser().parse_args(["--profile", "quick", "--out", "o", "--datasets", str(f), "--hop-s", "1"])
    assert (ns.hop_s, ns.datasets) == (1.0, [str(f)])


def test_target_is_checked_before_any_run(tmp_path, monkeypatch):
    with pytest.raises(TinyLocError, match=r"^--target 'stm32': choose from host, cortex-m4$"):
        S.run_sweep(classic_cfg(tmp_path / "a", target="stm32"), datasets=datasets())
    monkeypatch.setenv("TFLM_DIR", str(tmp_path / "nokit"))
    with pytest.raises(TinyLocError, match=r"^--target cortex-m4: \$TFLM_DIR=.*nokit: not a TFLM kit"):
        S.run_sweep(classic_cfg(tmp_path / "b", target="cortex-m4"), datasets=datasets())
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()


def _require_m4():
    from keras_tinyloc.deploy import m4, tflm_kit

    if tflm_kit.kit_missing_reason():
        pytest.skip(tflm_kit.kit_missing_reason())
    reason = m4.tools_missing_reason()
    if reason:
        if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
            pytest.fail(f"CI: {reason}")
        pytest.skip(reason)


@pytest.mark.slow
def test_target_cortex_m4_puts_device_figures_in_rows_tables_and_plots(tmp_path):
    """A tiny sweep first measured on the host, then resumed with --target cortex-m4: only the int8 conversion is
    redone; its row carries the report's device figures, the tables fit it on them (CC2650: 20 KiB RAM, 128 KiB
    flash) and the device plots exist; the float row stays on host figures."""
    from keras_tinyloc.experiments import results

    _require_m4()
    out = tmp_path / "dev"
    ds = {"synth": synth_dataset(T=4, F=5, C=3, n=60)}
    cfg = S.SweepConfig(profile="quick", out=str(out), datasets=("synth",), models=("mlp",), hidden=(4,), layers=(1,),
                        techniques=("baseline", "static_int8"), epochs=2, classic=False, progress=False, plots=True)
    first = S.run_sweep(cfg, datasets=ds)
    assert (first["ran"], first["failed"]) == (2, 0)
    assert results.read_results_csv(out / "results.csv")[1]["device_ram_bytes"] is None
    dev_cfg = dataclasses.replace(cfg, target="cortex-m4")
    second = S.run_sweep(dev_cfg, datasets=ds)
    assert (second["ran"], second["skipped"], second["failed"]) == (1, 1, 0)
    rows = {r["technique"]: r for r in results.read_results_csv(out / "results.csv")}
    rep = json.loads((out / "runs/synth/mlp-H4L1/static_int8/tflite-int8/report.json").read_text())
    dev, row = rep["device"], rows["static_int8"]
    assert rep["target"] == "cortex-m4" and dev["outputs_identical_share"] == 1.0
    assert row["device_ram_bytes"] == dev["ram_bytes"] == sum(dev["ram_split"].values())
    assert row["device_flash_bytes"] == dev["flash_bytes"] == sum(dev[f"flash_{p}_bytes"]
                                                                  for p in ("tflm", "model", "app", "libc"))
    assert row["device_arena_bytes"] == dev["arena_bytes"] < row["arena_bytes"]  # 32-bit: below the host's
    assert row["device_instructions"] == dev["instructions_per_invoke"] > 0
    assert results.row_need(row) == (dev["ram_bytes"], dev["flash_bytes"], "device")
    assert rows["baseline"]["device_ram_bytes"] is None and results.row_need(rows["baseline"])[2] == "host"
    fits_cc2650 = dev["ram_bytes"] <= 20 * 1024 and dev["flash_bytes"] <= 128 * 1024
    assert results.fits_class(row, "20 KB") == fits_cc2650
    tables = (out / "tables.md").read_text()
    assert f"| {dev['ram_bytes'] / 1024:.1f} | {dev['flash_bytes'] / 1024:.1f} | device |" in tables
    assert (out / "plots/f1_vs_device_ram_synth.png").is_file() and (out / "plots/f1_vs_device_flash_synth.png").is_file()
    third = S.run_sweep(dev_cfg, datasets=ds)
    assert (third["ran"], third["skipped"]) == (0, 2)
