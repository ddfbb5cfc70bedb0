"""Redraw the sample figures in this folder: one PNG per VisualMath family and the contact sheet families.png.

Run from the repository root: ``python docs/visualmath/make_samples.py``.
"""

from __future__ import annotations

import textwrap
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from lmmr1_env.visualmath.generators import FAMILIES

HERE = Path(__file__).resolve().parent
SIDE = 448
#: The difficulty each sample shows (a middle one, so the figure has something to read).
SHOWN = {"angles": 4, "polygons": 4, "circles": 3, "coordinates": 3, "bar_chart": 4, "line_chart": 3,
         "table": 3, "counting": 2, "clock": 5, "shaded_fraction": 3}
COLUMNS, CAPTION = 5, 190


def main() -> None:
    """Write ``<family>.png`` for every family and ``families.png`` with questions and answers underneath."""
    rows = (len(FAMILIES) + COLUMNS - 1) // COLUMNS
    sheet = Image.new("RGB", (COLUMNS * SIDE + (COLUMNS - 1) * 8, rows * (SIDE + CAPTION) + (rows - 1) * 8),
                      (150, 150, 150))
    draw = ImageDraw.Draw(sheet)
    small, bold = ImageFont.load_default(size=15), ImageFont.load_default(size=17)
    for k, (name, family) in enumerate(FAMILIES.items()):
        difficulty = SHOWN.get(name, 3)
        row = family(np.random.default_rng(0), difficulty, SIDE)
        row["image"].save(HERE / f"{name}.png", optimize=True)
        x, y = (k % COLUMNS) * (SIDE + 8), (k // COLUMNS) * (SIDE + CAPTION + 8)
        sheet.paste(row["image"], (x, y))
        draw.rectangle([x, y + SIDE, x + SIDE - 1, y + SIDE + CAPTION - 1], fill=(246, 246, 246))
        draw.text((x + 10, y + SIDE + 8), f"{name}  (difficulty {difficulty})", font=bold, fill=(20, 20, 20))
        problem = row["problem"].replace("π", "pi")  # the bundled font has no π glyph
        lines = [w for part in problem.split("\n") for w in textwrap.wrap(part, 58)]
        for i, line in enumerate(lines[:8]):
            draw.text((x + 10, y + SIDE + 32 + 17 * i), line, font=small, fill=(40, 40, 40))
        draw.text((x + 10, y + SIDE + CAPTION - 24), f"answer: {row['answer']}", font=bold, fill=(160, 30, 30))
    sheet.save(HERE / "families.png", optimize=True)


if __name__ == "__main__":
    main()
