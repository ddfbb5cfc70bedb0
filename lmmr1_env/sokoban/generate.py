"""Seeded Sokoban level generation in gym-sokoban's manner: a random-walk room, then reverse play.

Reverse play starts from the solved room (every box on its target) and lets the player walk and *pull*
boxes. Each pull undoes a push, so the state reached is solvable by construction. Among the states visited
whose targets are all uncovered, the one with the highest gym-sokoban score (box switches × total box
displacement) becomes the level. Everything is drawn from an explicit ``numpy.random.Generator``.

Splits: a level belongs to "train" or "test" by the hash of its canonical form (the least of its mirror
images and rotations), so no test level, nor any mirror image of one, is ever a training level. The level
for (preset, split, seed) is the first level of that split drawn from a seed stream of its own.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import numpy as np

from lmmr1_env.core import SPLIT_STREAM
from lmmr1_env.sokoban.rules import BOX, FLOOR, PLAYER, TARGET, WALL, Level


@dataclass(frozen=True)
class Preset:
    """A gym-sokoban level size: room ``(rows, cols)``, boxes, its episode step limit and walk length."""

    dim: tuple[int, int]
    num_boxes: int
    max_steps: int
    #: Random-walk steps that carve the room (gym-sokoban: ``int(1.7 * (rows + cols))`` unless set).
    gen_steps: int


#: gym-sokoban's presets (``sokoban_env_variations.py``).
PRESETS = {
    "small-v0": Preset((7, 7), 2, 200, int(1.7 * 14)),
    "small-v1": Preset((7, 7), 3, 200, int(1.7 * 14)),
    "v0": Preset((10, 10), 3, 200, int(1.7 * 20)),
    "v1": Preset((10, 10), 4, 120, int(1.7 * 20)),
    "large-v0": Preset((13, 11), 3, 300, 43),
}
_MAX_ATTEMPTS = 10_000

# gym-sokoban's carving masks: the 1s become floor around the walk's position.
_MASKS = np.array([
    [[0, 0, 0], [1, 1, 1], [0, 0, 0]],
    [[0, 1, 0], [0, 1, 0], [0, 1, 0]],
    [[0, 0, 0], [1, 1, 0], [0, 1, 0]],
    [[0, 0, 0], [1, 1, 0], [1, 1, 0]],
    [[0, 0, 0], [0, 1, 1], [0, 1, 0]],
], dtype=np.uint8)
_DIRECTIONS = ((1, 0), (0, 1), (-1, 0), (0, -1))
_P_CHANGE_DIRECTION = 0.35
#: Reverse-play budget: independent walks, and steps per walk. Measured against gym-sokoban's exhaustive
#: search (bench/bench_sokoban.py): optimal plans about as long on small-v0, slightly shorter on small-v1.
_REVERSE_WALKS = 48
_REVERSE_STEPS = 300


def room_topology(dim: tuple[int, int], num_steps: int, rng: np.random.Generator) -> np.ndarray:
    """Walls (0) and floor (1) carved by a random walk stamping 3x3 masks; the border stays wall."""
    rows, cols = dim
    room = np.zeros(dim, dtype=np.uint8)
    direction = _DIRECTIONS[int(rng.integers(4))]
    position = np.array([int(rng.integers(1, rows - 1)), int(rng.integers(1, cols - 1))])
    for _ in range(num_steps):
        if rng.random() < _P_CHANGE_DIRECTION:
            direction = _DIRECTIONS[int(rng.integers(4))]
        position = np.clip(position + direction, 1, [rows - 2, cols - 2])
        mask = _MASKS[int(rng.integers(len(_MASKS)))]
        room[position[0] - 1:position[0] + 2, position[1] - 1:position[1] + 2] |= mask
    room[:, [0, cols - 1]] = WALL
    room[[0, rows - 1], :] = WALL
    return room


def _reverse_play(floor: list[bool], cols: int, targets: list[int], player: int,
                  rng: np.random.Generator) -> tuple[list[int], int, int] | None:
    """Best (boxes, player, score) reached by pulling boxes away from their targets, or None if none scores."""
    target_set = set(targets)
    deltas = (-cols, cols, -1, 1)
    best: tuple[list[int], int, int] | None = None
    for _ in range(_REVERSE_WALKS):
        boxes = {t: t for t in targets}  # current cell -> the target it started on
        position = player
        last_pulled, switches = -1, 0
        for _ in range(_REVERSE_STEPS):
            d = deltas[int(rng.integers(4))]
            ahead = position + d
            if not floor[ahead] or ahead in boxes:
                continue
            behind = position - d
            pull = behind in boxes  # walking away from a box always drags it along: more displacement
            if pull:
                origin = boxes.pop(behind)
                boxes[position] = origin
                if origin != last_pulled:
                    switches += 1
                    last_pulled = origin
            position = ahead
            if pull and not any(b in target_set for b in boxes):
                displacement = sum(abs(b // cols - t // cols) + abs(b % cols - t % cols) for b, t in boxes.items())
                score = switches * displacement
                if score > 0 and (best is None or score > best[2]):
                    best = (sorted(boxes), position, score)
    return best


def generate_room(preset: Preset, rng: np.random.Generator, tries: int = 50) -> Level:
    """One solvable level of the preset's size and box count, drawn from ``rng``."""
    rows, cols = preset.dim
    for _ in range(tries):
        room = room_topology(preset.dim, preset.gen_steps, rng)
        free = np.flatnonzero(room.ravel() == FLOOR)
        if len(free) <= preset.num_boxes + 1:
            continue
        chosen = rng.choice(free, size=preset.num_boxes + 1, replace=False)
        player, targets = int(chosen[0]), [int(c) for c in chosen[1:]]
        found = _reverse_play([bool(v) for v in room.ravel()], cols, targets, player, rng)
        if found is None:
            continue
        boxes, player, _ = found
        room_fixed = room.copy().ravel()
        room_fixed[targets] = TARGET
        room_state = room_fixed.copy()
        room_state[boxes] = BOX  # reverse play leaves every target uncovered
        room_state[player] = PLAYER
        return Level(room_fixed.reshape(preset.dim), room_state.reshape(preset.dim))
    raise RuntimeError(f"no {rows}x{cols} room with {preset.num_boxes} boxes could be generated in {tries} tries")


def canonical_key(level: Level) -> str:
    """A hash that is the same for a level and its mirror images and rotations."""
    pictures = []
    stacked = np.stack([level.room_fixed, level.room_state]).astype(np.uint8)
    for flipped in (stacked, stacked[:, :, ::-1]):
        for turns in range(4):
            picture = np.rot90(flipped, turns, axes=(1, 2))
            pictures.append(bytes(picture.shape[1:]) + np.ascontiguousarray(picture).tobytes())
    return hashlib.sha256(min(pictures)).hexdigest()


def split_of_level(level: Level) -> str:
    """The fixed hash split of a level: "test" or "train", half each, the same for all its symmetries."""
    return "test" if int(canonical_key(level)[:8], 16) % 2 else "train"


def generate_level(preset_name: str, split: str, seed: int) -> Level:
    """The level ``reset(seed=seed)`` plays for a preset and split: the same in every process."""
    if preset_name not in PRESETS:
        raise ValueError(f"unknown Sokoban preset {preset_name!r}; choose from {', '.join(PRESETS)}")
    if split not in SPLIT_STREAM:
        raise ValueError(f"split must be 'train' or 'test', got {split!r}")
    preset = PRESETS[preset_name]
    preset_index = list(PRESETS).index(preset_name)
    for attempt in range(_MAX_ATTEMPTS):
        rng = np.random.default_rng([preset_index, SPLIT_STREAM[split], int(seed), attempt])
        level = generate_room(preset, rng)
        if split_of_level(level) == split:
            level.name = f"{preset_name}/{split}/{seed}"
            return level
    raise RuntimeError(f"no {split} level of {preset_name} for seed {seed} in {_MAX_ATTEMPTS} attempts")
