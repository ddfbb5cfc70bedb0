"""Picture families: counting shapes by colour and kind, reading analogue clocks, shaded fractions."""

from __future__ import annotations

import math
from fractions import Fraction

import numpy as np

from lmmr1_env.types import TaskRow
from lmmr1_env.visualmath.drawing import COLOURS, INK, SHADE, WHITE, Canvas
from lmmr1_env.visualmath.family import Family, choice, fraction_latex, integer, multiple_choice, pick, plain

# ---- counting ----

SHAPES = ("circle", "square", "triangle", "star")


def draw_counting(rng: np.random.Generator, difficulty: int) -> TaskRow:
    """Count shapes: of one colour (1), of a colour and kind (2), not of a colour (3),
    how many more of one kind than another (4), the most frequent colour (5, A–D)."""
    cols, rows = (5, 4) if difficulty <= 2 else (6, 5) if difficulty <= 4 else (7, 6)
    count_range = {1: (5, 9), 2: (8, 14), 3: (12, 18), 4: (14, 22), 5: (18, 28)}[difficulty]
    kinds = ["circle"] if difficulty == 1 else choice(rng, SHAPES, 3 if difficulty <= 3 else 4)
    colours = choice(rng, list(COLOURS)[:4], 2 if difficulty == 1 else 3 if difficulty <= 4 else 4)
    cell = 380 / max(cols, rows)
    left, top = 34 + (380 - cell * cols) / 2, 34 + (380 - cell * rows) / 2  # the grid of slots, centred
    while True:
        n = integer(rng, *count_range)
        slots = sorted(int(s) for s in rng.permutation(cols * rows)[:n])
        shapes = []
        for slot in slots:
            size = round(float(rng.uniform(0.28, 0.36)) * cell, 1)
            room = cell / 2 - size - 2
            x = round(left + cell * (slot % cols + 0.5) + float(rng.uniform(-room, room)), 1)
            y = round(top + cell * (slot // cols + 0.5) + float(rng.uniform(-room, room)), 1)
            shapes.append([pick(rng, kinds), pick(rng, colours), x, y, size])
        by_colour = {c: sum(s[1] == c for s in shapes) for c in colours}
        by_kind = {k: sum(s[0] == k for s in shapes) for k in kinds}
        if difficulty == 1:
            colour = pick(rng, colours)
            question, answer, operands = f"How many {colour} circles are there?", by_colour[colour], [by_colour[colour]]
            solution = _there_are(answer, f"{colour} circle")
        elif difficulty == 2:
            colour, kind = pick(rng, colours), pick(rng, kinds)
            answer = sum(s[0] == kind and s[1] == colour for s in shapes)
            question, operands = f"How many {colour} {kind}s are there?", [answer]
            solution = _there_are(answer, f"{colour} {kind}")
        elif difficulty == 3:
            colour = pick(rng, colours)
            answer = n - by_colour[colour]
            question, operands = f"How many shapes are not {colour}?", [n, by_colour[colour]]
            solution = (f"There are {n} shapes, {by_colour[colour]} of them {colour}. "
                        f"{n} - {by_colour[colour]} = {answer}")
        elif difficulty == 4:
            more, less = choice(rng, kinds, 2)
            if by_kind[more] < by_kind[less]:
                more, less = less, more
            answer = by_kind[more] - by_kind[less]
            question, operands = f"How many more {more}s than {less}s are there?", [by_kind[more], by_kind[less]]
            solution = (f"There are {by_kind[more]} {more}s and {by_kind[less]} {less}s. "
                        f"{by_kind[more]} - {by_kind[less]} = {answer}")
        else:
            top = max(by_colour.values())
            winners = [c for c in colours if by_colour[c] == top]
            answer = winners[0] if len(winners) == 1 else 0
            operands = sorted(by_colour.values())
        if answer:
            break
    if difficulty == 5:
        row = multiple_choice(rng, "Which colour do the most shapes have?", answer,
                              [c for c in colours if c != answer])
        counts = ", ".join(f"{by_colour[c]} {c}" for c in colours)
        solution = f"The shapes are {counts}. The most are {answer}: {row['answer']}"
    else:
        row = {"problem": question, "answer": str(answer)}
    params = {"shapes": shapes, "operands": sorted(set(operands))}
    return {"problem": f"Look at the shapes in the picture. {row['problem']}", "answer": row["answer"],
            "params": params, "solution": solution}


def _there_are(count: int, thing: str) -> str:
    """``"There is 1 red star"``, ``"There are 3 red stars"``."""
    return f"There is 1 {thing}" if count == 1 else f"There are {count} {thing}s"


def _star(x: float, y: float, r: float) -> list[tuple[float, float]]:
    points = []
    for k in range(10):
        radius = r if k % 2 == 0 else r * 0.45
        angle = math.radians(-90 + 36 * k)
        points.append((x + radius * math.cos(angle), y + radius * math.sin(angle)))
    return points


def render_counting(params: dict, canvas: Canvas) -> None:
    """Draw the shapes of ``params`` (see :func:`draw_counting`): ``[kind, colour, x, y, size]`` each."""
    for kind, colour, x, y, r in params["shapes"]:
        fill = COLOURS[colour]
        if kind == "circle":
            canvas.circle(x, y, r, fill=fill, width=1.5)
        elif kind == "square":
            s = r * 0.85
            canvas.rect(x - s, y - s, x + s, y + s, fill=fill, width=1.5)
        elif kind == "triangle":
            canvas.polygon([(x, y - r), (x + r * 0.95, y + r * 0.7), (x - r * 0.95, y + r * 0.7)], fill=fill,
                           width=1.5)
        else:
            canvas.polygon(_star(x, y, r * 1.1), fill=fill, width=1.5)


# ---- clocks ----

def draw_clock(rng: np.random.Generator, difficulty: int) -> TaskRow:
    """Analogue clocks: the hour (1), minutes past the hour (2), minutes to the next hour (3),
    minutes until a named hour (4), minutes between two clocks (5)."""
    hour = integer(rng, 1, 12)
    if difficulty == 1:
        minute, question, answer = 0, "What hour does the clock show?", hour
        work = f"The hour is {hour}"
    elif difficulty == 2:
        minute = 5 * integer(rng, 1, 11)
        question, answer = "How many minutes past the hour does the clock show?", minute
        work = f"That is {minute} minutes past {hour}"
    elif difficulty == 3:
        minute = integer(rng, 1, 59)
        question, answer = "How many minutes are left until the next full hour?", 60 - minute
        work = f"60 - {minute} = {answer}"
    elif difficulty == 4:
        minute = integer(rng, 1, 59)
        while True:
            target = integer(rng, 1, 12)
            answer = ((target - hour) % 12) * 60 - minute
            if answer > 0 and target not in (hour, minute, answer):
                break
        hours = f"{target} - {hour}" if target > hour else f"{target} + 12 - {hour}"
        work = f"({hours}) × 60 - {minute} = {answer}"
        question = f"How many minutes from the time shown until the clock next shows {target} o'clock?"
    else:
        minute = integer(rng, 0, 59)
        answer = 5 * integer(rng, 4, 60)
        start = (hour % 12) * 60 + minute
        end = start + answer
        end_hour, end_minute = (end // 60) % 12 or 12, end % 60
        params = {"clocks": [[hour, minute], [end_hour, end_minute]],
                  "operands": sorted({hour, minute, end_hour, end_minute} - {0})}
        # minutes since the last 12 o'clock before the start: an end past 12 counts its hour from 12 on
        later = end // 60
        solution = (f"It starts at {hour}:{minute:02d} and ends at {end_hour}:{end_minute:02d}. "
                    f"({later} × 60 + {end_minute}) - ({hour % 12} × 60 + {minute}) = {answer}")
        return {"problem": "A lesson starts at the time on the left clock and ends at the time on the right clock, "
                           "on the same day. How many minutes does the lesson last?",
                "answer": str(answer), "params": params, "solution": solution}
    params = {"clocks": [[hour, minute]], "operands": sorted({hour, minute} - {0})}
    return {"problem": f"Look at the clock. {question}", "answer": str(answer), "params": params,
            "solution": f"{_times(params['clocks'])} {work}"}


def _times(clocks: list) -> str:
    """``"The clock shows 3:05."``: the words for a figure's clocks."""
    return " ".join(f"The clock shows {h}:{m:02d}." for h, m in clocks)


def _clock_face(canvas: Canvas, cx: float, cy: float, r: float, hour: int, minute: int) -> None:
    canvas.circle(cx, cy, r, fill=WHITE, width=max(2.5, r / 40))
    for k in range(60):
        angle = math.radians(6 * k - 90)
        inner = r * (0.86 if k % 5 == 0 else 0.92)
        canvas.line([(cx + inner * math.cos(angle), cy + inner * math.sin(angle)),
                     (cx + r * 0.97 * math.cos(angle), cy + r * 0.97 * math.sin(angle))],
                    width=2.2 if k % 5 == 0 else 1)
    for k in range(1, 13):
        angle = math.radians(30 * k - 90)
        canvas.text(cx + r * 0.72 * math.cos(angle), cy + r * 0.72 * math.sin(angle), str(k), r * 0.16)
    minute_angle = math.radians(6 * minute - 90)
    hour_angle = math.radians(30 * (hour % 12) + minute / 2 - 90)
    canvas.line([(cx, cy), (cx + r * 0.48 * math.cos(hour_angle), cy + r * 0.48 * math.sin(hour_angle))],
                width=max(4.0, r / 24))
    canvas.line([(cx, cy), (cx + r * 0.8 * math.cos(minute_angle), cy + r * 0.8 * math.sin(minute_angle))],
                width=max(2.5, r / 50))
    canvas.circle(cx, cy, r / 22, fill=INK, outline=None)


def render_clock(params: dict, canvas: Canvas) -> None:
    """Draw one clock, or two labelled Start / End side by side (see :func:`draw_clock`)."""
    clocks = params["clocks"]
    if len(clocks) == 1:
        _clock_face(canvas, 224, 224, 175, *clocks[0])
        return
    for (hour, minute), cx, name in zip(clocks, (114, 334), ("Start", "End")):
        _clock_face(canvas, cx, 214, 100, hour, minute)
        canvas.text(cx, 340, name, 20)


# ---- shaded fractions ----

_PERCENT_GRIDS = ((2, 5), (4, 5), (5, 5), (5, 10))


def draw_shaded_fraction(rng: np.random.Generator, difficulty: int) -> TaskRow:
    """What part is shaded: strips (1), a grid (2), circle sectors (3), the unshaded part of a grid (4),
    the shaded percent of a grid (5)."""
    if difficulty == 1:
        shape, rows, cols = "strips", 1, integer(rng, 2, 8)
    elif difficulty == 3:
        shape, rows, cols = "circle", 1, pick(rng, [3, 4, 5, 6, 8, 10, 12])
    elif difficulty == 5:
        shape, (rows, cols) = "grid", pick(rng, _PERCENT_GRIDS)
    else:
        shape, rows, cols = "grid", integer(rng, 2, 4 if difficulty == 2 else 5), integer(rng, 3, 6)
    total = rows * cols
    shaded = integer(rng, 1, total - 1)
    cells = list(range(shaded)) if shape == "strips" else sorted(int(c) for c in rng.permutation(total)[:shaded])
    seen = f"{shaded} of {total} equal parts are shaded."
    if difficulty == 4:
        question, value = "What fraction of the figure is not shaded? Give it in lowest terms.", \
            Fraction(total - shaded, total)
        work = f"Not shaded: ({total} - {shaded})/{total} = {_lowest(total - shaded, total)}"
    elif difficulty == 5:
        question, value = "What percent of the figure is shaded?", Fraction(100 * shaded, total)
        work = f"100 × {shaded} ÷ {total} = {plain(value)}, so {plain(value)}%"
    else:
        question, value = "What fraction of the figure is shaded? Give it in lowest terms.", Fraction(shaded, total)
        work = _lowest(shaded, total)
    params = {"shape": shape, "rows": rows, "cols": cols, "cells": cells, "operands": sorted({shaded, total})}
    return {"problem": f"The figure is divided into equal parts. {question}", "answer": fraction_latex(value),
            "params": params, "solution": f"{seen} {work}"}


def _lowest(part: int, whole: int) -> str:
    """``"4/6 = 2/3"`` (or ``"3/7"``): a fraction of the figure, then in lowest terms."""
    value = Fraction(part, whole)
    return f"{part}/{whole}" + (f" = {plain(value, decimal=False)}" if value.denominator != whole else "")


def render_shaded_fraction(params: dict, canvas: Canvas) -> None:
    """Draw the divided figure of ``params`` with its shaded parts (see :func:`draw_shaded_fraction`)."""
    rows, cols, cells = params["rows"], params["cols"], set(params["cells"])
    if params["shape"] == "circle":
        step = 360 / cols
        for k in range(cols):
            canvas.pieslice(224, 224, 170, -90 + k * step, -90 + (k + 1) * step,
                            fill=SHADE if k in cells else WHITE, width=2.5)
        return
    cell = min(380 / cols, 300 / rows) if params["shape"] == "grid" else min(380 / cols, 90)
    height = cell * rows if params["shape"] == "grid" else 150
    x0, y0 = 224 - cell * cols / 2, 224 - height / 2
    h = height / rows
    for k in range(rows * cols):
        r, c = divmod(k, cols)
        canvas.rect(x0 + c * cell, y0 + r * h, x0 + (c + 1) * cell, y0 + (r + 1) * h,
                    fill=SHADE if k in cells else WHITE, outline=INK, width=2)
    canvas.rect(x0, y0, x0 + cell * cols, y0 + height, outline=INK, width=3)


def _counts_by_colour(shapes) -> dict[str, int]:
    counts: dict[str, int] = {}
    for shape in shapes:
        counts[shape[1]] = counts.get(shape[1], 0) + 1
    return counts


def _counting_words(p: dict) -> str | None:
    if "shapes" not in p:
        return None
    kind = p["shapes"][0][0] if p["shapes"] else "shape"
    return ", ".join(f"{n} {colour} {kind}s" for colour, n in _counts_by_colour(p["shapes"]).items()) + "."


def _shaded_words(p: dict) -> str | None:
    if not {"cells", "rows", "cols"} <= set(p):
        return None
    return f"{len(p['cells'])} of {p['rows'] * p['cols']} equal parts are shaded."


COUNTING = Family("counting", draw_counting, render_counting,
                  # one count per colour a figure may use, in a fixed order (0 for a colour not drawn)
                  lambda p: [_counts_by_colour(p["shapes"]).get(c, 0) for c in tuple(COLOURS)[:4]], _counting_words)
CLOCK = Family("clock", draw_clock, render_clock, lambda p: [v for clock in p["clocks"] for v in clock],
               lambda p: _times(p["clocks"]) if "clocks" in p else None)
SHADED_FRACTION = Family("shaded_fraction", draw_shaded_fraction, render_shaded_fraction,
                         lambda p: [len(p["cells"]), p["rows"] * p["cols"]], _shaded_words)
