"""Rule-based math reward, as LMM-R1 defines it: 0.5 × format + 1.0 × accuracy.

Two modes (docs/design.md): ``"answer"`` judges the text inside ``<answer>`` the way a user expects;
``"lmmr1"`` reproduces TideDra/lmm-r1's ``math_verifier.py`` bit for bit. Both share a hard time budget
per response: math-verify runs in a pool of worker processes (:class:`lmmr1_env.math_pool.MathVerifier`); a
worker is killed and replaced by a warm spare when a response runs over, which then scores accuracy 0 and says
so. Model text is only ever parsed,
never evaluated as code, and never logged whole.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass, field

from lmmr1_env.math_pool import MathVerifier, VerifierTimeout
from lmmr1_env.tags import last_tag_body, strip_eos

FORMAT_WEIGHT = 0.5
ACCURACY_WEIGHT = 1.0
REWARD_MODES = ("answer", "lmmr1")
#: Seconds one response may spend in math-verify before it scores 0.
DEFAULT_VERIFY_TIMEOUT = 3.0
#: In "answer" mode a longer <answer> is not a final answer; it scores 0 without being parsed.
MAX_ANSWER_CHARS = 10_000
#: End-of-sequence markers LMM-R1 strips before checking anything.
_FORMAT = re.compile(r"^<think>(?:(?!</think>).)*</think><answer>(?:(?!</answer>).)*</answer>\Z", re.DOTALL)


def format_ok(response: str) -> bool:
    """True when the (EOS-stripped) response is exactly ``<think>…</think><answer>…</answer>``."""
    return response.count("<think>") == 1 and response.count("<answer>") == 1 and bool(_FORMAT.match(response))


def extract_answer(response: str) -> str | None:
    """The text inside the last ``<answer>…</answer>`` pair, stripped, or None when there is none."""
    found = last_tag_body(response, "answer")
    return None if found is None else found.strip()


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


#: The pool every math env shares (workers start on first use).
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
