"""Verdicts of "answer" mode that need no math-verify: exact text, multiple-choice letters, plain numbers.

Pure string work, linear in the answer's length, and cheap to import (no sympy), so the reward computes them in
the calling process and sends only the rest to a math-verify worker (:func:`lmmr1_env.rewards.score_math_batch`).
:func:`lmmr1_env.math_judge.judge_answer` starts with :func:`quick_answer_verdict` too, so a response gets the same
verdict whichever process decides it.
"""

from __future__ import annotations

import math
import re
from decimal import Decimal
from fractions import Fraction

_BOXED = re.compile(r"^\\boxed\s*\{(.*)\}$", re.DOTALL)
_TEXT = re.compile(r"\\(?:text|textbf|mathrm|mbox)\s*\{([^{}]*)\}")
_CHOICE = re.compile(r"^\(?([A-J])\)?(?:[.:)]|\s|$)")
_CHOICE_WORD = re.compile(r"^(?:option|choice|answer)\s*:?\s*\(?([A-J])\)?(?:[.:)]|\s|$)", re.IGNORECASE)
#: A whole number as math-verify reads it the same way whatever it is compared with: optional minus, digits.
_INTEGER = re.compile(r"-?[0-9]{1,100}")
#: A plain decimal number, and a fraction of two whole numbers: the literals read here as exact rationals.
_DECIMAL = re.compile(r"-?[0-9]{1,30}(?:\.[0-9]{1,30})?")
_FRACTION = re.compile(r"(-?)\\frac\{(-?[0-9]{1,30})\}\{(-?[0-9]{1,30})\}")
#: Two rationals further apart than this (relative to the larger, at least 1) are different to math-verify, which
#: calls numbers equal when they round alike to 6 decimal places or agree to 15 digits: a wide margin over both.
_DIFFERENT = Fraction(1, 10_000)
#: ``x = 12`` once normalised (no spaces): one letter assigned a value. math-verify reads it as an equation and,
#: against a gold that is no equation, compares its right-hand side (``grader.py``: an equation is unwrapped to its
#: last relation's ``rhs``), so the verdict is the value's.
_ASSIGNMENT = re.compile(r"[A-Za-z]=(.+)")
#: Digits apart by a space or a thin space (``1 2``, ``1\\,000``): normalising would join them into one number,
#: which math-verify does not read them as.
_SPLIT_DIGITS = re.compile(r"[0-9](?:\s|\\,|\\!)+[0-9]")
#: ``\\frac{3\\pi}{4}`` (a multiple of pi written inside the fraction).
_PI_OVER = re.compile(r"(-?)\\frac\{([0-9]{1,30})?\\pi\}\{([0-9]{1,30})\}")


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


def quick_answer_verdict(gold: str, prediction: str) -> dict | None:
    """The "answer"-mode verdict when strings decide it, else None (math-verify must judge).

    Decided here: equal normalised text (1), a multiple-choice gold (the letter the prediction names), two
    whole numbers (equal values; ``012`` is 12, as math-verify reads it), and two number literals (decimals,
    ``\\frac{p}{q}``, rational multiples of pi) that are equal or clearly apart, the prediction's possibly
    assigned to one letter (``x = 12``). The dict is
    :func:`lmmr1_env.math_judge.judge_answer`'s.
    """
    if _SPLIT_DIGITS.search(gold) or _SPLIT_DIGITS.search(prediction):
        return None
    gold_text, said = normalize_text(gold), normalize_text(prediction)
    if gold_text and gold_text == said:
        return {"accuracy": 1.0, "gold_parsed": True, "pred_parsed": True, "how": "exact"}
    letter = choice_letter(gold, strict=True)
    if letter is not None:
        named = choice_letter(prediction, strict=False)
        return {"accuracy": float(named == letter), "gold_parsed": True, "pred_parsed": named is not None,
                "how": "choice"}
    if _INTEGER.fullmatch(gold_text) and _INTEGER.fullmatch(said):
        return {"accuracy": float(int(gold_text) == int(said)), "gold_parsed": True, "pred_parsed": True,
                "how": "integer"}
    assigned = _ASSIGNMENT.fullmatch(said)
    a, b = _number(gold_text), _number(assigned.group(1) if assigned else said)
    if a is None or b is None:
        return None
    if a == b:
        return {"accuracy": 1.0, "gold_parsed": True, "pred_parsed": True, "how": "number"}
    x, y = _approximate(a), _approximate(b)
    if abs(x - y) > float(_DIFFERENT) * max(1.0, abs(x), abs(y)):
        return {"accuracy": 0.0, "gold_parsed": True, "pred_parsed": True, "how": "number"}
    return None  # close but unequal: math-verify's rounding decides


def _number(text: str) -> tuple[Fraction, int] | None:
    """A normalised literal as ``(rational, power of pi)``: ``12``, ``-0.5``, ``\\frac{3}{4}``, ``49\\pi``,
    ``\\frac{81}{4}\\pi``, ``\\frac{3\\pi}{4}``, ``\\pi``; None for anything else."""
    m = _PI_OVER.fullmatch(text)
    if m:
        rational = _rational(f"{m.group(1)}\\frac{{{m.group(2) or 1}}}{{{m.group(3)}}}")
        return None if rational is None else (rational, 1)
    if text.endswith("\\pi"):
        head = text[:-3]
        rational = Fraction(1) if head == "" else Fraction(-1) if head == "-" else _rational(head)
        return None if rational is None else (rational, 1)
    rational = _rational(text)
    return None if rational is None else (rational, 0)


def _approximate(number: tuple[Fraction, int]) -> float:
    rational, pi_power = number
    return float(rational) * math.pi ** pi_power


def _rational(text: str) -> Fraction | None:
    """The exact value of a normalised decimal or ``\\frac{p}{q}`` literal, else None."""
    if _DECIMAL.fullmatch(text):
        return Fraction(Decimal(text))
    m = _FRACTION.fullmatch(text)
    if m is None or int(m.group(3)) == 0:
        return None
    value = Fraction(int(m.group(2)), int(m.group(3)))
    return -value if m.group(1) else value


def lmmr1_extracts_nothing(response: str) -> bool:
    """True when LMM-R1's prediction parse (``try_extract_without_anchor=False``) can find nothing in ``response``.

    Every pattern it tries needs a ``$``, a backslash (``\\[``, ``\\(``, ``\\boxed``, ``\\frac``) or a ``[``
    (`` [x] ``); without any of them the prediction parses to nothing, and the verdict is the gold's alone:
    0, or 1 for a gold that does not parse (:func:`lmmr1_verdict_without_prediction`).
    """
    return "$" not in response and "\\" not in response and "[" not in response


def lmmr1_verdict_without_prediction(gold_parsed: bool) -> dict:
    """:func:`lmmr1_env.math_judge.judge_lmmr1`'s verdict for a response it extracts nothing from."""
    return {"accuracy": 0.0 if gold_parsed else 1.0, "gold_parsed": gold_parsed, "pred_parsed": False,
            "how": "nothing-extracted"}
