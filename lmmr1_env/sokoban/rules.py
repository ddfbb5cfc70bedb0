"""Sokoban rules in gym-sokoban's room encoding: cell codes, moves, one step of play and its reward.

A level is two ``(rows, cols)`` integer arrays, as in gym-sokoban:

- ``room_fixed``: what never moves: 0 wall, 1 floor, 2 target.
- ``room_state``: the whole picture: 0 wall, 1 floor, 2 empty target, 3 box on target, 4 box, 5 player
  (the player hides what is under it; ``room_fixed`` remembers whether that cell is a target).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

WALL, FLOOR, TARGET, BOX_ON_TARGET, BOX, PLAYER = 0, 1, 2, 3, 4, 5

#: gym-sokoban's reward constants (``SokobanEnv.__init__``).
STEP_PENALTY = -0.1
BOX_ON_TARGET_REWARD = 1.0
BOX_OFF_TARGET_PENALTY = -1.0
SOLVED_REWARD = 10.0

#: The four moves in the words the model writes, and gym-sokoban's action codes for them (push-or-move).
MOVES = ("Up", "Down", "Left", "Right")
MOVE_CODES = {"Up": 1, "Down": 2, "Left": 3, "Right": 4}
#: (row, column) change of each move.
DELTAS = {"Up": (-1, 0), "Down": (1, 0), "Left": (0, -1), "Right": (0, 1)}


@dataclass
class Level:
    """One Sokoban level: ``room_fixed`` and ``room_state`` (``(rows, cols)`` uint8) and where it came from."""

    room_fixed: np.ndarray
    room_state: np.ndarray
    #: A readable name: ``"small-v0/train/7"`` or ``"level 3 of levels.xsb"``.
    name: str = ""
    #: Index of the level in its file (None for generated levels).
    index: int | None = None

    @property
    def num_boxes(self) -> int:
        """Boxes in the room, on targets or not."""
        return int(np.isin(self.room_state, (BOX, BOX_ON_TARGET)).sum())

    def copy(self) -> Level:
        """A deep copy (the arrays are copied)."""
        return Level(self.room_fixed.copy(), self.room_state.copy(), self.name, self.index)


def player_position(room_state: np.ndarray) -> tuple[int, int]:
    """(row, column) of the player."""
    found = np.argwhere(room_state == PLAYER)
    if len(found) != 1:
        raise ValueError(f"room_state must hold exactly one player (code {PLAYER}), found {len(found)}")
    return int(found[0][0]), int(found[0][1])


def boxes_on_target(room_state: np.ndarray) -> int:
    """Number of boxes standing on targets."""
    return int((room_state == BOX_ON_TARGET).sum())


def is_solved(room_state: np.ndarray, room_fixed: np.ndarray) -> bool:
    """True when no target is left uncovered by a box (gym-sokoban's ``_check_if_all_boxes_on_target``)."""
    empty_targets = room_state == TARGET
    player_on_target = (room_fixed == TARGET) & (room_state == PLAYER)
    return not bool((empty_targets | player_on_target).any())


def apply_move(room_state: np.ndarray, room_fixed: np.ndarray, move: str) -> tuple[bool, bool]:
    """Play ``move`` on ``room_state`` in place: push a box if one is in the way and can move, else walk.

    Returns ``(moved_player, pushed_box)``. Walls, two boxes in a row and the edge of the grid block.
    """
    d_row, d_col = DELTAS[move]
    rows, cols = room_state.shape
    row, col = player_position(room_state)
    next_row, next_col = row + d_row, col + d_col
    if not (0 <= next_row < rows and 0 <= next_col < cols):
        return False, False
    ahead = room_state[next_row, next_col]
    if ahead in (BOX, BOX_ON_TARGET):
        box_row, box_col = next_row + d_row, next_col + d_col
        if not (0 <= box_row < rows and 0 <= box_col < cols) or room_state[box_row, box_col] not in (FLOOR, TARGET):
            return False, False
        room_state[box_row, box_col] = BOX_ON_TARGET if room_fixed[box_row, box_col] == TARGET else BOX
        pushed = True
    elif ahead in (FLOOR, TARGET):
        pushed = False
    else:
        return False, False
    room_state[next_row, next_col] = PLAYER
    room_state[row, col] = room_fixed[row, col]
    return True, pushed


def step_reward_terms(boxes_before: int, boxes_after: int, solved: bool) -> dict[str, float]:
    """gym-sokoban's step reward as named terms, in its order of addition (their sum is bit-for-bit its reward).

    ``step_penalty`` −0.1 every step; ``box_on_target`` +1 when a box reached a target, −1 when one left;
    ``solved`` +10 when every box is on a target.
    """
    box_term = 0.0
    if boxes_after > boxes_before:
        box_term = BOX_ON_TARGET_REWARD
    elif boxes_after < boxes_before:
        box_term = BOX_OFF_TARGET_PENALTY
    return {"step_penalty": STEP_PENALTY, "box_on_target": box_term, "solved": SOLVED_REWARD if solved else 0.0}


def step_reward(boxes_before: int, boxes_after: int, solved: bool) -> float:
    """The step reward exactly as gym-sokoban adds it up: −0.1, then ±1, then +10."""
    reward = STEP_PENALTY
    if boxes_after > boxes_before:
        reward += BOX_ON_TARGET_REWARD
    elif boxes_after < boxes_before:
        reward += BOX_OFF_TARGET_PENALTY
    if solved:
        reward += SOLVED_REWARD
    return reward


def play(level: Level, moves: list[str], *, limit: int | None = None) -> tuple[list[float], bool, np.ndarray]:
    """Replay ``moves`` from the level's start, stopping once solved (or after ``limit`` moves).

    Returns ``(step_rewards, solved, final_room_state)``; the level itself is not changed.
    """
    state = level.room_state.copy()
    rewards: list[float] = []
    on_target = boxes_on_target(state)
    solved = is_solved(state, level.room_fixed)
    for move in moves[:limit] if limit is not None else moves:
        if solved:
            break
        apply_move(state, level.room_fixed, move)
        now_on_target = boxes_on_target(state)
        solved = is_solved(state, level.room_fixed)
        rewards.append(step_reward(on_target, now_on_target, solved))
        on_target = now_on_target
    return rewards, solved, state


def best_cumulative_reward(step_rewards: list[float]) -> float:
    """The best running total of ``step_rewards``, starting at 0 (LMM-R1's task score, MageBench's "best")."""
    total = best = 0.0
    for reward in step_rewards:
        total += reward
        if total > best:
            best = total
    return best


def level_text(room_state: np.ndarray, room_fixed: np.ndarray, *, floor: str = "_") -> str:
    """The room as XSB rows (``#`` wall, ``floor`` floor, ``.`` target, ``$`` box, ``*`` box on target,
    ``@`` player, ``+`` player on target), one row per line."""
    symbols = {WALL: "#", FLOOR: floor, TARGET: ".", BOX_ON_TARGET: "*", BOX: "$"}
    lines = []
    for state_row, fixed_row in zip(room_state.tolist(), room_fixed.tolist()):
        lines.append("".join(("+" if fixed == TARGET else "@") if cell == PLAYER else symbols[cell]
                             for cell, fixed in zip(state_row, fixed_row)))
    return "\n".join(lines)
