"""A pool of math-verify worker processes with a hard time budget per request.

math-verify can take seconds to minutes on hostile input (power towers, thousands of nested ``\\frac``), and
a Python thread cannot be interrupted inside it, so each judgement runs in a child process
(:mod:`lmmr1_env._math_worker`) that is killed when the request runs over. What the pool guarantees:

- **a bounded wait per response**: a request gets a worker that has already imported sympy (a warm spare
  replaces a killed worker at once, and a new spare is started in the background), so the budget is spent
  judging, not restarting;
- **parallel judging**: up to ``workers`` requests run at once (one per core by default), so N hostile
  responses judged from N threads cost about budget × N / workers;
- **no leaks**: a killed worker is reaped, a worker is retired after ``max_requests`` requests (math-verify's
  caches never grow without bound), and every worker dies with the process that started it (Linux's
  parent-death signal, plus a watchdog thread elsewhere), even when that process is SIGKILLed;
- **transparent replacement**: a worker that died between requests (killed from outside, out of memory) is
  replaced and the request retried once, within its budget.
"""

from __future__ import annotations

import contextlib
import json
import os
import select
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor

#: Seconds a new worker may take to import sympy and math-verify before the pool gives up on it.
WORKER_START_TIMEOUT = 60.0
#: Requests one worker serves before it is retired and replaced by a fresh one.
MAX_REQUESTS_PER_WORKER = 5000
#: Environment variable through which a worker learns which process it must not outlive.
PARENT_PID_VARIABLE = "LMMR1_MATH_PARENT_PID"


class VerifierTimeout(Exception):
    """The worker did not answer within the time budget."""


#: Environment variable that sets the pool size (e.g. 1 in each of several Ray runners sharing a machine).
WORKERS_VARIABLE = "LMMR1_MATH_WORKERS"


def default_workers() -> int:
    """``$LMMR1_MATH_WORKERS``, else one worker per core this process may run on, at most 8."""
    if os.environ.get(WORKERS_VARIABLE):
        try:
            count = int(os.environ[WORKERS_VARIABLE])
        except ValueError:
            count = 0
        if count < 1:
            raise ValueError(f"{WORKERS_VARIABLE} must be a whole number of at least 1, got "
                             f"{os.environ[WORKERS_VARIABLE]!r}")
        return count
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        cores = os.cpu_count() or 1
    return max(1, min(8, cores))


class _Worker:
    """One worker process and what it has written that was not read yet."""

    def __init__(self, proc: subprocess.Popen):
        self.proc = proc
        self.buffer = b""
        self.ready = False
        self.served = 0
        self.generation = 0

    def read_line(self, deadline: float) -> dict:
        """The next JSON line; raises VerifierTimeout at ``deadline`` (monotonic), EOFError if the worker died."""
        assert self.proc.stdout is not None
        fd = self.proc.stdout.fileno()
        while b"\n" not in self.buffer:
            left = deadline - time.monotonic()
            if left <= 0:
                raise VerifierTimeout
            readable, _, _ = select.select([fd], [], [], left)
            if readable:
                chunk = os.read(fd, 65536)
                if not chunk:
                    raise EOFError("math-verify worker exited")
                self.buffer += chunk
        line, self.buffer = self.buffer.split(b"\n", 1)
        return json.loads(line)

    def wait_ready(self) -> None:
        """Block until the worker has imported math-verify (it says so with a ready line)."""
        try:
            ready = self.read_line(time.monotonic() + WORKER_START_TIMEOUT)
        except (VerifierTimeout, EOFError, ValueError) as exc:
            raise RuntimeError(
                "the math-verify worker did not start: is math-verify[antlr4_13_2] installed? "
                f"Try: {sys.executable} -m lmmr1_env._math_worker"
            ) from exc
        if not ready.get("ready"):
            raise RuntimeError(f"the math-verify worker sent {ready!r} instead of its ready line")
        self.ready = True

    def alive(self) -> bool:
        return self.proc.poll() is None

    def kill(self) -> None:
        """Kill and reap the process and close its pipes (no zombie, no open descriptor left)."""
        with contextlib.suppress(ProcessLookupError):
            self.proc.kill()
        self.proc.wait()
        for pipe in (self.proc.stdin, self.proc.stdout):
            with contextlib.suppress(OSError):  # a half-written request breaks the pipe: expected
                pipe.close()


class MathVerifier:
    """Judges answers with math-verify in a pool of worker processes, each request under a hard time budget.

    ``workers`` requests run at once (default :func:`default_workers`); ``spares`` warm workers (default: up to
    two) wait to replace one that is killed or retired. Workers start on first use. Thread-safe; a forked child
    starts its own workers instead of sharing the parent's pipes.
    """

    def __init__(self, workers: int | None = None, *, spares: int | None = None,
                 max_requests: int = MAX_REQUESTS_PER_WORKER) -> None:
        if workers is not None and workers < 1:
            raise ValueError(f"workers must be at least 1, got {workers}")
        self.size = workers or default_workers()
        # Two warm spares cover two workers timing out together (about 85 MB each).
        self.spare_count = min(self.size, 2) if spares is None else spares
        if self.spare_count < 0 or max_requests < 1:
            raise ValueError(f"spares must be >= 0 and max_requests >= 1, got {spares} and {max_requests}")
        self.max_requests = max_requests
        self._cond = threading.Condition()
        self._reset_for(os.getpid())
        #: How many times a worker was killed (time budget) or found dead, in this process.
        self.restarts = 0

    def _reset_for(self, pid: int) -> None:
        self._owner_pid = pid
        self._idle: list[_Worker] = []
        self._spares: list[_Worker] = []
        self._busy = 0
        self._generation = 0
        # Workers are started from this one long-lived thread: Linux's parent-death signal fires when the
        # *thread* that forked a child exits, so a short-lived caller thread must never be the parent.
        self._spawner = ThreadPoolExecutor(max_workers=1, thread_name_prefix="lmmr1-math-spawner")

    # ---- the pool ----

    def _spawn(self) -> _Worker:
        worker = self._spawner.submit(_start_process).result()
        worker.generation = self._generation
        return worker

    def _check_owner(self) -> None:
        if self._owner_pid != os.getpid():  # inherited through fork: those workers are the parent's
            self._reset_for(os.getpid())

    def _checkout(self) -> _Worker:
        """A ready worker for one request; blocks while all ``size`` workers are busy."""
        with self._cond:
            self._check_owner()
            while True:
                if self._idle:
                    worker = self._idle.pop()
                    if worker.alive():
                        break
                    worker.kill()  # died while idle (killed from outside): replace it
                    self.restarts += 1
                    continue
                if self._busy < self.size:
                    worker = self._spares.pop(0) if self._spares else self._spawn()
                    break
                self._cond.wait()
            self._busy += 1
            while len(self._spares) < self.spare_count:
                self._spares.append(self._spawn())
        if not worker.ready:
            try:
                worker.wait_ready()
            except RuntimeError:
                self._release(worker, keep=False)
                raise
        return worker

    def _release(self, worker: _Worker, *, keep: bool) -> None:
        with self._cond:
            if self._owner_pid != os.getpid():
                return
            self._busy -= 1
            if keep and worker.served < self.max_requests and worker.generation == self._generation:
                self._idle.append(worker)
            else:
                worker.kill()
            self._cond.notify()

    def judge(self, mode: str, gold: str, prediction: str, timeout: float) -> dict:
        """The verdict ``{"accuracy", "gold_parsed", "pred_parsed", ...}``; VerifierTimeout after ``timeout`` s.

        A worker that dies mid-request (EOFError, OSError) is replaced and the request retried once with the
        time that is left; a second death raises.
        """
        request = json.dumps({"mode": mode, "gold": gold, "prediction": prediction}).encode() + b"\n"
        deadline = None
        for attempt in range(2):
            worker = self._checkout()
            if deadline is None:  # the budget starts once a worker is ready: waiting for one is not judging
                deadline = time.monotonic() + timeout
            try:
                assert worker.proc.stdin is not None
                worker.proc.stdin.write(request)
                worker.proc.stdin.flush()
                reply = worker.read_line(deadline)
            except VerifierTimeout:
                self._discard(worker)
                raise
            except (EOFError, OSError, ValueError):
                self._discard(worker)
                if attempt or time.monotonic() >= deadline:
                    raise
                continue
            worker.served += 1
            self._release(worker, keep=True)
            return reply
        raise AssertionError("unreachable")

    def _discard(self, worker: _Worker) -> None:
        with self._cond:
            self.restarts += 1
        self._release(worker, keep=False)

    def pids(self) -> list[int]:
        """Process ids of the workers this pool holds now (idle and spare; for tests and diagnostics)."""
        with self._cond:
            return [w.proc.pid for w in (*self._idle, *self._spares)] if self._owner_pid == os.getpid() else []

    def close(self) -> None:
        """Stop the idle and spare workers (busy ones stop when their request ends); the pool restarts on use."""
        with self._cond:
            if self._owner_pid != os.getpid():
                return
            for worker in (*self._idle, *self._spares):
                worker.kill()
            self._idle, self._spares = [], []
            self._generation += 1  # busy workers are older: they are killed when released

    def __del__(self) -> None:
        with contextlib.suppress(Exception):
            self.close()


def _start_process() -> _Worker:
    env = dict(os.environ, PYTHONUNBUFFERED="1", **{PARENT_PID_VARIABLE: str(os.getpid())})
    # The worker must import this same lmmr1_env, wherever it is imported from.
    package_root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    env["PYTHONPATH"] = os.pathsep.join(p for p in (package_root, env.get("PYTHONPATH")) if p)
    proc = subprocess.Popen([sys.executable, "-m", "lmmr1_env._math_worker"], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=env, close_fds=True)
    return _Worker(proc)
