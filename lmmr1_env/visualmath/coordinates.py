"""The coordinates family: points on a numbered grid; read a coordinate, a distance, a slope, an area."""

from __future__ import annotations

import math
from fractions import Fraction

import numpy as np

from lmmr1_env.types import TaskRow
from lmmr1_env.visualmath.drawing import GRID, MARK, WHITE, Canvas, Point
from lmmr1_env.visualmath.family import Family, integer, latex_number, pick, plain, shown

_GRID_BOX = (52.0, 36.0, 412.0, 396.0)


def draw_coordinates(rng: np.random.Generator, difficulty: int) -> TaskRow:
    """Points on a grid: read a coordinate (1), a distance along a grid line (2), a slope (3),
    a diagonal distance (4), the area of a triangle (5)."""
    low, high = (0, 8) if difficulty == 1 else (0, 10) if difficulty == 2 else (-5, 5)
    lo1 = low + (1 if low == 0 else 0)

    def point() -> list[int]:
        return [integer(rng, lo1, high), integer(rng, lo1, high)]

    if difficulty == 1:
        a = point()
        axis = pick(rng, ["x", "y"])
        points, question, answer = {"A": a}, f"What is the {axis}-coordinate of point A?", a[axis == "y"]
        operands = a
        work = f"Its {axis}-coordinate is {answer}"
    elif difficulty == 2:
        a = point()
        b = list(a)
        k = integer(rng, 0, 1)
        while b[k] == a[k]:
            b[k] = integer(rng, lo1, high)
        points, question, answer = {"A": a, "B": b}, "How many units apart are points A and B?", abs(a[k] - b[k])
        operands = a + b
        work = f"{max(a[k], b[k])} - {min(a[k], b[k])} = {answer}"
    elif difficulty == 3:
        while True:
            a, b = point(), point()
            if a[0] != b[0] and a != b:
                break
        points, question = {"A": a, "B": b}, "What is the slope of the line through points A and B?"
        answer, operands = Fraction(b[1] - a[1], b[0] - a[0]), a + b
        work = (f"({b[1]} - {shown(a[1])}) ÷ ({b[0]} - {shown(a[0])}) = {shown(b[1] - a[1])} ÷ {shown(b[0] - a[0])}"
                f" = {plain(answer)}")
    elif difficulty == 4:
        dx, dy, _ = pick(rng, [(3, 4, 5), (4, 3, 5), (6, 8, 10), (8, 6, 10)])
        dx, dy = dx * pick(rng, [1, -1]), dy * pick(rng, [1, -1])
        a = [integer(rng, max(low, low - dx), min(high, high - dx)), integer(rng, max(low, low - dy),
                                                                             min(high, high - dy))]
        b = [a[0] + dx, a[1] + dy]
        points, question = {"A": a, "B": b}, "What is the distance between points A and B?"
        answer, operands = math.isqrt(dx * dx + dy * dy), a + b
        work = f"{abs(dx)}² + {abs(dy)}² = {dx * dx + dy * dy}, so the distance is √{dx * dx + dy * dy} = {answer}"
    else:
        while True:
            a, b, c = point(), point(), point()
            cross = (b[0] - a[0]) * (c[1] - a[1]) - (b[1] - a[1]) * (c[0] - a[0])
            if cross:
                break
        points, question = {"A": a, "B": b, "C": c}, "What is the area of triangle ABC, in square units?"
        answer, operands = Fraction(abs(cross), 2), a + b + c
        work = (f"({b[0]} - {shown(a[0])}) × ({c[1]} - {shown(a[1])}) - ({b[1]} - {shown(a[1])}) × "
                f"({c[0]} - {shown(a[0])}) = {cross}, {abs(cross)} ÷ 2 = {plain(answer)}")
    params = {"range": [low, high], "points": points, "line": difficulty == 3,
              "triangle": difficulty == 5, "operands": sorted(set(operands))}
    where = _where(points)
    return {"problem": f"The figure shows points on a coordinate grid. {question}",
            "answer": latex_number(Fraction(answer)), "params": params, "solution": f"{where} {work}"}


def _where(points: dict) -> str:
    """``"A is at (7, 6). B is at (2, 3)."``: the words for a figure's points."""
    return " ".join(f"{name} is at ({x}, {y})." for name, (x, y) in points.items())


def render_coordinates(params: dict, canvas: Canvas) -> None:
    """Draw the grid, numbered axes and labelled points of ``params`` (see :func:`draw_coordinates`)."""
    low, high = params["range"]
    x0, y0, x1, y1 = _GRID_BOX
    step = (x1 - x0) / (high - low)

    def at(x: float, y: float) -> Point:
        return x0 + (x - low) * step, y1 - (y - low) * step

    for v in range(low, high + 1):
        canvas.line([at(v, low), at(v, high)], width=1, fill=GRID)
        canvas.line([at(low, v), at(high, v)], width=1, fill=GRID)
    ox, oy = at(0, 0)
    canvas.line([(x0 - 6, oy), (x1 + 10, oy)], width=2)
    canvas.line([(ox, y1 + 6), (ox, y0 - 10)], width=2)
    canvas.line([(x1 + 2, oy - 6), (x1 + 10, oy), (x1 + 2, oy + 6)], width=2)
    canvas.line([(ox - 6, y0 - 2), (ox, y0 - 10), (ox + 6, y0 - 2)], width=2)
    canvas.text(x1 + 14, oy + 14, "x", 16, anchor="lm")
    canvas.text(ox + 10, y0 - 12, "y", 16, anchor="lm")
    size = 15 if high - low <= 8 else 14
    for v in range(low, high + 1):
        if v == 0:
            continue
        gx, gy = at(v, 0)
        canvas.text(gx, gy + 12, str(v), size, background=WHITE)
        hx, hy = at(0, v)
        canvas.text(hx - 7, hy, str(v), size, anchor="rm", background=WHITE)
    canvas.text(ox - 6, oy + 12, "0", size, anchor="rm", background=WHITE)
    pts = params["points"]
    if params["line"]:
        canvas.line([at(*q) for q in _clip_line(pts["A"], pts["B"], low, high)], width=2, fill=(70, 110, 190))
    if params["triangle"]:
        canvas.polygon([at(*pts[k]) for k in "ABC"], fill=None, width=2)
    for name, (x, y) in pts.items():
        px, py = at(x, y)
        canvas.circle(px, py, 5, fill=MARK, outline=None)
        canvas.text(px + 8, py - 8, name, 18, anchor="ld", fill=MARK, background=WHITE)


def _clip_line(a: list[int], b: list[int], low: int, high: int) -> tuple[Point, Point]:
    """The part of the line through a and b inside the square [low, high]² (a and b lie in it)."""
    dx, dy = b[0] - a[0], b[1] - a[1]
    t0, t1 = -math.inf, math.inf
    for start, delta in ((a[0], dx), (a[1], dy)):
        if delta:
            ta, tb = (low - start) / delta, (high - start) / delta
            t0, t1 = max(t0, min(ta, tb)), min(t1, max(ta, tb))
    return (a[0] + t0 * dx, a[1] + t0 * dy), (a[0] + t1 * dx, a[1] + t1 * dy)


COORDINATES = Family("coordinates", draw_coordinates, render_coordinates,
                     lambda p: [c for point in p["points"].values() for c in point],
                     lambda p: _where(p["points"]))
