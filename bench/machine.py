"""The line every benchmark prints first: what it ran on."""

from __future__ import annotations

import os
import platform


def describe() -> str:
    """CPU model, logical CPU count and Python version (``/proc/cpuinfo`` where there is one)."""
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    return f"{cpu}; {os.cpu_count()} logical CPUs; Python {platform.python_version()}"
