"""What the TFLM-friendly Mamba costs in accuracy (issue 16): the experiment of ``benchmarks/mamba_fidelity.py``.

The int8 Mamba (:mod:`keras_tinyloc.models.mamba`) deviates from the reference code in two ways TFLM forces: A is
frozen at A_n = -n (the reference learns A (E,N)), and the input term is the zero-order hold (1 - a^n)/n B x (the
reference code uses Euler's delta B x). The float-only scan options ``a_mode="learned"`` and ``input_term="euler"``
undo each; this module trains the 2x2 :data:`VARIANTS` with the same data, budget, learning rate and seeds
(:data:`SETUPS`: ``uji-zones`` H32L1 with the ``pow3-aug`` recipe of ``docs/results/uji_families.md``, ``sphere``
H8L1, the simulated ``house-a`` H8L1 and H32L1) and compares them in float.

Protocol: early stopping and the restored epoch are chosen on **validation** macro-F1 only
(``training.train.fit_tagger``); test figures are reported, never used to choose. Runs with the same seed share every
initial weight (the seeded draws are the same, and A starts at -n in every variant) and the batch order, so variants
are compared **paired by seed**: :func:`paired` gives the mean per-seed difference and its 95 %
t-interval (Student t with n-1 degrees of freedom, n = number of seeds); a difference is called larger than the
seed noise when that interval excludes 0. :func:`main_effects` pools the two levels of the other factor (2n pairs).

Rows (``<out>/<setup>/<variant>-s<seed>/row.json``, next to the run's ``model.keras``/``config.json``/
``metrics.json``) carry ``setup, dataset, H, L, variant, options, seed, params, val_f1, val_acc, test_f1, test_acc,
best_epoch, epochs_run, epoch_seconds, seconds``. Written with library calls only: ``models.build_tagger``,
``training.trainer.make_trainer``, ``training.train.fit_tagger``/``evaluate``/``write_run``.
"""
from __future__ import annotations

import dataclasses
import json
import math
import time
from pathlib import Path
from typing import Callable, Sequence

from keras_tinyloc.errors import TinyLocError

# name -> (label, build_tagger options)
VARIANTS: dict[str, tuple[str, dict]] = {
    "frozen-zoh": ("A frozen at -n, ZOH input term (today's int8/TFLM form)", {}),
    "learned-zoh": ("A learned (E,N), ZOH input term", {"a_mode": "learned"}),
    "frozen-euler": ("A frozen at -n, Euler input term", {"input_term": "euler"}),
    "learned-euler": ("A learned, Euler input term (the reference code)", {"a_mode": "learned", "input_term": "euler"}),
}
BASELINE = "frozen-zoh"


@dataclasses.dataclass(frozen=True)
class Setup:
    """One dataset x size with its training recipe (the same for every variant and seed).

    ap: AP selection (``all`` or ``heard:P``, :mod:`keras_tinyloc.experiments.apselect`).  power: powed input x**k.
    p_drop / offset_db: per-scan AP drop-out and ±dB offset augmentation (:mod:`keras_tinyloc.training.augment`).
    """

    dataset: str
    hidden: int
    layers: int
    lr: float
    epochs: int
    patience: int
    ap: str = "all"
    power: int = 1
    p_drop: float = 0.0
    offset_db: float = 0.0
    batch_size: int = 128

    @property
    def name(self) -> str:
        return f"{self.dataset}-H{self.hidden}L{self.layers}"

    @property
    def recipe(self) -> str:
        """The recipe in words (the report's column)."""
        parts = [f"lr {self.lr:g}", f"≤ {self.epochs} epochs, patience {self.patience}", f"batch {self.batch_size}"]
        if self.ap != "all":
            parts.append(f"APs {self.ap}")
        if self.power > 1:
            parts.append(f"powed input x^{self.power}")
        if self.p_drop or self.offset_db:
            parts.append(f"aug: AP drop-out {self.p_drop:g}, ±{self.offset_db:g} dB offset")
        return "; ".join(parts)


UJI_POW3_AUG = dict(ap="heard:0.01", power=3, p_drop=0.2, offset_db=8.0)  # uji_families.RECIPES["pow3-aug"]
SETUPS: dict[str, Setup] = {s.name: s for s in (
    Setup("uji-zones", 32, 1, 3e-3, 40, 10, **UJI_POW3_AUG),  # the uji_families recipe and budget
    Setup("house-a", 8, 1, 1e-2, 60, 15),  # lr 1e-2 for small Mambas (train module note; sphere_variants)
    Setup("house-a", 32, 1, 3e-3, 60, 15),
    Setup("sphere", 8, 1, 1e-2, 60, 15),
)}
SEEDS = (0, 1, 2, 3, 4)


def check_names(setups: Sequence[str], variants: Sequence[str], seeds: Sequence[int]) -> None:
    """One-line errors for unknown setup/variant names or bad seeds, before any work."""
    for kind, names, known in (("setup", setups, SETUPS), ("variant", variants, VARIANTS)):
        bad = [n for n in names if n not in known]
        if bad:
            raise TinyLocError(f"unknown {kind} {bad[0]!r} (choose from {', '.join(known)})")
    for s in seeds:
        if isinstance(s, bool) or not isinstance(s, int) or s < 0:
            raise TinyLocError(f"seed {s!r}: must be a non-negative integer")


def run_dir(out: Path, setup: str, variant: str, seed: int) -> Path:
    return Path(out) / setup / f"{variant}-s{seed}"


def run_one(setup: Setup, variant: str, seed: int, base, out: Path, log: Callable[[str], None] = print,
            epochs: int | None = None, patience: int | None = None) -> dict:
    """Train one variant of one setup with one seed (float) and evaluate it; cached in ``row.json``.

    Args:
        base: the setup's full dataset (:class:`~keras_tinyloc.data.base.WindowDataset`), loaded once by the caller.
        epochs / patience: override the setup's budget (development runs); recorded in the row.
    Returns:
        The row dict (module doc). A run whose ``row.json`` exists is read back, not retrained.
    """
    import keras

    from keras_tinyloc.experiments.beyond import load_selected
    from keras_tinyloc.models import build_tagger
    from keras_tinyloc.training.augment import AugmentConfig, inverse_span
    from keras_tinyloc.training.train import (TrainConfig, check_labels, count_params, evaluate, fit_tagger,
                                              run_config, write_run)
    from keras_tinyloc.training.trainer import make_trainer

    rdir = run_dir(out, setup.name, variant, seed)
    if (rdir / "row.json").is_file():
        return json.loads((rdir / "row.json").read_text())
    options = VARIANTS[variant][1]
    if setup.ap == "all":
        ds, names = base, None
    else:
        ds, names = load_selected(setup.dataset, setup.ap, base=base)
    check_labels(ds)
    tcfg = TrainConfig(dataset=setup.dataset, model="mamba", hidden=setup.hidden, layers=setup.layers, out=str(rdir),
                       epochs=epochs or setup.epochs, patience=patience or setup.patience,
                       batch_size=setup.batch_size, lr=setup.lr, seed=seed, overwrite=True, verbose=False,
                       model_options=dict(options), dataset_options={} if names is None else {"features": names})
    tagger = build_tagger("mamba", ds.input_shape, ds.n_classes, setup.hidden, setup.layers, seed=seed,
                          input_power=setup.power, **options)
    trainer = tagger
    if setup.p_drop or setup.offset_db:
        trainer = make_trainer(tagger, inverse_span(ds.scaling.low, ds.scaling.high),
                               AugmentConfig(p_drop=setup.p_drop, offset_db=setup.offset_db), seed=seed)
    trainer.compile(optimizer=keras.optimizers.Adam(setup.lr))
    t0 = time.perf_counter()
    fit = fit_tagger(trainer, tagger, ds, tcfg, log=log)
    m = evaluate(tagger, ds)
    row = {
        "setup": setup.name, "dataset": setup.dataset, "H": setup.hidden, "L": setup.layers, "variant": variant,
        "options": options, "seed": seed, "recipe": setup.recipe, "epochs": tcfg.epochs, "patience": tcfg.patience,
        "params": count_params(tagger), "val_f1": m["val_f1"], "val_acc": m["val_acc"], "test_f1": m["test_f1"],
        "test_acc": m["test_acc"], "best_epoch": fit["best_epoch"], "epochs_run": fit["epochs_run"],
        "epoch_seconds": round(fit["epoch_seconds"], 3), "seconds": round(time.perf_counter() - t0, 1),
    }
    config = run_config(tcfg, ds, tagger)
    config["mamba_fidelity"] = {"setup": setup.name, "variant": variant, "recipe": dataclasses.asdict(setup)}
    write_run(rdir, tagger, config, {**m, "params": row["params"], **fit}, overwrite=True)
    (rdir / "row.json").write_text(json.dumps(row, indent=1))
    log(f"{setup.name} {variant} seed {seed}: val F1 {row['val_f1']:.4f} test F1 {row['test_f1']:.4f} "
        f"best epoch {row['best_epoch']}/{row['epochs_run']} {row['seconds']} s")
    return row


def a_drift(rdir: Path) -> dict:
    """How far training moved A in a run's saved model: over every block's (E,N) entries, the ratio
    ``-A_en / n = exp(A_log_en) / n`` (1 = the frozen value): ``{"a_ratio_min", "a_ratio_median", "a_ratio_max",
    "a_log_mean_abs_change"}`` (the last = mean |A_log - log n|)."""
    import numpy as np

    from keras_tinyloc.models.mamba import MambaBlock
    from keras_tinyloc.training.train import load_run

    tagger, _, _ = load_run(rdir)
    ratios, changes = [], []
    stack = [tagger.emitter]
    while stack:
        layer = stack.pop()
        if isinstance(layer, MambaBlock):
            a_log = np.asarray(layer.scan.A_log, np.float64)  # (E,N)
            log_n = np.log(np.arange(1, a_log.shape[1] + 1))
            ratios.append(np.exp(a_log - log_n).ravel())
            changes.append(np.abs(a_log - log_n).ravel())
        stack.extend(getattr(layer, "layers", []))
    r, c = np.concatenate(ratios), np.concatenate(changes)
    return {"a_ratio_min": float(r.min()), "a_ratio_median": float(np.median(r)), "a_ratio_max": float(r.max()),
            "a_log_mean_abs_change": float(c.mean())}


def add_a_drift(out: Path) -> int:
    """Add :func:`a_drift` to every learned-A ``row.json`` under ``out`` that lacks it; returns how many."""
    done = 0
    for p in sorted(Path(out).glob("*/*/row.json")):
        row = json.loads(p.read_text())
        if VARIANTS.get(row["variant"], ("", {}))[1].get("a_mode") != "learned" or "a_drift" in row:
            continue
        row["a_drift"] = a_drift(p.parent)
        p.write_text(json.dumps(row, indent=1))
        done += 1
    return done


def load_rows(out: Path) -> list[dict]:
    """Every ``out/<setup>/<variant>-s<seed>/row.json``, in :data:`SETUPS` x :data:`VARIANTS` x seed order."""
    rows = [json.loads(p.read_text()) for p in Path(out).glob("*/*/row.json")]
    so, vo = {n: i for i, n in enumerate(SETUPS)}, {n: i for i, n in enumerate(VARIANTS)}
    rows.sort(key=lambda r: (so.get(r["setup"], 99), r["setup"], vo.get(r["variant"], 99), r["seed"]))
    return rows


# ------------------------------------------------------------------------------------------------- statistics
def mean_std(values: Sequence[float]) -> tuple[float, float]:
    """Mean and sample standard deviation (ddof 1; 0 for a single value)."""
    n = len(values)
    if n == 0:
        raise TinyLocError("mean_std of no values")
    m = sum(values) / n
    return m, (math.sqrt(sum((v - m) ** 2 for v in values) / (n - 1)) if n > 1 else 0.0)


def t_interval(diffs: Sequence[float], level: float = 0.95) -> dict:
    """Mean of paired differences and its two-sided Student-t interval.

    Returns ``{"n", "mean", "std", "half_width", "low", "high", "beyond_noise"}``; ``beyond_noise`` is True when the
    interval excludes 0. With n < 2 the interval is undefined (half_width None, beyond_noise False).
    """
    from scipy import stats

    n = len(diffs)
    m, s = mean_std(diffs)
    if n < 2:
        return {"n": n, "mean": m, "std": s, "half_width": None, "low": None, "high": None, "beyond_noise": False}
    hw = float(stats.t.ppf(0.5 + level / 2, n - 1)) * s / math.sqrt(n)
    return {"n": n, "mean": m, "std": s, "half_width": hw, "low": m - hw, "high": m + hw,
            "beyond_noise": bool(m - hw > 0 or m + hw < 0)}


def _by_key(rows: Sequence[dict]) -> dict:
    return {(r["setup"], r["variant"], r["seed"]): r for r in rows}


def summary(rows: Sequence[dict]) -> list[dict]:
    """Per setup x variant: ``n`` seeds and mean/std of test and val F1 (+ test accuracy, epochs, seconds)."""
    groups: dict = {}
    for r in rows:
        groups.setdefault((r["setup"], r["variant"]), []).append(r)
    out = []
    for (setup, variant), rs in groups.items():
        g = {"setup": setup, "variant": variant, "n": len(rs), "seeds": [r["seed"] for r in rs],
             "params": rs[0]["params"]}
        for k in ("test_f1", "val_f1", "test_acc", "best_epoch", "epochs_run", "seconds"):
            g[k], g[k + "_std"] = mean_std([float(r[k]) for r in rs])
        out.append(g)
    return out


def paired(rows: Sequence[dict], setup: str, variant: str, other: str = BASELINE, metric: str = "test_f1") -> dict:
    """``variant - other`` of ``metric`` paired by seed (seeds present in both): :func:`t_interval` of the diffs."""
    by = _by_key(rows)
    seeds = sorted({s for (su, v, s) in by if su == setup and v == variant} &
                   {s for (su, v, s) in by if su == setup and v == other})
    if not seeds:
        return {"n": 0}
    diffs = [by[(setup, variant, s)][metric] - by[(setup, other, s)][metric] for s in seeds]
    return {**t_interval(diffs), "seeds": seeds, "diffs": diffs}


def main_effects(rows: Sequence[dict], setup: str, metric: str = "test_f1") -> dict:
    """The two factors' effects in one setup, each pooled over the other factor's levels (2 x seeds pairs):
    ``{"learned_a": learned - frozen, "euler": euler - zoh}``, each a :func:`t_interval` (+ ``pairs``)."""
    by = _by_key(rows)
    out = {}
    for effect, pairs in (("learned_a", (("learned-zoh", "frozen-zoh"), ("learned-euler", "frozen-euler"))),
                          ("euler", (("frozen-euler", "frozen-zoh"), ("learned-euler", "learned-zoh")))):
        diffs, used = [], []
        for hi, lo in pairs:
            for (su, v, s) in sorted(by):
                if su == setup and v == hi and (setup, lo, s) in by:
                    diffs.append(by[(setup, hi, s)][metric] - by[(setup, lo, s)][metric])
                    used.append(f"{hi}-s{s}")
        out[effect] = {**t_interval(diffs), "pairs": used} if diffs else {"n": 0}
    return out


def analyse(rows: Sequence[dict]) -> dict:
    """Everything the report states: per setup the :func:`summary` rows, the paired comparisons of each variant with
    :data:`BASELINE` and the :func:`main_effects`, on test and validation F1; and the verdict on learned A."""
    setups = list(dict.fromkeys(r["setup"] for r in rows))
    summ = summary(rows)
    per = {}
    for su in setups:
        per[su] = {
            "summary": [g for g in summ if g["setup"] == su],
            "vs_baseline": {m: {v: paired(rows, su, v, BASELINE, m) for v in VARIANTS if v != BASELINE
                                and any(r["setup"] == su and r["variant"] == v for r in rows)}
                            for m in ("test_f1", "val_f1")},
            "effects": {m: main_effects(rows, su, m) for m in ("test_f1", "val_f1")},
        }
    def beyond(effect: str, sign: int) -> list[str]:
        es = [(su, per[su]["effects"]["test_f1"][effect]) for su in setups]
        return [su for su, e in es if e.get("n", 0) >= 2 and e["beyond_noise"] and sign * e["mean"] > 0]

    worth = beyond("learned_a", 1)
    return {"setups": per, "learned_a_beyond_noise": worth, "learned_a_worse_beyond_noise": beyond("learned_a", -1),
            "euler_better_beyond_noise": beyond("euler", 1), "euler_worse_beyond_noise": beyond("euler", -1),
            "learned_a_worth_it": bool(worth)}


# --------------------------------------------------------------------------------------------------- report
def summary_lines(analysis: dict) -> list[str]:
    """One bullet per setup with both factor effects on test F1 (beyond the noise or not), and the verdict."""
    out = []
    for su, a in analysis["setups"].items():
        e = a["effects"]["test_f1"]
        base = next((g for g in a["summary"] if g["variant"] == BASELINE), None)
        best = max(a["summary"], key=lambda g: g["val_f1"])
        words = []
        for key, what in (("learned_a", "learned A − frozen A"), ("euler", "Euler − ZOH")):
            p = e[key]
            if not p.get("n"):
                continue
            verdict = "beyond the seed noise" if p["beyond_noise"] else "within the seed noise"
            words.append(f"{what} {_ci(p).replace(' **beyond noise**', '')} test points ({verdict})")
        head = (f"today's `{BASELINE}` {_pts(base['test_f1'])} ± {_pts(base['test_f1_std'])}; " if base else "")
        out.append(f"* **{su}**: {head}{'; '.join(words)}. Best mean validation F1: `{best['variant']}`.")
    worth = analysis["learned_a_beyond_noise"]
    if worth:
        out.append(f"* **Verdict**: a learned A gains more than the seed noise on {', '.join(worth)}.")
    else:
        bounds = [(su, a["effects"]["test_f1"]["learned_a"]) for su, a in analysis["setups"].items()]
        bounds = ", ".join(f"{_pts(e['high'], True)} ({su})" for su, e in bounds if e.get("high") is not None)
        out.append("* **Verdict**: a learned A gains more than the seed noise on no setup: the frozen A_n = −n "
                   "costs nothing measurable here, so no int8 form of a learned A was added. The largest pooled "
                   f"test gain a learned A could still have (upper ends of the 95 % intervals): {bounds} points.")
    for key, words in (("learned_a_worse_beyond_noise", "A learned A loses more than the seed noise on"),
                       ("euler_better_beyond_noise", "The Euler term gains more than the seed noise on"),
                       ("euler_worse_beyond_noise", "The Euler term loses more than the seed noise on")):
        out.append(f"* {words} {', '.join(analysis.get(key, [])) or 'no setup'}.")
    val = [f"{what} on {su} {_ci(a['effects']['val_f1'][key]).replace(' **beyond noise**', '')}"
           for su, a in analysis["setups"].items()
           for key, what in (("learned_a", "learned A − frozen A"), ("euler", "Euler − ZOH"))
           if a["effects"]["val_f1"][key].get("beyond_noise")]
    out.append("* On validation F1 (what a search would select on), effects beyond the seed noise: "
               + ("; ".join(val) if val else "none") + " points.")
    return out


def _pts(v: float | None, signed: bool = False) -> str:
    if v is None:
        return "—"
    return f"{100 * v:+.1f}" if signed else f"{100 * v:.1f}"


def _ci(p: dict) -> str:
    if not p.get("n"):
        return "—"
    if p["half_width"] is None:
        return f"{_pts(p['mean'], True)} (n = 1)"
    mark = " **beyond noise**" if p["beyond_noise"] else ""
    return f"{_pts(p['mean'], True)} [{_pts(p['low'], True)}, {_pts(p['high'], True)}]{mark}"


NOTES = (
    "On `uji-zones` every window is one scan (T = 1): the scan makes a single step from h = 0, so y = C (input "
    "gain) B x + D x and A enters only through the ZOH gain (1 − e^{δA})/(−A); the Euler gain δ has no A at all, "
    "so `learned-euler` gets no gradient for A there and equals `frozen-euler` run for run. There a learned A can "
    "only reshape the input gain; the recurrence itself is exercised by the windowed `house-a` and `sphere` "
    "(T = 20).",
    "Parameter counts are equal across variants: A_log (E,N) is counted whether frozen or trained (the paper's "
    "count).",
    "Seconds are wall time on the shared 2-core machine while other jobs ran: compare them loosely.",
)


def drift_lines(rows: Sequence[dict], setup: str) -> list[str]:
    """Per learned-A variant of ``setup``: mean |A_log − log n| over seeds and the range of −A_n / n
    (from the rows' ``a_drift``, :func:`add_a_drift`)."""
    out = []
    for v in VARIANTS:
        ds = [r["a_drift"] for r in rows if r["setup"] == setup and r["variant"] == v and "a_drift" in r]
        if ds:
            out.append(f"`{v}` mean |A_log − log n| {sum(d['a_log_mean_abs_change'] for d in ds) / len(ds):.2f}, "
                       f"−A/n from {min(d['a_ratio_min'] for d in ds):.2f} to {max(d['a_ratio_max'] for d in ds):.2f}")
    return out


def markdown(rows: Sequence[dict], analysis: dict, commands: str | Sequence[str],
             notes: Sequence[str] = NOTES) -> str:
    """The report ``docs/results/mamba_fidelity.md`` (figures in macro-F1 points, i.e. x 100); ``commands``: the
    benchmark invocation(s) that produced the rows."""
    commands = [commands] if isinstance(commands, str) else list(commands)
    lines = [
        "# The cost of the TFLM-friendly Mamba (float, issue 16)",
        "",
        "Generated by `benchmarks/mamba_fidelity.py` (" + ", then ".join(f"`{c}`" for c in commands) +
        "; `--report-only` rebuilds it from the cached `row.json` files). Each Mamba variant is trained in float with the same data, recipe, budget and seeds; "
        "early stopping and the restored epoch are chosen on the **validation** macro-F1 only; test macro-F1 is "
        "reported, never used to choose. Figures are macro-F1 points (× 100), mean ± sample std over seeds.",
        "",
        "Variants (options of `models.mamba.build_mamba_emitter`, also `models.build_tagger(..., **kw)`):",
        "",
    ]
    lines += [f"* `{v}`: {label}" + (f" — `{', '.join(f'{k}={o}' for k, o in opts.items())}`" if opts else "")
              for v, (label, opts) in VARIANTS.items()]
    lines += [
        "",
        "Learned A and the Euler term need EXP/LOG, which TFLM cannot run in int8: they are float-only (the int8 "
        "converter rejects them, naming the option).",
        "",
        "**How the noise was judged.** Runs with the same seed share every initial weight (A starts at −n in "
        "every variant) and the batch order, so each variant is compared with today's `frozen-zoh` *paired by seed*: the table gives the mean "
        "per-seed difference and its 95 % Student-t interval (n − 1 degrees of freedom). A difference is called "
        "*beyond noise* when that interval excludes 0. The factor effects pool both levels of the other factor "
        "(2 × seeds pairs).",
        "",
    ]
    lines += ["## Summary", ""] + summary_lines(analysis) + [""]
    for su, a in analysis["setups"].items():
        setup = SETUPS.get(su)
        lines += [f"## {su}", ""]
        if setup is not None:
            budgets = sorted({(r["epochs"], r["patience"]) for r in rows if r["setup"] == su})
            ran = "" if budgets == [(setup.epochs, setup.patience)] else " Runs here: " + ", ".join(
                f"≤ {e} epochs, patience {p}" for e, p in budgets) + " (development override)."
            lines += [f"Recipe: {setup.recipe}.{ran}", ""]
        lines += ["| variant | seeds | params | test F1 | val F1 | test acc | best epoch / run | s per run | "
                  "Δ test F1 vs frozen-zoh [95 % CI] | Δ val F1 vs frozen-zoh [95 % CI] |",
                  "|---|---|---|---|---|---|---|---|---|---|"]
        for g in a["summary"]:
            v = g["variant"]
            dt = a["vs_baseline"]["test_f1"].get(v)
            dv = a["vs_baseline"]["val_f1"].get(v)
            lines.append(
                f"| `{v}` | {g['n']} | {g['params']:,} | {_pts(g['test_f1'])} ± {_pts(g['test_f1_std'])} | "
                f"{_pts(g['val_f1'])} ± {_pts(g['val_f1_std'])} | {_pts(g['test_acc'])} | "
                f"{g['best_epoch']:.0f} / {g['epochs_run']:.0f} | {g['seconds']:.0f} | "
                f"{'(reference)' if dt is None else _ci(dt)} | {'(reference)' if dv is None else _ci(dv)} |")
        e_t, e_v = a["effects"]["test_f1"], a["effects"]["val_f1"]
        lines += ["", f"Factor effects (pooled pairs): learned A − frozen A: test {_ci(e_t['learned_a'])}, "
                  f"val {_ci(e_v['learned_a'])}; Euler − ZOH: test {_ci(e_t['euler'])}, val {_ci(e_v['euler'])}.",
                  ""]
        drift = drift_lines(rows, su)
        if drift:
            lines += ["Where training took A (learned variants, all seeds): " + "; ".join(drift) + ".", ""]
    lines += ["## Every run", "", "| setup | variant | seed | val F1 | test F1 | test acc | best epoch / run | s |",
              "|---|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['setup']} | `{r['variant']}` | {r['seed']} | {_pts(r['val_f1'])} | {_pts(r['test_f1'])} | "
                     f"{_pts(r['test_acc'])} | {r['best_epoch']} / {r['epochs_run']} | {r['seconds']:.0f} |")
    if notes:
        lines += ["", "## Notes", ""] + [f"* {n}" for n in notes]
    return "\n".join(lines) + "\n"


def results_json(rows: Sequence[dict], analysis: dict) -> str:
    """The JSON twin of the report: the setups' recipes, every row and the analysis."""
    doc = {"variants": {v: {"label": lab, "options": o} for v, (lab, o) in VARIANTS.items()},
           "setups": {n: dataclasses.asdict(s) for n, s in SETUPS.items()},
           "rows": list(rows), "analysis": analysis}
    return json.dumps(doc, indent=1) + "\n"


# the invocation behind the committed report (run under the team's heavy-job lock)
COMMANDS = (".venv/bin/python benchmarks/mamba_fidelity.py",)


def report_files(rows: Sequence[dict], commands: Sequence[str] | None = None) -> tuple[str, str]:
    """``(markdown, json)`` of the report for ``rows``; ``commands`` (the invocations that made the rows) default to
    :data:`COMMANDS`."""
    analysis = analyse(rows)
    return markdown(rows, analysis, COMMANDS if commands is None else commands), results_json(rows, analysis)
