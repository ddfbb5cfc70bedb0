"""LMMR1/FootballGame-v0: MageBench's Football-Online task on a self-contained 2-D football simulation."""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence
from typing import Any

import numpy as np

from lmmr1_env.core import SPLIT_STREAM, LMMEnv
from lmmr1_env.football import ai
from lmmr1_env.football.actions import ACTION_IDS, BUILTIN_AI, DIRECTIONS, IDLE, KICKS, parse_action
from lmmr1_env.football.physics import FIELD_X, FIELD_Y, SPRINT
from lmmr1_env.football.render import render_frame, show_frame
from lmmr1_env.football.reward import MAX_FRAMES, TERMS, FrameView, RewardTracker
from lmmr1_env.football.scenarios import load_scenarios, select_scenarios
from lmmr1_env.football.sim import Command, Match
from lmmr1_env.types import Message, Observation

SYSTEM_PROMPT = (
    "You're going to play a football game. The character you control wears a yellow jersey and is marked with a "
    "red ring and a red arrow above his head.\n"
    "Your goal is to attack the goal on the **right side** according to standard soccer rules. Your teammates wear "
    "the yellow jersey too (the goalkeeper orange); the opponents wear blue (their goalkeeper purple).\n"
    "You'll use text commands to manipulate your character. Here are the action IDs and what they do:\n\n"
    "- 'action_left', 'action_top_left', 'action_top', 'action_top_right', 'action_right', "
    "'action_bottom_right', 'action_bottom', 'action_bottom_left': run in the direction named by the action ID "
    "(the direction is kept until you choose another one). The same direction twice in a row keeps running for "
    "up to 10 frames.\n"
    "- 'action_long_pass': perform a long pass to a player on your team. The player to pass to is picked from "
    "your movement direction.\n"
    "- 'action_high_pass': perform a high pass, similar to action_long_pass.\n"
    "- 'action_short_pass': perform a short pass, similar to action_long_pass.\n"
    "- 'action_shot': perform a shot, always in the direction of the opponent's goal.\n"
    "- 'action_sprint', 'action_release_sprint': start and stop sprinting, sticky action. If sprinting, the "
    "player moves faster, but has worse ball handling.\n"
    "- 'action_dribble', 'action_release_dribble': start and stop dribbling, sticky action. The player moves "
    "slower, but it is harder to take the ball from him.\n\n"
    "You perform 1 action per turn, in this format:\n# analyze\nsome analysis\n# action\naction ID\n\n"
    "For example:\n# analyze\n...\n# action\naction_right\n\n"
    "<think>your analysis</think><answer>action ID</answer> is accepted as well. A response without a valid "
    "action ID plays no new command for one frame."
)
DEMONSTRATION: list[Message] = [
    {"role": "user", "content": "Current game scene (frame 0 of 400). You control the marked player #9 (CF). "
                                "Your team has the ball at your feet; you attack the goal on the right. "
                                "Recent actions: none. Choose your next action."},
    {"role": "assistant", "content": "# analyze\nI have the ball and the space ahead of me is free, so I run "
                                     "towards the opponent's goal.\n# action\naction_right"},
]
_MOVE_MIN_DISTANCE = 0.01
_MAX_AUTO_STEPS = 10


class FootballEnv(LMMEnv):
    """MageBench's Football game: control one yellow player of an 11-v-11 match, one text action per turn.

    ## Description
    A 2-D football simulation (no C++ engine) on Google Research Football's field, x ∈ [-1, 1], y ∈ [-0.42,
    0.42], started from one of MageBench's 108 scenarios (arXiv 2412.04531). Our team (yellow) attacks the goal
    at x = +1. The agent controls the player with the ball, else the teammate best placed to reach it; everyone
    else is driven by the built-in AI (support runs, pressing, marking, goalkeeping; opponents at ``difficulty``,
    0 by default as in MageBench). Running, sprinting, dribbling, tackles, short / long / high passes, shots,
    goalkeeper saves, the ball going out of play and goals are simulated at 10 frames per second of play.

    ## Observation
    ``{"text", "image"}``: the text names the controlled player, the attacking direction, who has the ball, the
    frame and the recent actions; the image (``image_size``, default 360 × 640) is a top-down picture with an
    optional text panel (frame, controlled player).

    ## Action
    The model's whole response. One of the 16 ids ``action_left``, ``action_top_left``, ``action_top``,
    ``action_top_right``, ``action_right``, ``action_bottom_right``, ``action_bottom``, ``action_bottom_left``,
    ``action_long_pass``, ``action_high_pass``, ``action_short_pass``, ``action_shot``, ``action_sprint``,
    ``action_release_sprint``, ``action_dribble``, ``action_release_dribble``, written after MageBench's
    ``# action`` line or as ``<answer>ID</answer>``. Anything else is the no-op (GRF's idle action for one frame;
    directions, sprint and dribble are sticky) with ``info["parse_error"]``. MageBench's macro-actions: the same
    direction twice in a row runs on for up to 10 frames (stopping when the projected path meets an opponent
    within 0.01 in the next 5 frames or would leave the field within 3); a pass or shot with the ball plays on
    (kick, direction, kick, …) until the ball leaves the passer, then the built-in AI until someone receives it.

    ## Rewards
    MageBench's shaping, summed over the frames of the turn, each term × 20 and named in
    ``info["reward_terms"]``: ``progress`` 0.8 × gain of the best ball x while we have the ball; ``bypassed``
    1.0 × change in opponents behind the ball / 11 while we have it; ``goal`` 2.0; ``ball_lost`` 1.0 × (1 −
    frames_left / 400) when the opponents win the ball (not straight after our shot); ``pass`` pass_clear ×
    pass_scale for a pass a teammate receives (pass_scale ×0.75 after each); ``shot`` min(100 × shot_clear ×
    shot_dist, 2/3) once per possession. ``info["success"]`` is True when we score.

    ## Episode End
    Terminated on a goal (either side), the ball going out of play, or the opponents winning the ball
    (``info["end"]`` says which). Truncated after ``max_frames`` (400) frames.

    ## Arguments
    ``scenario``: an id (``"R3_T_2"``), a subset (``"all"``, ``"mini"``) or a list of ids; ``reset(seed=k)``
    plays scenario ``k mod n`` and seeds the match with (k, split). ``split`` ("train" | "test"): both splits
    play the same benchmark scenarios with different match randomness. ``difficulty`` (opponent AI, 0–1),
    ``image_size`` ((height, width) or int), ``panel`` (draw the text panel), ``render_mode``
    ("rgb_array" | "human": a pygame window), ``max_frames``.

    ## Version History
    - v0: initial version.
    """

    #: ``history``: the rollout's default for this env (its frames are large and its text lists recent actions).
    metadata = {"render_modes": ["rgb_array", "human"], "render_fps": 10, "history": "last"}

    def __init__(self, scenario: str | Sequence[str] = "all", split: str = "train",
                 image_size: int | tuple[int, int] = (360, 640), difficulty: float = 0.0, panel: bool = True,
                 render_mode: str | None = None, max_frames: int = MAX_FRAMES):
        super().__init__(image_size=image_size, split=split, render_mode=render_mode)
        if not 0.0 <= float(difficulty) <= 1.0:
            raise ValueError(f"difficulty must be in [0, 1], got {difficulty!r}")
        if not 1 <= int(max_frames) <= 100_000:
            raise ValueError(f"max_frames must be a positive number of frames, got {max_frames!r}")
        self.scenario_ids = select_scenarios(scenario)
        self.difficulty = float(difficulty)
        self.panel = bool(panel)
        self.max_frames = int(max_frames)
        self.system_prompt = SYSTEM_PROMPT
        self.demonstration = [dict(m) for m in DEMONSTRATION]
        self.match: Match | None = None
        self.scenario_id: str | None = None
        self._viewer: Any = None

    # ---- episode ----
    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[Observation, dict]:
        """Start a scenario: ``scenario_ids[seed mod n]``, or ``options={"scenario": id}``."""
        super().reset(seed=seed)
        index = seed if seed is not None else int(self.np_random.integers(2**31 - 1))
        scenario_id = (options or {}).get("scenario") or self.scenario_ids[index % len(self.scenario_ids)]
        scenario = load_scenarios()[select_scenarios(scenario_id)[0]]
        rng = np.random.default_rng([index, SPLIT_STREAM[self.split]])
        self.scenario_id = scenario.id
        self.set_match(Match.from_scenario(scenario, rng, self.difficulty))
        self._needs_reset = False
        info = self._info()
        info["system_prompt"] = self.system_prompt
        if self.render_mode == "human":
            self.render()
        return self._observe(), info

    def set_match(self, match: Match) -> None:
        """Play on from ``match`` (a hand-built state, for tests): fresh reward tracking and sticky actions."""
        self.match = match
        self.direction: str | None = None
        self.sprint = False
        self.dribble = False
        self.controlled = match.owner if 0 <= match.owner < match.n_left else self._best_receiver(-1)
        self.tracker = RewardTracker(self._view())
        self.recent: deque[str] = deque(maxlen=5)
        self.prev_act: str | None = None
        self.prev_direction = "action_right"
        self.turns = 0
        self.end: str | None = None
        self._needs_reset = False

    def step(self, action: str) -> tuple[Observation, float, bool, bool, dict]:
        """Play one response: its action (or the no-op) with MageBench's macro-actions, over 1 or more frames."""
        self._check_action(action)
        assert self.match is not None
        name, error = parse_action(action)
        executed = name or IDLE
        self._turn_terms = dict.fromkeys(TERMS, 0.0)
        frames_before = self.match.frame
        self._play_turn(executed)
        self.turns += 1
        self.recent.append(executed if name else f"{IDLE} (unreadable response)")
        terminated = self.end not in (None, "time")
        truncated = self.end == "time"
        if terminated or truncated:
            self._needs_reset = True
        info = self._info()
        info["reward_terms"] = dict(self._turn_terms)
        info["action"] = executed
        info["frames"] = self.match.frame - frames_before
        if error is not None:
            info["parse_error"] = error
        reward = float(sum(self._turn_terms.values()))
        if self.render_mode == "human":
            self.render()
        return self._observe(), reward, terminated, truncated, info

    # ---- MageBench's macro-actions ----
    def _play_turn(self, name: str) -> None:
        m = self.match
        if self.turns == 0:  # MageBench plays the very first action as one frame, before its macro state exists
            self._frame(name)
            return
        if name in DIRECTIONS:
            self.prev_direction = name
            if self.prev_act != name:
                self.prev_act = name
                self._frame(name)
                return
            for auto_steps in range(_MAX_AUTO_STEPS):
                done = self._frame(name)
                if done or not self._keep_moving() or auto_steps >= _MAX_AUTO_STEPS - 1:
                    return
        elif name in KICKS and m.owner >= 0:
            passer = m.owner
            self.prev_act = name
            while True:
                if m.owner == passer:
                    if self._frame(name) or self._frame(self.prev_direction):
                        return
                elif m.owner < 0:
                    if self._frame(BUILTIN_AI):
                        return
                else:
                    return
        else:
            self.prev_act = name
            self._frame(name)

    def _keep_moving(self) -> bool:
        """MageBench's ``check_move_or_not``: False when an opponent is about to be met or the field left."""
        m = self.match
        if m.owner >= 0:
            here, heading = m.pos[m.owner], m.vel[m.owner]
        else:
            here, heading = m.ball[:2], m.ball_vel[:2]
        ahead = here + 3 * heading
        if abs(ahead[0]) >= FIELD_X or abs(ahead[1]) >= FIELD_Y:
            return False
        steps = np.arange(6, dtype=np.float64)[:, None, None]
        mine = here[None, None, :] + steps * heading[None, None, :]
        theirs = m.pos[None, m.n_left:, :] + steps * m.vel[None, m.n_left:, :]
        return not bool((np.linalg.norm(mine - theirs, axis=2) < _MOVE_MIN_DISTANCE).any())

    def _frame(self, name: str) -> bool:
        """One frame with action ``name``; adds its reward terms; True when the episode is over."""
        m = self.match
        if name in DIRECTIONS:
            self.direction = name
        elif name == "action_sprint":
            self.sprint = True
        elif name == "action_release_sprint":
            self.sprint = False
        elif name == "action_dribble":
            self.dribble = True
        elif name == "action_release_dribble":
            self.dribble = False
        command = Command(direction=np.array(DIRECTIONS[self.direction]) if self.direction else None,
                          sprint=self.sprint, dribble=self.dribble, kick=KICKS.get(name),
                          builtin_ai=name == BUILTIN_AI)
        m.step(command, self.controlled)
        self.controlled = self._pick_controlled()
        for key, value in self.tracker.frame(self._view(), name).items():
            self._turn_terms[key] += value
        if m.goal:
            self.end = "goal" if m.goal > 0 else "conceded"
        elif m.out_of_play:
            self.end = "out_of_play"
        elif m.owner_team == 1:
            self.end = "ball_lost"
        elif m.frame >= self.max_frames:
            self.end = "time"
        return self.end is not None

    # ---- who the agent controls ----
    def _pick_controlled(self) -> int:
        m = self.match
        if 0 <= m.owner < m.n_left:
            return m.owner
        if m.owner >= 0:
            return self.controlled
        return self._best_receiver(self.controlled)

    def _best_receiver(self, current: int) -> int:
        """The teammate who reaches the loose ball first (the current one kept unless beaten by 3 frames)."""
        m = self.match
        frames, _ = ai.arrival_frames(m, np.full(m.n_players, SPRINT))
        frames = frames[: m.n_left].astype(np.float64)
        dist = np.linalg.norm(m.pos[: m.n_left] - m.ball[:2], axis=1)
        if m.guard_frames > 0 and m.guard_player < m.n_left:
            frames[m.guard_player] += 1000.0
        best = int(np.lexsort((dist, frames))[0])
        if 0 <= current < m.n_left and frames[current] <= frames[best] + 3:
            return current
        return best

    # ---- observation, info, rendering ----
    def _view(self) -> FrameView:
        m = self.match
        return FrameView(ball=m.ball[:2].copy(), owner_team=m.owner_team, owner=m.owner,
                         opponents=m.pos[m.n_left:], scored=m.goal > 0, steps_left=self.max_frames - m.frame)

    def _observe(self) -> Observation:
        text = self._text()
        return self._observation(text, self._image())

    def _image(self) -> np.ndarray:
        m = self.match
        role = m.roles[self.controlled] if self.controlled >= 0 else "?"
        panel = f"frame {m.frame}/{self.max_frames}   you: #{self.controlled + 1} {role}   attacking ->"
        return render_frame(m, self.controlled, self.image_size, panel if self.panel else None)

    def _text(self) -> str:
        m = self.match
        number = self.controlled + 1
        role = m.roles[self.controlled]
        if m.owner == self.controlled:
            ball = "You have the ball at your feet"
        elif m.owner_team == 0:
            ball = f"Your teammate #{m.owner + 1} has the ball"
        elif m.owner_team == 1:
            ball = "The opponents have the ball"
        else:
            ball = "The ball is loose or in flight"
        modes = ", ".join(f"{k} on" for k, v in (("sprint", self.sprint), ("dribble", self.dribble)) if v)
        recent = ", ".join(self.recent) if self.recent else "none"
        return (f"Current game scene (frame {m.frame} of {self.max_frames}). You control the marked player "
                f"#{number} ({role}) in the yellow jersey; your team attacks the goal on the right. {ball}."
                f"{' ' + modes.capitalize() + '.' if modes else ''} Recent actions: {recent}. "
                "Choose your next action.")

    def _info(self) -> dict[str, Any]:
        m = self.match
        return {"scenario": self.scenario_id, "actions": list(ACTION_IDS), "state": self.state_dict(),
                "frame": m.frame, "end": self.end, "success": self.end == "goal", "split": self.split}

    def state_dict(self) -> dict[str, Any]:
        """Positions and possession, JSON-able, in GRF's observation names (for scripted agents and tests)."""
        m = self.match
        n = m.n_left
        owned_player = -1 if m.owner < 0 else (m.owner if m.owner < n else m.owner - n)
        return {
            "left_team": m.pos[:n].round(5).tolist(), "right_team": m.pos[n:].round(5).tolist(),
            "left_team_direction": m.vel[:n].round(5).tolist(), "right_team_direction": m.vel[n:].round(5).tolist(),
            "left_team_roles": list(m.roles[:n]), "right_team_roles": list(m.roles[n:]),
            "ball": m.ball.round(5).tolist(), "ball_direction": m.ball_vel.round(5).tolist(),
            "ball_owned_team": m.owner_team, "ball_owned_player": owned_player,
            "active": self.controlled, "steps_left": self.max_frames - m.frame,
            "sticky": {"direction": self.direction, "sprint": self.sprint, "dribble": self.dribble},
        }

    def render(self) -> np.ndarray | None:
        """The current frame as ``(H, W, 3)`` uint8 (``rgb_array``), or drawn into the pygame window (``human``)."""
        if self.match is None:
            raise RuntimeError("render() called before reset()")
        frame = self._image()
        if self.render_mode == "human":
            self._viewer = show_frame(self._viewer, frame, self.metadata["render_fps"])
            return None
        return frame

    def close(self) -> None:
        """Close the pygame window, if one is open."""
        if self._viewer is not None:
            import pygame

            pygame.display.quit()
            self._viewer = None
