"""The import rules of STYLE.md and docs/architecture.md, checked statically on the package source.

Imports flow one way: the leaves (labels, io) import no other nerfocal module; the losses import only
the leaves; prediction loads no training code; nothing in the package imports the command lines; no
command line imports another; there is no import cycle; no module passes 400 lines.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

from fixtures import ROOT

PACKAGE = ROOT / "nerfocal"


def _module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {_module_name(p): p for p in PACKAGE.rglob("*.py")}


def _imports(module: str) -> set[str]:
    """The nerfocal modules ``module`` imports (top level or inside functions), from its source."""
    tree = ast.parse(MODULES[module].read_text(encoding="utf-8"))
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("nerfocal"):
            found.add(node.module)
            found.update(f"{node.module}.{a.name}" for a in node.names)
        elif isinstance(node, ast.Import):
            found.update(a.name for a in node.names)
    return {m for m in found if m in MODULES and m != module}


def _graph() -> dict[str, set[str]]:
    graph = {m: _imports(m) for m in MODULES}
    # a package's __init__ re-exporting its children is not a cycle with them
    for m, deps in graph.items():
        if MODULES[m].name != "__init__.py":
            graph[m] = {d for d in deps if not (MODULES[d].name == "__init__.py" and m.startswith(d + "."))}
    return graph


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in graph:
        if v not in index:
            visit(v)
    return found


def test_the_package_has_no_import_cycle():
    assert _cycles(_graph()) == []


def test_the_cycle_check_finds_a_cycle():
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_leaves_stay_leaves():
    assert _imports("nerfocal.labels") == set()
    if "nerfocal.io" in MODULES:
        assert _imports("nerfocal.io") == set()
    for module in MODULES:
        if module.startswith("nerfocal.losses"):
            outside = {m for m in _imports(module) if not m.startswith("nerfocal.losses")}
            assert outside <= {"nerfocal.labels"}, (module, outside)


def test_nothing_imports_the_command_lines_and_no_command_line_imports_another():
    for module, deps in _graph().items():
        cli = {d for d in deps if d == "nerfocal.cli" or d.startswith("nerfocal.cli.")}
        if module.startswith("nerfocal.cli"):
            if module not in ("nerfocal.cli", "nerfocal.cli.__main__"):  # the dispatcher
                assert cli == set(), (module, cli)
        else:
            assert cli == set(), (module, cli)


def test_benchmarks_scripts_and_examples_import_only_the_library_or_the_dispatcher():
    for folder in ("benchmarks", "scripts", "examples"):
        for path in (ROOT / folder).rglob("*.py"):
            if path.name == "train_ner.py":  # the training entry point itself
                continue
            tree = ast.parse(path.read_text(encoding="utf-8"))
            for node in ast.walk(tree):
                names = [a.name for a in node.names] if isinstance(node, ast.Import) else []
                if isinstance(node, ast.ImportFrom) and node.module:
                    names = [node.module]
                # the dispatcher nerfocal.cli.main is the public command line; its subcommands are not
                assert not any(n.startswith("nerfocal.cli.") for n in names), path


def test_no_module_is_over_400_lines():
    long = {m: n for m, p in MODULES.items() if (n := len(p.read_text(encoding="utf-8").splitlines())) > 400}
    assert long == {}


def test_predict_loads_no_training_code():
    code = (
        "import sys, nerfocal.predict, nerfocal.loading, nerfocal.decode;"
        "banned = ('nerfocal.trainer', 'nerfocal.losses', 'nerfocal.metrics', 'nerfocal.training',"
        " 'nerfocal.data', 'nerfocal.encode', 'seqeval', 'datasets');"
        "print(','.join(m for m in banned if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT)
    assert out.stdout.strip() == "", f"nerfocal.predict pulls in training code: {out.stdout.strip()}"
