"""Facts of the machine a model was trained, measured or served on, as cards and reports record them."""

from __future__ import annotations

import os
import platform
from pathlib import Path


def available_cores() -> int:
    """Cores this process may run on (the affinity mask, not the machine's count)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - not Linux
        return max(1, os.cpu_count() or 1)


def cpu_name() -> str:
    """The CPU's model name (/proc/cpuinfo on Linux), else what the platform module knows."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def int8_dot_products() -> list[str]:
    """The CPU's int8 dot-product instructions (/proc/cpuinfo flags: AMX, AVX-512 VNNI, AVX-VNNI) that
    onnxruntime's INT8 kernels run fastest on; empty where it has none, and INT8 may then be slower than FP32."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return []
    flags = next((line.split(":", 1)[1].split() for line in text.splitlines() if line.startswith("flags")), [])
    return [f for f in ("amx_int8", "avx512_vnni", "avx_vnni") if f in flags]
