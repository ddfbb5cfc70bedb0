"""The Sokoban frame: one 16-pixel tile per cell, scaled up (nearest neighbour) and letterboxed.

Tiles are drawn here with numpy (no image files): brick-red walls, dark floor, targets with a red dot, yellow
boxes (orange with a red dot once on a target), and a green player, as LMM-R1's prompt describes them.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
from PIL import Image

from lmmr1_env.core import letterbox
from lmmr1_env.sokoban.rules import PLAYER, TARGET

TILE = 16
_PLAYER_ON_TARGET = 6
_FLOOR_RGB = (38, 38, 44)
_TARGET_RGB = (225, 40, 40)
_BACKGROUND = (0, 0, 0)


def _disc(radius: float) -> np.ndarray:
    centre = (TILE - 1) / 2
    y, x = np.mgrid[0:TILE, 0:TILE]
    return (x - centre) ** 2 + (y - centre) ** 2 <= radius ** 2


def _tiles() -> np.ndarray:
    """``(7, 16, 16, 3)`` uint8: wall, floor, target, box on target, box, player, player on target."""
    tiles = np.zeros((7, TILE, TILE, 3), dtype=np.uint8)
    y, x = np.mgrid[0:TILE, 0:TILE]

    wall = np.empty((TILE, TILE, 3), dtype=np.uint8)
    wall[:] = (150, 62, 42)
    mortar = (y % 8 == 7) | ((x + 8 * ((y // 8) % 2)) % 16 == 15)
    wall[mortar] = (95, 40, 30)
    tiles[0] = wall

    floor = np.empty((TILE, TILE, 3), dtype=np.uint8)
    floor[:] = _FLOOR_RGB
    floor[(x == 0) | (y == 0)] = (30, 30, 35)
    tiles[1] = floor

    target = floor.copy()
    target[_disc(3.2)] = _TARGET_RGB
    tiles[2] = target

    box = floor.copy()
    body = (x >= 2) & (x <= 13) & (y >= 2) & (y <= 13)
    edge = body & ((x == 2) | (x == 13) | (y == 2) | (y == 13) | (x == y) | (x + y == 15))
    box[body] = (232, 190, 40)
    box[edge] = (120, 82, 20)
    tiles[4] = box

    on_target = box.copy()
    on_target[body] = (250, 140, 40)
    on_target[edge] = (120, 60, 20)
    on_target[_disc(2.6)] = _TARGET_RGB
    tiles[3] = on_target

    for code, base in ((PLAYER, floor), (_PLAYER_ON_TARGET, target)):
        player = base.copy()
        head = (x - 7.5) ** 2 + (y - 4.5) ** 2 <= 2.6 ** 2
        torso = (x >= 4) & (x <= 11) & (y >= 7) & (y <= 11)
        legs = ((x >= 4) & (x <= 6) | (x >= 9) & (x <= 11)) & (y >= 12) & (y <= 14)
        player[head | torso | legs] = (70, 205, 70)
        player[head & ((y == 4) & ((x == 6) | (x == 9)))] = (20, 60, 20)  # eyes
        tiles[code] = player
    return tiles


TILES = _tiles()


def room_pixels(room_state: np.ndarray, room_fixed: np.ndarray) -> np.ndarray:
    """The room at 16 pixels a cell: ``(rows * 16, cols * 16, 3)`` uint8."""
    codes = np.asarray(room_state, dtype=np.intp).copy()
    codes[(codes == PLAYER) & (np.asarray(room_fixed) == TARGET)] = _PLAYER_ON_TARGET
    rows, cols = codes.shape
    return TILES[codes].transpose(0, 2, 1, 3, 4).reshape(rows * TILE, cols * TILE, 3)


@lru_cache(maxsize=64)
def _sampling(source: tuple[int, int], size: tuple[int, int]) -> tuple[np.ndarray, np.ndarray, int, int]:
    """Nearest-neighbour source rows and columns for the letterboxed picture, and its top-left corner."""
    (src_h, src_w), (height, width) = source, size
    scale = min(width / src_w, height / src_h)
    new_h, new_w = max(1, round(src_h * scale)), max(1, round(src_w * scale))
    rows = np.minimum(((np.arange(new_h) + 0.5) * src_h / new_h).astype(np.intp), src_h - 1)
    cols = np.minimum(((np.arange(new_w) + 0.5) * src_w / new_w).astype(np.intp), src_w - 1)
    return rows, cols, (height - new_h) // 2, (width - new_w) // 2


def render_frame(room_state: np.ndarray, room_fixed: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """The frame an agent sees: the room scaled up with nearest neighbour and letterboxed into ``size``.

    Same geometry as :func:`lmmr1_env.core.letterbox` (aspect kept, centred, black padding), done with numpy
    index maps: faster than a PIL round trip every step.
    """
    pixels = room_pixels(room_state, room_fixed)
    height, width = int(size[0]), int(size[1])
    rows, cols, top, left = _sampling(pixels.shape[:2], (height, width))
    picture = pixels.take(rows, axis=0).take(cols, axis=1)
    if picture.shape[:2] == (height, width):
        return picture
    frame = np.zeros((height, width, 3), dtype=np.uint8)  # _BACKGROUND is black
    frame[top:top + len(rows), left:left + len(cols)] = picture
    return frame


def render_frame_pil(room_state: np.ndarray, room_fixed: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """The same frame through :func:`lmmr1_env.core.letterbox` (PIL nearest): the reference for tests."""
    return letterbox(room_pixels(room_state, room_fixed), size, fill=_BACKGROUND,
                     resample=Image.Resampling.NEAREST)
