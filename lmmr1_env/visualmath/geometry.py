"""Geometry families: angles, polygon areas and perimeters, circles."""

from __future__ import annotations

import math
from fractions import Fraction

import numpy as np

from lmmr1_env.types import TaskRow
from lmmr1_env.visualmath.drawing import (
    GRID,
    INK,
    MARK,
    SHADE,
    WHITE,
    Canvas,
    Point,
    angle_arc,
    angle_label_point,
    label_side,
    right_angle_mark,
    tick_marks,
)
from lmmr1_env.visualmath.family import Family, fraction_latex, integer, latex_number, pick, plain

LABEL = 19  # design-unit font size of figure labels


def _fit(points: list[Point], box: tuple[float, float, float, float] = (74, 70, 374, 360),
         max_stretch: float = 1.25) -> list[Point]:
    """``points`` (y up, any unit) mapped into ``box`` (design units, y down), centred.

    The x and y scales may differ by up to ``max_stretch`` so long thin figures stay readable.
    """
    xs, ys = [p[0] for p in points], [p[1] for p in points]
    w, h = (max(xs) - min(xs)) or 1.0, (max(ys) - min(ys)) or 1.0
    x0, y0, x1, y1 = box
    sx, sy = (x1 - x0) / w, (y1 - y0) / h
    s = min(sx, sy)
    sx, sy = min(sx, s * max_stretch), min(sy, s * max_stretch)
    ox = (x0 + x1) / 2 - (min(xs) + w / 2) * sx
    oy = (y0 + y1) / 2 + (min(ys) + h / 2) * sy
    return [(ox + x * sx, oy - y * sy) for x, y in points]


def _deg(v: int | str) -> str:
    return f"{v}°"


# ---- angles ----

def draw_angles(rng: np.random.Generator, difficulty: int) -> TaskRow:
    """Find x: triangle sums (1), isosceles and right triangles (2), exterior angles (3),
    parallel lines and a transversal (4), the zigzag between parallel lines (5)."""
    if difficulty == 1:
        while True:
            a, b = integer(rng, 30, 100), integer(rng, 30, 100)
            if 180 - a - b >= 30:
                break
        angles, shown, x = [a, b, 180 - a - b], [0, 1], 2
        params = {"kind": "triangle", "angles": angles, "shown": shown, "x": x}
        answer, operands = 180 - a - b, [a, b]
        solution = f"The angles shown are {a}° and {b}°. 180 - {a} - {b} = {answer}"
    elif difficulty == 2:
        if rng.random() < 0.5:
            apex = 2 * integer(rng, 15, 60)
            base = (180 - apex) // 2
            params = {"kind": "isosceles", "angles": [base, base, apex], "shown": [2], "x": 0}
            answer, operands = base, [apex]
            solution = f"The apex angle is {apex}° and the base angles are equal. (180 - {apex}) ÷ 2 = {base}"
        else:
            a = integer(rng, 25, 65)
            params = {"kind": "right", "angles": [90, a, 90 - a], "shown": [1], "x": 2}
            answer, operands = 90 - a, [a]
            solution = f"The triangle has a right angle and a {a}° angle. 90 - {a} = {answer}"
    elif difficulty == 3:
        while True:
            a, c = integer(rng, 30, 90), integer(rng, 30, 90)
            if 180 - a - c >= 35:
                break
        b = 180 - a - c
        if rng.random() < 0.5:
            params = {"kind": "exterior", "angles": [a, b, c], "shown": [0, 2], "x": "exterior"}
            answer, operands = a + c, [a, c]
            solution = (f"The angles shown are {a}° and {c}°; the exterior angle x is their sum. "
                        f"{a} + {c} = {answer}")
        else:
            params = {"kind": "exterior", "angles": [a, b, c], "shown": [0, "exterior"], "x": 2}
            answer, operands = c, [a, a + c]
            solution = (f"The exterior angle is {a + c}°, the sum of {a}° and x. "
                        f"{a + c} - {a} = {answer}")
    elif difficulty == 4:
        phi = pick(rng, [*range(40, 80), *range(101, 141)])
        given = (integer(rng, 0, 1), integer(rng, 0, 3))
        while True:
            asked = (integer(rng, 0, 1), integer(rng, 0, 3))
            if asked != given:
                break
        params = {"kind": "parallel", "phi": phi, "given": list(given), "asked": list(asked)}
        value = [phi, 180 - phi, phi, 180 - phi]
        answer, operands = value[asked[1]], [value[given[1]]]
        if answer == value[given[1]]:
            solution = f"The angle shown is {answer}°; x is equal to it (parallel lines), so {answer}"
        else:
            solution = (f"The angle shown is {value[given[1]]}°; x is its supplement (parallel lines). "
                        f"180 - {value[given[1]]} = {answer}")
    else:
        a, b = integer(rng, 25, 60), integer(rng, 25, 60)
        if rng.random() < 0.5:
            params = {"kind": "zigzag", "a": a, "b": b, "shown": ["a", "b"]}
            answer, operands = a + b, [a, b]
            solution = (f"The angles shown are {a}° and {b}°; the angle x at the bend is their sum. "
                        f"{a} + {b} = {answer}")
        else:
            params = {"kind": "zigzag", "a": a, "b": b, "shown": ["a", "p"]}
            answer, operands = b, [a, a + b]
            solution = (f"The angle at the bend is {a + b}°, the sum of {a}° and x. "
                        f"{a + b} - {a} = {answer}")
    params["operands"] = operands
    lines = "The lines marked with arrows are parallel. " if params["kind"] in ("parallel", "zigzag") else ""
    return {"problem": f"{lines}Find the value of x in the figure, in degrees.", "answer": str(answer),
            "params": params, "solution": solution}


def _triangle(angles: list[int]) -> tuple[Point, Point, Point]:
    a, b, c = (math.radians(v) for v in angles)
    side = math.sin(b) / math.sin(c)  # P0 to apex, with the base P0–P1 of length 1
    return (0.0, 0.0), (1.0, 0.0), (side * math.cos(a), side * math.sin(a))


def _mark_angle(canvas: Canvas, vertex: Point, a: Point, b: Point, text: str, value: float) -> None:
    angle_arc(canvas, vertex, a, b, radius=22)
    distance = min(72.0, max(40.0, 20 / math.sin(math.radians(value) / 2)))
    canvas.text(*angle_label_point(vertex, a, b, distance), text, LABEL, fill=MARK if text.startswith("x") else INK)


def render_angles(params: dict, canvas: Canvas) -> None:
    """Draw the angle figure of ``params`` (see :func:`draw_angles`)."""
    kind = params["kind"]
    if kind in ("triangle", "isosceles", "right", "exterior"):
        angles = params["angles"]
        tri = list(_triangle(angles))
        extra = [(1.55, 0.0)] if kind == "exterior" else []
        fitted = _fit(tri + extra, box=(70, 90, 378, 350), max_stretch=1.0)
        p = fitted[:3]
        canvas.polygon(p, width=2.5)
        if kind == "exterior":
            canvas.line([p[1], fitted[3]], width=2.5)
        if kind == "isosceles":
            tick_marks(canvas, p[0], p[2])
            tick_marks(canvas, p[1], p[2])
        if kind == "right":
            right_angle_mark(canvas, p[0], p[1], p[2], size=16)
        for i, vertex in enumerate(p):
            if kind == "right" and i == 0:
                continue
            others = [q for j, q in enumerate(p) if j != i]
            if i in params["shown"]:
                _mark_angle(canvas, vertex, *others, _deg(angles[i]), angles[i])
            elif params["x"] == i:
                _mark_angle(canvas, vertex, *others, "x°", angles[i])
        if kind == "exterior":
            ext = 180 - angles[1]
            text = "x°" if params["x"] == "exterior" else _deg(ext)
            _mark_angle(canvas, p[1], fitted[3], p[2], text, ext)
    elif kind == "parallel":
        _render_parallel(params, canvas)
    else:
        _render_zigzag(params, canvas)


def _parallel_arrows(canvas: Canvas, x: float, y: float) -> None:
    for dx in (0, 9):
        canvas.line([(x + dx - 8, y - 7), (x + dx, y), (x + dx - 8, y + 7)], width=2)


def _render_parallel(params: dict, canvas: Canvas) -> None:
    phi = math.radians(params["phi"])
    ys = (150, 300)
    cot = math.cos(phi) / math.sin(phi)
    cross = [(224 + (225 - y) * cot, y) for y in ys]
    for y in ys:
        canvas.line([(36, y), (412, y)], width=2.5)
        _parallel_arrows(canvas, 384, y)
    canvas.line([(224 + 160 * cot, 65), (224 - 160 * cot, 385)], width=2.5)
    up = (math.cos(phi), -math.sin(phi))
    rays = [(1.0, 0.0), up, (-1.0, 0.0), (-up[0], -up[1])]
    values = [params["phi"], 180 - params["phi"]] * 2
    for (line, pos), text in ((params["given"], None), (params["asked"], "x°")):
        vx, vy = cross[line]
        r1, r2 = rays[pos], rays[(pos + 1) % 4]
        _mark_angle(canvas, (vx, vy), (vx + r1[0], vy + r1[1]), (vx + r2[0], vy + r2[1]),
                    text or _deg(values[pos]), values[pos])


def _render_zigzag(params: dict, canvas: Canvas) -> None:
    a, b = params["a"], params["b"]
    top, bottom, px = 110, 338, 352.0
    mid = (top + bottom) / 2
    q1 = (px - (mid - top) / math.tan(math.radians(a)), top)
    q2 = (px - (bottom - mid) / math.tan(math.radians(b)), bottom)
    p = (px, mid)
    for y in (top, bottom):
        canvas.line([(30, y), (418, y)], width=2.5)
        _parallel_arrows(canvas, 398, y)
    canvas.line([q1, p, q2], width=2.5)
    shown = params["shown"]
    _mark_angle(canvas, q1, (q1[0] + 1, q1[1]), p, _deg(a), a)
    _mark_angle(canvas, q2, (q2[0] + 1, q2[1]), p, "x°" if "b" not in shown else _deg(b), b)
    _mark_angle(canvas, p, q1, q2, _deg(a + b) if "p" in shown else "x°", a + b)


# ---- polygons ----

_TRIPLES = [(3, 4, 5), (6, 8, 10), (5, 12, 13), (8, 6, 10), (4, 3, 5), (9, 12, 15), (12, 5, 13)]


def draw_polygons(rng: np.random.Generator, difficulty: int) -> TaskRow:
    """Area or perimeter from labelled sides (cm): rectangle (1), right triangle (2), trapezoid or
    parallelogram with its height (3), L-shape (4), house shape (5)."""
    want = "perimeter" if rng.random() < 0.4 else "area"
    if difficulty == 1:
        w, h = integer(rng, 3, 15), integer(rng, 2, 12)
        params = {"kind": "rectangle", "w": w, "h": h}
        value, name = (w * h if want == "area" else 2 * (w + h)), "rectangle"
        operands = [w, h]
        work = f"{w} × {h} = {value}" if want == "area" else f"2 × ({w} + {h}) = {value}"
        solution = f"The rectangle is {w} cm by {h} cm. {work}"
    elif difficulty == 2:
        if want == "perimeter":
            times = integer(rng, 1, 2)
            a, b, c = (times * k for k in pick(rng, _TRIPLES))
        else:
            a, b, c = integer(rng, 3, 14), integer(rng, 3, 14), None
        params = {"kind": "right_triangle", "a": a, "b": b, "c": c}
        value, name = (Fraction(a * b, 2) if want == "area" else a + b + c), "right triangle"
        operands = [a, b] + ([c] if c else [])
        if want == "area":
            solution = f"The legs are {a} cm and {b} cm. {a} × {b} ÷ 2 = {plain(value)}"
        else:
            solution = f"The sides are {a} cm, {b} cm and {c} cm. {a} + {b} + {c} = {value}"
    elif difficulty == 3:
        want = "area"
        if rng.random() < 0.5:
            top, bottom, h = integer(rng, 3, 10), integer(rng, 11, 18), integer(rng, 3, 10)
            params = {"kind": "trapezoid", "top": top, "bottom": bottom, "h": h, "shift": integer(rng, 0, 3)}
            value, name, operands = Fraction((top + bottom) * h, 2), "trapezoid", [top, bottom, h]
            solution = (f"The parallel sides are {top} cm and {bottom} cm, the height {h} cm. "
                        f"({top} + {bottom}) × {h} ÷ 2 = {plain(value)}")
        else:
            h, off, s = pick(rng, [(4, 3, 5), (8, 6, 10), (12, 5, 13), (6, 8, 10), (3, 4, 5)])
            base = integer(rng, max(6, off + 2), 16)
            params = {"kind": "parallelogram", "base": base, "h": h, "off": off, "s": s}
            value, name, operands = base * h, "parallelogram", [base, h]
            solution = f"The base is {base} cm and the height {h} cm. {base} × {h} = {value}"
    elif difficulty == 4:
        big_w, big_h = integer(rng, 8, 16), integer(rng, 8, 16)
        cut_w, cut_h = integer(rng, 2, big_w - 3), integer(rng, 2, big_h - 3)
        params = {"kind": "l_shape", "W": big_w, "H": big_h, "cw": cut_w, "ch": cut_h}
        value = big_w * big_h - cut_w * cut_h if want == "area" else 2 * (big_w + big_h)
        name, operands = "shape (all corners are right angles)", [big_w, big_h, big_w - cut_w, big_h - cut_h]
        if want == "area":
            solution = (f"It is a {big_w} cm by {big_h} cm rectangle less a corner of "
                        f"({big_w} - {big_w - cut_w}) cm by ({big_h} - {big_h - cut_h}) cm. "
                        f"{big_w} × {big_h} - {cut_w} × {cut_h} = {value}")
        else:
            solution = (f"Its perimeter is that of the {big_w} cm by {big_h} cm rectangle around it. "
                        f"2 × ({big_w} + {big_h}) = {value}")
    else:
        want = "area"
        w, h, roof = 2 * integer(rng, 3, 8), integer(rng, 4, 12), integer(rng, 3, 9)
        params = {"kind": "house", "w": w, "h": h, "roof": roof}
        value, name, operands = Fraction(w * h * 2 + w * roof, 2), "figure (a rectangle with a triangle on top)", \
            [w, h, roof]
        solution = (f"A {w} cm by {h} cm rectangle and a triangle of base {w} cm and height {roof} cm. "
                    f"{w} × {h} + {w} × {roof} ÷ 2 = {plain(value)}")
    params["operands"] = operands
    unit = "square centimetres" if want == "area" else "centimetres"
    return {"problem": f"All lengths in the {name} are in centimetres. What is its {want}, in {unit}?",
            "answer": latex_number(Fraction(value)), "params": params, "solution": solution}


def _height(canvas, pts, label: str) -> None:
    """The dashed height from the top-left corner ``pts[3]`` down to the base, with its right-angle mark."""
    foot = (pts[3][0], pts[0][1])
    canvas.dashed(pts[3], foot)
    right_angle_mark(canvas, foot, pts[1], pts[3], size=10)
    canvas.text(foot[0] + 10, (foot[1] + pts[3][1]) / 2, label, LABEL, anchor="lm")


def _label_sides(canvas: Canvas, pts: list[Point], labels: dict[int, str]) -> None:
    cx = sum(p[0] for p in pts) / len(pts)
    cy = sum(p[1] for p in pts) / len(pts)
    for i, text in labels.items():
        a, b = pts[i], pts[(i + 1) % len(pts)]
        label_side(canvas, a, b, (cx, cy), text, LABEL)


def render_polygons(params: dict, canvas: Canvas) -> None:
    """Draw the polygon of ``params`` (see :func:`draw_polygons`) with its side labels in cm."""
    kind = params["kind"]
    cm = "{} cm".format
    if kind == "rectangle":
        w, h = params["w"], params["h"]
        pts = _fit([(0, 0), (w, 0), (w, h), (0, h)])
        canvas.polygon(pts, fill=SHADE)
        for i in range(4):
            right_angle_mark(canvas, pts[i], pts[(i + 1) % 4], pts[i - 1], size=12)
        _label_sides(canvas, pts, {0: cm(w), 1: cm(h)})
    elif kind == "right_triangle":
        a, b = params["a"], params["b"]
        pts = _fit([(0, 0), (a, 0), (0, b)])
        canvas.polygon(pts, fill=SHADE)
        right_angle_mark(canvas, pts[0], pts[1], pts[2], size=14)
        labels = {0: cm(a), 2: cm(b)}
        if params["c"]:
            labels[1] = cm(params["c"])
        _label_sides(canvas, pts, labels)
    elif kind == "trapezoid":
        top, bottom, h, shift = params["top"], params["bottom"], params["h"], params["shift"]
        left = (bottom - top) / 2 - shift
        pts = _fit([(0, 0), (bottom, 0), (left + top, h), (left, h)])
        canvas.polygon(pts, fill=SHADE)
        _height(canvas, pts, cm(h))
        _label_sides(canvas, pts, {0: cm(bottom), 2: cm(top)})
    elif kind == "parallelogram":
        base, h, off = params["base"], params["h"], params["off"]
        pts = _fit([(0, 0), (base, 0), (base + off, h), (off, h)])
        canvas.polygon(pts, fill=SHADE)
        _height(canvas, pts, cm(h))
        _label_sides(canvas, pts, {0: cm(base), 1: cm(params["s"])})
    elif kind == "l_shape":
        big_w, big_h, cut_w, cut_h = params["W"], params["H"], params["cw"], params["ch"]
        pts = _fit([(0, 0), (big_w, 0), (big_w, big_h - cut_h), (big_w - cut_w, big_h - cut_h),
                    (big_w - cut_w, big_h), (0, big_h)], max_stretch=1.0)
        canvas.polygon(pts, fill=SHADE)
        _label_sides(canvas, pts, {0: cm(big_w), 1: cm(big_h - cut_h), 4: cm(big_w - cut_w), 5: cm(big_h)})
    else:
        w, h, roof = params["w"], params["h"], params["roof"]
        pts = _fit([(0, 0), (w, 0), (w, h), (w / 2, h + roof), (0, h)])
        canvas.polygon(pts, fill=SHADE)
        canvas.line([pts[4], pts[2]], width=1.5)
        foot = ((pts[4][0] + pts[2][0]) / 2, pts[2][1])
        canvas.dashed(pts[3], foot)
        right_angle_mark(canvas, foot, pts[2], pts[3], size=10)
        canvas.text(foot[0] + 10, (foot[1] + pts[3][1]) / 2 + 4, cm(roof), LABEL, anchor="lm")
        for i in (0, 1):
            right_angle_mark(canvas, pts[i], pts[1 - i], pts[4 if i == 0 else 2], size=12)
        _label_sides(canvas, pts, {0: cm(w), 4: cm(h)})


# ---- circles ----

_SECTOR_ANGLES = (30, 40, 45, 60, 72, 90, 120, 135, 150, 210, 240, 270, 300)


def plain_pi(k: Fraction) -> str:
    """``k·π`` as a worked solution writes it: ``π``, ``16π`` or ``(25/2)π``."""
    k = Fraction(k)
    return "π" if k == 1 else f"{k.numerator}π" if k.denominator == 1 else f"({k.numerator}/{k.denominator})π"


def pi_latex(k: Fraction) -> str:
    """``k·π`` in LaTeX: ``\\pi``, ``16\\pi`` or ``\\frac{25}{2}\\pi``."""
    k = Fraction(k)
    return "\\pi" if k == 1 else f"{fraction_latex(k)}\\pi"


def draw_circles(rng: np.random.Generator, difficulty: int) -> TaskRow:
    """Areas and lengths in terms of π: radius (1), diameter (2), sector (3), ring (4), a circle less two (5)."""
    want = "area" if rng.random() < 0.6 else "circumference"
    step: str | None  # the worked step that gives the multiple of π (None: read off the figure)
    if difficulty == 1:
        r = integer(rng, 2, 12)
        params, operands = {"kind": "radius", "r": r}, [r]
        k = Fraction(r * r) if want == "area" else Fraction(2 * r)
        what = f"the {want} of the circle"
        read, step = f"The radius is {r} cm.", f"{r}²" if want == "area" else f"2 × {r}"
    elif difficulty == 2:
        d = integer(rng, 3, 20)
        params, operands = {"kind": "diameter", "d": d}, [d]
        k = Fraction(d * d, 4) if want == "area" else Fraction(d)
        what = f"the {want} of the circle"
        read, step = f"The diameter is {d} cm.", f"({d} ÷ 2)²" if want == "area" else None
    elif difficulty == 3:
        r, theta = integer(rng, 2, 12), pick(rng, _SECTOR_ANGLES)
        params, operands = {"kind": "sector", "r": r, "theta": theta}, [r, theta]
        read = f"The radius is {r} cm and the angle {theta}°."
        if want == "area":
            k, what, step = Fraction(theta * r * r, 360), "the area of the shaded sector", f"{theta} ÷ 360 × {r}²"
        else:
            k, what = Fraction(theta * 2 * r, 360), "the length of the arc of the shaded sector"
            step = f"{theta} ÷ 360 × 2 × {r}"
    elif difficulty == 4:
        big = integer(rng, 4, 14)
        small = integer(rng, 1, big - 2)
        params, operands = {"kind": "ring", "R": big, "r": small}, [big, small]
        k, what = Fraction(big * big - small * small), "the area of the shaded ring"
        read, step = f"The radii are {big} cm and {small} cm.", f"{big}² - {small}²"
    else:
        r = integer(rng, 2, 9)
        params, operands = {"kind": "two_holes", "r": r}, [r]
        k, what = Fraction(2 * r * r), "the area of the shaded region (the two small circles are equal and " \
                                       "touch each other and the big circle on one diameter)"
        read, step = f"The small radius is {r} cm, the big one {2 * r} cm.", f"{2 * r}² - 2 × {r}²"
    params["operands"] = operands
    solution = f"{read} {step} = {plain(k, decimal=False)}, so" if step else read.removesuffix(".") + ", so"
    return {"problem": f"Find {what}. Lengths are in centimetres; give the answer in terms of π.",
            "answer": pi_latex(k), "params": params, "solution": f"{solution} {plain_pi(k)}"}


def render_circles(params: dict, canvas: Canvas) -> None:
    """Draw the circle figure of ``params`` (see :func:`draw_circles`)."""
    cx, cy, radius = 224.0, 224.0, 150.0
    kind = params["kind"]
    dot = 4.0
    if kind == "radius":
        canvas.circle(cx, cy, radius, fill=SHADE)
        end = (cx + radius * math.cos(math.radians(-30)), cy + radius * math.sin(math.radians(-30)))
        canvas.line([(cx, cy), end], width=2)
        canvas.circle(cx, cy, dot, fill=INK)
        canvas.text((cx + end[0]) / 2 - 4, (cy + end[1]) / 2 - 16, f"{params['r']} cm", LABEL)
    elif kind == "diameter":
        canvas.circle(cx, cy, radius, fill=SHADE)
        canvas.line([(cx - radius, cy), (cx + radius, cy)], width=2)
        canvas.circle(cx, cy, dot, fill=INK)
        canvas.text(cx + radius / 2, cy - 16, f"{params['d']} cm", LABEL)
    elif kind == "sector":
        theta = params["theta"]
        canvas.circle(cx, cy, radius, fill=WHITE, outline=GRID, width=1.5)
        canvas.pieslice(cx, cy, radius, -theta, 0, fill=SHADE, width=2.5)
        angle_arc(canvas, (cx, cy), (cx + 1, cy), (cx + math.cos(math.radians(theta)),
                                                   cy - math.sin(math.radians(theta))), radius=24) \
            if theta <= 180 else canvas.arc(cx, cy, 24, -theta, 0, width=1.8)
        mid = math.radians(theta / 2)
        distance = min(70.0, max(44.0, 22 / math.sin(mid))) if theta <= 180 else 44.0
        canvas.text(cx + distance * math.cos(mid), cy - distance * math.sin(mid), _deg(theta), LABEL)
        canvas.text(cx + radius / 2, cy + 16, f"{params['r']} cm", LABEL)
    elif kind == "ring":
        outer = radius
        inner = radius * max(params["r"] / params["R"], 0.3)  # a tiny hole would hide its own label
        canvas.circle(cx, cy, outer, fill=SHADE)
        canvas.circle(cx, cy, inner, fill=WHITE)
        canvas.circle(cx, cy, dot, fill=INK)
        up = (cx + outer * math.cos(math.radians(-60)), cy + outer * math.sin(math.radians(-60)))
        canvas.line([(cx, cy), up], width=2)
        canvas.line([(cx, cy), (cx - inner, cy)], width=2)
        canvas.text(cx + 0.78 * (up[0] - cx) + 8, cy + 0.78 * (up[1] - cy), f"{params['R']} cm", LABEL, anchor="lm")
        if inner >= 75:
            canvas.text(cx - inner / 2, cy + 16, f"{params['r']} cm", LABEL)
        else:  # too narrow inside: write it just outside the hole, level with its radius
            canvas.text(cx - inner - 8, cy, f"{params['r']} cm", LABEL, anchor="rm")
    else:
        canvas.circle(cx, cy, radius, fill=SHADE)
        small = radius / 2
        for sx in (cx - small, cx + small):
            canvas.circle(sx, cy, small, fill=WHITE)
            canvas.circle(sx, cy, dot, fill=INK)
        canvas.line([(cx + small, cy), (cx + small + small * math.cos(math.radians(-50)),
                                        cy + small * math.sin(math.radians(-50)))], width=2)
        canvas.text(cx + small + 6, cy - small / 2 - 14, f"{params['r']} cm", LABEL)


def _angles_shown(p: dict) -> list | None:
    """The marked angles of a figure whose marks are all interior angles (an exterior mark is read another way)."""
    if "angles" not in p or not all(isinstance(i, int) for i in p.get("shown", ["none"])):
        return None
    return [p["angles"][i] for i in p["shown"]]


def _angles_words(p: dict) -> str | None:
    shown = _angles_shown(p)
    return None if shown is None else "The angles shown are " + " and ".join(f"{a}°" for a in shown) + "."


ANGLES = Family("angles", draw_angles, render_angles, _angles_shown, _angles_words)
POLYGONS = Family("polygons", draw_polygons, render_polygons,
                  lambda p: [p["w"], p["h"]] if "w" in p and "h" in p else None,
                  lambda p: f"The rectangle is {p['w']} cm by {p['h']} cm." if "w" in p else None)
CIRCLES = Family("circles", draw_circles, render_circles,
                 words=lambda p: f"The radius is {p['r']} cm." if "r" in p else None)
