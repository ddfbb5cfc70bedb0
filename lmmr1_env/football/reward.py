"""MageBench's shaped Football reward, frame by frame, with every term named.

Every term is in MageBench's units, then multiplied by :data:`SCALE` (20). The terms of one frame sum exactly
to that frame's reward, and a turn's reward is the sum over its frames.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

SCALE = 20.0
PROGRESS_WEIGHT = 0.8
BYPASSED_WEIGHT = 1.0
GOAL_REWARD = 2.0
BALL_LOST_WEIGHT = 1.0
PASS_WEIGHT = 1.0
PASS_DECAY = 0.75
SHOT_WEIGHT = 100.0
SHOT_CAP = GOAL_REWARD / 3.0
MAX_FRAMES = 400
TERMS = ("progress", "bypassed", "goal", "ball_lost", "pass", "shot")
#: Five aiming points across the goal mouth at x = 1 (MageBench's ``get_shot_clear``).
GOAL_POINTS = np.array([[1.0, -0.044], [1.0, -0.02], [1.0, 0.0], [1.0, 0.022], [1.0, 0.044]])
_PATH_T = (np.arange(100) + 1) / 100.0


def count_bypassed(ball_x: float, opponents: np.ndarray) -> int:
    """How many opponents stand behind the ball (x below ``ball_x``)."""
    return int(np.sum(ball_x > opponents[:, 0]))


def pass_clear(ball: np.ndarray, opponents: np.ndarray) -> float:
    """Min over opponents of distance / (10 max(cos θ, 0) + 1), θ between ball→opponent and ball→goal."""
    to_goal = np.array([1.0, 0.0]) - ball
    rel = opponents - ball
    dist = np.maximum(np.linalg.norm(rel, axis=1), 1e-12)
    cos = rel @ to_goal / dist / max(float(np.linalg.norm(to_goal)), 1e-12)
    return float(np.min(dist / (10.0 * np.maximum(cos, 0.0) + 1.0)))


def shot_clear(ball: np.ndarray, opponents: np.ndarray) -> float:
    """Best over 5 goal-mouth points of the smallest opponent distance to the straight ball path (100 samples)."""
    path = ball[None, None, :] + _PATH_T[None, :, None] * (GOAL_POINTS[:, None, :] - ball[None, None, :])
    dist = np.linalg.norm(path[:, :, None, :] - opponents[None, None, :, :], axis=3)  # (5, 100, n)
    return float(dist.min(axis=(1, 2)).max())


def shot_distance(ball_x: float) -> float:
    """1 within 0.3 of the goal line, else ``max(ball_x, 0)``."""
    return 1.0 if 1.0 - ball_x < 0.3 else max(ball_x, 0.0)


def shot_value(ball: np.ndarray, opponents: np.ndarray) -> float:
    """The unscaled shot term: min(100 × shot_clear × shot_distance, 2/3)."""
    return min(SHOT_WEIGHT * shot_clear(ball, opponents) * shot_distance(float(ball[0])), SHOT_CAP)


@dataclass
class FrameView:
    """What the reward reads after a frame: ball, who owns it, the opponents, the score and time left."""

    ball: np.ndarray  # (2,)
    owner_team: int  # 0 us, 1 opponents, -1 nobody
    owner: int  # player index, -1 nobody
    opponents: np.ndarray  # (n, 2)
    scored: bool
    steps_left: int


class RewardTracker:
    """MageBench's ``get_reward`` state machine: best ball x, bypassed count, pass scale, shot flag."""

    def __init__(self, start: FrameView):
        self.best_x = float(start.ball[0])
        self.last_bypassed = count_bypassed(float(start.ball[0]), start.opponents)
        self.pass_scale = 1.0
        self.passing_ball = False
        self.prev_owner = start.owner
        self.performed_shot = False
        self.ball_lost = False

    def frame(self, view: FrameView, action: str) -> dict[str, float]:
        """The scaled terms earned by the frame just played with ``action`` (the id that frame executed)."""
        terms = dict.fromkeys(TERMS, 0.0)
        ball_x = float(view.ball[0])
        if view.owner_team == 0 and view.owner >= 0:
            gain = ball_x - self.best_x
            terms["progress"] = PROGRESS_WEIGHT * max(0.0, gain)
            if gain > 0:
                self.best_x = ball_x
            bypassed = count_bypassed(ball_x, view.opponents)
            terms["bypassed"] = BYPASSED_WEIGHT * (bypassed - self.last_bypassed) / 11.0
            self.last_bypassed = bypassed
        if view.scored:
            terms["goal"] = GOAL_REWARD
        stolen = view.owner_team == 1 and not self.performed_shot
        if stolen:
            terms["ball_lost"] = BALL_LOST_WEIGHT * (1.0 - view.steps_left / MAX_FRAMES)
            self.ball_lost = True
        if (self.passing_ball and self.prev_owner >= 0 and view.owner >= 0 and not stolen
                and view.owner != self.prev_owner):
            terms["pass"] = PASS_WEIGHT * pass_clear(view.ball, view.opponents) * self.pass_scale
            self.pass_scale *= PASS_DECAY
            self.passing_ball = False
        if view.owner >= 0:
            self.prev_owner = view.owner
        if action in ("action_long_pass", "action_high_pass", "action_short_pass"):
            self.passing_ball = True
        if action == "action_shot" and view.owner_team == 0 and view.owner >= 0 and not self.performed_shot:
            terms["shot"] = shot_value(view.ball, view.opponents)
            self.performed_shot = True
        if self.prev_owner != view.owner and self.performed_shot:
            self.performed_shot = False  # the shot left the foot: a later catch by an opponent is a ball lost
        return {name: SCALE * value for name, value in terms.items()}
