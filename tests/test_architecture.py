"""The package's shape: imports flow one way (data, models <- training <- deploy <- experiments <- cli/demo), and no
module takes part in an import cycle — counting imports inside functions, which hide a dependency but not remove it.

The import graph is read from the source (``ast``), independently of Python's import machinery, so a lazy import
cannot sneak an upward edge past it. docs/architecture.md describes the layers.
"""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

PKG = Path(__file__).resolve().parent.parent / "keras_tinyloc"

# rank of each top-level part: a module may import its own part, or parts of a lower rank
RANK = {"errors": 0, "paths": 0, "data": 1, "models": 1, "training": 2, "deploy": 3, "experiments": 4,
        "cli": 5, "demo": 5, "__main__": 6}
# parts of the same rank that must not import each other
APART = {("data", "models"), ("models", "data"), ("errors", "paths"), ("cli", "demo")}


def module_files(root: Path = PKG) -> dict[str, Path]:
    """``{dotted module name: file}`` of every module under ``root`` (a package folder)."""
    mods = {}
    for path in root.rglob("*.py"):
        parts = list(path.relative_to(root.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        mods[".".join(parts)] = path
    return mods


def import_graph(mods: dict[str, Path]) -> dict[str, set[str]]:
    """``{module: {package modules it imports}}`` — every ``import``/``from`` anywhere in the file, relative ones
    resolved; ``from pkg import name`` counts as importing ``pkg.name`` when that is a module, else ``pkg``."""

    def resolve(name: str) -> str | None:
        while name and name not in mods:
            name = name.rpartition(".")[0]
        return name or None

    graph: dict[str, set[str]] = {}
    for mod, path in mods.items():
        edges = set()
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    pkg = mod.split(".") if path.name == "__init__.py" else mod.split(".")[:-1]
                    pkg = pkg[: len(pkg) - (node.level - 1)]
                    base = ".".join(pkg + ([base] if base else []))
                names = [f"{base}.{a.name}" for a in node.names]
            else:
                continue
            for name in names:
                if name.split(".")[0] == "keras_tinyloc":
                    target = resolve(name)
                    if target and target != mod and target != "keras_tinyloc":
                        edges.add(target)
        graph[mod] = edges
    return graph


def part(mod: str) -> str:
    return mod.split(".")[1] if mod.count(".") else "__init__"


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    out: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in graph.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def layer_violations(graph: dict[str, set[str]]) -> list[str]:
    bad = []
    for mod, targets in sorted(graph.items()):
        a = part(mod)
        for t in sorted(targets):
            b = part(t)
            if a == b or b == "__init__":
                continue
            if a not in RANK or b not in RANK:
                bad.append(f"{mod} -> {t}: {a if a not in RANK else b!r} has no layer in RANK")
            elif RANK[b] > RANK[a] or (a, b) in APART:
                bad.append(f"{mod} -> {t}: {a} may not import {b}")
    return bad


def test_no_upward_import_and_no_cycle():
    graph = import_graph(module_files())
    assert layer_violations(graph) == []
    assert cycles(graph) == []


def test_top_level_holds_only_the_entry_points_and_shared_basics():
    top = sorted(p.stem for p in PKG.glob("*.py"))
    assert top == ["__init__", "__main__", "cli", "demo", "errors", "paths"]
    assert sorted(p.name for p in PKG.iterdir() if p.is_dir() and (p / "__init__.py").exists()) == [
        "data", "deploy", "experiments", "models", "training"]


def test_the_checks_catch_a_hidden_upward_import_and_a_cycle(tmp_path):
    root = tmp_path / "keras_tinyloc"
    files = {"__init__.py": "", "errors.py": "", "models/__init__.py": "", "deploy/__init__.py": "",
             "training/__init__.py": "",
             "models/mamba.py": "def f():\n    from keras_tinyloc.deploy import convert\n",  # upward, in a function
             "deploy/convert.py": "from ..training import train\n",
             "training/train.py": "from keras_tinyloc.deploy.convert import x\n"}  # training -> deploy -> training
    for rel, text in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(text)
    graph = import_graph(module_files(root))
    assert graph["keras_tinyloc.deploy.convert"] == {"keras_tinyloc.training.train"}  # relative import resolved
    assert layer_violations(graph) == [
        "keras_tinyloc.models.mamba -> keras_tinyloc.deploy.convert: models may not import deploy",
        "keras_tinyloc.training.train -> keras_tinyloc.deploy.convert: training may not import deploy"]
    assert cycles(graph) == [["keras_tinyloc.deploy.convert", "keras_tinyloc.training.train"]]
