"""The package's layers (docs/architecture.md): imports only go downward, no import circles, and
no module grows past ~400 lines without a reason at its top. Read from the source (AST), so a
lazy import inside a function counts as much as one at the top."""

from __future__ import annotations

import ast
from collections import defaultdict
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "python" / "ubmd"

#: bottom to top; a module may import from its own layer and the layers below it (docs/architecture.md)
LAYERS = [
    ("foundation", ["ubmd", "ubmd.keys", "ubmd.config", "ubmd.data", "ubmd.neighbours",
                    "ubmd.io", "ubmd.executors", "ubmd.signals", "ubmd.plugin", "ubmd.progress",
                    "ubmd.errors", "ubmd.figures"]),
    ("model", ["ubmd.model"]),
    ("prediction", ["ubmd.prediction"]),
    ("uncertainty", ["ubmd.uncertainty"]),
    ("bias", ["ubmd.bias"]),
    ("model file", ["ubmd.model_file"]),
    ("calculator", ["ubmd.calculator", "ubmd.evaluation"]),
    ("training", ["ubmd.training"]),
    ("selection, labelling", ["ubmd.selection", "ubmd.labelling"]),
    ("analysis", ["ubmd.analysis"]),
    ("md", ["ubmd.md"]),
    ("al", ["ubmd.al"]),
    ("cli", ["ubmd.cli"]),
]
MAX_LINES = 400


def modules() -> dict[str, Path]:
    out = {}
    for path in PACKAGE.rglob("*.py"):
        name = ".".join(("ubmd",) + path.relative_to(PACKAGE).with_suffix("").parts)
        out[name.removesuffix(".__init__")] = path
    return out


def import_graph() -> dict[str, set[str]]:
    """module -> the package modules it imports (relative and absolute, at any depth)."""
    mods = modules()
    graph: dict[str, set[str]] = defaultdict(set)
    for name, path in mods.items():
        base = name.split(".") if path.name == "__init__.py" else name.split(".")[:-1]
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                mod = node.module or ""
                if node.level:
                    parts = base[: len(base) - (node.level - 1)]
                    mod = ".".join(parts + ([mod] if mod else []))
                targets = [mod] + [f"{mod}.{a.name}" for a in node.names]
            else:
                continue
            for t in targets:
                while t and t not in mods:
                    t = t.rpartition(".")[0]
                if t and t != name and not name.startswith(t + "."):
                    graph[name].add(t)
    return graph


def layer_of(module: str) -> int:
    best, level = -1, None
    for k, (_, prefixes) in enumerate(LAYERS):
        for p in prefixes:
            if (module == p or module.startswith(p + ".")) and len(p) > best:
                best, level = len(p), k
    if level is None:
        raise AssertionError(f"{module} is in no layer: add it to LAYERS and docs/architecture.md")
    return level


def test_every_module_has_a_layer():
    for name in modules():
        layer_of(name)


def test_imports_only_go_downward():
    bad = [f"{m} ({LAYERS[layer_of(m)][0]}) imports {t} ({LAYERS[layer_of(t)][0]})"
           for m, targets in import_graph().items() for t in targets
           if layer_of(t) > layer_of(m)]
    assert not bad, "imports against the layers:\n" + "\n".join(sorted(bad))


def test_no_import_circles():
    graph = import_graph()
    index, low, stack, on_stack, circles = {}, {}, [], set(), []

    def visit(v):  # Tarjan's strongly connected components
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            group = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                group.append(w)
                if w == v:
                    break
            if len(group) > 1:
                circles.append(sorted(group))

    for v in list(modules()):
        if v not in index:
            visit(v)
    assert not circles, f"import circles: {circles}"


def test_the_check_finds_a_circle_and_an_upward_import(tmp_path, monkeypatch):
    """The checks above can fail: a package with a ubmd.model -> ubmd.md import has both."""
    pkg = tmp_path / "ubmd"
    (pkg / "model").mkdir(parents=True)
    (pkg / "md").mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "model" / "__init__.py").write_text("from ..md import x\n")
    (pkg / "md" / "__init__.py").write_text("def f():\n    from ubmd.model import y\n")
    monkeypatch.setattr(__import__(__name__), "PACKAGE", pkg)
    with pytest.raises(AssertionError, match=r"ubmd.model \(model\) imports ubmd.md \(md\)"):
        test_imports_only_go_downward()
    with pytest.raises(AssertionError, match="import circles"):
        test_no_import_circles()


def test_modules_stay_small():
    """~400 lines per module, unless the module says why at its top ("Long: ...")."""
    long = [f"{p.relative_to(PACKAGE)}: {n} lines" for p in PACKAGE.rglob("*.py")
            if (n := len(p.read_text().splitlines())) > MAX_LINES
            and "Long: " not in p.read_text()[:3000]]
    assert not long, "modules over ~400 lines without a reason at the top:\n" + "\n".join(long)
