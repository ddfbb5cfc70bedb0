"""Worker process for math answer checking: JSON lines in on stdin, JSON lines out on stdout.

Started by :class:`lmmr1_env.rewards.MathVerifier` with ``python -m lmmr1_env._math_worker``, never
by ``multiprocessing`` (which would re-import the user's ``__main__``). The parent kills it when a
request runs past its time budget, so nothing here needs a timeout of its own. It must never outlive its
parent, even a SIGKILLed one (a worker stuck on a power tower would otherwise burn a core for minutes):
on Linux the kernel's parent-death signal kills it, and a watchdog thread checks the parent elsewhere.
"""

from __future__ import annotations

import ctypes
import json
import logging
import os
import signal
import sys
import threading
import time

_LOG_CHARS = 300


class _CapLogRecords(logging.Filter):
    """math-verify logs whole inputs on some failures: keep each record short."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if len(message) > _LOG_CHARS:
            record.msg, record.args = message[:_LOG_CHARS] + f"... [{len(message)} chars]", ()
        return True


_PR_SET_PDEATHSIG = 1


def die_with_parent(parent_pid: int | None) -> None:
    """Exit when the process that started this worker is gone, however it died."""
    if parent_pid is None:
        return
    if sys.platform.startswith("linux"):
        # The kernel's signal also reaches a worker busy in C code that never releases the GIL.
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
    if os.getppid() != parent_pid:  # the parent died before the signal was armed
        os._exit(1)

    def watch() -> None:
        while os.getppid() == parent_pid:
            time.sleep(0.5)
        os._exit(1)

    threading.Thread(target=watch, name="parent-watchdog", daemon=True).start()


def main() -> None:
    parent = os.environ.get("LMMR1_MATH_PARENT_PID")  # lmmr1_env.math_pool.PARENT_PID_VARIABLE
    die_with_parent(int(parent) if parent else None)
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    for handler in logging.getLogger().handlers:
        handler.addFilter(_CapLogRecords())
    from lmmr1_env.math_judge import JUDGES  # after logging is set up: importing sympy is the slow part

    # sympy and math-verify set up parts of themselves on first use (0.1-0.5 s): do it before the first budget.
    JUDGES["answer"]("\\frac{\\pi}{2}", "0.5\\pi")
    JUDGES["lmmr1"]("$\\sqrt{2}$", "<answer>$\\boxed{\\sqrt{2}}$</answer>")
    out = sys.stdout
    out.write(json.dumps({"ready": True}) + "\n")
    out.flush()
    for line in sys.stdin:
        request = json.loads(line)
        try:
            reply = JUDGES[request["mode"]](request["gold"], request["prediction"])
        except Exception as exc:  # noqa: BLE001 - reported to the parent, which puts it in info
            reply = {"accuracy": 0.0, "error": f"{type(exc).__name__}: {str(exc)[:_LOG_CHARS]}"}
        out.write(json.dumps(reply) + "\n")
        out.flush()


if __name__ == "__main__":
    main()
