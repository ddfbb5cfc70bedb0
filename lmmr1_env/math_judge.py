"""Answer equivalence with math-verify, in the two reward modes (pure functions, no time bound).

These functions can take seconds on hostile input (math-verify on power towers or thousands of
nested ``\\frac``). Reward code never calls them directly: :mod:`lmmr1_env.rewards` runs them in a
worker process it can kill. They are importable here for tests and for offline checks.
"""

from __future__ import annotations

import functools

from latex2sympy2_extended import NormalizationConfig
from math_verify import ExprExtractionConfig, LatexExtractionConfig, parse, verify

from lmmr1_env.math_quick import quick_answer_verdict

# ---- "answer" mode: the text inside <answer> is the prediction ----

_LENIENT = [LatexExtractionConfig(boxed_match_priority=0), ExprExtractionConfig()]
_MATH_DELIMS = ("$", "\\(", "\\[", "\\boxed")
#: Distinct gold answers whose parse a worker keeps (a GRPO batch judges each gold n_samples times).
GOLD_CACHE_SIZE = 4096


def _parse_lenient(text: str) -> list:
    s = text.strip().replace("\\$", "")
    wrapped = s if any(d in s for d in _MATH_DELIMS) else f"${s}$"
    parsed = parse(wrapped, extraction_config=_LENIENT, parsing_timeout=None)
    if not parsed and wrapped is not s:
        parsed = parse(s, extraction_config=_LENIENT, parsing_timeout=None)
    return parsed


@functools.lru_cache(maxsize=GOLD_CACHE_SIZE)
def _gold_lenient(gold: str) -> tuple:
    return tuple(_parse_lenient(gold))


def judge_answer(gold: str, prediction: str) -> dict:
    """Accuracy of ``prediction`` (the text inside ``<answer>``) against ``gold``, as a user expects.

    A bare ``3``, ``$3$``, ``\\boxed{3}``, ``\\frac{1}{2}`` vs ``0.5``, and multiple-choice letters all
    count. Returns ``{"accuracy": 0.0|1.0, "gold_parsed": bool, "pred_parsed": bool, "how": str}``.
    """
    quick = quick_answer_verdict(gold, prediction)
    return quick if quick is not None else verify_answer(gold, prediction)


def verify_answer(gold: str, prediction: str) -> dict:
    """:func:`judge_answer` by math-verify alone (no string fast path): what the fast path must agree with."""
    gold_parsed = list(_gold_lenient(gold))
    pred_parsed = _parse_lenient(prediction)
    ok = bool(gold_parsed and pred_parsed) and verify(gold_parsed, pred_parsed, timeout_seconds=None)
    return {"accuracy": float(ok), "gold_parsed": bool(gold_parsed), "pred_parsed": bool(pred_parsed), "how": "verify"}


# ---- "lmmr1" mode: bit-for-bit TideDra/lmm-r1's math_verifier.py ----

_LMMR1_PRED = [
    LatexExtractionConfig(
        normalization_config=NormalizationConfig(
            nits=False, malformed_operators=False, basic_latex=True, boxed="all", units=True
        ),
        boxed_match_priority=0,
        try_extract_without_anchor=False,
    )
]


@functools.lru_cache(maxsize=GOLD_CACHE_SIZE)
def _gold_lmmr1(gold: str) -> tuple:
    return tuple(parse(gold, extraction_config=[LatexExtractionConfig()], extraction_mode="first_match",
                       parsing_timeout=None))


def judge_lmmr1(gold: str, response: str) -> dict:
    """LMM-R1's accuracy: the whole (EOS-stripped) ``response`` parsed, boxed first, against ``gold``.

    Quirks kept on purpose: a gold that does not parse scores 1.0; ``verify`` gets (prediction, gold)
    in that order; an exception scores 0.0.
    """
    gold = gold.strip()
    if not gold.startswith("$"):
        gold = "$" + gold + "$"
    gold_parsed = list(_gold_lmmr1(gold))
    if not gold_parsed:
        return {"accuracy": 1.0, "gold_parsed": False, "pred_parsed": False, "how": "gold-unparsed"}
    pred_parsed = parse(response, extraction_config=_LMMR1_PRED, extraction_mode="first_match", parsing_timeout=None)
    try:
        accuracy = float(verify(pred_parsed, gold_parsed, timeout_seconds=None))
    except Exception:  # noqa: BLE001 - LMM-R1 scores any verify failure as 0.0
        accuracy = 0.0
    return {"accuracy": accuracy, "gold_parsed": True, "pred_parsed": bool(pred_parsed), "how": "verify"}


JUDGES = {"answer": judge_answer, "lmmr1": judge_lmmr1}
