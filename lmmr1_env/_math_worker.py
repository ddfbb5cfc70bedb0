"""Worker process for math answer checking: JSON lines in on stdin, JSON lines out on stdout.

Started by :class:`lmmr1_env.rewards.MathVerifier` with ``python -m lmmr1_env._math_worker``, never
by ``multiprocessing`` (which would re-import the user's ``__main__``). The parent kills it when a
request runs past its time budget, so nothing here needs a timeout of its own.
"""

from __future__ import annotations

import json
import logging
import sys

_LOG_CHARS = 300


class _CapLogRecords(logging.Filter):
    """math-verify logs whole inputs on some failures: keep each record short."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if len(message) > _LOG_CHARS:
            record.msg, record.args = message[:_LOG_CHARS] + f"... [{len(message)} chars]", ()
        return True


def main() -> None:
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    for handler in logging.getLogger().handlers:
        handler.addFilter(_CapLogRecords())
    from lmmr1_env.math_judge import JUDGES  # after logging is set up: importing sympy is the slow part

    out = sys.stdout
    out.write(json.dumps({"ready": True}) + "\n")
    out.flush()
    for line in sys.stdin:
        request = json.loads(line)
        try:
            reply = JUDGES[request["mode"]](request["gold"], request["prediction"])
        except Exception as exc:  # noqa: BLE001 - reported to the parent, which puts it in info
            reply = {"accuracy": 0.0, "error": f"{type(exc).__name__}: {str(exc)[:_LOG_CHARS]}"}
        reply["id"] = request["id"]
        out.write(json.dumps(reply) + "\n")
        out.flush()


if __name__ == "__main__":
    main()
