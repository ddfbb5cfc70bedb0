"""LMMR1/TextMath-v0: single-turn text math with LMM-R1's rule-based reward."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from lmmr1_env.core import LMMEnv
from lmmr1_env.datasets import split_of_text
from lmmr1_env.rewards import DEFAULT_VERIFY_TIMEOUT, REWARD_MODES, score_math
from lmmr1_env.textmath.data import load_rows
from lmmr1_env.textmath.generators import DIFFICULTIES, FAMILIES
from lmmr1_env.types import Message, Observation, TaskRow

SYSTEM_PROMPTS = {
    "answer": (
        "You are a helpful assistant who solves math problems step by step. First think about the problem, then "
        "give the final answer. Write your reasoning inside <think> </think> and only the final answer inside "
        "<answer> </answer>, with nothing between the two parts, for example: "
        "<think>7 + 5 = 12</think><answer>12</answer>. Start your output with <think> and end it with </answer>."
    ),
    "lmmr1": (
        "You are a helpful assistant good at solving math problems with step-by-step reasoning. You first think "
        "about the reasoning process in the mind and then provide the user with the answer. The answer is in "
        "LaTeX format inside $...$. The reasoning process and answer are enclosed within <think> </think> and "
        "<answer> </answer> tags respectively, with nothing between them, for example: "
        "<think> Since $1+1=2$, so the answer is $2$. </think><answer> $2$ </answer>. Your output must start "
        "with <think> and end with </answer>."
    ),
}
DEMONSTRATIONS: dict[str, list[Message]] = {
    "answer": [{"role": "user", "content": "What is 7 + 5?"},
               {"role": "assistant", "content": "<think>7 + 5 = 12</think><answer>12</answer>"}],
    "lmmr1": [{"role": "user", "content": "What is 7 + 5?"},
              {"role": "assistant", "content": "<think>7 + 5 = 12</think><answer>$12$</answer>"}],
}
_SPLIT_STREAM = {"train": 0, "test": 1}
_MAX_SPLIT_TRIES = 1000


def generate_task(split: str, seed: int, families: Sequence[str], difficulties: Sequence[int]) -> TaskRow:
    """The procedural problem for (split, seed): same arguments, same row, in any process.

    A problem belongs to the split its text hashes to, so no test problem is ever a training problem.
    """
    for attempt in range(_MAX_SPLIT_TRIES):
        rng = np.random.default_rng([seed, attempt, _SPLIT_STREAM[split]])
        family = families[int(rng.integers(len(families)))]
        difficulty = int(difficulties[int(rng.integers(len(difficulties)))])
        row = FAMILIES[family](rng, difficulty)
        if split_of_text(row["problem"]) == split:
            return {"id": f"{family}/d{difficulty}/{split}/{seed}", **row, "family": family,
                    "difficulty": difficulty, "source": "procedural"}
    raise RuntimeError(f"no {split} problem found for seed {seed} in {_MAX_SPLIT_TRIES} tries")


class TextMathEnv(LMMEnv):
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
    ``reward_mode`` ("answer" | "lmmr1"), ``verify_timeout`` (seconds, default 3).

    ## Version History
    - v0: initial version.
    """

    metadata = {"render_modes": []}

    def __init__(self, split: str = "train", dataset: str | Path | Sequence[dict] | None = None,
                 families: Sequence[str] | None = None, difficulty: int | Sequence[int] = 2,
                 reward_mode: str = "answer", verify_timeout: float = DEFAULT_VERIFY_TIMEOUT,
                 render_mode: str | None = None):
        super().__init__(split=split, render_mode=render_mode)
        if reward_mode not in REWARD_MODES:
            raise ValueError(f"reward_mode must be one of {REWARD_MODES}, got {reward_mode!r}")
        if not verify_timeout > 0:
            raise ValueError(f"verify_timeout must be positive seconds, got {verify_timeout!r}")
        self.families = tuple(families) if families is not None else tuple(FAMILIES)
        unknown = [f for f in self.families if f not in FAMILIES]
        if unknown or not self.families:
            raise ValueError(f"unknown TextMath families {unknown}; choose from {sorted(FAMILIES)}")
        self.difficulties = (difficulty,) if isinstance(difficulty, (int, np.integer)) else tuple(difficulty)
        if not self.difficulties or any(d not in DIFFICULTIES for d in self.difficulties):
            raise ValueError(f"difficulty must be in {DIFFICULTIES} (or a list of them), got {difficulty!r}")
        self.rows = load_rows(dataset, split) if dataset is not None else None
        self.reward_mode = reward_mode
        self.verify_timeout = float(verify_timeout)
        self.system_prompt = SYSTEM_PROMPTS[reward_mode]
        self.demonstration = [dict(m) for m in DEMONSTRATIONS[reward_mode]]
        self.task: TaskRow | None = None

    def task_for_seed(self, seed: int) -> TaskRow:
        """The task ``reset(seed=seed)`` plays: dataset row ``seed mod N``, or the procedural problem."""
        if self.rows is not None:
            return self.rows[seed % len(self.rows)]
        return generate_task(self.split, seed, self.families, self.difficulties)

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[Observation, dict]:
        """Start an episode; ``options={"task": row}`` replays a logged task row instead of drawing one."""
        super().reset(seed=seed)
        if options and "task" in options:
            self.task = dict(options["task"])
        else:
            index = seed if seed is not None else int(self.np_random.integers(2**31 - 1))
            self.task = self.task_for_seed(index)
        self._needs_reset = False
        info = {"system_prompt": self.task.get("system_prompt", self.system_prompt), "answer": self.task["answer"],
                "task": dict(self.task), "split": self.split}
        return self._observation(self.task["problem"]), info

    def step(self, action: str) -> tuple[Observation, float, bool, bool, dict]:
        self._check_action(action)
        assert self.task is not None
        score = score_math(action, self.task["answer"], mode=self.reward_mode, timeout=self.verify_timeout)
        self._needs_reset = True
        info: dict[str, Any] = {"reward_terms": dict(score.terms), "answer": self.task["answer"],
                                "prediction": score.prediction, "task_id": self.task.get("id"),
                                "verify_timed_out": score.timed_out, "success": score.terms["accuracy"] > 0}
        if score.parse_error:
            info["parse_error"] = score.parse_error
        if not score.gold_parsed:
            info["gold_unparsed"] = True
        return self._observation(""), score.reward, True, False, info
