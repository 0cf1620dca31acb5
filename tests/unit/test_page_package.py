"""The web page ships inside the package: a wheel (what `pip install .` and the serving image install) holds every
file of `service/page/`."""

from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from service.routes.page import PAGE_DIR

ROOT = Path(__file__).resolve().parents[2]


def source_copy(folder: Path) -> Path:
    """The project's packaging inputs, copied: a build writes `build/` beside them, which must not land in the tree."""
    folder.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, folder / name)
    for package in ("modelrepo", "service", "distill_training", "distill_bench"):
        shutil.copytree(ROOT / package, folder / package, ignore=shutil.ignore_patterns("__pycache__"))
    return folder


@pytest.mark.timeout(180)
def test_the_wheel_carries_the_page(tmp_path: Path) -> None:
    source = source_copy(tmp_path / "source")
    command = [sys.executable, "-m", "pip", "wheel", str(source), "--no-deps", "--no-build-isolation", "-q", "-w"]
    result = subprocess.run([*command, str(tmp_path)], capture_output=True, text=True, timeout=170, check=False)
    assert result.returncode == 0, result.stderr[-3000:]
    (wheel,) = tmp_path.glob("*.whl")
    with zipfile.ZipFile(wheel) as archive:
        shipped = {name for name in archive.namelist() if name.startswith("service/page/")}
    assert shipped == {f"service/page/{p.name}" for p in PAGE_DIR.iterdir()}
    assert "service/page/index.html" in shipped
