"""matplotlib's headless backend is chosen once in the training package, by the module that draws the plots."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[2] / "distill_training"


def test_only_plots_py_selects_the_matplotlib_backend() -> None:
    selecting = []
    for path in sorted(PACKAGE.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            func = node.func if isinstance(node, ast.Call) else None
            if isinstance(func, ast.Attribute) and func.attr == "use" and ast.unparse(func.value) == "matplotlib":
                selecting.append(path.name)
    assert selecting == ["plots.py"]
