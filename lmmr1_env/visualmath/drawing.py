"""A small drawing surface for textbook figures: design units on a 448-unit square, drawn at any size.

Figures are laid out once in design units (0–448 on both axes, y down) and drawn at the requested
pixel size, so a figure is as sharp at 336 px as at 896 px and nothing is ever stretched. Only PIL's
bundled font is used (``ImageFont.load_default(size=...)``, Aileron): it has ASCII and ``°`` but no π,
×, − or √, so figures label with ASCII and the degree sign only.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from functools import lru_cache

from PIL import Image, ImageDraw, ImageFont

#: Side of the square every figure is laid out on, in design units.
DESIGN = 448
WHITE = (255, 255, 255)
INK = (30, 30, 30)
GRID = (205, 210, 218)
#: Colour of what a question asks about (the unknown angle x, named points).
MARK = (200, 40, 40)
#: Named colours a question may mention: distinct, and readable for most colour-vision deficiencies by name.
COLOURS = {
    "red": (214, 48, 49),
    "blue": (41, 98, 200),
    "green": (46, 150, 70),
    "yellow": (240, 190, 20),
    "purple": (130, 70, 170),
    "orange": (240, 130, 30),
}
#: Fill for shaded regions and bars: a calm blue that keeps dark labels readable on top.
SHADE = (120, 165, 225)
BAR = (86, 140, 210)

Point = tuple[float, float]


@lru_cache(maxsize=64)
def font(pixels: int) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    """PIL's bundled font at ``pixels`` size, at least 8 px (cached: every figure reuses a handful of sizes).

    Figures are laid out for 448 px, where labels are 12–20 px; below about 320 px the smallest labels
    (grid numbers) reach this floor and get crowded, so use ``image_size`` ≥ 320 for legible figures.
    """
    return ImageFont.load_default(size=max(8, pixels))


@lru_cache(maxsize=8192)
def text_mask(text: str, pixels: int, anchor: str) -> tuple[Image.Image, tuple[int, int]]:
    """``text`` rendered once as an "L" coverage mask, and where its top-left sits relative to the anchor.

    Labels repeat across figures (tick values, names, "cm"), and FreeType rendering is most of the cost
    of a figure, so rendered labels are cached; the pixels are the same whether or not the cache hit.
    """
    face = font(pixels)
    left, top, right, bottom = face.getbbox(text, anchor=anchor)
    mask = Image.new("L", (max(1, right - left), max(1, bottom - top)), 0)
    ImageDraw.Draw(mask).text((-left, -top), text, font=face, fill=255, anchor=anchor)
    return mask, (left, top)


#: A layout ``(zoom, dx, dy)`` that draws the design square exactly onto the image.
FULL_LAYOUT = (1.0, 0.0, 0.0)


class Canvas:
    """A white square image of ``side`` pixels with drawing calls in design units (0–448, y down).

    ``layout = (zoom, dx, dy)`` places the design square on the image: scaled by ``zoom`` about its centre,
    then moved by ``(dx, dy)`` design units. Sizes (line widths, radii, text) scale with it.
    """

    def __init__(self, side: int, layout: Sequence[float] = FULL_LAYOUT):
        zoom, dx, dy = layout
        self.side = side
        #: Pixels per design unit.
        self.scale = side / DESIGN * zoom
        unit = side / DESIGN
        self.origin = ((DESIGN / 2 * (1 - zoom) + dx) * unit, (DESIGN / 2 * (1 - zoom) + dy) * unit)
        self.image = Image.new("RGB", (side, side), WHITE)
        self.draw = ImageDraw.Draw(self.image)

    def px(self, x: float, y: float) -> Point:
        """Design units to pixels."""
        return self.origin[0] + x * self.scale, self.origin[1] + y * self.scale

    def _w(self, width: float) -> int:
        return max(1, round(width * self.scale))

    def line(self, points: Sequence[Point], width: float = 2.5, fill=INK) -> None:
        """A polyline through ``points``."""
        self.draw.line([self.px(*p) for p in points], fill=fill, width=self._w(width), joint="curve")

    def dashed(self, a: Point, b: Point, width: float = 1.5, fill=INK, dash: float = 7, gap: float = 5) -> None:
        """A dashed segment from ``a`` to ``b``."""
        length = math.dist(a, b)
        if length == 0:
            return
        ux, uy = (b[0] - a[0]) / length, (b[1] - a[1]) / length
        t = 0.0
        while t < length:
            end = min(t + dash, length)
            self.line([(a[0] + ux * t, a[1] + uy * t), (a[0] + ux * end, a[1] + uy * end)], width, fill)
            t = end + gap

    def polygon(self, points: Sequence[Point], fill=None, outline=INK, width: float = 2.5) -> None:
        """A closed polygon, optionally filled."""
        pts = [self.px(*p) for p in points]
        if fill is not None:
            self.draw.polygon(pts, fill=fill)
        if outline is not None:
            self.draw.line([*pts, pts[0], pts[1]], fill=outline, width=self._w(width), joint="curve")

    def rect(self, x0: float, y0: float, x1: float, y1: float, fill=None, outline=INK, width: float = 2) -> None:
        """An axis-aligned rectangle."""
        self.draw.rectangle([self.px(x0, y0), self.px(x1, y1)], fill=fill,
                            outline=outline, width=self._w(width) if outline is not None else 0)

    def circle(self, cx: float, cy: float, r: float, fill=None, outline=INK, width: float = 2.5) -> None:
        """A circle of radius ``r`` around (cx, cy)."""
        self.draw.ellipse([self.px(cx - r, cy - r), self.px(cx + r, cy + r)], fill=fill,
                          outline=outline, width=self._w(width) if outline is not None else 0)

    def arc(self, cx: float, cy: float, r: float, start: float, end: float, width: float = 1.8, fill=INK) -> None:
        """An arc from ``start`` to ``end`` degrees, clockwise on screen (PIL's convention, 0° = east)."""
        self.draw.arc([self.px(cx - r, cy - r), self.px(cx + r, cy + r)], start, end, fill=fill, width=self._w(width))

    def pieslice(self, cx: float, cy: float, r: float, start: float, end: float, fill, outline=INK,
                 width: float = 2) -> None:
        """A filled sector from ``start`` to ``end`` degrees (clockwise on screen, 0° = east).

        Drawn as a polygon with a point every 2°: PIL's own ``pieslice`` with an outline costs about
        0.4 ms a sector at 448 px, which made a 12-sector figure the slowest of all.
        """
        steps = max(2, math.ceil(abs(end - start) / 2))
        arc = [(cx + r * math.cos(math.radians(start + (end - start) * k / steps)),
                cy + r * math.sin(math.radians(start + (end - start) * k / steps))) for k in range(steps + 1)]
        points = [(cx, cy), *arc]
        self.polygon(points, fill=fill, outline=outline, width=width)

    def text(self, x: float, y: float, text: str, size: float = 17, anchor: str = "mm", fill=INK,
             background=None) -> None:
        """``text`` anchored at (x, y); ``anchor`` is PIL's two-letter anchor ("mm" centres it).

        ``background`` paints a box behind the text first, so a label stays readable over lines.
        """
        mask, (left, top) = text_mask(text, round(size * self.scale), anchor)
        px, py = self.px(x, y)
        left, top = round(px) + left, round(py) + top
        if background is not None:
            pad = max(1, round(2 * self.scale))
            self.draw.rectangle([left - pad, top - pad, left + mask.width + pad, top + mask.height + pad],
                                fill=background)
        self.image.paste(fill, (left, top, left + mask.width, top + mask.height), mask)

    def text_width(self, text: str, size: float = 17) -> float:
        """Width of ``text`` in design units."""
        left, _, right, _ = font(round(size * self.scale)).getbbox(text)
        return (right - left) / self.scale


def angle_label_point(vertex: Point, a: Point, b: Point, distance: float) -> Point:
    """The point ``distance`` units from ``vertex`` along the bisector of the angle a-vertex-b."""
    ua = _unit(vertex, a)
    ub = _unit(vertex, b)
    bx, by = ua[0] + ub[0], ua[1] + ub[1]
    norm = math.hypot(bx, by) or 1.0
    return vertex[0] + bx / norm * distance, vertex[1] + by / norm * distance


def angle_arc(canvas: Canvas, vertex: Point, a: Point, b: Point, radius: float = 26, width: float = 1.8) -> None:
    """Mark the (smaller) angle a-vertex-b with an arc."""
    start = math.degrees(math.atan2(a[1] - vertex[1], a[0] - vertex[0]))
    end = math.degrees(math.atan2(b[1] - vertex[1], b[0] - vertex[0]))
    if (end - start) % 360 > 180:
        start, end = end, start
    canvas.arc(vertex[0], vertex[1], radius, start, end if end > start else end + 360, width)


def right_angle_mark(canvas: Canvas, vertex: Point, a: Point, b: Point, size: float = 13) -> None:
    """The small square that marks a right angle a-vertex-b."""
    ua, ub = _unit(vertex, a), _unit(vertex, b)
    p1 = (vertex[0] + ua[0] * size, vertex[1] + ua[1] * size)
    p3 = (vertex[0] + ub[0] * size, vertex[1] + ub[1] * size)
    p2 = (p1[0] + ub[0] * size, p1[1] + ub[1] * size)
    canvas.line([p1, p2, p3], width=1.6)


def side_label_point(a: Point, b: Point, inside: Point, offset: float = 16) -> Point:
    """A point ``offset`` units off the middle of segment a–b, on the side away from ``inside``."""
    mx, my = (a[0] + b[0]) / 2, (a[1] + b[1]) / 2
    nx, ny = -(b[1] - a[1]), b[0] - a[0]
    norm = math.hypot(nx, ny) or 1.0
    nx, ny = nx / norm, ny / norm
    if (inside[0] - mx) * nx + (inside[1] - my) * ny > 0:
        nx, ny = -nx, -ny
    return mx + nx * offset, my + ny * offset


def label_side(canvas: Canvas, a: Point, b: Point, inside: Point, text: str, size: float = 18,
               offset: float = 9) -> None:
    """Write ``text`` beside the middle of segment a–b, outside the figure (away from ``inside``).

    The text is anchored on its edge nearest the segment, so long labels never run over the line.
    """
    mx, my = (a[0] + b[0]) / 2, (a[1] + b[1]) / 2
    lx, ly = side_label_point(a, b, inside, offset)
    nx, ny = (lx - mx) / offset, (ly - my) / offset
    anchor = ("l" if nx > 0.38 else "r" if nx < -0.38 else "m") + ("t" if ny > 0.38 else "b" if ny < -0.38 else "m")
    canvas.text(lx, ly, text, size, anchor=anchor)


def tick_marks(canvas: Canvas, a: Point, b: Point, count: int = 1, length: float = 7) -> None:
    """``count`` short ticks across the middle of a–b: the textbook sign for equal sides."""
    ux, uy = _unit(a, b)
    mx, my = (a[0] + b[0]) / 2, (a[1] + b[1]) / 2
    for i in range(count):
        off = (i - (count - 1) / 2) * 5
        cx, cy = mx + ux * off, my + uy * off
        canvas.line([(cx - uy * length, cy + ux * length), (cx + uy * length, cy - ux * length)], width=1.8)


def _unit(a: Point, b: Point) -> Point:
    dx, dy = b[0] - a[0], b[1] - a[1]
    norm = math.hypot(dx, dy) or 1.0
    return dx / norm, dy / norm
