"""(image, text) pairs for alignment, drawn on the fly from the VisualMath families' training split.

Each figure comes with what the generator knows about it: integer ``labels`` (the numbers a solver reads
off the figure, one per slot, for the label heads) and a short ``description`` in words (the text the
language phase teaches inside ``<think>``). Rows come from the env's own ``generate_task(split="train")``,
so no aligned figure is ever a test problem.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from lmmr1_env.textmath.env import generate_task as text_task
from lmmr1_env.visualmath.env import generate_task, render_task
from lmmr1_env.visualmath.generators import FAMILIES

#: Label slots per figure; unused slots are masked out of the loss.
NUM_SLOTS = 8
#: Label values are classes 0 .. NUM_VALUES - 1 (angles reach 180; larger values are clipped).
NUM_VALUES = 200
FAMILY_NAMES = tuple(FAMILIES)
#: Families whose difficulty-1 answer is read off the drawing without digits or sums (a hand's direction, a
#: point's place, circles by colour, shaded strips): phase 1's default. The other six need digits read (OCR)
#: and arithmetic; phase 2 still teaches their answer format.
PICTURE_FAMILIES = ("coordinates", "counting", "clock", "shaded_fraction")


def figure_labels(family: str, params: dict) -> list[int]:
    """The numbers the figure shows (:meth:`~lmmr1_env.visualmath.family.Family.numbers`) as label classes, in the
    family's fixed slot order, at most :data:`NUM_SLOTS`."""
    if family not in FAMILY_NAMES:
        raise ValueError(f"no alignment labels for VisualMath family {family!r}")
    values = FAMILIES[family].numbers(params)
    return [min(max(int(round(float(v))), 0), NUM_VALUES - 1) for v in values[:NUM_SLOTS]]


def describe(family: str, params: dict) -> str:
    """A short description in words of what the figure shows (what is needed to answer its question)."""
    return FAMILIES[family].description(params)


def _asked_item(task: dict) -> str | None:
    """The one bar, year or table row a chart or table question names, or None."""
    params, question = task["params"], task["problem"].lower()
    names = {"bar_chart": params.get("cats"), "line_chart": params.get("years"), "table": params.get("items")}
    candidates = names.get(task["family"]) or []
    found = [str(n) for n in candidates if str(n).lower().rstrip("s") in question]
    return found[0] if len(found) == 1 else None


#: What the language phase may teach inside ``<think>`` for a figure (``--visual-targets``).
VISUAL_TARGETS = ("description", "solution")


def reasoning(task: dict, visual: str = "description") -> str:
    """What the language phase teaches inside ``<think>``: a text problem's worked ``solution``; for a figure,
    with ``visual="solution"`` its row's worked solution (the reading, then each step: ``x = 180 - 66 - 49 =
    65``), with ``"description"`` what it shows, or for a chart or table question at difficulty 1 only the asked
    entry (``"May: 8."``), so the response stays under 48 tokens."""
    if visual not in VISUAL_TARGETS:
        raise ValueError(f"visual targets must be one of {VISUAL_TARGETS}, got {visual!r}")
    if task.get("family") not in FAMILY_NAMES or visual == "solution":
        return task["solution"]
    item = _asked_item(task) if task.get("difficulty") == 1 else None
    if item is not None:
        return f"{item}: {task['answer']}."
    return describe(task["family"], task["params"])


def target_text(task: dict, visual: str = "description") -> str:
    """The response the language phase teaches: :func:`reasoning`, then the gold answer in the env's format."""
    return f"<think>{reasoning(task, visual)}</think><answer>{task['answer']}</answer>"


def draw_rows(split: str, first_seed: int, count: int, families: Sequence[str], difficulties: Sequence[int],
              image_size: int) -> list[dict]:
    """``count`` env task rows (seeds ``first_seed ..``) with ``image`` (H, W, 3 uint8), ``labels``, ``family_id``."""
    rows = []
    for seed in range(first_seed, first_seed + count):
        task = generate_task(split, seed, families, difficulties)
        labels = figure_labels(task["family"], task["params"])
        rows.append({**task, "image": render_task(task, (image_size, image_size)), "labels": labels,
                     "family_id": FAMILY_NAMES.index(task["family"])})
    return rows


def draw_text_rows(split: str, first_seed: int, count: int, difficulties: Sequence[int]) -> list[dict]:
    """``count`` TextMath ``arithmetic`` rows (seeds ``first_seed ..``) with their worked ``solution`` and no image:
    the language phase's text rehearsal."""
    return [{**text_task(split, seed, ["arithmetic"], difficulties), "image": None}
            for seed in range(first_seed, first_seed + count)]


def label_arrays(rows: Sequence[dict]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(family_ids (B,), labels (B, NUM_SLOTS), mask (B, NUM_SLOTS))`` as int64 / bool arrays."""
    labels = np.zeros((len(rows), NUM_SLOTS), np.int64)
    mask = np.zeros((len(rows), NUM_SLOTS), bool)
    for i, row in enumerate(rows):
        labels[i, :len(row["labels"])] = row["labels"]
        mask[i, :len(row["labels"])] = True
    return np.array([r["family_id"] for r in rows], np.int64), labels, mask
