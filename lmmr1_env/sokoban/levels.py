"""Loading Sokoban levels from XSB text files and from gym-sokoban ``room_state`` arrays (``.npy``).

XSB: ``#`` wall, `` `` (or ``-`` / ``_``) floor, ``.`` target, ``$`` box, ``*`` box on target, ``@`` player,
``+`` player on target. Levels are runs of board lines; anything else (``; 12`` comments as in Boxoban,
titles, blank lines) separates them, and the comment or title just before a level names it. Cells outside
the walls become walls. ``*`` and ``+`` keep their target in ``room_fixed``.

``.npy``: one array per file, either ``room_state`` ``(rows, cols)`` as LMM-R1 saves gym-sokoban levels, or
``[room_fixed, room_state]`` ``(2, rows, cols)``. A bare ``room_state`` cannot tell whether the player stands
on a target (gym-sokoban writes 5 either way), so ``room_fixed`` gets floor there.
"""

from __future__ import annotations

from collections import deque
from pathlib import Path

import numpy as np

from lmmr1_env.datasets import DatasetError, read_text
from lmmr1_env.sokoban.rules import BOX, BOX_ON_TARGET, FLOOR, PLAYER, TARGET, WALL, Level

#: XSB symbol -> (room_fixed code, room_state code). Lower-case p/b variants appear in some collections.
_SYMBOLS = {
    "#": (WALL, WALL), " ": (FLOOR, FLOOR), "-": (FLOOR, FLOOR), "_": (FLOOR, FLOOR),
    ".": (TARGET, TARGET), "$": (FLOOR, BOX), "*": (TARGET, BOX_ON_TARGET),
    "@": (FLOOR, PLAYER), "+": (TARGET, PLAYER),
    "p": (FLOOR, PLAYER), "P": (TARGET, PLAYER), "b": (FLOOR, BOX), "B": (TARGET, BOX_ON_TARGET),
}
_LEVEL_FILE_SUFFIXES = (".xsb", ".txt", ".sok")


class LevelError(DatasetError):
    """A level that cannot be played, with the level and file it concerns in the message (a ValueError)."""


def _is_board_line(line: str) -> bool:
    body = line.rstrip()
    return bool(body) and "#" in body and all(ch in _SYMBOLS for ch in body)


def parse_xsb(text: str, source: str = "<text>") -> list[Level]:
    """Every level in XSB ``text``; ``source`` names the file in errors ("level 3 of levels.xsb: ...")."""
    levels: list[Level] = []
    board: list[str] = []
    title = ""

    def finish() -> None:
        nonlocal title
        if board:
            index = len(levels)
            where = f"level {index} of {source}" + (f" ({title})" if title else "")
            levels.append(_level_from_rows(board, where, index))
            board.clear()
            title = ""

    for line in text.splitlines():
        if _is_board_line(line):
            board.append(line.rstrip())
            continue
        finish()
        stripped = line.strip()
        if stripped:
            title = stripped.lstrip(";").strip() or title
    finish()
    if not levels:
        raise LevelError(f"{source}: no XSB levels found (expected rows of # $ . @ * + and spaces)")
    return levels


def _level_from_rows(rows: list[str], where: str, index: int) -> Level:
    width = max(len(row) for row in rows)
    fixed = np.full((len(rows), width), WALL, dtype=np.uint8)
    state = np.full((len(rows), width), WALL, dtype=np.uint8)
    for r, row in enumerate(rows):
        for c, ch in enumerate(row):
            fixed[r, c], state[r, c] = _SYMBOLS[ch]
    fixed, state = _close_room(fixed, state, where)
    check_level(fixed, state, where)
    return Level(fixed, state, name=where, index=index)


def _close_room(fixed: np.ndarray, state: np.ndarray, where: str) -> tuple[np.ndarray, np.ndarray]:
    """Turn cells the player cannot reach (walking through boxes) into wall; the room must be closed."""
    players = np.argwhere(state == PLAYER)
    if len(players) != 1:
        raise LevelError(f"{where}: {len(players)} players (@ or +); a level needs exactly one")
    rows, cols = state.shape
    inside = np.zeros(state.shape, dtype=bool)
    start = (int(players[0][0]), int(players[0][1]))
    inside[start] = True
    queue = deque([start])
    while queue:
        r, c = queue.popleft()
        if r in (0, rows - 1) or c in (0, cols - 1):
            raise LevelError(f"{where}: the room is not closed by walls (open at row {r + 1}, column {c + 1})")
        for dr, dc in ((1, 0), (-1, 0), (0, 1), (0, -1)):
            nr, nc = r + dr, c + dc
            if state[nr, nc] != WALL and not inside[nr, nc]:
                inside[nr, nc] = True
                queue.append((nr, nc))
    outside_things = ~inside & np.isin(state, (TARGET, BOX, BOX_ON_TARGET))
    if outside_things.any():
        r, c = np.argwhere(outside_things)[0]
        raise LevelError(f"{where}: a box or target at row {r + 1}, column {c + 1} lies outside the player's room")
    fixed = np.where(inside, fixed, WALL).astype(np.uint8)
    state = np.where(inside, state, WALL).astype(np.uint8)
    return fixed, state


def check_level(room_fixed: np.ndarray, room_state: np.ndarray, where: str) -> None:
    """Raise :class:`LevelError` unless the level has one player, boxes, and as many targets as boxes."""
    players = int((room_state == PLAYER).sum())
    if players != 1:
        raise LevelError(f"{where}: {players} players; a level needs exactly one")
    boxes = int(np.isin(room_state, (BOX, BOX_ON_TARGET)).sum())
    targets = int((room_fixed == TARGET).sum())
    if boxes == 0:
        raise LevelError(f"{where}: no boxes")
    if boxes != targets:
        raise LevelError(f"{where}: {boxes} boxes but {targets} targets")
    bad = ((room_fixed == TARGET) & np.isin(room_state, (FLOOR, BOX))) | \
          ((room_fixed != TARGET) & np.isin(room_state, (TARGET, BOX_ON_TARGET))) | \
          ((room_fixed == WALL) != (room_state == WALL))
    if bad.any():
        r, c = np.argwhere(bad)[0]
        raise LevelError(f"{where}: room_fixed and room_state disagree at row {r + 1}, column {c + 1}")


def level_from_arrays(array: np.ndarray, where: str, index: int | None = None) -> Level:
    """A level from gym-sokoban codes: ``room_state`` ``(rows, cols)`` or ``[room_fixed, room_state]``."""
    array = np.asarray(array)
    if array.ndim == 2:
        state = array
        fixed = np.where(np.isin(state, (TARGET, BOX_ON_TARGET)), TARGET, np.where(state == WALL, WALL, FLOOR))
    elif array.ndim == 3 and array.shape[0] == 2:
        fixed, state = array[0], array[1]
    else:
        raise LevelError(f"{where}: expected a room_state (rows, cols) or [room_fixed, room_state] (2, rows, cols) "
                         f"array, got shape {array.shape}")
    if not np.isin(state, range(6)).all() or not np.isin(fixed, (WALL, FLOOR, TARGET)).all():
        raise LevelError(f"{where}: cell codes must be gym-sokoban's (room_state 0-5, room_fixed 0-2)")
    fixed, state = fixed.astype(np.uint8), state.astype(np.uint8)
    try:
        check_level(fixed, state, where)
    except LevelError as error:
        if array.ndim == 2 and "boxes but" in str(error):
            raise LevelError(f"{error} (a room_state cannot record a player standing on a target; save "
                             f"[room_fixed, room_state] instead)") from None
        raise
    return Level(fixed, state, name=where, index=index)


def load_levels(path: str | Path) -> list[Level]:
    """Levels from an XSB file, a ``.npy`` file, or a folder of ``.npy`` files (in name order)."""
    path = Path(path)
    if not path.exists():
        raise LevelError(f"Sokoban level file {str(path)!r} not found")
    if path.is_dir():
        files = sorted(path.glob("*.npy"))
        if not files:
            raise LevelError(f"{path}: folder holds no .npy level files")
        return [_load_npy(f, i) for i, f in enumerate(files)]
    if path.suffix == ".npy":
        return [_load_npy(path, 0)]
    if path.suffix.lower() not in _LEVEL_FILE_SUFFIXES:
        raise LevelError(f"{path.name}: expected an XSB text file ({', '.join(_LEVEL_FILE_SUFFIXES)}), a .npy file "
                         "or a folder of .npy files")
    return parse_xsb(read_text(path, LevelError), path.name)  # a BOM is fine; a non-UTF-8 byte names its line


def _load_npy(path: Path, index: int) -> Level:
    try:
        array = np.load(path, allow_pickle=False)
    except (ValueError, OSError) as error:
        raise LevelError(f"{path.name}: not a readable .npy array ({error})") from None
    return level_from_arrays(array, path.name, index)
