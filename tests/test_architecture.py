"""The import rules of STYLE.md: imports flow one way, and inference never loads training code."""

from __future__ import annotations

import ast
import subprocess
import sys

from conftest import ROOT

PACKAGE = ROOT / "nerfocal"


def _nerfocal_imports(module: str) -> set[str]:
    """The nerfocal modules one module imports (top level or inside functions), from its source."""
    tree = ast.parse((PACKAGE / f"{module}.py").read_text(encoding="utf-8"))
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("nerfocal"):
            found.add(node.module)
        elif isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name.startswith("nerfocal"))
    return found


def test_labels_and_losses_are_leaves():
    assert _nerfocal_imports("labels") == set()
    assert _nerfocal_imports("losses_extra") == set()
    assert _nerfocal_imports("losses") == {"nerfocal.losses_extra"}  # one module split in two


def test_only_the_cli_modules_import_the_cli():
    for path in PACKAGE.glob("*.py"):
        if path.stem.startswith("cli") or path.stem == "__main__":
            continue
        imports = _nerfocal_imports(path.stem)
        assert not {m for m in imports if m.startswith("nerfocal.cli")}, path.name


def test_predict_loads_no_training_code():
    code = (
        "import sys, nerfocal.predict, nerfocal.loading, nerfocal.decode;"
        "banned = ('nerfocal.trainer', 'nerfocal.losses', 'nerfocal.losses_extra', 'nerfocal.metrics',"
        " 'nerfocal.data', 'nerfocal.cli_train', 'seqeval', 'datasets');"
        "print(','.join(m for m in banned if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT)
    assert out.stdout.strip() == "", f"nerfocal.predict pulls in training code: {out.stdout.strip()}"
