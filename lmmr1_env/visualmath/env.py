"""LMMR1/VisualMath-v0: single-turn multimodal math (a figure and a question) with LMM-R1's rule-based reward."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from lmmr1_env.core import LMMEnv, letterbox
from lmmr1_env.datasets import split_of_text
from lmmr1_env.rewards import DEFAULT_VERIFY_TIMEOUT, REWARD_MODES, score_math
from lmmr1_env.textmath.env import DEMONSTRATIONS, SYSTEM_PROMPTS
from lmmr1_env.types import Observation, TaskRow
from lmmr1_env.visualmath.data import load_rows, open_image
from lmmr1_env.visualmath.drawing import WHITE
from lmmr1_env.visualmath.generators import DEFAULT_IMAGE_SIZE, DIFFICULTIES, FAMILIES

_SPLIT_STREAM = {"train": 0, "test": 1}
_MAX_SPLIT_TRIES = 1000


def split_key(family: str, spec: TaskRow) -> str:
    """The text a procedural problem's split is hashed from: its family, question, answer and figure parameters."""
    return f"{family}\n{spec['problem']}\n{spec['answer']}\n{json.dumps(spec['params'], sort_keys=True)}"


def generate_task(split: str, seed: int, families: Sequence[str], difficulties: Sequence[int]) -> TaskRow:
    """The procedural problem for (split, seed), as a JSON-able row without pixels (:func:`render_task` draws it).

    Same arguments, same row, in any process. A problem belongs to the split its :func:`split_key` hashes
    to, so no test problem is ever a training problem; the figure is drawn only for the accepted one.
    """
    for attempt in range(_MAX_SPLIT_TRIES):
        rng = np.random.default_rng([seed, attempt, _SPLIT_STREAM[split]])
        family = families[int(rng.integers(len(families)))]
        difficulty = int(difficulties[int(rng.integers(len(difficulties)))])
        spec = FAMILIES[family].draw(rng, difficulty)
        if split_of_text(split_key(family, spec)) == split:
            return {"id": f"{family}/d{difficulty}/{split}/{seed}", **spec, "family": family,
                    "difficulty": difficulty, "source": "procedural"}
    raise RuntimeError(f"no {split} problem found for seed {seed} in {_MAX_SPLIT_TRIES} tries")


def render_task(task: TaskRow, image_size: tuple[int, int]) -> np.ndarray:
    """The ``(height, width, 3)`` uint8 image of a task row: its figure redrawn, or its file letterboxed."""
    if "family" in task and "params" in task:
        if task["family"] not in FAMILIES:
            raise ValueError(f"task row names an unknown VisualMath family {task['family']!r}")
        image = FAMILIES[task["family"]].image(task["params"], min(image_size))
    elif "image_file" in task:
        image = open_image(task)
    else:
        raise ValueError("a VisualMath task row needs 'family' and 'params' (procedural) or 'image_file' (loaded)")
    return letterbox(image, image_size, fill=WHITE)


class VisualMathEnv(LMMEnv):
    """Multimodal math problems (a figure and a question) scored by LMM-R1's rule: 0.5 × format + 1.0 × accuracy.

    ## Description
    One problem per episode, one response per episode, as in LMM-R1's multimodal stage (MGT) on VerMulti.
    Problems come from ten procedural families, each drawn as a clean textbook figure at difficulty 1–5:
    ``angles`` (triangles, exterior angles, parallel lines), ``polygons`` (area and perimeter from labelled
    sides), ``circles`` (answers in π), ``coordinates`` (reading points, distance, slope, triangle area),
    ``bar_chart``, ``line_chart``, ``table``, ``counting`` (shapes by colour and kind), ``clock`` (analogue
    clocks) and ``shaded_fraction``. The numbers needed to answer are only in the picture, never in the
    question; some questions are multiple choice (A–D). Or problems come from a dataset: LMM-R1's JSONL (a
    ``message`` chat whose user content holds ``{"type": "image", "image": PATH}``), plain
    ``{"problem", "answer", "image"}`` rows, or a list of such dicts. Paths are local files, plain or
    ``file://``, relative to the dataset file; remote URLs, missing and unreadable images are refused with
    the record named.

    ## Observation
    ``{"text": str, "image": Box(0, 255, (H, W, 3), uint8)}``: the question and the figure. Figures are
    drawn at ``min(H, W)`` pixels square; dataset images are scaled to fit with their aspect kept; both are
    centred on white padding, never stretched. Instructions are in ``system_prompt`` (and
    ``info["system_prompt"]`` on reset; a dataset row's own system message takes its place). The
    observation after the step is empty text and a black image.

    ## Action
    The model's whole response, any ``str``: ``<think>reasoning</think><answer>final answer</answer>``;
    for multiple choice the answer is the letter (``B``, ``(B)``, ``B. 12`` all count).

    ## Rewards
    - ``format`` 0.5: the response (end-of-sequence tokens and outer whitespace stripped) is exactly
      ``<think>…</think><answer>…</answer>``, one pair of each, nothing between or around them.
    - ``accuracy`` 1.0: math-verify judges the answer equal to the gold one, as in LMMR1/TextMath-v0:
      ``reward_mode="answer"`` (default) reads the text inside ``<answer>`` (``12``, ``$12$``, ``\\boxed{12}``,
      ``0.5`` for ``\\frac{1}{2}``, ``16\\pi``, choice letters); ``reward_mode="lmmr1"`` is LMM-R1's verifier
      exactly. Over ``verify_timeout`` seconds scores 0.
    ``info["reward_terms"]`` holds both; ``info["parse_error"]`` says why an answer could not be read;
    ``info["success"]`` is True when the answer is right; ``info["answer"]`` is the gold answer.

    ## Episode End
    Terminated after the single step. Never truncated.

    ## Arguments
    ``split`` ("train" | "test"; procedural problems are split by a hash of family, question, answer and
    figure, dataset rows by their ``split`` field when they have one), ``dataset`` (path or list of dicts;
    default: procedural), ``families`` (names, default all), ``difficulty`` (1–5 or a list to draw from,
    default 2), ``image_size`` (int or (height, width), default 448 × 448), ``reward_mode``
    ("answer" | "lmmr1"), ``verify_timeout`` (seconds, default 3), ``render_mode`` (None | "rgb_array":
    ``render()`` returns the current image).

    ## Version History
    - v0: initial version.
    """

    metadata = {"render_modes": ["rgb_array"], "render_fps": 1}

    def __init__(self, split: str = "train", dataset: str | Path | Sequence[dict] | None = None,
                 families: Sequence[str] | None = None, difficulty: int | Sequence[int] = 2,
                 image_size: int | tuple[int, int] = DEFAULT_IMAGE_SIZE, reward_mode: str = "answer",
                 verify_timeout: float = DEFAULT_VERIFY_TIMEOUT, render_mode: str | None = None):
        super().__init__(image_size=image_size, split=split, render_mode=render_mode)
        if reward_mode not in REWARD_MODES:
            raise ValueError(f"reward_mode must be one of {REWARD_MODES}, got {reward_mode!r}")
        if not verify_timeout > 0:
            raise ValueError(f"verify_timeout must be positive seconds, got {verify_timeout!r}")
        self.families = tuple(families) if families is not None else tuple(FAMILIES)
        unknown = [f for f in self.families if f not in FAMILIES]
        if unknown or not self.families:
            raise ValueError(f"unknown VisualMath families {unknown}; choose from {sorted(FAMILIES)}")
        self.difficulties = (difficulty,) if isinstance(difficulty, (int, np.integer)) else tuple(difficulty)
        if not self.difficulties or any(d not in DIFFICULTIES for d in self.difficulties):
            raise ValueError(f"difficulty must be in {DIFFICULTIES} (or a list of them), got {difficulty!r}")
        self.rows = load_rows(dataset, split) if dataset is not None else None
        self.reward_mode = reward_mode
        self.verify_timeout = float(verify_timeout)
        self.system_prompt = SYSTEM_PROMPTS[reward_mode]
        self.demonstration = [dict(m) for m in DEMONSTRATIONS[reward_mode]]
        self.task: TaskRow | None = None
        self._image: np.ndarray | None = None

    def task_for_seed(self, seed: int) -> TaskRow:
        """The task ``reset(seed=seed)`` plays: dataset row ``seed mod N``, or the procedural problem."""
        if self.rows is not None:
            return self.rows[seed % len(self.rows)]
        return generate_task(self.split, seed, self.families, self.difficulties)

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[Observation, dict]:
        """Start an episode; ``options={"task": row}`` replays a logged task row (``info["task"]``) instead."""
        super().reset(seed=seed)
        if options and "task" in options:
            task = dict(options["task"])
        else:
            index = seed if seed is not None else int(self.np_random.integers(2**31 - 1))
            task = self.task_for_seed(index)
        assert self.image_size is not None
        self._image = render_task(task, self.image_size)
        self.task = task
        self._needs_reset = False
        info = {"system_prompt": task.get("system_prompt", self.system_prompt), "answer": task["answer"],
                "task": dict(task), "split": self.split}
        return self._observation(task["problem"], self._image), info

    def step(self, action: str) -> tuple[Observation, float, bool, bool, dict]:
        """Score the response against the gold answer; the episode ends."""
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

    def render(self) -> np.ndarray | None:
        """The current problem's image (``(H, W, 3)`` uint8) in ``"rgb_array"`` mode; None otherwise."""
        if self.render_mode != "rgb_array":
            return None
        if self._image is None:
            assert self.image_size is not None
            return np.full((*self.image_size, 3), 255, np.uint8)
        return self._image.copy()
