"""LMMR1/Sokoban-v0: gym-sokoban levels played by an LMM, as a whole plan (LMM-R1) or one move per turn."""

from __future__ import annotations

from collections import OrderedDict
from pathlib import Path
from typing import Any

import numpy as np

from lmmr1_env.core import LMMEnv
from lmmr1_env.datasets import builtin_data
from lmmr1_env.sokoban.generate import PRESETS, generate_level
from lmmr1_env.sokoban.levels import check_level, load_levels, parse_xsb
from lmmr1_env.sokoban.render import render_frame
from lmmr1_env.sokoban.rules import (
    Level,
    apply_move,
    best_cumulative_reward,
    boxes_on_target,
    is_solved,
    level_text,
    play,
    step_reward_terms,
)
from lmmr1_env.sokoban.solver import DEFAULT_MAX_STATES, SolveResult, solve
from lmmr1_env.sokoban.verifier import MAX_REPLAY, score_plan
from lmmr1_env.tags import first_tag_body, strip_eos
from lmmr1_env.types import Message, Observation

MODES = ("plan", "step")
#: The legal action words, as ``info["actions"]`` lists them.
ACTIONS = ["Left", "Right", "Up", "Down"]
#: Level sets shipped in ``envs/sokoban/`` (name -> file).
BUILTIN_LEVELS = {"starter": "starter.xsb"}
#: Steps before truncation for file levels (gym-sokoban's default ``max_steps``).
DEFAULT_FILE_MAX_STEPS = 120
DEFAULT_IMAGE_SIZE = (224, 224)
#: Moves of a plan replayed for the MageBench score (it has no 50-move cap; this only bounds hostile input).
MAGEBENCH_MAX_MOVES = 1000
_LEGEND = "# wall, _ floor, . target, $ box, * box on a target, @ you, + you on a target"
_RULES = (
    "You are playing Sokoban. The picture (and the map, if given) shows a warehouse seen from above: brick walls, "
    "dark floor, targets marked with a red dot, yellow boxes, and you, the green figure. You move one cell at a "
    "time: Left, Right, Up or Down. Walking into a box pushes it one cell further, if that cell is free floor or "
    "a target; you cannot pull a box or push two boxes at once, and walls stop you. The goal is to push every "
    "box onto a target. "
)
SYSTEM_PROMPTS = {
    "plan": _RULES + (
        "Plan the whole solution at once. Think inside <think> </think>, then write all your moves in order "
        "inside <answer> </answer>, separated by commas, for example: "
        "<think>The box is right of me and the target is right of the box, so I push it right twice.</think>"
        f"<answer>Right, Right</answer>. Only the first {MAX_REPLAY} moves are played. Your output must start with "
        "<think> and end with </answer>."
    ),
    "step": _RULES + (
        "You make one move per turn and then see the new position. Think inside <think> </think>, then write "
        "exactly one move inside <answer> </answer>, for example: "
        "<think>The target is right of the box, so I push it right.</think><answer>Right</answer>."
    ),
}
_DEMO_LEVELS = {
    "plan": "######\n#@$_.#\n#_$_.#\n#____#\n######",
    "step": "#####\n#@$.#\n#####",
}
_DEMO_ANSWERS = {
    "plan": ("<think>The top box is right of me and its target is two cells further right, so I push it right "
             "twice. Then I walk back left two cells, step down next to the lower box and push it right twice "
             "onto the other target.</think><answer>Right, Right, Left, Left, Down, Right, Right</answer>"),
    "step": ("<think>The box is right of me and the target is right of the box, so one push right puts it on "
             "the target.</think><answer>Right</answer>"),
}
_MOVE_WORDS = {"left": "Left", "right": "Right", "up": "Up", "down": "Down"}
_CACHE_SIZE = 512


def parse_move(response: str) -> tuple[str | None, str | None]:
    """Step mode: the one move in ``<answer>…</answer>`` (or a bare move word), else ``(None, reason)``."""
    text = strip_eos(response)
    match = first_tag_body(text, "answer")
    body = text if match is None else match
    items = [item.strip().strip(".!").strip().lower() for item in body.split(",")]
    if len(items) > 1 and all(item in _MOVE_WORDS for item in items):
        return None, f"one move per turn, got {len(items)}"
    if len(items) == 1 and items[0] in _MOVE_WORDS:
        return _MOVE_WORDS[items[0]], None
    if match is None:
        return None, "no <answer>...</answer> with a move Left/Right/Up/Down"
    return None, f"the answer {body.strip()[:30]!r} is not one of Left/Right/Up/Down"


def _demo_level(text: str) -> Level:
    return parse_xsb(text.replace("_", " "), "the demonstration")[0]


class SokobanEnv(LMMEnv):
    """Sokoban in gym-sokoban's encoding, scored by LMM-R1's plan verifier or by gym-sokoban's step reward.

    ## Description
    Push every box onto a target. Levels are generated (gym-sokoban presets ``small-v0`` 7×7 / 2 boxes,
    ``small-v1`` 7×7 / 3, ``v0`` 10×10 / 3, ``v1`` 10×10 / 4, ``large-v0`` 13×11 / 3; reverse play, so always
    solvable), or read from an XSB file, a ``.npy`` room_state file, a folder of them, or the shipped set
    ``"starter"``. Like gym-sokoban, ``room_fixed`` (0 wall, 1 floor, 2 target) and ``room_state`` (plus 3 box
    on target, 4 box, 5 player) are attributes. ``mode="plan"`` is LMM-R1's task: one response with the whole
    move list. ``mode="step"``: one move per turn.

    ## Observation
    ``{"text": str, "image": (H, W, 3) uint8}``: the frame (16-pixel tiles scaled up with nearest neighbour,
    letterboxed into ``image_size``) and the task; with ``text_map=True`` (default) the text also holds the
    map as XSB rows (``_`` for floor). After a move the text says what the move did.

    ## Action
    The model's whole response (any ``str``). Plan mode: ``<think>…</think><answer>Left, Up, …</answer>``.
    Step mode: ``<think>…</think><answer>Left</answer>`` (a bare ``Left`` is read too).

    ## Rewards
    Plan mode, LMM-R1's verifier exactly (``lmmr1_env.sokoban.verifier``); 0 unless the response has one each
    of ``<think>``, ``</think>``, ``<answer>``, ``</answer>`` and every comma-separated item is a move word;
    else the sum of ``task`` (best cumulative step reward replaying at most 50 moves), ``format`` 0.5,
    ``move_count`` (0.05·n below 20 moves, else 1 − 0.2·((n − 20)/30)²; min(0, · − 0.2) when a 1–5 word
    pattern repeats back-to-back more than 7 times) and ``thinking`` (0.001 per ``<think>`` piece longer
    than one character, split on single spaces, capped at 0.2).
    Step mode, gym-sokoban's step reward: ``step_penalty`` −0.1, ``box_on_target`` +1 / −1 when a box
    reaches / leaves a target, ``solved`` +10. An unreadable response makes no move (still −0.1) and sets
    ``info["parse_error"]``.
    ``info["reward_terms"]`` sums to the reward. At the end of an episode ``info["magebench_score"]`` is
    MageBench's Sokoban-Global score, 100 − 5 × (optimal reward − best cumulative reward), with the optimal
    reward from the solver's move-optimal plan and the best reward over all moves written (no 50-move cap;
    at most 1000 moves);
    None when the solver ran out of budget (``info["optimal_status"]`` says so).
    ``info["state"]`` (``room_state``, ``room_fixed`` as lists) is for scripted agents; ``info["actions"]``
    lists the move words; ``info["success"]`` is True once solved; ``info["level_index"]`` names the level of
    a file.

    ## Episode End
    Plan mode: terminated after the single step. Step mode: terminated when every box is on a target,
    truncated after ``max_steps`` turns (the preset's gym-sokoban value, 120 for files).

    ## Arguments
    ``mode`` ("plan" | "step"), ``levels`` (preset name, "starter", or a path), ``split`` ("train" | "test";
    generated levels are split by a hash of the level, files are used whole, seed s giving level s mod N),
    ``image_size`` (int or (H, W), default 224), ``text_map`` (bool), ``max_steps`` (step mode),
    ``solver_max_states`` (states the solver behind the MageBench score may store, default 100 000: at most
    ~10 s and ~100 MB per level, cached; 0 turns the solver off and the score to None).

    ## Version History
    - v0: initial version. Differences from LMM-R1's setup: XSB levels keep a box or player standing on a
      target (LMM-R1 rebuilds levels from room_state alone and loses that), and boxes already on a target
      at the start count as placed (gym-sokoban would pay +1 for them on the first step).
    """

    metadata = {"render_modes": ["rgb_array"], "render_fps": 4}

    def __init__(self, mode: str = "plan", levels: str | Path = "small-v0", split: str = "train",
                 image_size: int | tuple[int, int] = DEFAULT_IMAGE_SIZE, text_map: bool = True,
                 max_steps: int | None = None, solver_max_states: int = DEFAULT_MAX_STATES,
                 render_mode: str | None = None):
        super().__init__(image_size=image_size, split=split, render_mode=render_mode)
        if mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
        self.mode = mode
        self.text_map = bool(text_map)
        self.solver_max_states = int(solver_max_states)
        self.preset: str | None = None
        self.file_levels: list[Level] | None = None
        if isinstance(levels, str) and levels in PRESETS:
            self.preset = levels
            default_steps = PRESETS[levels].max_steps
        else:
            path = builtin_data("sokoban", BUILTIN_LEVELS[levels]) if levels in BUILTIN_LEVELS else Path(levels)
            if isinstance(levels, str) and not path.exists() and "/" not in levels and "." not in levels:
                raise ValueError(f"unknown Sokoban levels {levels!r}: a preset ({', '.join(PRESETS)}), "
                                 f"{', '.join(BUILTIN_LEVELS)}, or a path to an XSB or .npy file")
            self.file_levels = load_levels(path)
            default_steps = DEFAULT_FILE_MAX_STEPS
        self.max_steps = int(max_steps) if max_steps is not None else default_steps
        if self.max_steps < 1:
            raise ValueError(f"max_steps must be at least 1, got {max_steps!r}")
        self.system_prompt = SYSTEM_PROMPTS[mode]
        demo = _demo_level(_DEMO_LEVELS[mode])
        self.demonstration: list[Message] = [
            {"role": "user", "content": self._task_text(demo, text_map=True)},
            {"role": "assistant", "content": _DEMO_ANSWERS[mode]},
        ]
        self._levels_cache: OrderedDict[int, Level] = OrderedDict()
        self._solutions: OrderedDict[bytes, SolveResult] = OrderedDict()
        self.level: Level | None = None
        self.room_fixed: np.ndarray | None = None
        self.room_state: np.ndarray | None = None

    # ---- levels ----
    def level_for_seed(self, seed: int) -> Level:
        """The level ``reset(seed=seed)`` plays: generated from (preset, split, seed), or file level seed mod N."""
        if self.file_levels is not None:
            return self.file_levels[seed % len(self.file_levels)].copy()
        if seed not in self._levels_cache:
            assert self.preset is not None
            self._levels_cache[seed] = generate_level(self.preset, self.split, seed)
            if len(self._levels_cache) > _CACHE_SIZE:
                self._levels_cache.popitem(last=False)
        return self._levels_cache[seed].copy()

    def solution(self, level: Level | None = None) -> SolveResult:
        """The solver's verdict on ``level`` (default: the current level's start), cached per level."""
        level = level if level is not None else self.level
        if level is None:
            raise RuntimeError("no level: call reset() first")
        key = level.room_fixed.tobytes() + level.room_state.tobytes() + bytes(level.room_state.shape)
        if key not in self._solutions:
            self._solutions[key] = solve(level.room_fixed, level.room_state, max_states=self.solver_max_states)
            if len(self._solutions) > _CACHE_SIZE:
                self._solutions.popitem(last=False)
        return self._solutions[key]

    # ---- the gymnasium API ----
    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[Observation, dict]:
        """Start a level; ``options={"level": {"room_fixed": …, "room_state": …}}`` (or a ``Level``) plays that room."""
        super().reset(seed=seed)
        if options and "level" in options:
            given = options["level"]
            if isinstance(given, Level):
                given = {"room_fixed": given.room_fixed, "room_state": given.room_state, "name": given.name}
            fixed = np.asarray(given["room_fixed"], dtype=np.uint8)
            state = np.asarray(given["room_state"], dtype=np.uint8)
            check_level(fixed, state, "options['level']")
            self.level = Level(fixed, state, name=str(given.get("name") or "given level"))
        else:
            index = seed if seed is not None else int(self.np_random.integers(2**31 - 1))
            self.level = self.level_for_seed(index)
        self.room_fixed = self.level.room_fixed.copy()
        self.room_state = self.level.room_state.copy()
        self.num_env_steps = 0
        self.boxes_on_target = boxes_on_target(self.room_state)
        self.num_boxes = self.level.num_boxes
        self.cumulative_reward = 0.0
        self.best_reward = 0.0
        self._needs_reset = False
        info = {"system_prompt": self.system_prompt, **self._info()}
        return self._observation(self._task_text(self.level, self.text_map), self._frame()), info

    def step(self, action: str) -> tuple[Observation, float, bool, bool, dict]:
        """Plan mode: score the whole plan (terminates). Step mode: play one move."""
        self._check_action(action)
        if self.mode == "plan":
            return self._step_plan(action)
        return self._step_move(action)

    def render(self) -> np.ndarray | None:
        """The current frame (``image_size``) when ``render_mode="rgb_array"``."""
        if self.render_mode != "rgb_array" or self.room_state is None:
            return None
        return self._frame()

    # ---- the two modes ----
    def _step_plan(self, action: str) -> tuple[Observation, float, bool, bool, dict]:
        assert self.level is not None
        score = score_plan(action, self.level)
        _, _, final_state = play(self.level, score.moves or [], limit=MAX_REPLAY)
        self.room_state = final_state
        self.num_env_steps = 1
        self._needs_reset = True
        all_rewards, _, _ = play(self.level, score.moves or [], limit=MAGEBENCH_MAX_MOVES)
        info = {**self._info(), "reward_terms": dict(score.terms), "success": score.solved,
                "moves": score.moves, "repetition_penalty": score.repeated, "thinking_words": score.thinking_words,
                **self._magebench(best_cumulative_reward(all_rewards))}
        if score.parse_error:
            info["parse_error"] = score.parse_error
        if score.moves is None:
            text = f"Your plan could not be read: {score.parse_error}. Reward: 0."
        else:
            shown = len(score.moves[:MAX_REPLAY])
            outcome = "The level is solved." if score.solved else "The level is not solved."
            text = f"Your plan was played ({shown} moves). {outcome} Reward: {score.reward:.3f}."
        return self._observation(text, self._frame()), score.reward, True, False, info

    def _step_move(self, action: str) -> tuple[Observation, float, bool, bool, dict]:
        assert self.room_state is not None and self.room_fixed is not None
        move, error = parse_move(action)
        before = self.boxes_on_target
        moved = pushed = False
        if move is not None:
            moved, pushed = apply_move(self.room_state, self.room_fixed, move)
        self.boxes_on_target = boxes_on_target(self.room_state)
        solved = is_solved(self.room_state, self.room_fixed)
        terms = step_reward_terms(before, self.boxes_on_target, solved)
        reward = float(sum(terms.values()))
        self.num_env_steps += 1
        self.cumulative_reward += reward
        self.best_reward = max(self.best_reward, self.cumulative_reward)
        terminated = solved
        truncated = not solved and self.num_env_steps >= self.max_steps
        self._needs_reset = terminated or truncated
        info = {**self._info(), "reward_terms": terms, "success": solved, "move": move, "moved": moved,
                "pushed": pushed}
        if error is not None:
            info["parse_error"] = error
        if terminated or truncated:
            info.update(self._magebench(self.best_reward))
        if move is None:
            what = f"Your answer could not be read ({error}), so you did not move."
        elif not moved:
            what = f"You tried to move {move}, but something blocked you."
        else:
            what = f"You moved {move}" + (" and pushed a box." if pushed else ".")
        text = (f"{what} Boxes on targets: {self.boxes_on_target} of {self.num_boxes}. "
                f"Turn {self.num_env_steps} of {self.max_steps} done.")
        if solved:
            text += " The level is solved."
        elif truncated:
            text += " Out of turns."
        elif self.text_map:
            text += "\nMap (" + _LEGEND + "):\n" + level_text(self.room_state, self.room_fixed)
        return self._observation(text, self._frame()), reward, terminated, truncated, info

    # ---- helpers ----
    def _magebench(self, best: float) -> dict[str, Any]:
        """MageBench's Sokoban-Global score for a best cumulative reward, and the optimum it is measured from."""
        if self.solver_max_states <= 0:
            return {"magebench_score": None, "optimal_reward": None, "optimal_moves": None, "optimal_status": "off"}
        result = self.solution()
        if not result.solved:
            return {"magebench_score": None, "optimal_reward": None, "optimal_moves": None,
                    "optimal_status": result.status}
        optimal = best_cumulative_reward(play(self.level, result.moves)[0])
        return {"magebench_score": 100.0 - 5.0 * (optimal - best), "optimal_reward": optimal,
                "optimal_moves": len(result.moves), "optimal_status": result.status}

    def _info(self) -> dict[str, Any]:
        assert self.level is not None and self.room_state is not None and self.room_fixed is not None
        info: dict[str, Any] = {
            "mode": self.mode, "actions": list(ACTIONS), "level": self.level.name, "split": self.split,
            "state": {"room_state": self.room_state.tolist(), "room_fixed": self.room_fixed.tolist()},
            "steps": self.num_env_steps, "boxes_on_target": self.boxes_on_target,
            "success": is_solved(self.room_state, self.room_fixed),
        }
        if self.level.index is not None:
            info["level_index"] = self.level.index
        return info

    def _frame(self) -> np.ndarray:
        assert self.room_state is not None and self.room_fixed is not None and self.image_size is not None
        return render_frame(self.room_state, self.room_fixed, self.image_size)

    def _task_text(self, level: Level, text_map: bool) -> str:
        rows, cols = level.room_state.shape
        boxes = "the box onto the target" if level.num_boxes == 1 else f"all {level.num_boxes} boxes onto the targets"
        if self.mode == "plan":
            ask = (f"Push {boxes}. Write your whole plan at once: the moves in order, "
                   f"comma-separated, inside <answer> </answer>.")
        else:
            ask = (f"Push {boxes}, one move per turn: write one move inside "
                   f"<answer> </answer>. You have {self.max_steps} turns.")
        text = f"Sokoban level, {rows} rows by {cols} columns. {ask}"
        if text_map:
            text += "\nMap (" + _LEGEND + "):\n" + level_text(level.room_state, level.room_fixed)
        return text
