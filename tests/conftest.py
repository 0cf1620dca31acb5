"""Test tiers are folders; each test is marked by the folder it lives in (unit, api, integration, deploy)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

TIERS = ("unit", "api", "integration", "deploy")
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        parts = Path(str(item.fspath)).parts
        for tier in TIERS:
            if tier in parts:
                item.add_marker(getattr(pytest.mark, tier))


def require(condition: bool, reason: str) -> None:
    """Skip when a component is missing on a developer's machine; in CI a missing component is a failure."""
    if condition:
        return
    if IN_CI:
        pytest.fail(f"required in CI: {reason}")
    pytest.skip(reason)
