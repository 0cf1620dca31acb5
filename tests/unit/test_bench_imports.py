"""The benchmarks measure the service from outside: no module of `distill_bench` imports a `service` module, so
they run against any service build and state the settings they start it with."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_distill_bench_imports_no_service_module() -> None:
    script = textwrap.dedent(
        """
        import importlib, pkgutil, sys
        import distill_bench
        names = [m.name for m in pkgutil.walk_packages(distill_bench.__path__, "distill_bench.")]
        for name in names:
            importlib.import_module(name)
        print(len(names), "modules")
        loaded = sorted(m for m in sys.modules if m == "service" or m.startswith("service."))
        assert not loaded, loaded
        """
    )
    result = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    assert int(result.stdout.split()[0]) > 20  # every module was imported, not an empty walk
