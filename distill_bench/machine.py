"""What a report names as the machine it ran on."""

from __future__ import annotations

import os
import platform
from typing import Any

from modelrepo.host import cpu_name


def machine() -> dict[str, Any]:
    return {
        "cpu": cpu_name(),
        "cores": os.cpu_count(),
        "platform": platform.platform(),
        "python": platform.python_version(),
    }
