"""A heuristic Football player: advance on goal, pass when pressed, shoot in range. Reads ``info["state"]``."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from lmmr1_agent.agents.base import Agent, Response
from lmmr1_env.types import Message

_DIRECTIONS = {
    "action_right": (1.0, 0.0), "action_bottom_right": (0.7071, 0.7071), "action_bottom": (0.0, 1.0),
    "action_bottom_left": (-0.7071, 0.7071), "action_left": (-1.0, 0.0), "action_top_left": (-0.7071, -0.7071),
    "action_top": (0.0, -1.0), "action_top_right": (0.7071, -0.7071),
}
_NAMES = list(_DIRECTIONS)
_VECTORS = np.array(list(_DIRECTIONS.values()))
#: Shoot from inside this distance of the goal centre (field units).
SHOT_RANGE = 0.42
#: An opponent this close in front counts as pressing.
PRESSED = 0.075


def nearest_direction(vector: np.ndarray) -> str:
    """The 8-way action id closest in angle to ``vector`` (y grows downwards, as in GRF)."""
    return _NAMES[int(np.argmax(_VECTORS @ vector))]


class FootballHeuristicAgent(Agent):
    """Dribbles towards goal around the nearest defender, passes to an open teammate ahead when pressed, shoots
    within :data:`SHOT_RANGE` of goal, and chases the ball when nobody has it. Answers
    ``<think>…</think><answer>ACTION</answer>``.
    """

    def __init__(self, seed: int = 0):
        self.rng = np.random.default_rng(seed)

    def act(self, conversations: Sequence[list[Message]], infos: Sequence[dict]) -> list[Response]:
        """One action per conversation, from each episode's ``info["state"]``."""
        responses = []
        for info in infos:
            state = info.get("state")
            if state is None:
                raise ValueError("the football heuristic needs info['state'] (LMMR1/FootballGame-v0 provides it)")
            reason, action = self.decide(state)
            responses.append(Response(f"<think>{reason}</think><answer>{action}</answer>"))
        return responses

    def decide(self, state: dict) -> tuple[str, str]:
        """(reason, action id) for one game state."""
        mates = np.asarray(state["left_team"], float)
        rivals = np.asarray(state["right_team"], float)
        ball = np.asarray(state["ball"][:2], float)
        me = int(state["active"])
        pos = mates[me]
        if not (state["ball_owned_team"] == 0 and state["ball_owned_player"] == me):
            target = ball + np.asarray(state["ball_direction"][:2], float) * 4.0
            return "The ball is not mine: run to it.", nearest_direction(target - pos)
        goal = np.array([1.0, 0.0])
        if np.linalg.norm(goal - pos) < SHOT_RANGE and abs(pos[1]) < 0.3:
            return "I am in range of the goal: shoot.", "action_shot"
        rel = rivals - pos
        dist = np.linalg.norm(rel, axis=1)
        in_front = (rel[:, 0] > -0.01) & (dist < PRESSED)
        sticky = state["sticky"]["direction"]
        if in_front.any():
            open_mate = self._open_teammate(mates, rivals, me, pos)
            if open_mate is not None:
                wanted = nearest_direction(mates[open_mate] - pos)
                if sticky == wanted:
                    return f"I am pressed; teammate #{open_mate + 1} is open ahead: pass.", "action_short_pass"
                return f"I am pressed; turn towards open teammate #{open_mate + 1}.", wanted
        heading = goal - pos
        heading[1] *= 0.6 if pos[0] < 0.5 else 1.5
        ahead = (rel[:, 0] > 0) & (rel[:, 0] < 0.2) & (np.abs(rel[:, 1]) < 0.07)
        if ahead.any():
            blocker = rel[ahead][np.argmin(dist[ahead])]
            side = -np.sign(blocker[1]) if abs(blocker[1]) > 1e-3 else -np.sign(pos[1] + 1e-9)
            if abs(pos[1] + side * 0.1) > 0.36:
                side = -side
            heading = np.array([1.0, 0.9 * side])
        return "Space ahead: carry the ball towards goal.", nearest_direction(heading)

    @staticmethod
    def _open_teammate(mates: np.ndarray, rivals: np.ndarray, me: int, pos: np.ndarray) -> int | None:
        rel = mates - pos
        dist = np.linalg.norm(rel, axis=1)
        space = np.linalg.norm(mates[:, None, :] - rivals[None, :, :], axis=2).min(axis=1)
        ok = (np.arange(len(mates)) != me) & (rel[:, 0] > -0.05) & (dist > 0.06) & (dist < 0.35) & (space > 0.06)
        if not ok.any():
            return None
        score = np.where(ok, mates[:, 0] + 0.5 * space, -np.inf)
        return int(np.argmax(score))
