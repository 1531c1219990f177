"""Writes notebooks/0*.ipynb from the cell sources below and, with ``--execute``, runs them and stores their outputs.

``make notebooks`` (= ``python notebooks/build_notebooks.py --execute``) regenerates the committed notebooks: the
sources here, then each notebook executed in ``notebooks/`` with full settings (runs go to ``notebooks/runs/``, not
committed), its outputs kept so that tables and plots show on the repository page. Execution timestamps are dropped
and the outputs are checked for absolute paths of this machine (none may be committed). Keeping the sources in one
Python file keeps notebook diffs readable.

Every notebook reads ``KERAS_TINYLOC_NB_SMALL``: set to 1 (the test suite does) for tiny settings that run in a minute;
unset, the notebooks use full settings.
"""
import argparse
import os
import re
import sys
from pathlib import Path

import nbformat
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

HERE = Path(__file__).resolve().parent

SETUP = '''import os
os.environ.setdefault("KERAS_BACKEND", "tensorflow")
from keras_tinyloc.errors import quiet_tensorflow
quiet_tensorflow()  # no TensorFlow start-up banner or retracing warnings in the outputs
SMALL = os.environ.get("KERAS_TINYLOC_NB_SMALL") == "1"   # tiny settings for the test suite
RUNS = os.environ.get("KERAS_TINYLOC_NB_RUNS", "runs/notebooks")  # where notebook runs are written
import json
from pathlib import Path
import numpy as np
import matplotlib
matplotlib.use("Agg")
import matplotlib.pyplot as plt
%matplotlib inline
print("small settings" if SMALL else "full settings", "| runs in", RUNS)'''

NB = {}

NB["01_data"] = [
    new_markdown_cell("# 1. Datasets\n\nUJIIndoorLoc (real WiFi), a simulated In-Home BLE house in the published "
                      "layout, and the real SPHERE BLE house. Every loader returns the same `WindowDataset`: "
                      "`(B, T, F)` windows scaled to [0, 1] and `(B, T)` per-step labels (−1 = unlabelled)."),
    new_code_cell(SETUP),
    new_code_cell('''from keras_tinyloc.data.registry import load_dataset, DATASETS
HOUSE_SCALE = 0.2 if SMALL else 1.0
house = load_dataset("house-a", scale=HOUSE_SCALE)
info = house.info()
print({k: info[k] for k in ("n_train", "n_val", "n_test", "input_shape", "n_classes", "class_names")})'''),
    new_markdown_cell("## The simulated house: floor plan, access points and a free-living trajectory"),
    new_code_cell('''from matplotlib.patches import Rectangle
from keras_tinyloc.data.floorplan import house_layout

plan = house_layout("A")
fig, axes = plt.subplots(1, plan.n_floors, figsize=(6 * plan.n_floors, 5), squeeze=False)
colors = plt.cm.tab10(np.arange(len(plan.class_names)) % 10)
for r in plan.rects:
    ax = axes[0, r.floor]
    c = colors[plan.class_names.index(r.name)]
    ax.add_patch(Rectangle((r.x0, r.y0), r.x1 - r.x0, r.y1 - r.y0, facecolor=c, alpha=0.35, edgecolor="k"))
    ax.text((r.x0 + r.x1) / 2, (r.y0 + r.y1) / 2, r.name, ha="center", va="center", fontsize=8)
for a in plan.aps:
    ax = axes[0, plan.rects[a.rect].floor]
    ax.plot(a.x, a.y, "k^", ms=9)
    ax.annotate(a.name, (a.x, a.y), textcoords="offset points", xytext=(4, 4), fontsize=7)
for f in range(plan.n_floors):
    axes[0, f].set_xlim(0, plan.width); axes[0, f].set_ylim(0, plan.depth); axes[0, f].set_aspect("equal")
    axes[0, f].set_title(f"House A, floor {f}"); axes[0, f].set_xlabel("m")
plt.show()'''),
    new_markdown_cell("## RSSI of one free-living recording on the 5 Hz grid (forward-fill ≤ 1 s, −120 dBm for the rest)"),
    new_code_cell('''from keras_tinyloc.data import inhome
house_dir = inhome.simulated_house_dir("A", seed=0, scale=HOUSE_SCALE)
meta = inhome.read_metadata(house_dir)
living = sorted((house_dir / "experiments").glob("living_*"))[0]
grid, labels = inhome.recording_grid(living, meta)
t = np.arange(len(grid)) / 5.0 / 60.0
fig, (a1, a2) = plt.subplots(2, 1, figsize=(11, 5), sharex=True, gridspec_kw={"height_ratios": [3, 1]})
for i in range(grid.shape[1]):
    a1.plot(t, grid[:, i], lw=0.6, label=f"AP {i}")
a1.set_ylabel("RSSI (dBm)"); a1.legend(ncol=8, fontsize=7, loc="lower right")
a2.plot(t, labels, drawstyle="steps-post"); a2.set_yticks(range(len(house.class_names)))
a2.set_yticklabels(house.class_names, fontsize=7); a2.set_xlabel("minutes")
plt.show()
print("share of steps at -120 dBm per AP:", np.round((grid <= -120).mean(axis=0), 2))'''),
    new_markdown_cell("## Real data: UJIIndoorLoc and SPHERE (read from `../shared/data`, `--data-dir` or `$KERAS_TINYLOC_DATA`)"),
    new_code_cell('''from keras_tinyloc.errors import TinyLocError
for name in ("uji", "uji-zones", "sphere"):
    try:
        d = load_dataset(name)
    except TinyLocError as exc:
        print(f"{name}: not available here ({exc})")
        continue
    i = d.info()
    print(f"{name:10s} train {i['n_train']:6d} val {i['n_val']:6d} test {i['n_test']:5d} "
          f"input {tuple(i['input_shape'])} classes {i['n_classes']}")'''),
    new_code_cell('''try:
    sphere = load_dataset("sphere")
    x = sphere.x_test[:200, -1, :]  # last step of 200 test windows, scaled
    fig, ax = plt.subplots(figsize=(11, 3))
    ax.imshow(x.T, aspect="auto", cmap="viridis"); ax.set_yticks(range(len(sphere.feature_names)))
    ax.set_yticklabels(sphere.feature_names); ax.set_xlabel("test window"); ax.set_title("SPHERE: scaled RSSI")
    plt.show()
except TinyLocError as exc:
    print("SPHERE not available:", exc)'''),
]

NB["02_train"] = [
    new_markdown_cell("# 2. Training an MDCSA and a Mamba tagger with a CRF head\n\nEarly stopping on validation "
                      "macro-F1; metrics are on the decoded label of each window's last step."),
    new_code_cell(SETUP),
    new_code_cell('''from keras_tinyloc.data.registry import load_dataset
from keras_tinyloc.training.train import TrainConfig, train
ds = load_dataset("house-a", scale=0.2 if SMALL else 1.0)
EPOCHS = 3 if SMALL else 150
results = {}
for family, h, l in [("mamba", 8, 1), ("mdcsa", 16, 1)]:
    out = f"{RUNS}/{family}_h{h}l{l}"
    results[out] = train(TrainConfig(dataset="house-a", model=family, hidden=h, layers=l, out=out, epochs=EPOCHS,
                                     overwrite=True, dataset_options={"scale": 0.2} if SMALL else {}), dataset=ds)
'''),
    new_code_cell('''import pandas as pd
pd.DataFrame(results).T[["params", "val_f1", "val_acc", "test_f1", "test_acc", "train_seconds", "epochs_run"]]'''),
    new_markdown_cell("## Decoding a test window with the CRF (Viterbi) and looking at the per-step marginals"),
    new_code_cell('''from keras_tinyloc.training.train import load_run
from keras_tinyloc.models.crf import viterbi_numpy, marginals_numpy
tagger, config, metrics = load_run(f"{RUNS}/mamba_h8l1")
em = np.asarray(tagger.emitter(ds.x_test[:1]))
crf = config["crf"]
args = (np.asarray(crf["transitions"]), np.asarray(crf["start"]), np.asarray(crf["end"]))
path = viterbi_numpy(em, *args)[0]
marg = marginals_numpy(em, *args)[0]
fig, ax = plt.subplots(figsize=(9, 3))
ax.imshow(marg.T, aspect="auto", cmap="Blues"); ax.plot(path, "r.-", label="Viterbi")
ax.plot(ds.y_test[0], "k--", label="truth"); ax.set_yticks(range(ds.n_classes)); ax.set_yticklabels(ds.class_names)
ax.set_xlabel("step (0.2 s)"); ax.legend(); plt.show()'''),
]

NB["03_distill"] = [
    new_markdown_cell("# 3. Knowledge distillation\n\nL = α·L_S + (1−α)·L_D with α = 0.1: L_S is the student's CRF "
                      "negative log-likelihood, L_D the cross-entropy between the teacher's Viterbi labels and the "
                      "student's CRF marginals (a custom `train_step`)."),
    new_code_cell(SETUP),
    new_code_cell('''from keras_tinyloc.data.registry import load_dataset
from keras_tinyloc.training.train import TrainConfig, train
from keras_tinyloc.training.distill import DistillConfig, distill
opts = {"scale": 0.2} if SMALL else {}
ds = load_dataset("house-a", **opts)
EPOCHS = 3 if SMALL else 150
teacher = f"{RUNS}/teacher_mdcsa_h32l1"
m_teacher = train(TrainConfig(dataset="house-a", model="mdcsa", hidden=32, layers=1, out=teacher, epochs=EPOCHS,
                              overwrite=True, dataset_options=opts), dataset=ds)
m_base = train(TrainConfig(dataset="house-a", model="mamba", hidden=8, layers=1, out=f"{RUNS}/student_base",
                           epochs=EPOCHS, overwrite=True, dataset_options=opts), dataset=ds)
m_kd = distill(DistillConfig(dataset="house-a", model="mamba", hidden=8, layers=1, out=f"{RUNS}/student_kd",
                             epochs=EPOCHS, overwrite=True, dataset_options=opts, teacher=teacher, alpha=0.1), dataset=ds)
m_soft = distill(DistillConfig(dataset="house-a", model="mamba", hidden=8, layers=1, out=f"{RUNS}/student_kd_soft",
                               epochs=EPOCHS, overwrite=True, dataset_options=opts, teacher=teacher, alpha=0.1,
                               temperature=2.0), dataset=ds)'''),
    new_code_cell('''import pandas as pd
table = pd.DataFrame({"teacher MDCSA H32L1": m_teacher, "Mamba H8L1": m_base, "Mamba H8L1 + KD (hard)": m_kd,
                      "Mamba H8L1 + KD (soft, T=2)": m_soft}).T
table[["params", "val_f1", "test_f1", "test_acc"]]'''),
]

NB["04_quantize_convert"] = [
    new_markdown_cell("# 4. Full-int8 conversion, the real TFLM interpreter, the arena, and MCU fit\n\nEvery int8 "
                      "model is checked op by op (no float islands), run in TFLM and in LiteRT, its minimal arena "
                      "found by bisection in a child process, and judged against the paper's MCU table."),
    new_code_cell(SETUP),
    new_code_cell('''from keras_tinyloc.data.registry import load_dataset
from keras_tinyloc.training.train import TrainConfig, train
from keras_tinyloc.deploy.convert import ConvertConfig, convert_run
opts = {"scale": 0.2} if SMALL else {}
ds = load_dataset("house-a", **opts)
run = f"{RUNS}/convert_mamba_h8l1"
if not Path(run, "metrics.json").exists():
    train(TrainConfig(dataset="house-a", model="mamba", hidden=8, layers=1, out=run, epochs=3 if SMALL else 150,
                      overwrite=True, dataset_options=opts), dataset=ds)
reports = {q: convert_run(ConvertConfig(run_dir=run, quant=q, overwrite=True), dataset=ds)
           for q in ("float", "dynamic", "int8")}'''),
    new_code_cell('''r = reports["int8"]
print("ops:", ", ".join(r["ops"]))
print("float ops:", r["float_ops"] or "none")
print(f"flatbuffer {r['flatbuffer_bytes']} B, minimal arena {r['arena_bytes']} B "
      f"(head {r['arena_head_bytes']} B + tail {r['arena_tail_bytes']} B, host 64-bit)")
print(f"test macro-F1: float {r['test_f1_float']:.4f} -> int8 in TFLM {r['test_f1_int8']:.4f}")
print("TFLM vs LiteRT:", r["tflm_matches_litert"])'''),
    new_code_cell('''import pandas as pd
fit = pd.DataFrame(r["mcu_fit"]).T
fit'''),
    new_code_cell('''print(Path(run, "tflite-int8", "model_settings.h").read_text()[:1500])'''),
    new_markdown_cell("## int8 activation ranges and quantization-aware fine-tuning\n\n`convert` clips each "
                      "activation range to its MSE-optimal value by default (`--calibration mse`); the converter's "
                      "own min-max ranges are `--calibration minmax`. `qat` fine-tunes a run with simulated int8 "
                      "(straight-through gradients) and writes a new run to convert."),
    new_code_cell('''from keras_tinyloc.deploy.convert import convert_model
from keras_tinyloc.training.train import load_run
tagger, _, _ = load_run(run)
ranges = {}
for cal in ("minmax", "mse"):
    _, rep = convert_model(tagger.emitter, tagger.crf_weights(), ds, "int8", calibration=cal)
    ranges[cal] = {"test F1 float": rep["test_f1_float"], "test F1 int8 (TFLM)": rep["test_f1_int8"],
                   "drop (points)": rep["f1_drop_points"], "clipped ranges": rep["calibration_clipped_tensors"]}
pd.DataFrame(ranges).T'''),
    new_code_cell('''from keras_tinyloc.training.qat import QATConfig, qat_finetune
qat_run = f"{RUNS}/convert_mamba_h8l1_qat"
qat_metrics = qat_finetune(QATConfig(run_dir=run, out=qat_run, epochs=2 if SMALL else 10, overwrite=True),
                           dataset=ds)
q = convert_run(ConvertConfig(run_dir=qat_run, overwrite=True), dataset=ds)
print(f"start float {r['test_f1_float']:.4f} | QAT float {q['test_f1_float']:.4f} -> int8 in TFLM "
      f"{q['test_f1_int8']:.4f} (simulated int8 in Keras {qat_metrics['sim_int8_test_f1']:.4f})")'''),
]

NB["05_results"] = [
    new_markdown_cell("# 5. Results of a sweep: the paper's tables and plots\n\nReads a sweep directory "
                      "(`python -m keras_tinyloc sweep ... --out DIR`); by default the committed "
                      "`docs/results/sweep`. With small settings it runs a tiny sweep first."),
    new_code_cell(SETUP),
    new_code_cell('''import subprocess, sys
SWEEP = os.environ.get("KERAS_TINYLOC_SWEEP_DIR")
if SMALL or not SWEEP:
    SWEEP = SWEEP or (f"{RUNS}/sweep-quick" if SMALL else "../docs/results/sweep")
if SMALL and not Path(SWEEP, "results.csv").exists():
    cmd = [sys.executable, "-m", "keras_tinyloc", "sweep", "--profile", "quick", "--datasets", "house-a",
           "--models", "mamba", "--hidden", "4", "--layers", "1", "--out", SWEEP]
    print(" ".join(cmd)); subprocess.run(cmd, check=True)
print(SWEEP)'''),
    new_code_cell('''import pandas as pd
rows = pd.read_csv(Path(SWEEP, "results.csv"))
rows.head(20)'''),
    new_code_cell('''from IPython.display import Markdown, display
display(Markdown(Path(SWEEP, "tables.md").read_text()))'''),
    new_code_cell('''from IPython.display import Image
for png in sorted(p for p in Path(SWEEP).rglob("*.png") if "runs" not in p.relative_to(SWEEP).parts)[:6]:
    print(png.name); display(Image(filename=str(png)))'''),
]


NB["06_your_own_house"] = [
    new_markdown_cell("# 6. Your own house: a recordings file → data info → train → convert → sketch\n\n"
                      "Your beacons, your rooms: everything the toolkit does with the built-in datasets it does with "
                      "one CSV of your recordings (`--dataset path/to/recordings.csv`; the format is "
                      "[docs/recordings-format.md](../docs/recordings-format.md)). Here a small file is made in the "
                      "notebook — three rooms, four beacons, a person walking between rooms — and taken all the way to "
                      "an Arduino sketch. The command-line equivalent of each step is printed with it."),
    new_code_cell(SETUP),
    new_markdown_cell("## A recordings file\n\nLong form: one row per received packet — `time` (seconds or ISO 8601), "
                      "`ap` (any name or MAC), `rssi` (dBm), `room` (empty = not labelled) and `session` (one "
                      "recording). Here a 5 Hz wearable is heard by each beacon with a log-distance path loss, "
                      "shadowing and lost packets."),
    new_code_cell('''import pandas as pd
HOUSE = Path(RUNS) / "own_house"
HOUSE.mkdir(parents=True, exist_ok=True)
ROOMS = {"kitchen": (2.0, 2.0), "living room": (8.0, 3.0), "bedroom": (5.0, 9.0)}  # room centres (m)
BEACONS = {"beacon-kitchen": (1.0, 1.0), "beacon-sofa": (9.5, 2.0), "beacon-bed": (5.0, 10.5), "beacon-hall": (5.0, 5.5)}
rng = np.random.default_rng(7)
rows = []
n_sessions, minutes = (3, 5) if SMALL else (6, 10)
for s in range(n_sessions):
    t0 = np.datetime64("2024-05-06T08:00:00", "ms") + np.timedelta64(s, "D")
    room = rng.choice(list(ROOMS))
    pos = np.array(ROOMS[room]) + rng.normal(0, 0.5, 2)
    for k in range(minutes * 60 * 5):  # 5 packets a second
        if rng.random() < 1 / 150:  # about every 30 s: walk to another room
            room = rng.choice([r for r in ROOMS if r != room])
        pos += 0.2 * (np.array(ROOMS[room]) - pos) + rng.normal(0, 0.05, 2)
        t = t0 + np.timedelta64(200 * k + int(rng.integers(0, 30)), "ms")
        for ap, xy in BEACONS.items():
            d = max(np.hypot(*(pos - np.array(xy))), 0.5)
            rssi = -55 - 25 * np.log10(d) + rng.normal(0, 4)
            if rssi > -95 and rng.random() < 0.7:  # heard (or the packet was lost)
                rows.append((str(t), ap, int(round(rssi)), room, f"day{s + 1}"))
recordings = HOUSE / "my_house.csv"
pd.DataFrame(rows, columns=["time", "ap", "rssi", "room", "session"]).to_csv(recordings, index=False)
print(f"{len(rows):,} rows in {recordings.name}")
pd.read_csv(recordings).head(8)'''),
    new_markdown_cell("## `data info`: what the file loads to, and how it was split\n\nNo `split` column: whole "
                      "sessions go to test (the last ones, about a quarter of the rows), every 4th minute of the "
                      "others to validation. Same pre-processing as the built-in BLE houses: 5 Hz grid, 1 s forward "
                      "fill, −120 dBm for \"not heard\", 4 s windows with 50 % overlap."),
    new_code_cell('''import subprocess, sys
def run(*args):
    """Run a keras_tinyloc command as a user would, show what it prints."""
    print("$ python -m keras_tinyloc", " ".join(args))
    res = subprocess.run([sys.executable, "-m", "keras_tinyloc", *args], capture_output=True, text=True)
    print(res.stdout + res.stderr)
    assert res.returncode == 0

run("data", "info", "--dataset", str(recordings))'''),
    new_code_cell('''from keras_tinyloc.data.registry import load_dataset
ds = load_dataset(str(recordings))
df = pd.read_csv(recordings, parse_dates=["time"])
day = df[df.session == "day1"]
fig, (a1, a2) = plt.subplots(2, 1, figsize=(11, 4.5), sharex=True, gridspec_kw={"height_ratios": [3, 1]})
for ap, g in day.groupby("ap"):
    a1.plot(g.time, g.rssi, ".", ms=1.5, label=ap)
a1.set_ylabel("RSSI (dBm)"); a1.legend(ncol=4, fontsize=8, markerscale=6)
a2.plot(day.time, day.room.map({r: i for i, r in enumerate(ds.class_names)}), drawstyle="steps-post")
a2.set_yticks(range(ds.n_classes)); a2.set_yticklabels(ds.class_names, fontsize=8); a2.set_xlabel("day1")
plt.show()'''),
    new_markdown_cell("## Train\n\nThe run records the dataset path and its options in `config.json`, so `convert` "
                      "later rebuilds exactly these windows."),
    new_code_cell('''from keras_tinyloc.training.train import TrainConfig, train
run_dir = HOUSE / "mamba_h8l1"
print(f"$ python -m keras_tinyloc train --dataset {recordings} --model mamba --hidden 8 --layers 1 --out {run_dir}")
metrics = train(TrainConfig(dataset=str(recordings), model="mamba", hidden=8, layers=1, out=str(run_dir),
                            epochs=3 if SMALL else 150, overwrite=True, verbose=False), dataset=ds)
pd.DataFrame([metrics])[["params", "val_f1", "test_f1", "test_acc", "epochs_run", "best_epoch"]]'''),
    new_markdown_cell("## Convert to full int8, run it in TFLM, export the sketch\n\nThe rooms and beacons keep their "
                      "names in `model_settings.h` and in the sketch's README, which is written for this model."),
    new_code_cell('''from keras_tinyloc.deploy.convert import ConvertConfig, convert_run
sketch = HOUSE / "my_house"
print(f"$ python -m keras_tinyloc convert {run_dir} --sketch {sketch}")
rep = convert_run(ConvertConfig(run_dir=str(run_dir), quant="int8", sketch=str(sketch), overwrite=True))
print(f"float ops: {rep['float_ops'] or 'none'}; flatbuffer {rep['flatbuffer_bytes']:,} B; "
      f"minimal arena {rep['arena_bytes']:,} B (TFLM, 64-bit host)")
print(f"test macro-F1: float {rep['test_f1_float']:.4f} -> int8 in TFLM {rep['test_f1_int8']:.4f}")
settings_h = (run_dir / "tflite-int8" / "model_settings.h").read_text()
import re
for array in ("kClassNames", "kFeatureNames"):
    names = re.search(array + r"\\[\\w+\\] = \\{(.*?)\\};", settings_h, re.S).group(1)
    print(f"model_settings.h {array}: {' '.join(names.split())}")'''),
    new_code_cell('''print(sorted(p.name for p in sketch.iterdir()))
readme = (sketch / "README.md").read_text()
from IPython.display import Markdown, display
display(Markdown(readme.split("## Then")[0]))'''),
]


def machine_paths() -> list[str]:
    """Absolute folders of this machine that must not appear in a committed notebook."""
    found = {str(HERE.parent), str(Path.home())}
    try:
        from keras_tinyloc.paths import user_cache_dir

        found.add(str(user_cache_dir()))
    except ImportError:
        pass
    return sorted(found, key=len, reverse=True)


def execute(path: Path, timeout: int = 3600) -> None:
    """Run one notebook in ``notebooks/`` with full settings and store it with its outputs (no timestamps)."""
    from nbclient import NotebookClient

    nb = nbformat.read(path, as_version=4)
    env_before = dict(os.environ)
    os.environ.pop("KERAS_TINYLOC_NB_SMALL", None)
    os.environ.setdefault("KERAS_TINYLOC_NB_RUNS", "runs/notebooks")
    try:
        NotebookClient(nb, timeout=timeout, kernel_name="python3", resources={"metadata": {"path": str(HERE)}}).execute()
    finally:
        os.environ.clear()
        os.environ.update(env_before)
    bad = []
    for cell in nb.cells:
        cell.metadata.pop("execution", None)
        for out in cell.get("outputs", []):
            text = out.get("text", "") + "".join(str(v) for k, v in out.get("data", {}).items() if k.startswith("text"))
            bad += [m for m in machine_paths() if m in text]
    if bad:
        sys.exit(f"{path.name}: an output names {bad[0]} (a path of this machine); fix the cell, nothing written")
    nbformat.write(nb, path)


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description="Write the notebooks from their sources; --execute also runs them.")
    p.add_argument("--execute", action="store_true", help="run each notebook (full settings) and keep its outputs")
    p.add_argument("names", nargs="*", help="only these notebooks (e.g. 06_your_own_house)")
    a = p.parse_args(argv)
    for name, cells in NB.items():
        if a.names and name not in a.names:
            continue
        nb = new_notebook(cells=cells, metadata={"kernelspec": {"name": "python3", "display_name": "Python 3",
                                                                "language": "python"}})
        path = HERE / f"{name}.ipynb"
        nbformat.write(nb, path)
        print("wrote", path.relative_to(HERE.parent))
        if a.execute:
            execute(path)
            print("executed", path.relative_to(HERE.parent))


if __name__ == "__main__":
    main()
