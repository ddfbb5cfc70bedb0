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
from collections.abc import Sequence
from dataclasses import dataclass, field

from lmmr1_env.math_pool import MathVerifier, VerifierTimeout
from lmmr1_env.math_quick import lmmr1_extracts_nothing, lmmr1_verdict_without_prediction, quick_answer_verdict
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
    #: Seconds the scoring call took (for :func:`score_math_batch`, the whole batch's call).
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
    return score_math_batch([response], [gold], mode=mode, timeout=timeout, verifier=verifier)[0]


def score_math_batch(
    responses: Sequence[str],
    golds: Sequence[str],
    *,
    mode: str = "answer",
    timeout: float = DEFAULT_VERIFY_TIMEOUT,
    verifier: MathVerifier | None = None,
) -> list[MathScore]:
    """:func:`score_math` of each ``(response, gold)`` pair, with the same verdicts, in one call.

    What makes a batch cheaper than its responses one by one: a verdict that strings decide ("answer" mode:
    equal text, a choice letter, two number literals; :mod:`lmmr1_env.math_quick`) is reached here without a
    worker; in "lmmr1" mode a response LMM-R1's parse can extract nothing from takes its verdict from its gold's
    parse, which another response's request to the same gold reports; identical ``(gold, judged text)`` pairs (a
    group's samples often agree) are judged once; the rest go to the verifier pool in one
    :meth:`~lmmr1_env.math_pool.MathVerifier.judge_many` round trip, every worker busy, each response still
    under its own ``timeout`` budget.
    """
    if mode not in REWARD_MODES:
        raise ValueError(f"reward_mode must be one of {REWARD_MODES}, got {mode!r}")
    if len(responses) != len(golds):
        raise ValueError(f"{len(responses)} responses but {len(golds)} gold answers")
    start = time.monotonic()
    read = [_read(response, mode) for response in responses]
    verdicts: dict[tuple[str, str], dict | Exception] = {}
    to_judge: list[tuple[str, str]] = []
    by_gold: dict[tuple[str, str], str] = {}  # lmmr1 mode: responses the gold's parse alone decides
    asked: set[str] = set()
    for (_, prediction, parse_error), gold in zip(read, golds):
        key = (gold, prediction)
        if parse_error is not None or key in verdicts:
            continue
        quick = quick_answer_verdict(gold, prediction) if mode == "answer" else None
        verdicts[key] = quick if quick is not None else {}
        if quick is not None:
            continue
        if mode == "lmmr1" and gold in asked and lmmr1_extracts_nothing(prediction):
            by_gold[key] = gold
        else:
            to_judge.append(key)
            asked.add(gold)
    pool = verifier or _VERIFIER
    if to_judge:
        judged = pool.judge_many([(mode, g, p) for g, p in to_judge], timeout)
        verdicts.update(zip(to_judge, judged))
        status = {g: v["gold_parsed"] for (g, _), v in zip(to_judge, judged)
                  if isinstance(v, dict) and "gold_parsed" in v}
        unknown = [key for key, gold in by_gold.items() if gold not in status]
        verdicts.update({key: lmmr1_verdict_without_prediction(status[gold]) for key, gold in by_gold.items()
                         if gold in status})
        if unknown:  # the request that was to tell the gold's parse failed: these are judged after all
            verdicts.update(zip(unknown, pool.judge_many([(mode, g, p) for g, p in unknown], timeout)))
    elapsed = time.monotonic() - start
    return [_score(fmt, prediction, parse_error, verdicts.get((gold, prediction)), mode, timeout, elapsed)
            for (fmt, prediction, parse_error), gold in zip(read, golds)]


def _read(response: str, mode: str) -> tuple[float, str | None, str | None]:
    """The format term, the text to judge and why it cannot be judged (None: it can) of one response."""
    if not isinstance(response, str):
        raise TypeError(f"response must be str, got {type(response).__name__}")
    text = strip_eos(response)
    fmt = float(format_ok(text))
    if mode != "answer":
        return fmt, text, None
    prediction = extract_answer(text)
    if prediction is None:
        return fmt, None, "no <answer>...</answer> in the response"
    if not prediction:
        return fmt, prediction, "the <answer> is empty"
    if len(prediction) > MAX_ANSWER_CHARS:
        return fmt, prediction, f"the <answer> is {len(prediction)} characters long (limit {MAX_ANSWER_CHARS})"
    return fmt, prediction, None


def _score(fmt: float, prediction: str | None, parse_error: str | None, verdict: dict | Exception | None,
           mode: str, timeout: float, seconds: float) -> MathScore:
    """One response's :class:`MathScore` from what :func:`_read` found and its verdict (None: not judged)."""
    accuracy, timed_out, gold_parsed = 0.0, False, True
    if isinstance(verdict, VerifierTimeout):
        timed_out = True
        parse_error = f"math-verify ran past the {timeout:g} s budget"
    elif isinstance(verdict, Exception):
        parse_error = f"math-verify worker failed ({type(verdict).__name__}); scored 0"
    elif verdict is not None:
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
        seconds=seconds,
    )
