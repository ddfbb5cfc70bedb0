"""LMMR1/VisualMath-v0: single-turn multimodal math (a figure and a question) with LMM-R1's rule-based reward."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from lmmr1_env.core import letterbox
from lmmr1_env.mathenv import MathEnv, draw_task
from lmmr1_env.rewards import DEFAULT_VERIFY_TIMEOUT
from lmmr1_env.types import TaskRow
from lmmr1_env.visualmath.data import load_rows, open_image
from lmmr1_env.visualmath.drawing import WHITE
from lmmr1_env.visualmath.generators import DEFAULT_IMAGE_SIZE, DIFFICULTIES, FAMILIES


def split_key(family: str, spec: TaskRow) -> str:
    """The text a procedural problem's split is hashed from: its family, question, answer and figure parameters."""
    return f"{family}\n{spec['problem']}\n{spec['answer']}\n{json.dumps(spec['params'], sort_keys=True)}"


def generate_task(split: str, seed: int, families: Sequence[str], difficulties: Sequence[int]) -> TaskRow:
    """The procedural problem for (split, seed), as a JSON-able row without pixels (:func:`render_task` draws it).

    Same arguments, same row, in any process. A problem belongs to the split its :func:`split_key` hashes
    to, so no test problem is ever a training problem; the figure is drawn only for the accepted one.
    """
    return draw_task(split, seed, families, difficulties, _draw, split_key)


def _draw(family: str, rng: np.random.Generator, difficulty: int) -> TaskRow:
    return FAMILIES[family].problem(rng, difficulty)


def render_task(task: TaskRow, image_size: tuple[int, int]) -> np.ndarray:
    """The ``(height, width, 3)`` uint8 image of a task row: its figure redrawn, or its file letterboxed."""
    if "family" in task and "params" in task:
        if task["family"] not in FAMILIES:
            raise ValueError(f"task row names an unknown VisualMath family {task['family']!r}")
        image = FAMILIES[task["family"]].image(task["params"], min(image_size))
    elif "image_file" in task:
        image = open_image(task, image_size)
    else:
        raise ValueError("a VisualMath task row needs 'family' and 'params' (procedural) or 'image_file' (loaded)")
    return letterbox(image, image_size, fill=WHITE)


class VisualMathEnv(MathEnv):
    """Multimodal math problems (a figure and a question) scored by LMM-R1's rule: 0.5 × format + 1.0 × accuracy.

    ## Description
    One problem per episode, one response per episode, as in LMM-R1's multimodal stage (MGT) on VerMulti.
    Problems come from ten procedural families, each drawn as a clean textbook figure at difficulty 1–5:
    ``angles`` (triangles, exterior angles, parallel lines), ``polygons`` (area and perimeter from labelled
    sides), ``circles`` (answers in π), ``coordinates`` (reading points, distance, slope, triangle area),
    ``bar_chart``, ``line_chart``, ``table``, ``counting`` (shapes by colour and kind), ``clock`` (analogue
    clocks) and ``shaded_fraction``. The numbers needed to answer are only in the picture, never in the
    question; some questions are multiple choice (A–D). A procedural task row (:func:`generate_task`) also carries
    a worked ``solution`` in plain text, what is read off the figure then each step (``x = 180 - 66 - 49 = 65``):
    supervised targets for a warm start, never shown to the agent. Or problems come from a dataset: LMM-R1's JSONL (a
    ``message`` chat whose user content holds ``{"type": "image", "image": PATH}``), plain
    ``{"problem", "answer", "image"}`` rows, or a list of such dicts. Paths are local files, plain or
    ``file://``, relative to the dataset file; remote URLs, missing, unreadable and truncated images, and
    images of more than 64 × ``image_size`` pixels (read from the header), are refused at ``gym.make`` with
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
    default: procedural), ``families`` (a list of names, default all), ``difficulty`` (1–5 or a list to draw
    from, default 2), ``image_size`` (int or (height, width), default 448 × 448), ``reward_mode``
    ("answer" | "lmmr1"), ``verify_timeout`` (finite seconds above 0, default 3), ``render_mode``
    (None | "rgb_array": ``render()`` returns the current image). Any other type or value is a TypeError
    or ValueError naming the argument at ``gym.make``.

    ## Version History
    - v0: initial version. Revised before the first release: every procedural figure has a drawn layout (a
      zoom of 80–95 % and a shift, ``params["layout"]``), so a difficulty with few distinct questions still has
      distinct test figures and every answer appears in both splits (before, difficulty 1 had one test
      clock, "4 o'clock", never seen in training). Task rows without a layout draw as before.
    """

    metadata = {"render_modes": ["rgb_array"], "render_fps": 1}
    kind = "VisualMath"
    family_names = FAMILIES
    difficulty_levels = DIFFICULTIES

    def __init__(self, split: str = "train", dataset: str | Path | Sequence[dict] | None = None,
                 families: Sequence[str] | None = None, difficulty: int | Sequence[int] = 2,
                 image_size: int | tuple[int, int] = DEFAULT_IMAGE_SIZE, reward_mode: str = "answer",
                 verify_timeout: float = DEFAULT_VERIFY_TIMEOUT, render_mode: str | None = None):
        super().__init__(split=split, dataset=dataset, families=families, difficulty=difficulty,
                         reward_mode=reward_mode, verify_timeout=verify_timeout, render_mode=render_mode,
                         image_size=image_size)
        self._image: np.ndarray | None = None

    rows_loader = staticmethod(load_rows)
    task_generator = staticmethod(generate_task)

    def _load_rows(self, dataset: str | Path | Sequence[dict], split: str) -> list[TaskRow]:
        return load_rows(dataset, split, self.image_size)  # images over 64 × image_size pixels are refused

    def _show(self, task: TaskRow) -> np.ndarray:
        assert self.image_size is not None
        self._image = render_task(task, self.image_size)
        return self._image

    def render(self) -> np.ndarray | None:
        """The current problem's image (``(H, W, 3)`` uint8) in ``"rgb_array"`` mode; None otherwise."""
        if self.render_mode != "rgb_array":
            return None
        if self._image is None:
            assert self.image_size is not None
            return np.full((*self.image_size, 3), 255, np.uint8)
        return self._image.copy()
