"""Every procedural visual math family by name.

Each family is a :class:`~lmmr1_env.visualmath.family.Family`: calling it as
``family(rng, difficulty, size)`` gives ``{"problem", "answer", "params", "image"}`` with the answer in
LaTeX (an integer, an exact decimal, ``\\frac{p}{q}``, ``k\\pi``, or a letter A–D for multiple choice) and
the image a PIL picture; the numbers needed to answer are only in the picture.
"""

from __future__ import annotations

from lmmr1_env.visualmath.charts import BAR_CHART, LINE_CHART, TABLE
from lmmr1_env.visualmath.coordinates import COORDINATES
from lmmr1_env.visualmath.family import DEFAULT_IMAGE_SIZE, DIFFICULTIES, Family
from lmmr1_env.visualmath.geometry import ANGLES, CIRCLES, POLYGONS
from lmmr1_env.visualmath.scenes import CLOCK, COUNTING, SHADED_FRACTION

__all__ = ["DEFAULT_IMAGE_SIZE", "DIFFICULTIES", "FAMILIES", "Family"]

#: Every procedural family by name, in the order the docs show them.
FAMILIES: dict[str, Family] = {f.name: f for f in (
    ANGLES, POLYGONS, CIRCLES, COORDINATES, BAR_CHART, LINE_CHART, TABLE, COUNTING, CLOCK, SHADED_FRACTION,
)}
