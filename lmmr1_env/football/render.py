"""Drawing the match: a top-down pitch, two kits (ours yellow), the ball with its shadow, the marked player; and
showing frames in a pygame window (``render_mode="human"``)."""

from __future__ import annotations

from functools import lru_cache
from typing import Any

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from lmmr1_env.football.physics import FIELD_X, FIELD_Y, GOAL_HALF_WIDTH
from lmmr1_env.football.sim import Match

GRASS = ((46, 125, 50), (56, 142, 60))
LINE = (235, 245, 235)
OUR_KIT, OUR_EDGE = (255, 214, 0), (60, 45, 0)
OUR_KEEPER = (255, 150, 0)
THEIR_KIT, THEIR_EDGE = (30, 90, 230), (235, 240, 255)
THEIR_KEEPER = (120, 40, 160)
MARK = (230, 20, 20)
PANEL_BG, PANEL_TEXT = (18, 22, 28), (240, 240, 240)
#: Half extents of the drawn area around the pitch (field units).
VIEW_X, VIEW_Y = 1.07, 0.46


class Layout:
    """Field-to-pixel mapping for an ``(height, width)`` image with an optional text panel on top."""

    def __init__(self, size: tuple[int, int], panel: bool):
        self.height, self.width = size
        self.panel = max(14, self.height // 12) if panel else 0
        usable = self.height - self.panel
        self.scale = min(self.width / (2 * VIEW_X), usable / (2 * VIEW_Y))
        self.cx = self.width / 2.0
        self.cy = self.panel + usable / 2.0

    def px(self, x: float | np.ndarray, y: float | np.ndarray) -> tuple:
        """Pixel coordinates of field point(s)."""
        return self.cx + np.asarray(x) * self.scale, self.cy + np.asarray(y) * self.scale


@lru_cache(maxsize=8)
def _pitch(size: tuple[int, int], panel: bool) -> Image.Image:
    lay = Layout(size, panel)
    img = Image.new("RGB", (lay.width, lay.height), GRASS[0])
    draw = ImageDraw.Draw(img)
    stripes = 12
    top, bottom = lay.px(0, -FIELD_Y)[1], lay.px(0, FIELD_Y)[1]
    for k in range(stripes):
        a = lay.px(-FIELD_X + 2 * FIELD_X * k / stripes, 0)[0]
        b = lay.px(-FIELD_X + 2 * FIELD_X * (k + 1) / stripes, 0)[0]
        draw.rectangle([a, top, b, bottom], fill=GRASS[k % 2])
    w = max(1, round(lay.scale * 0.005))

    def rect(ax, ay, bx, by):
        (px0, py0), (px1, py1) = lay.px(ax, ay), lay.px(bx, by)
        draw.rectangle([min(px0, px1), min(py0, py1), max(px0, px1), max(py0, py1)], outline=LINE, width=w)

    rect(-FIELD_X, -FIELD_Y, FIELD_X, FIELD_Y)
    draw.line([lay.px(0, -FIELD_Y), lay.px(0, FIELD_Y)], fill=LINE, width=w)
    r = 0.13 * lay.scale
    draw.ellipse([lay.cx - r, lay.cy - r, lay.cx + r, lay.cy + r], outline=LINE, width=w)
    dot = max(1.5, lay.scale * 0.006)
    for sx in (-1, 1):
        rect(sx * FIELD_X, -0.24, sx * (FIELD_X - 0.3), 0.24)
        rect(sx * FIELD_X, -0.1, sx * (FIELD_X - 0.1), 0.1)
        spot = lay.px(sx * (FIELD_X - 0.21), 0)
        draw.ellipse([spot[0] - dot, spot[1] - dot, spot[0] + dot, spot[1] + dot], fill=LINE)
        gx0, gy0 = lay.px(sx * FIELD_X, -GOAL_HALF_WIDTH)
        gx1, gy1 = lay.px(sx * (FIELD_X + 0.045), GOAL_HALF_WIDTH)
        box = [min(gx0, gx1), gy0, max(gx0, gx1), gy1]
        draw.rectangle(box, fill=(200, 200, 200))
        for k in range(1, 6):  # the net
            y = box[1] + (box[3] - box[1]) * k / 6
            draw.line([(box[0], y), (box[2], y)], fill=(150, 150, 150), width=1)
        draw.rectangle(box, outline=(255, 255, 255), width=max(1, w))
    if panel:
        draw.rectangle([0, 0, lay.width, lay.panel], fill=PANEL_BG)
    return img


@lru_cache(maxsize=8)
def _pitch_arrays(size: tuple[int, int], panel: bool) -> tuple[np.ndarray, np.ndarray]:
    pitch = _pitch(size, panel)
    return np.asarray(pitch.convert("RGBA"), dtype=np.uint8), np.asarray(pitch, dtype=np.uint8)


@lru_cache(maxsize=8)
def _font(px: int) -> ImageFont.ImageFont:
    return ImageFont.load_default(size=px)


@lru_cache(maxsize=2048)
def _glyph(char: str, px: int) -> tuple[Image.Image | None, float, int]:
    """A character's mask, advance and top offset, rendered once (FreeType is the slow part of a frame)."""
    font = _font(px)
    advance = font.getlength(char)
    left, top, right, bottom = font.getbbox(char)
    if right <= left or bottom <= top:
        return None, advance, 0
    mask = Image.new("L", (right - left, bottom - top), 0)
    ImageDraw.Draw(mask).text((-left, -top), char, fill=255, font=font)
    return mask, advance, top


def _draw_text(img: Image.Image, xy: tuple[float, float], text: str, px: int) -> None:
    """``text`` left-aligned with its em box centred vertically on ``xy``, from cached glyphs."""
    x, y = xy
    ascent, descent = _font(px).getmetrics()
    baseline_top = y - (ascent + descent) / 2
    for char in text:
        mask, advance, top = _glyph(char, px)
        if mask is not None:
            img.paste(PANEL_TEXT, (round(x), round(baseline_top + top)), mask)
        x += advance


def render_frame(match: Match, controlled: int, size: tuple[int, int], panel_text: str | None = None) -> np.ndarray:
    """The ``(height, width, 3)`` uint8 picture of ``match`` with ``controlled`` marked."""
    lay = Layout(size, panel_text is not None)
    # Draw into an RGBA numpy buffer PIL shares, then copy only the drawn boxes into an RGB copy of the
    # pitch: a full-frame PIL -> numpy conversion costs more than all the drawing.
    pitch_rgba, pitch_rgb = _pitch_arrays(size, panel_text is not None)
    canvas = pitch_rgba.copy()
    out = pitch_rgb.copy()
    dirty: list[tuple[float, float, float, float]] = []
    img = Image.frombuffer("RGBA", (lay.width, lay.height), canvas, "raw", "RGBA", 0, 1)
    img.readonly = False
    draw = ImageDraw.Draw(img)
    radius = max(3.0, 0.019 * lay.scale)
    xs, ys = lay.px(match.pos[:, 0], match.pos[:, 1])
    keepers = set(match.goalkeepers)
    order = [i for i in range(match.n_players) if i != controlled] + ([controlled] if controlled >= 0 else [])
    edge_w = max(1, round(radius / 4))
    for i in order:
        ours = i < match.n_left
        fill = (OUR_KEEPER if i in keepers else OUR_KIT) if ours else (THEIR_KEEPER if i in keepers else THEIR_KIT)
        edge = OUR_EDGE if ours else THEIR_EDGE
        x, y = float(xs[i]), float(ys[i])
        r = radius * (1.25 if i == controlled else 1.0)
        reach = max(r * 1.7, r + max(2.0, radius * 0.55) + 3)
        dirty.append((x - reach, y - reach - (r + 3.5 * radius + 8 if i == controlled else 0), x + reach, y + reach))
        if i == controlled:
            halo = r + max(2.0, radius * 0.55)
            draw.ellipse([x - halo, y - halo, x + halo, y + halo], outline=MARK, width=max(2, edge_w + 1))
        draw.ellipse([x - r, y - r, x + r, y + r], fill=fill, outline=edge, width=edge_w)
        fx, fy = match.facing[i]
        draw.line([(x, y), (x + fx * r * 1.6, y + fy * r * 1.6)], fill=edge, width=max(1, edge_w))
        if i == controlled:
            top = y - r - max(3.0, radius * 0.9)
            tri = max(4.0, radius * 0.9)
            draw.polygon([(x - tri, top - tri * 1.3), (x + tri, top - tri * 1.3), (x, top)], fill=MARK,
                         outline=(255, 255, 255))
    bx, by = lay.px(match.ball[0], match.ball[1])
    br = max(2.5, 0.011 * lay.scale)
    lift = float(match.ball[2]) * lay.scale * 1.2
    if lift > 0.5:
        draw.ellipse([bx - br, by - br * 0.6, bx + br, by + br * 0.6], fill=(20, 60, 20))
    draw.ellipse([bx - br, by - lift - br, bx + br, by - lift + br], fill=(255, 255, 255), outline=(0, 0, 0))
    dirty.append((bx - br - 2, by - lift - br - 2, bx + br + 2, by + br + 2))
    if panel_text is not None:
        _draw_text(img, (6, lay.panel / 2), panel_text, max(9, int(lay.panel * 0.62)))
        dirty.append((0, 0, lay.width, lay.panel))
    for x0, y0, x1, y1 in dirty:
        a, b = max(0, int(x0) - 1), min(lay.width, int(x1) + 2)
        c, d = max(0, int(y0) - 1), min(lay.height, int(y1) + 2)
        if a < b and c < d:
            out[c:d, a:b] = canvas[c:d, a:b, :3]
    return out


def show_frame(viewer: Any, frame: np.ndarray, fps: int) -> Any:
    """Draw ``frame`` ((H, W, 3) uint8) into the pygame window ``viewer`` (opened on first use); returns it."""
    import pygame

    if viewer is None:
        pygame.init()
        pygame.display.set_caption("LMMR1 Football")
        viewer = {"screen": pygame.display.set_mode((frame.shape[1], frame.shape[0])),
                  "clock": pygame.time.Clock()}
    surface = pygame.surfarray.make_surface(np.ascontiguousarray(frame.transpose(1, 0, 2)))
    viewer["screen"].blit(surface, (0, 0))
    pygame.display.flip()
    viewer["clock"].tick(fps)
    return viewer
