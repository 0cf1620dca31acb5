"""Who may import whom: the packages meet only in the contract package, and the serving install stays small.

Each check imports every module of a package in a fresh interpreter and looks at what ended up loaded, so an
import hidden behind another module counts too.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

_LOADED = """
import importlib, json, pkgutil, sys
package = importlib.import_module(sys.argv[1])
for info in pkgutil.walk_packages(package.__path__, package.__name__ + "."):
    if not info.name.endswith("__main__"):
        importlib.import_module(info.name)
importlib.import_module(sys.argv[1] + ".__main__") if sys.argv[2] == "main" else None
print(json.dumps(sorted({name.split(".")[0] for name in sys.modules})))
"""


def top_level_modules_loaded(package: str, *, with_main: bool = True) -> set[str]:
    """The top-level modules loaded after importing every module of `package` (its `__main__` too)."""
    command = [sys.executable, "-c", _LOADED, package, "main" if with_main else ""]
    result = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=120, check=False)
    assert result.returncode == 0, result.stderr[-3000:]
    return set(json.loads(result.stdout.splitlines()[-1]))


@pytest.mark.parametrize("package", ["distill_training", "distill_bench"])
def test_training_and_benchmarks_import_no_service_module(package: str) -> None:
    loaded = top_level_modules_loaded(package)
    assert "modelrepo" in loaded  # the scan did import the package
    assert "service" not in loaded


def test_the_contract_package_imports_neither_torch_nor_the_web_stack() -> None:
    loaded = top_level_modules_loaded("modelrepo", with_main=False)
    assert loaded.isdisjoint({"torch", "fastapi", "starlette", "uvicorn", "service", "distill_training"})


def test_the_service_imports_no_torch_and_no_other_package_of_ours() -> None:
    loaded = top_level_modules_loaded("service")
    assert loaded.isdisjoint({"torch", "distill_training", "distill_bench"})
