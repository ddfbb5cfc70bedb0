"""What a visual math family is, and the small helpers every family shares.

A family is a drawer and a renderer (docs/contributing.md: generator and renderer, each pure): ``draw(rng, difficulty)``
picks the numbers and returns a JSON-able spec ``{"problem", "answer", "params"}``; ``render(params, canvas)``
draws the figure from ``params`` alone. :meth:`Family.problem` draws the numbers, then the figure's place on
the image (``params["layout"]``: a zoom and a shift), so that two problems with the same numbers are still two
different pictures: without it a family with few distinct questions at a difficulty (twelve clock hours) would
put a whole answer in the test split and never train on it. Calling the family, ``family(rng, difficulty,
size)``, does both and adds the image. Keeping them apart lets the env choose a problem's split from its spec
before paying for pixels, and lets a logged task row be re-drawn exactly.

``params["operands"]`` lists the numbers a solver must read off the figure; they never appear in the
question text (tests/test_visualmath.py checks this for every family). ``spec["solution"]`` is a short worked
solution in plain text: what is read off the figure, then each step of arithmetic as ``expression = value``
(``×``, ``÷``, ``-``, ``²``; fractions as ``p/q``), its last sentence naming the answer. It lies outside ``params``,
so it does not move a problem's split.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

import numpy as np
from PIL import Image

from lmmr1_env.textmath.generators import latex_number
from lmmr1_env.types import TaskRow
from lmmr1_env.visualmath.drawing import DESIGN, FULL_LAYOUT, Canvas

DIFFICULTIES = (1, 2, 3, 4, 5)
#: Default observation size (height, width): Qwen2.5-VL sees 448 px as 16 × 16 patches of 28 px.
DEFAULT_IMAGE_SIZE = (448, 448)
LETTERS = "ABCD"
#: A figure's zoom is drawn from ZOOMS (then shifted by up to what keeps the design square on the image).
ZOOMS = tuple(round(0.80 + 0.01 * k, 2) for k in range(16))

__all__ = ["DEFAULT_IMAGE_SIZE", "DIFFICULTIES", "Family", "choice", "fraction_latex", "integer", "latex_number",
           "multiple_choice", "pick", "plain", "shown"]


@dataclass(frozen=True)
class Family:
    """One procedural family: ``family(rng, difficulty, size)`` gives a row with its PIL image."""

    name: str
    #: ``(rng, difficulty) -> {"problem", "answer", "params"}``; everything the figure shows is in ``params``.
    draw: Callable[[np.random.Generator, int], TaskRow]
    #: ``(params, canvas) -> None``: draws the figure in design units.
    render: Callable[[dict, Canvas], None]
    #: ``params -> numbers or None``: what a reader sees in the figure, one number per thing drawn (each bar, each
    #: colour's count, a clock's hour and minute); None where the figure is read another way (its operands stand in).
    reading: Callable[[dict], list[float] | None] = lambda params: None
    #: ``params -> words or None``: a short description of what the figure shows, all its question needs.
    words: Callable[[dict], str | None] = lambda params: None

    def numbers(self, params: dict) -> list[float]:
        """The numbers the figure shows (:attr:`reading`), else the operands its question needs."""
        values = self.reading(params)
        return list(params["operands"]) if values is None else values

    def description(self, params: dict) -> str:
        """What the figure shows in words (:attr:`words`), else its operands in a sentence."""
        text = self.words(params)
        return "The figure shows " + ", ".join(str(v) for v in params["operands"]) + "." if text is None else text

    def problem(self, rng: np.random.Generator, difficulty: int) -> TaskRow:
        """``{"problem", "answer", "params"}``: the numbers from :attr:`draw`, then ``params["layout"]``."""
        spec = self.draw(rng, difficulty)
        return {**spec, "params": {**spec["params"], "layout": draw_layout(rng)}}

    def image(self, params: dict, side: int) -> Image.Image:
        """The figure for ``params`` on a white square of ``side`` pixels (a row without a layout fills it)."""
        canvas = Canvas(side, params.get("layout", FULL_LAYOUT))
        self.render(params, canvas)
        return canvas.image

    def __call__(self, rng: np.random.Generator, difficulty: int,
                 size: int | tuple[int, int] = DEFAULT_IMAGE_SIZE) -> TaskRow:
        """``{"problem", "answer", "params", "image"}`` for this rng and difficulty; the image is square."""
        if difficulty not in DIFFICULTIES:
            raise ValueError(f"difficulty must be one of {DIFFICULTIES}, got {difficulty!r}")
        side = size if isinstance(size, int) else min(size)
        spec = self.problem(rng, difficulty)
        return {**spec, "image": self.image(spec["params"], side)}


def draw_layout(rng: np.random.Generator) -> list:
    """``[zoom, dx, dy]`` for :class:`~lmmr1_env.visualmath.drawing.Canvas`: the figure at 80–95 % of the image,
    shifted by whole design units while the design square stays on the image."""
    zoom = pick(rng, ZOOMS)
    room = int(DESIGN / 2 * (1 - zoom))
    return [zoom, integer(rng, -room, room), integer(rng, -room, room)]


def integer(rng: np.random.Generator, low: int, high: int) -> int:
    """Uniform integer in [low, high]."""
    return int(rng.integers(low, high + 1))


def pick(rng: np.random.Generator, items: Sequence[Any]) -> Any:
    """One item of ``items``, uniformly."""
    return items[int(rng.integers(len(items)))]


def choice(rng: np.random.Generator, items: Sequence[Any], k: int) -> list[Any]:
    """``k`` distinct items of ``items`` in random order."""
    return [items[i] for i in rng.permutation(len(items))[:k]]


def fraction_latex(value: Fraction) -> str:
    """A fraction as ``\\frac{p}{q}`` in lowest terms (an integer stays an integer)."""
    value = Fraction(value)
    if value.denominator == 1:
        return str(value.numerator)
    sign = "-" if value < 0 else ""
    return f"{sign}\\frac{{{abs(value.numerator)}}}{{{value.denominator}}}"


def plain(value: Fraction | int, decimal: bool = True) -> str:
    """An exact number as a worked solution writes it: ``12``, ``-2.5`` (an exact short decimal, where the answer's
    form has one; ``decimal=False`` for answers written as fractions) or ``35/3``."""
    value = Fraction(value)
    text = latex_number(value) if decimal else str(value.numerator)
    return text if "frac" not in text and (decimal or value.denominator == 1) else \
        f"{value.numerator}/{value.denominator}"


def shown(value: Fraction | int) -> str:
    """:func:`plain`, in parentheses when negative: how a worked step writes an operand."""
    return f"({plain(value)})" if value < 0 else plain(value)


def multiple_choice(rng: np.random.Generator, question: str, correct: str, distractors: Sequence[str]) -> TaskRow:
    """A four-option question: ``{"problem", "answer", "options"}`` with the options shuffled, answer a letter."""
    wrong = list(dict.fromkeys(d for d in distractors if d != correct))
    if len(wrong) < 3:
        raise ValueError(f"multiple_choice needs 3 distinct distractors, got {wrong}")
    options = [correct, *wrong[:3]]
    order = rng.permutation(4)
    options = [options[i] for i in order]
    letter = LETTERS[options.index(correct)]
    lines = "\n".join(f"{LETTERS[i]}. {o}" for i, o in enumerate(options))
    return {"problem": f"{question}\nChoices:\n{lines}\nAnswer with the letter of the correct choice.",
            "answer": letter, "options": options}
