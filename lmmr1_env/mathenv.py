"""What LMMR1/TextMath-v0 and LMMR1/VisualMath-v0 share: one problem, one response, LMM-R1's math reward.

:class:`MathEnv` owns the settings both take (reward mode, verifier budget, families, difficulties,
dataset), the system prompt and demonstration of each reward mode, which task a seed plays, and the
scoring step; :func:`draw_task` is the split-safe procedural draw both ``generate_task`` functions use.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from lmmr1_env.core import SPLIT_STREAM, LMMEnv
from lmmr1_env.datasets import split_of_text
from lmmr1_env.rewards import DEFAULT_VERIFY_TIMEOUT, REWARD_MODES, MathScore, score_math, score_math_batch
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
_MAX_SPLIT_TRIES = 1000


def draw_task(split: str, seed: int, families: Sequence[str], difficulties: Sequence[int],
              draw: Callable[[str, np.random.Generator, int], TaskRow],
              split_text: Callable[[str, TaskRow], str]) -> TaskRow:
    """The procedural row for (split, seed): the first draw whose ``split_text`` hashes to ``split``.

    ``draw(family, rng, difficulty)`` makes a problem; ``split_text(family, problem)`` is the text its split
    is hashed from. Same arguments, same row, in any process; no test problem is ever a training problem.
    """
    for attempt in range(_MAX_SPLIT_TRIES):
        rng = np.random.default_rng([seed, attempt, SPLIT_STREAM[split]])
        family = families[int(rng.integers(len(families)))]
        difficulty = int(difficulties[int(rng.integers(len(difficulties)))])
        row = draw(family, rng, difficulty)
        if split_of_text(split_text(family, row)) == split:
            return {"id": f"{family}/d{difficulty}/{split}/{seed}", **row, "family": family,
                    "difficulty": difficulty, "source": "procedural"}
    raise RuntimeError(f"no {split} problem found for seed {seed} in {_MAX_SPLIT_TRIES} tries")


def check_verify_timeout(value: Any) -> float:
    """``verify_timeout`` as float seconds: a finite number above 0 (inf would let one answer hang a run)."""
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise TypeError(f"verify_timeout must be a number of seconds, got {value!r}")
    if not (math.isfinite(value) and value > 0):
        raise ValueError(f"verify_timeout must be a finite number of seconds above 0, got {value!r}")
    return float(value)


class MathEnv(LMMEnv):
    """A single-turn math env: reset shows one problem, step scores one response with :func:`score_math`.

    Subclasses name their procedural families (:attr:`family_names`, :attr:`difficulty_levels`,
    :attr:`kind` for messages) and their two task sources (:attr:`rows_loader`, :attr:`task_generator`); a
    multimodal one also overrides :meth:`_show` to draw the task's image.
    """

    #: The env's name in error messages ("TextMath", "VisualMath").
    kind: str = ""
    #: Every procedural family the subclass knows, by name.
    family_names: Mapping[str, Any] = {}
    #: The difficulties ``difficulty`` may name.
    difficulty_levels: Sequence[int] = ()
    #: ``(dataset, split) -> rows``: the subclass's dataset loader (a staticmethod).
    rows_loader: Callable[..., list[TaskRow]]
    #: ``(split, seed, families, difficulties) -> row``: the subclass's procedural generator (a staticmethod).
    task_generator: Callable[..., TaskRow]

    def __init__(self, *, split: str, dataset: str | Path | Sequence[dict] | None, families: Sequence[str] | None,
                 difficulty: int | Sequence[int], reward_mode: str, verify_timeout: float = DEFAULT_VERIFY_TIMEOUT,
                 render_mode: str | None = None, image_size: int | tuple[int, int] | None = None):
        super().__init__(image_size=image_size, split=split, render_mode=render_mode)
        if reward_mode not in REWARD_MODES:
            raise ValueError(f"reward_mode must be one of {REWARD_MODES}, got {reward_mode!r}")
        self.verify_timeout = check_verify_timeout(verify_timeout)
        self.families = self._check_families(families)
        self.difficulties = self._check_difficulties(difficulty)
        self.rows = self._load_rows(dataset, split) if dataset is not None else None
        self.reward_mode = reward_mode
        self.system_prompt = SYSTEM_PROMPTS[reward_mode]
        self.demonstration = [dict(m) for m in DEMONSTRATIONS[reward_mode]]
        self.task: TaskRow | None = None
        self._prepared: tuple[str, MathScore] | None = None

    @classmethod
    def prepare_steps(cls, envs: Sequence[MathEnv], actions: Sequence[Any]) -> None:
        """Score every env's response in one :func:`score_math_batch` call per reward setting; ``step`` uses it."""
        ready = [(env, action) for env, action in zip(envs, actions)
                 if isinstance(action, str) and env.task is not None and not env._needs_reset]
        settings: dict[tuple[str, float], list[tuple[MathEnv, str]]] = {}
        for env, action in ready:
            settings.setdefault((env.reward_mode, env.verify_timeout), []).append((env, action))
        for (mode, timeout), pairs in settings.items():
            scores = score_math_batch([a for _, a in pairs], [env.task["answer"] for env, _ in pairs],
                                      mode=mode, timeout=timeout)
            for (env, action), score in zip(pairs, scores):
                env._prepared = (action, score)

    def _check_families(self, families: Sequence[str] | None) -> tuple[str, ...]:
        """``families`` as a tuple of known names (None: all); a str is refused, not read letter by letter."""
        if families is None:
            return tuple(self.family_names)
        if isinstance(families, str):
            raise TypeError(f"families must be a list of family names, not the string {families!r}; write "
                            f"[{families!r}] (choose from {sorted(self.family_names)})")
        if not isinstance(families, Iterable):
            raise TypeError(f"families must be a list of family names, got {families!r}")
        chosen = tuple(families)
        unknown = [f for f in chosen if not isinstance(f, str) or f not in self.family_names]
        if unknown or not chosen:
            raise ValueError(f"unknown {self.kind} families {unknown}; choose from {sorted(self.family_names)}")
        return chosen

    def _check_difficulties(self, difficulty: int | Sequence[int]) -> tuple[int, ...]:
        """``difficulty`` (one level or a list to draw from) as a tuple of ints from :attr:`difficulty_levels`."""
        allowed = f"difficulty must be an int in {tuple(self.difficulty_levels)} or a list of them, got {difficulty!r}"
        levels = [difficulty] if not isinstance(difficulty, (list, tuple, np.ndarray)) else list(difficulty)
        if any(isinstance(d, (bool, np.bool_)) or not isinstance(d, (int, np.integer)) for d in levels):
            raise TypeError(allowed)
        if not levels or any(d not in self.difficulty_levels for d in levels):
            raise ValueError(allowed)
        return tuple(int(d) for d in levels)

    def _load_rows(self, dataset: str | Path | Sequence[dict], split: str) -> list[TaskRow]:
        """The dataset's rows for ``split``; a subclass whose loader needs more of the env (image size) overrides it."""
        return type(self).rows_loader(dataset, split)

    def task_for_seed(self, seed: int) -> TaskRow:
        """The task ``reset(seed=seed)`` plays: dataset row ``seed mod N``, or the procedural problem."""
        if self.rows is not None:
            return self.rows[seed % len(self.rows)]
        return type(self).task_generator(self.split, seed, self.families, self.difficulties)

    def _show(self, task: TaskRow) -> np.ndarray | None:
        """The image shown with ``task`` (None: a text-only env); called before ``task`` becomes current."""
        return None

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[Observation, dict]:
        """Start an episode; ``options={"task": row}`` replays a logged task row (``info["task"]``) instead."""
        super().reset(seed=seed)
        if options and "task" in options:
            task = dict(options["task"])
        else:
            index = seed if seed is not None else int(self.np_random.integers(2**31 - 1))
            task = self.task_for_seed(index)
        image = self._show(task)
        self.task = task
        self._prepared = None
        self._needs_reset = False
        info = {"system_prompt": task.get("system_prompt", self.system_prompt), "answer": task["answer"],
                "task": dict(task), "split": self.split}
        return self._observation(task["problem"], image), info

    def step(self, action: str) -> tuple[Observation, float, bool, bool, dict]:
        """Score the response against the gold answer; the episode ends."""
        self._check_action(action)
        assert self.task is not None
        prepared, self._prepared = self._prepared, None
        if prepared is not None and prepared[0] == action:
            score = prepared[1]
        else:
            score = score_math(action, self.task["answer"], mode=self.reward_mode, timeout=self.verify_timeout)
        self._needs_reset = True
        info: dict[str, Any] = {"reward_terms": dict(score.terms), "answer": self.task["answer"],
                                "prediction": score.prediction, "task_id": self.task.get("id"),
                                "family": self.task.get("family"),
                                "verify_timed_out": score.timed_out, "success": score.terms["accuracy"] > 0}
        if score.parse_error:
            info["parse_error"] = score.parse_error
        if not score.gold_parsed:
            info["gold_unparsed"] = True
        return self._observation(""), score.reward, True, False, info
