"""The line every benchmark prints first: what it ran on."""

from __future__ import annotations

import os
import platform
import subprocess
import time


def describe() -> str:
    """CPU model, logical CPU count and Python version (``/proc/cpuinfo`` where there is one)."""
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    return f"{cpu}; {os.cpu_count()} logical CPUs; Python {platform.python_version()}"


def run_measured(command: list[str], cwd=None, env: dict | None = None) -> tuple[int, float, float]:
    """Run ``command``; its exit status, wall seconds and peak RSS in GB (``wait4`` of that one process)."""
    start = time.perf_counter()
    proc = subprocess.Popen(command, cwd=cwd, env=env)
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    return proc.returncode, time.perf_counter() - start, usage.ru_maxrss / 1024 ** 2
