"""The built-in AI: where every player the agent does not control wants to run, vectorised over the team.

Attackers (the left team) hold a shifted formation and make support runs; defenders (the right team) press
the ball carrier, mark the nearest attacker goal-side and shift with the ball; goalkeepers guard the line
between ball and goal and come out for close balls. A loose ball is chased by each team's fastest arrival.
``difficulty`` in [0, 1] (the opponents' skill; MageBench plays 0) sets press radius, press and tackle
rates and how quickly defenders react.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from lmmr1_env.football.physics import AIR_DRAG, CONTROL_HEIGHT, GRAVITY, GROUND_FRICTION, RUN, SPRINT

if TYPE_CHECKING:
    from lmmr1_env.football.sim import Match

#: Frames of ball path the chasers look ahead.
HORIZON = 40
_STEPS = np.arange(1, HORIZON + 1, dtype=np.float64)


def tackle_chance(difficulty: float, rival_is_ai_defender: bool) -> float:
    """Chance per frame that one defender in reach wins the ball from the carrier."""
    base = 0.018 + 0.12 * difficulty
    return base if rival_is_ai_defender else 0.12


def press_radius(difficulty: float) -> float:
    """How close to the ball (field units) a defender must be before he leaves his post to press."""
    return 0.13 + 0.2 * difficulty


def ball_path(match: Match) -> tuple[np.ndarray, np.ndarray]:
    """The free ball's predicted ``(HORIZON, 2)`` positions and whether each can be controlled (low enough)."""

    vx, vy, vz = match.ball_vel
    airborne = match.ball[2] > 0.0 or vz > 0.0
    decay = AIR_DRAG if airborne else GROUND_FRICTION
    travelled = (1.0 - decay ** _STEPS) / (1.0 - decay)
    path = match.ball[None, :2] + travelled[:, None] * np.array([vx, vy])[None, :]
    if airborne:
        height = match.ball[2] + vz * _STEPS - GRAVITY * _STEPS * (_STEPS + 1) / 2.0
        landed = np.maximum.accumulate(height <= 0.0)
        controllable = (height < CONTROL_HEIGHT) & ((vz - GRAVITY * _STEPS < 0) | landed)
    else:
        controllable = np.ones(HORIZON, dtype=bool)
    return path, controllable


def arrival_frames(match: Match, speeds: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """For each player, the first frame he can reach the free ball at ``speeds``, and where.

    Returns ``(frames (n,), points (n, 2))``; players who cannot reach it in the horizon get ``HORIZON``.
    """
    path, controllable = ball_path(match)
    dist = np.linalg.norm(match.pos[:, None, :] - path[None, :, :], axis=2)
    reach = (dist <= speeds[:, None] * _STEPS[None, :] + 0.012) & controllable[None, :]
    first = np.where(reach.any(axis=1), reach.argmax(axis=1), HORIZON - 1)
    return first + 1, path[first]


def desired_velocities(match: Match, controlled: int) -> np.ndarray:
    """The ``(n_players, 2)`` velocity each player wants this frame (the controlled player's is overridden)."""

    pos, n_left, diff = match.pos, match.n_left, match.difficulty
    n = len(pos)
    ball = match.ball[:2]
    right = np.arange(n) >= n_left
    target = _formation(match, ball, right)
    speed = np.full(n, RUN * 0.7)

    # defenders mark the nearest attacker goal-side, more tightly at higher difficulty
    attackers = pos[:n_left]
    rel = pos[n_left:, None, :] - attackers[None, :, :]
    nearest = np.linalg.norm(rel, axis=2).argmin(axis=1)
    marked = attackers[nearest]
    goal_side = marked + 0.05 * _unit(np.array([1.0, 0.0]) - marked)
    weight = 0.25 + 0.4 * diff
    target[n_left:] = (1 - weight) * target[n_left:] + weight * goal_side

    lk, rk = match.goalkeepers
    points = None
    if match.owner >= 0:
        carrier = match.owner
        carrier_right = carrier >= n_left
        rivals = np.flatnonzero(right != carrier_right)
        dist = np.linalg.norm(pos[rivals] - ball, axis=1)
        order = np.argsort(dist)
        n_press = 1 if diff < 0.5 else 2
        lead = match.vel[carrier] * (3.0 if not carrier_right else 2.0)
        for k in order[:n_press]:
            i = rivals[k]
            if carrier_right or dist[k] < press_radius(diff):
                target[i] = ball + lead
                speed[i] = RUN * (0.7 + 0.45 * diff) if not carrier_right else SPRINT
        if carrier_right:  # an AI carrier heads for the left goal
            target[carrier] = np.array([-1.0, 0.0])
            speed[carrier] = RUN
    else:
        reach_speed = np.full(n, SPRINT)
        reach_speed[right] = SPRINT * (0.8 + 0.2 * diff)
        frames, points = arrival_frames(match, reach_speed)
        for team in (np.flatnonzero(~right), np.flatnonzero(right)):
            candidates = team[team != controlled] if controlled in team else team
            if len(candidates) == 0:
                continue
            best = candidates[np.argmin(frames[candidates])]
            target[best] = points[best]
            speed[best] = reach_speed[best]
        if controlled >= 0:
            target[controlled] = points[controlled]
            speed[controlled] = RUN

    _keeper(match, target, speed, rk, +1.0, points)
    _keeper(match, target, speed, lk, -1.0, points)
    offset = target - pos
    dist = np.linalg.norm(offset, axis=1)
    magnitude = np.minimum(speed, dist * 0.3)
    return offset / np.maximum(dist, 1e-9)[:, None] * magnitude[:, None]


def _formation(match: Match, ball: np.ndarray, right: np.ndarray) -> np.ndarray:
    """Each player's post: his starting place shifted with the ball, attackers pushed up as the ball advances."""
    shift = ball[0] - match.ball0_x
    target = match.home.copy()
    target[~right, 0] += 0.7 * shift
    target[right, 0] += 0.5 * shift
    target[:, 1] += 0.25 * (ball[1] - target[:, 1])
    # support runs: attackers level with the ball drift into space ahead of it
    level = ~right & (np.abs(target[:, 0] - ball[0]) < 0.15)
    target[level, 0] += 0.1
    np.clip(target[:, 0], -0.98, 0.98, out=target[:, 0])
    np.clip(target[:, 1], -0.4, 0.4, out=target[:, 1])
    return target


def _keeper(match: Match, target: np.ndarray, speed: np.ndarray, keeper: int, goal_x: float,
            points: np.ndarray | None) -> None:
    """A goalkeeper stands on the ball-goal line a little off his line; rushes a close ball and meets a loose
    ball heading his way where he can first reach it."""

    ball = match.ball[:2]
    goal = np.array([goal_x, 0.0])
    to_ball = ball - goal
    distance = float(np.linalg.norm(to_ball))
    if match.owner == keeper:
        target[keeper] = match.pos[keeper]
        return
    if points is not None and match.ball_vel[0] * goal_x > 0 and abs(points[keeper, 0] - goal_x) < 0.3:
        target[keeper] = points[keeper]
        speed[keeper] = SPRINT
        return
    attacking_carrier = match.owner >= 0 and (match.owner >= match.n_left) != (goal_x > 0)
    if distance < 0.12 or (match.owner < 0 and distance < 0.25 and ball[0] * goal_x > 0
                           and np.dot(match.ball_vel[:2], -to_ball) > 0):
        target[keeper] = ball
        speed[keeper] = SPRINT
        return
    out = min(0.06, 0.2 * distance) if attacking_carrier or match.owner < 0 else 0.03
    target[keeper] = goal + _unit(to_ball) * out
    target[keeper, 1] = np.clip(target[keeper, 1], -0.04, 0.04)
    speed[keeper] = RUN


def _unit(v: np.ndarray) -> np.ndarray:
    norm = np.linalg.norm(v, axis=-1, keepdims=True)
    return v / np.maximum(norm, 1e-9)
