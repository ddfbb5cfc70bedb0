"""LMMR1/TextMath-v0: single-turn text math with LMM-R1's rule-based reward."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from lmmr1_env.mathenv import MathEnv, draw_task
from lmmr1_env.rewards import DEFAULT_VERIFY_TIMEOUT
from lmmr1_env.textmath.data import load_rows
from lmmr1_env.textmath.generators import DIFFICULTIES, FAMILIES
from lmmr1_env.types import TaskRow


def generate_task(split: str, seed: int, families: Sequence[str], difficulties: Sequence[int]) -> TaskRow:
    """The procedural problem for (split, seed): same arguments, same row, in any process.

    A problem belongs to the split its text hashes to, so no test problem is ever a training problem.
    """
    return draw_task(split, seed, families, difficulties, _draw, _problem_text)


def _draw(family: str, rng: np.random.Generator, difficulty: int) -> TaskRow:
    return FAMILIES[family](rng, difficulty)


def _problem_text(family: str, row: TaskRow) -> str:
    return row["problem"]


class TextMathEnv(MathEnv):
    """Text math problems scored by LMM-R1's rule: 0.5 × format + 1.0 × accuracy.

    ## Description
    One problem per episode, one response per episode. Problems come from seven procedural families
    (``arithmetic``, ``fractions``, ``linear_equations``, ``percentages``, ``number_theory``,
    ``word_problems``, ``sequences``) at difficulty 1–5, or from a dataset: LMM-R1's JSONL (a ``message``
    field holding a stringified chat list, and ``answer`` such as ``$\\boxed{60}$``), plain
    ``{"problem", "answer"}`` JSONL / JSON, a list of such dicts, or the built-in ``"sample"``.

    ## Observation
    ``{"text": str}``: the problem. The instructions are in ``system_prompt`` (and ``info["system_prompt"]``
    on reset; a dataset row's own system message takes its place). The observation after the step is empty.

    ## Action
    The model's whole response, any ``str``: ``<think>reasoning</think><answer>final answer</answer>``.

    ## Rewards
    - ``format`` 0.5: the response (end-of-sequence tokens and outer whitespace stripped) is exactly
      ``<think>…</think><answer>…</answer>``, one pair of each, nothing between or around them.
    - ``accuracy`` 1.0: math-verify judges the answer equal to the gold one. ``reward_mode="answer"``
      (default) reads the text inside ``<answer>``: ``3``, ``$3$``, ``\\boxed{3}``, ``0.5`` for ``\\frac{1}{2}``,
      multiple-choice letters. ``reward_mode="lmmr1"`` is LMM-R1's verifier exactly (the whole response,
      ``\\boxed{}`` first; ``$…$`` only near "answer"). Over ``verify_timeout`` seconds scores 0.
    ``info["reward_terms"]`` holds both; ``info["parse_error"]`` says why an answer could not be read;
    ``info["success"]`` is True when the answer is right.

    ## Episode End
    Terminated after the single step. Never truncated.

    ## Arguments
    ``split`` ("train" | "test"), ``dataset`` (path, list of dicts or "sample"; default: procedural),
    ``families`` (names, default all), ``difficulty`` (1–5 or a list to draw from, default 2),
    ``reward_mode`` ("answer" | "lmmr1"), ``verify_timeout`` (finite seconds above 0, default 3). ``families``
    must be a list (a bare string is refused, not read letter by letter) and ``difficulty`` an int or a list of
    ints; anything else is a TypeError or ValueError naming the argument at ``gym.make``.

    ## Version History
    - v0: initial version.
    """

    metadata = {"render_modes": []}
    kind = "TextMath"
    family_names = FAMILIES
    difficulty_levels = DIFFICULTIES

    def __init__(self, split: str = "train", dataset: str | Path | Sequence[dict] | None = None,
                 families: Sequence[str] | None = None, difficulty: int | Sequence[int] = 2,
                 reward_mode: str = "answer", verify_timeout: float = DEFAULT_VERIFY_TIMEOUT,
                 render_mode: str | None = None):
        super().__init__(split=split, dataset=dataset, families=families, difficulty=difficulty,
                         reward_mode=reward_mode, verify_timeout=verify_timeout, render_mode=render_mode)

    rows_loader = staticmethod(load_rows)
    task_generator = staticmethod(generate_task)

