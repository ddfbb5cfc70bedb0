"""Answer equivalence with math-verify, in the two reward modes (pure functions, no time bound).

These functions can take seconds on hostile input (math-verify on power towers or thousands of
nested ``\\frac``). Reward code never calls them directly: :mod:`lmmr1_env.rewards` runs them in a
worker process it can kill. They are importable here for tests and for offline checks.
"""

from __future__ import annotations

import re

from latex2sympy2_extended import NormalizationConfig
from math_verify import ExprExtractionConfig, LatexExtractionConfig, parse, verify

# ---- "answer" mode: the text inside <answer> is the prediction ----

_LENIENT = [LatexExtractionConfig(boxed_match_priority=0), ExprExtractionConfig()]
_MATH_DELIMS = ("$", "\\(", "\\[", "\\boxed")
_BOXED = re.compile(r"^\\boxed\s*\{(.*)\}$", re.DOTALL)
_TEXT = re.compile(r"\\(?:text|textbf|mathrm|mbox)\s*\{([^{}]*)\}")
_CHOICE = re.compile(r"^\(?([A-J])\)?(?:[.:)]|\s|$)")
_CHOICE_WORD = re.compile(r"^(?:option|choice|answer)\s*:?\s*\(?([A-J])\)?(?:[.:)]|\s|$)", re.IGNORECASE)


def normalize_text(text: str) -> str:
    """A canonical string form of an answer, for an exact-match fast path (no parsing)."""
    s = text.strip()
    for _ in range(3):
        before = s
        if len(s) >= 2 and s.startswith("$") and s.endswith("$"):
            s = s.strip("$").strip()
        if s.startswith("\\(") and s.endswith("\\)"):
            s = s[2:-2].strip()
        m = _BOXED.match(s)
        if m:
            s = m.group(1).strip()
        if s == before:
            break
    s = s.replace("\\$", "").replace("\\dfrac", "\\frac").replace("\\tfrac", "\\frac")
    s = s.replace("\\left", "").replace("\\right", "").replace("\\!", "").replace("\\,", "")
    s = re.sub(r"\s+", "", s)
    return s.rstrip(".")


def choice_letter(text: str, *, strict: bool) -> str | None:
    """The multiple-choice letter A–J a text names, or None.

    ``strict`` (for gold answers): the whole text must be the letter, optionally as ``(B)`` or ``B.``.
    Otherwise (predictions) a leading letter with text after it (``B) 12``, ``Option B``) counts too.
    """
    s = _TEXT.sub(r"\1", normalize_text(text)) if text else ""
    if strict:
        m = re.fullmatch(r"\(?([A-J])\)?\.?", s)
        return m.group(1) if m else None
    raw = _TEXT.sub(r"\1", text.strip().strip("$").strip())
    raw_boxed = _BOXED.match(raw)
    if raw_boxed:
        raw = raw_boxed.group(1).strip()
    m = _CHOICE.match(raw) or _CHOICE_WORD.match(raw)
    return m.group(1).upper() if m else None


def _parse_lenient(text: str) -> list:
    s = text.strip().replace("\\$", "")
    wrapped = s if any(d in s for d in _MATH_DELIMS) else f"${s}$"
    parsed = parse(wrapped, extraction_config=_LENIENT, parsing_timeout=None)
    if not parsed and wrapped is not s:
        parsed = parse(s, extraction_config=_LENIENT, parsing_timeout=None)
    return parsed


def judge_answer(gold: str, prediction: str) -> dict:
    """Accuracy of ``prediction`` (the text inside ``<answer>``) against ``gold``, as a user expects.

    A bare ``3``, ``$3$``, ``\\boxed{3}``, ``\\frac{1}{2}`` vs ``0.5``, and multiple-choice letters all
    count. Returns ``{"accuracy": 0.0|1.0, "gold_parsed": bool, "pred_parsed": bool, "how": str}``.
    """
    if normalize_text(gold) and normalize_text(gold) == normalize_text(prediction):
        return {"accuracy": 1.0, "gold_parsed": True, "pred_parsed": True, "how": "exact"}
    letter = choice_letter(gold, strict=True)
    if letter is not None:
        said = choice_letter(prediction, strict=False)
        return {"accuracy": float(said == letter), "gold_parsed": True, "pred_parsed": said is not None,
                "how": "choice"}
    gold_parsed = _parse_lenient(gold)
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


def judge_lmmr1(gold: str, response: str) -> dict:
    """LMM-R1's accuracy: the whole (EOS-stripped) ``response`` parsed, boxed first, against ``gold``.

    Quirks kept on purpose: a gold that does not parse scores 1.0; ``verify`` gets (prediction, gold)
    in that order; an exception scores 0.0.
    """
    gold = gold.strip()
    if not gold.startswith("$"):
        gold = "$" + gold + "$"
    gold_parsed = parse(gold, extraction_config=[LatexExtractionConfig()], extraction_mode="first_match",
                        parsing_timeout=None)
    if not gold_parsed:
        return {"accuracy": 1.0, "gold_parsed": False, "pred_parsed": False, "how": "gold-unparsed"}
    pred_parsed = parse(response, extraction_config=_LMMR1_PRED, extraction_mode="first_match", parsing_timeout=None)
    try:
        accuracy = float(verify(pred_parsed, gold_parsed, timeout_seconds=None))
    except Exception:  # noqa: BLE001 - LMM-R1 scores any verify failure as 0.0
        accuracy = 0.0
    return {"accuracy": accuracy, "gold_parsed": True, "pred_parsed": bool(pred_parsed), "how": "verify"}


JUDGES = {"answer": judge_answer, "lmmr1": judge_lmmr1}
