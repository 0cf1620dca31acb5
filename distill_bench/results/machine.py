"""What a report names as the machine it ran on."""

from __future__ import annotations

import os
import platform
from dataclasses import dataclass

from modelrepo.host import cpu_name


@dataclass(frozen=True)
class Machine:
    cpu: str
    cores: int | None  # os.cpu_count(): None where the platform cannot tell
    platform: str
    python: str


def this_machine() -> Machine:
    return Machine(cpu_name(), os.cpu_count(), platform.platform(), platform.python_version())
