"""The quick profile's model repository, built by the real CLI: tiny nets on a subset of Fashion-MNIST (a minute
or two of training on 2 cores). The session fixture `quick_build` (tests/conftest.py) builds it once per test
session; every test that needs trained models shares it.

Layout of the folder it builds into: `models/` (the served repository), `run/` (checkpoints, caches, the
published members, candidates and control), `reports/` (the distillation report).
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def run_pipeline(folder: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    """`python -m distill_training pipeline --profile quick` into `folder` (with `extra` arguments); again on
    the same folder, it finds everything up to date."""
    cmd = [
        sys.executable,
        "-m",
        "distill_training",
        "pipeline",
        "--profile",
        "quick",
        "--out",
        str(folder / "models"),
        "--run-dir",
        str(folder / "run"),
        "--reports",
        str(folder / "reports"),
        *extra,
    ]
    return subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=540, check=False)
