"""Rule-based math reward, as LMM-R1 defines it: 0.5 × format + 1.0 × accuracy.

Two modes (DESIGN.md): ``"answer"`` judges the text inside ``<answer>`` the way a user expects;
``"lmmr1"`` reproduces TideDra/lmm-r1's ``math_verifier.py`` bit for bit. Both share a hard time budget
per response: math-verify runs in a worker process (:class:`MathVerifier`) that is killed and replaced
when a response runs over, which then scores accuracy 0 and says so. Model text is only ever parsed,
never evaluated as code, and never logged whole.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import select
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field

FORMAT_WEIGHT = 0.5
ACCURACY_WEIGHT = 1.0
REWARD_MODES = ("answer", "lmmr1")
#: Seconds one response may spend in math-verify before it scores 0.
DEFAULT_VERIFY_TIMEOUT = 3.0
#: In "answer" mode a longer <answer> is not a final answer; it scores 0 without being parsed.
MAX_ANSWER_CHARS = 10_000
#: End-of-sequence markers LMM-R1 strips before checking anything.
EOS_TOKENS = ("<|im_end|>", "<|endoftext|>", "<end_of_turn>", "<\uff5cend\u2581of\u2581sentence\uff5c>")
_FORMAT = re.compile(r"^<think>(?:(?!</think>).)*</think><answer>(?:(?!</answer>).)*</answer>\Z", re.DOTALL)
_ANSWER = re.compile(r"<answer>(.*?)</answer>", re.DOTALL)
_WORKER_START_TIMEOUT = 60.0


def strip_eos(response: str) -> str:
    """The response without end-of-sequence tokens and surrounding whitespace (LMM-R1's first step)."""
    for token in EOS_TOKENS:
        response = response.replace(token, "")
    return response.strip()


def format_ok(response: str) -> bool:
    """True when the (EOS-stripped) response is exactly ``<think>…</think><answer>…</answer>``."""
    return response.count("<think>") == 1 and response.count("<answer>") == 1 and bool(_FORMAT.match(response))


def extract_answer(response: str) -> str | None:
    """The text inside the last ``<answer>…</answer>`` pair, stripped, or None when there is none."""
    found = _ANSWER.findall(response)
    return found[-1].strip() if found else None


def shorten(text: str, limit: int = 200) -> str:
    """``text`` cut to ``limit`` characters with a count of what was cut: safe for logs and info."""
    return text if len(text) <= limit else f"{text[:limit]}... [{len(text)} chars]"


@dataclass(frozen=True)
class MathScore:
    """The math reward of one response and how it was reached."""

    reward: float
    terms: dict[str, float]
    #: What was judged: the ``<answer>`` text ("answer" mode) or the whole response ("lmmr1" mode), shortened.
    prediction: str | None
    #: Why the response could not be read, or None.
    parse_error: str | None = None
    #: True when math-verify ran past the time budget (accuracy then 0).
    timed_out: bool = False
    #: False when math-verify could not parse the gold answer (a dataset problem, not the model's).
    gold_parsed: bool = True
    seconds: float = 0.0
    extra: dict = field(default_factory=dict)


class VerifierTimeout(Exception):
    """The worker did not answer within the time budget."""


class MathVerifier:
    """Runs :mod:`lmmr1_env.math_judge` in a child process, with a hard time budget per request.

    One worker per process, started on first use (about 1 s to import sympy) and replaced after a
    timeout or a crash. Thread-safe; a forked child starts its own worker instead of sharing the pipe.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._proc: subprocess.Popen | None = None
        self._owner_pid = -1
        self._buffer = b""
        self._next_id = 0
        self._ready = False
        #: How many times a worker was killed (time budget) or died, in this process.
        self.restarts = 0

    def _start(self) -> None:
        """Launch a worker; its "ready" line is read by the next request, so start-up overlaps other work."""
        env = dict(os.environ, PYTHONUNBUFFERED="1")
        # The worker must import this same lmmr1_env, wherever it is imported from.
        package_root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
        env["PYTHONPATH"] = os.pathsep.join(p for p in (package_root, env.get("PYTHONPATH")) if p)
        self._proc = subprocess.Popen(
            [sys.executable, "-m", "lmmr1_env._math_worker"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            env=env,
            close_fds=True,
        )
        self._owner_pid = os.getpid()
        self._buffer = b""
        self._ready = False

    def _wait_ready(self) -> None:
        try:
            ready = self._read_line(time.monotonic() + _WORKER_START_TIMEOUT)
        except (VerifierTimeout, EOFError) as exc:
            self._kill()
            raise RuntimeError(
                "the math-verify worker did not start: is math-verify[antlr4_13_2] installed? "
                f"Try: {sys.executable} -m lmmr1_env._math_worker"
            ) from exc
        if not ready.get("ready"):
            raise RuntimeError(f"the math-verify worker sent {ready!r} instead of its ready line")
        self._ready = True

    def _kill(self) -> None:
        if self._proc is not None and self._owner_pid == os.getpid():
            self._proc.kill()
            self._proc.wait()
            for pipe in (self._proc.stdin, self._proc.stdout):
                with contextlib.suppress(OSError):  # a half-written request breaks the pipe: expected
                    pipe.close()
        self._proc = None

    def _read_line(self, deadline: float) -> dict:
        assert self._proc is not None and self._proc.stdout is not None
        fd = self._proc.stdout.fileno()
        while b"\n" not in self._buffer:
            left = deadline - time.monotonic()
            if left <= 0:
                raise VerifierTimeout
            readable, _, _ = select.select([fd], [], [], left)
            if readable:
                chunk = os.read(fd, 65536)
                if not chunk:
                    raise EOFError("math-verify worker exited")
                self._buffer += chunk
        line, self._buffer = self._buffer.split(b"\n", 1)
        return json.loads(line)

    def judge(self, mode: str, gold: str, prediction: str, timeout: float) -> dict:
        """``{"accuracy", "gold_parsed", "pred_parsed", ...}`` from the worker; raises VerifierTimeout."""
        with self._lock:
            if self._proc is None or self._owner_pid != os.getpid() or self._proc.poll() is not None:
                if self._owner_pid != os.getpid():
                    self._proc = None  # inherited through fork: the parent owns that worker
                else:
                    self._kill()
                self._start()
            if not self._ready:
                self._wait_ready()
            self._next_id += 1
            request = json.dumps({"id": self._next_id, "mode": mode, "gold": gold, "prediction": prediction})
            try:
                assert self._proc is not None and self._proc.stdin is not None
                self._proc.stdin.write(request.encode() + b"\n")
                self._proc.stdin.flush()
                reply = self._read_line(time.monotonic() + timeout)
            except (VerifierTimeout, EOFError, OSError, ValueError):
                self._kill()
                self.restarts += 1
                self._start()  # the replacement imports sympy while the caller moves on
                raise
            if reply.get("id") != self._next_id:  # cannot happen with one request in flight; never trust it
                self._kill()
                raise EOFError("math-verify worker answered out of order")
            return reply

    def close(self) -> None:
        """Stop the worker (it is restarted on the next request)."""
        with self._lock:
            self._kill()


_VERIFIER = MathVerifier()


def score_math(
    response: str,
    gold: str,
    *,
    mode: str = "answer",
    timeout: float = DEFAULT_VERIFY_TIMEOUT,
    verifier: MathVerifier | None = None,
) -> MathScore:
    """The math reward of one model ``response`` against the ``gold`` answer. Never raises on model text.

    ``mode="answer"``: format term, plus accuracy of the ``<answer>`` text judged leniently.
    ``mode="lmmr1"``: LMM-R1's verifier exactly (the whole response is parsed, ``\\boxed{}`` first).
    """
    if not isinstance(response, str):
        raise TypeError(f"response must be str, got {type(response).__name__}")
    if mode not in REWARD_MODES:
        raise ValueError(f"reward_mode must be one of {REWARD_MODES}, got {mode!r}")
    start = time.monotonic()
    text = strip_eos(response)
    fmt = float(format_ok(text))
    parse_error = None
    if mode == "answer":
        prediction = extract_answer(text)
        if prediction is None:
            parse_error = "no <answer>...</answer> in the response"
        elif not prediction:
            parse_error = "the <answer> is empty"
        elif len(prediction) > MAX_ANSWER_CHARS:
            parse_error = f"the <answer> is {len(prediction)} characters long (limit {MAX_ANSWER_CHARS})"
    else:
        prediction = text
    accuracy, timed_out, gold_parsed = 0.0, False, True
    if parse_error is None:
        try:
            verdict = (verifier or _VERIFIER).judge(mode, gold, prediction, timeout)
        except VerifierTimeout:
            timed_out = True
            parse_error = f"math-verify ran past the {timeout:g} s budget"
        except (EOFError, OSError, ValueError) as exc:
            parse_error = f"math-verify worker failed ({type(exc).__name__}); scored 0"
        else:
            accuracy = float(verdict["accuracy"])
            gold_parsed = bool(verdict.get("gold_parsed", True))
            if verdict.get("error"):
                parse_error = f"math-verify raised {shorten(verdict['error'])}"
            elif not verdict.get("pred_parsed", True) and accuracy == 0.0:
                parse_error = "math-verify found no answer it could read" + (
                    " (lmmr1 mode reads \\boxed{} or $...$ after 'answer')" if mode == "lmmr1" else ""
                )
    terms = {"format": FORMAT_WEIGHT * fmt, "accuracy": ACCURACY_WEIGHT * accuracy}
    return MathScore(
        reward=terms["format"] + terms["accuracy"],
        terms=terms,
        prediction=None if prediction is None else shorten(prediction),
        parse_error=parse_error,
        timed_out=timed_out,
        gold_parsed=gold_parsed,
        seconds=time.monotonic() - start,
    )
