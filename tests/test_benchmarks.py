"""benchmarks/*.py: each script loads from a checkout (its ``_bootstrap`` preamble) and answers ``--help``.

The benchmarks run for minutes to hours, so ``make test`` never runs them; this catches what breaks them silently
between runs: an import path a refactor moved, an option that no longer parses, a helper defined in a script instead
of the library (a script holds ``main`` and at most one small formatting helper).
"""
from __future__ import annotations

import ast
import contextlib
import io
import runpy
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parent.parent / "benchmarks"
SCRIPTS = sorted(p for p in BENCH.glob("*.py") if not p.name.startswith("_"))


def test_every_benchmark_is_listed():
    assert len(SCRIPTS) >= 12, [p.name for p in SCRIPTS]


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda p: p.stem)
def test_benchmark_answers_help(script, monkeypatch):
    monkeypatch.syspath_prepend(str(BENCH))
    ns = runpy.run_path(str(script), run_name="benchmark_under_test")  # not "__main__": nothing runs
    out = io.StringIO()
    with contextlib.redirect_stdout(out), pytest.raises(SystemExit) as stop:
        ns["main"](["--help"])
    assert stop.value.code == 0
    text = out.getvalue()
    assert text.startswith("usage: ") and "--help" in text, text[:200]
    # the first line of the script's docstring is its description
    first_line = ast.get_docstring(ast.parse(script.read_text())).splitlines()[0]
    assert first_line.split()[0] in " ".join(text.split()), (first_line, text[:300])


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda p: p.stem)
def test_benchmark_holds_no_logic(script):
    tree = ast.parse(script.read_text())
    defs = [n.name for n in tree.body if isinstance(n, (ast.FunctionDef, ast.ClassDef))]
    assert "main" in defs and len(defs) <= 2, f"{script.name}: {defs} (move logic into keras_tinyloc/experiments)"
    imports = [n for n in tree.body if isinstance(n, ast.ImportFrom) and n.module]
    boot = [i for i, n in enumerate(imports) if n.module == "_bootstrap"]
    pkg = [i for i, n in enumerate(imports) if n.module.startswith("keras_tinyloc")]
    assert boot, f"{script.name}: does not import _bootstrap"
    assert not pkg or boot[0] < pkg[0], f"{script.name}: imports keras_tinyloc before _bootstrap"


def test_bootstrap_puts_the_checkout_first(monkeypatch):
    monkeypatch.setattr(sys, "path", [p for p in sys.path if p != str(BENCH.parent)])
    ns = runpy.run_path(str(BENCH / "_bootstrap.py"))
    assert ns["ROOT"] == BENCH.parent
    assert sys.path[0] == str(BENCH.parent)
