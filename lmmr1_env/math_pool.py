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

import collections
import contextlib
import json
import os
import select
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor

#: Seconds a new worker may take to import sympy and math-verify before the pool gives up on it.
WORKER_START_TIMEOUT = 60.0
#: Requests one worker serves before it is retired and replaced by a fresh one.
MAX_REQUESTS_PER_WORKER = 5000
#: Environment variable through which a worker learns which process it must not outlive.
PARENT_PID_VARIABLE = "LMMR1_MATH_PARENT_PID"


class VerifierTimeout(Exception):
    """The worker did not answer within the time budget."""


#: Requests one worker may hold queued behind the one it is judging (it never waits on the parent between them).
PIPELINE = 2
#: Requests queued behind a busy worker stay under this many bytes in all, so writing them never blocks on a
#: full pipe while the budget of the request being judged runs (a larger request waits for an idle worker).
PIPELINE_BYTES = 32 * 1024


class _Batch:
    """The requests of one :meth:`MathVerifier.judge_many` call and their results, shared by its threads."""

    def __init__(self, lines: list[bytes]) -> None:
        self.lines = lines
        self.results: list[dict | Exception | None] = [None] * len(lines)
        self._queue = collections.deque(range(len(lines)))
        self._left = len(lines)
        self._retries: set[int] = set()
        self._cond = threading.Condition()

    def wait_for_work(self) -> bool:
        """Block until a request is queued (True) or every request has its result (False).

        A thread whose queue looks empty must not leave while requests are still out on other workers: one that
        times out gives the requests queued behind it back, and they need every worker there is.
        """
        with self._cond:
            while not self._queue and self._left:
                self._cond.wait()
            return bool(self._queue)

    def take(self, room: int | None, spare: int = 0) -> int | None:
        """The next request's index, or None when there is none.

        ``room`` (for a request to queue behind a busy one; None: the worker is idle): None also when the next
        request is longer than ``room`` bytes, or when no more than ``spare`` requests are left, which idle
        workers should start on instead of queueing them behind a request that may run its whole budget.
        """
        with self._cond:
            if not self._queue or (room is not None and (len(self.lines[self._queue[0]]) > room
                                                         or len(self._queue) <= spare)):
                return None
            return self._queue.popleft()

    def finish(self, index: int, result: dict | Exception) -> None:
        with self._cond:
            if self.results[index] is not None:  # abandoned by abort()
                return
            self.results[index] = result
            self._left -= 1
            self._cond.notify_all()

    def abort(self, error: BaseException) -> None:
        """Give every request without a result ``error`` and wake every thread: the batch is over."""
        with self._cond:
            failed = error if isinstance(error, Exception) else RuntimeError(f"judging stopped: {error!r}")
            self.results = [failed if r is None else r for r in self.results]
            self._queue.clear()
            self._left = 0
            self._cond.notify_all()

    def give_back(self, indices) -> None:
        """Requests that were sent to a worker that is gone, back to the front in their order."""
        with self._cond:
            self._queue.extendleft(reversed(list(indices)))
            self._cond.notify_all()

    def retried(self, index: int) -> bool:
        """True when ``index`` was retried already; otherwise marks it retried."""
        with self._cond:
            if index in self._retries:
                return True
            self._retries.add(index)
            return False


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
        self._helper_threads: ThreadPoolExecutor | None = None

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

    def warm(self) -> None:
        """Start every worker now and wait until each is ready, so that the first batch waits on none of them."""
        with self._cond:
            self._check_owner()
            new = [self._spawn() for _ in range(self.size - len(self._idle) - self._busy)]
            while len(self._spares) < self.spare_count:
                self._spares.append(self._spawn())
        for worker in new:
            worker.wait_ready()
        with self._cond:
            self._idle.extend(new)
            self._cond.notify_all()

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
        result = self.judge_many([(mode, gold, prediction)], timeout)[0]
        if isinstance(result, Exception):
            raise result
        return result

    def judge_many(self, requests: Sequence[tuple[str, str, str]], timeout: float) -> list[dict | Exception]:
        """Verdicts of ``(mode, gold, prediction)`` requests in order, each under its own ``timeout`` s budget.

        Up to :attr:`size` workers share the requests, each kept up to :data:`PIPELINE` small requests ahead of
        the one it is judging, so no worker waits on this process between requests (one round trip per batch,
        not per request). A request's budget starts when its worker starts on it: a request that runs over is
        a :class:`VerifierTimeout` in the list, its worker is replaced by a warm spare and the requests queued
        behind it go to the next worker. A request whose worker dies under it is retried once (the exception
        is in the list after a second death). Raises RuntimeError only when no worker can start.
        """
        lines = [json.dumps({"mode": m, "gold": g, "prediction": p}).encode() + b"\n" for m, g, p in requests]
        batch = _Batch(lines)
        helpers = min(self.size, len(lines)) - 1
        futures = [self._helpers().submit(self._serve, batch, timeout) for _ in range(helpers)]
        try:
            self._serve(batch, timeout)
        finally:
            for future in futures:
                future.result()
        assert all(r is not None for r in batch.results)
        return batch.results  # type: ignore[return-value]

    def _helpers(self) -> ThreadPoolExecutor:
        with self._cond:
            self._check_owner()
            if self._helper_threads is None:
                self._helper_threads = ThreadPoolExecutor(max_workers=max(1, self.size - 1),
                                                          thread_name_prefix="lmmr1-math-batch")
            return self._helper_threads

    def _serve(self, batch: _Batch, timeout: float) -> None:
        """Feed one worker at a time from ``batch`` until every request has its result (see :meth:`judge_many`)."""
        try:
            self._serve_until_done(batch, timeout)
        except BaseException as exc:
            batch.abort(exc)
            raise

    def _serve_until_done(self, batch: _Batch, timeout: float) -> None:
        while batch.wait_for_work():
            worker = self._checkout()
            in_flight: collections.deque[int] = collections.deque()
            sent_at: dict[int, float] = {}
            free_since = time.monotonic()  # when the worker finished its last request (or became ready)
            try:
                while True:
                    while len(in_flight) < PIPELINE:
                        room = None if not in_flight else PIPELINE_BYTES - sum(len(batch.lines[i]) for i in in_flight)
                        index = batch.take(room, spare=self.size)
                        if index is None:
                            break
                        in_flight.append(index)
                        sent_at[index] = time.monotonic()
                        assert worker.proc.stdin is not None
                        worker.proc.stdin.write(batch.lines[index])
                        worker.proc.stdin.flush()
                    if not in_flight:
                        break
                    head = in_flight[0]
                    started = max(free_since, sent_at[head])
                    reply = worker.read_line(started + timeout)
                    free_since = time.monotonic()
                    batch.finish(in_flight.popleft(), reply)
                    worker.served += 1
            except VerifierTimeout as exc:
                batch.finish(in_flight.popleft(), exc)
                self._discard(worker)
                batch.give_back(in_flight)
                continue
            except (EOFError, OSError, ValueError) as exc:  # the worker died under the head request
                self._discard(worker)
                head = in_flight.popleft()
                if batch.retried(head) or time.monotonic() >= max(free_since, sent_at[head]) + timeout:
                    batch.finish(head, exc)
                else:
                    in_flight.appendleft(head)
                batch.give_back(in_flight)
                continue
            except BaseException:
                self._discard(worker)
                batch.give_back(in_flight)
                raise
            self._release(worker, keep=True)

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
