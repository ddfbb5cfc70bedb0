"""The match: players, ball, possession, tackles, kicks, goals and out of play, one frame at a time.

Units follow Google Research Football: x in [-1, 1] (the left team attacks x = +1), y in [-0.42, 0.42]
(negative y is the top of the picture), speeds in field units per frame (one frame = 0.1 s of play),
ball height z in the same units (0.02 is about one metre).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from lmmr1_env.football import ai
from lmmr1_env.football.physics import (
    ACCEL,
    AIR_DRAG,
    BALL_OFFSET,
    BALL_RUN,
    BALL_SPRINT,
    BOUNCE,
    CONTROL_HEIGHT,
    CONTROL_RADIUS,
    CROSSBAR,
    DRIBBLE,
    FIELD_X,
    FIELD_Y,
    GK_HEIGHT,
    GK_RADIUS,
    GOAL_HALF_WIDTH,
    GRAVITY,
    GROUND_FRICTION,
    KICK_DELAY,
    KICK_GUARD,
    RUN,
    SPRINT,
    TACKLE_RADIUS,
)
from lmmr1_env.football.scenarios import Scenario


@dataclass
class Command:
    """What the controlled player does this frame: a run direction (or none), sticky modes, a kick, or the AI."""

    direction: np.ndarray | None = None
    sprint: bool = False
    dribble: bool = False
    kick: str | None = None
    builtin_ai: bool = False


@dataclass
class Kick:
    """A kick under way: who, which kind, frames until the ball leaves, and the aim when pressed."""

    player: int
    kind: str
    countdown: int
    aim: np.ndarray


@dataclass
class Match:
    """The whole game state. ``pos``/``vel``/``facing`` are ``(n_players, 2)``; left team first."""

    pos: np.ndarray
    vel: np.ndarray
    facing: np.ndarray
    home: np.ndarray
    n_left: int
    roles: tuple[str, ...]
    ball: np.ndarray  # (3,) x, y, z
    ball_vel: np.ndarray  # (3,)
    rng: np.random.Generator
    difficulty: float = 0.0
    owner: int = -1
    kick: Kick | None = None
    guard_player: int = -1
    guard_frames: int = 0
    missed: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    last_kick_kind: str | None = None
    kick_origin: np.ndarray | None = None
    goal: int = 0  # +1 the left team scored, -1 the right team scored
    out_of_play: bool = False
    frame: int = 0
    ball0_x: float = 0.0
    _keepers: tuple[int, int] | None = None

    @classmethod
    def from_scenario(cls, scenario: Scenario, rng: np.random.Generator, difficulty: float = 0.0) -> Match:
        """The kick-off state of a scenario; the player nearest the ball owns it."""
        pos = np.concatenate([scenario.left, scenario.right]).astype(np.float64)
        n = len(pos)
        facing = np.zeros((n, 2))
        facing[: len(scenario.left), 0] = 1.0
        facing[len(scenario.left):, 0] = -1.0
        match = cls(pos=pos, vel=np.zeros((n, 2)), facing=facing, home=pos.copy(), n_left=len(scenario.left),
                    roles=scenario.left_roles + scenario.right_roles,
                    ball=np.array([scenario.ball[0], scenario.ball[1], 0.0]), ball_vel=np.zeros(3), rng=rng,
                    difficulty=float(difficulty), missed=np.zeros(n, np.int64), ball0_x=scenario.ball[0])
        dist = np.linalg.norm(pos - match.ball[:2], axis=1)
        match.owner = int(np.argmin(dist))
        to_ball = match.ball[:2] - pos[match.owner]
        if np.linalg.norm(to_ball) > 1e-3:
            match.facing[match.owner] = to_ball / np.linalg.norm(to_ball)
        return match

    # ---- views ----
    @property
    def n_players(self) -> int:
        """Players on the pitch, both teams."""
        return len(self.pos)

    @property
    def is_right(self) -> np.ndarray:
        """``(n_players,)`` bool: True for the right (opponent) team."""
        return np.arange(self.n_players) >= self.n_left

    @property
    def owner_team(self) -> int:
        """0 when the left team has the ball, 1 the right team, -1 nobody (ball in flight or loose)."""
        return -1 if self.owner < 0 else int(self.owner >= self.n_left)

    @property
    def goalkeepers(self) -> tuple[int, int]:
        """Index of each team's goalkeeper (its ``GK`` role, else its deepest player)."""
        if self._keepers is None:
            left = [i for i in range(self.n_left) if self.roles[i] == "GK"]
            right = [i for i in range(self.n_left, self.n_players) if self.roles[i] == "GK"]
            lk = left[0] if left else int(np.argmin(self.home[: self.n_left, 0]))
            rk = right[0] if right else self.n_left + int(np.argmax(self.home[self.n_left:, 0]))
            self._keepers = (lk, rk)
        return self._keepers

    @property
    def over(self) -> bool:
        """A goal was scored or the ball went out of play."""
        return self.goal != 0 or self.out_of_play

    # ---- one frame ----
    def step(self, command: Command, controlled: int) -> None:
        """Advance one frame with ``command`` for player ``controlled`` and the built-in AI for everyone else."""
        desired = ai.desired_velocities(self, controlled)
        if controlled >= 0:
            desired[controlled] = self._command_velocity(command, controlled, desired[controlled])
            if command.kick and self.owner == controlled and self.kick is None:
                aim = command.direction if command.direction is not None else self.facing[controlled]
                self.kick = Kick(controlled, command.kick, KICK_DELAY[command.kick], np.array(aim, float))
        self.vel += ACCEL * (desired - self.vel)
        self.pos += self.vel
        np.clip(self.pos[:, 0], -1.08, 1.08, out=self.pos[:, 0])
        np.clip(self.pos[:, 1], -0.47, 0.47, out=self.pos[:, 1])
        speed = np.linalg.norm(self.vel, axis=1)
        moving = speed > 0.002
        self.facing[moving] = self.vel[moving] / speed[moving, None]

        previous = self.ball[:2].copy()
        if self.owner >= 0:
            if self.kick is not None and self.kick.player == self.owner:
                self.kick.countdown -= 1
                if command.direction is not None and controlled == self.owner:
                    self.kick.aim = np.array(command.direction, float)
            self.ball[:2] = self.pos[self.owner] + self.facing[self.owner] * BALL_OFFSET
            self.ball[2] = 0.0
            self.ball_vel[:2] = self.vel[self.owner]
            self.ball_vel[2] = 0.0
            if self.kick is not None and self.kick.player == self.owner and self.kick.countdown <= 0:
                self._release(self.kick, sprinting=command.sprint and controlled == self.owner)
                previous = self.ball[:2].copy()
        else:
            self._fly()
        if self.guard_frames > 0:
            self.guard_frames -= 1
        self.missed = np.maximum(self.missed - 1, 0)
        self._check_goal_or_out()
        if not self.over:
            self._possession(previous, command, controlled)
        self.frame += 1

    def _command_velocity(self, command: Command, player: int, ai_velocity: np.ndarray) -> np.ndarray:
        if command.builtin_ai:
            return ai_velocity if self.owner != player else np.zeros(2)
        if command.direction is None:
            return np.zeros(2)
        if self.owner == player:
            speed = DRIBBLE if command.dribble else (BALL_SPRINT if command.sprint else BALL_RUN)
        else:
            speed = SPRINT if command.sprint else RUN
        return np.asarray(command.direction, float) * speed

    # ---- the ball ----
    def _fly(self) -> None:
        self.ball[:2] += self.ball_vel[:2]
        if self.ball[2] > 0.0 or self.ball_vel[2] > 0.0:
            self.ball[2] += self.ball_vel[2]
            self.ball_vel[2] -= GRAVITY
            self.ball_vel[:2] *= AIR_DRAG
            if self.ball[2] <= 0.0:
                self.ball[2] = 0.0
                if self.ball_vel[2] < -0.004:
                    self.ball_vel[2] = -self.ball_vel[2] * BOUNCE
                    self.ball_vel[:2] *= 0.8
                else:
                    self.ball_vel[2] = 0.0
        else:
            self.ball_vel[:2] *= GROUND_FRICTION
            if np.hypot(*self.ball_vel[:2]) < 0.0006:
                self.ball_vel[:2] = 0.0

    def _release(self, kick: Kick, sprinting: bool) -> None:
        """The ball leaves the kicker's foot: a pass to the best teammate along the aim, or a shot."""
        p = kick.player
        origin = self.ball[:2].copy()
        attack = 1.0 if p < self.n_left else -1.0
        noise = 1.6 if sprinting else 1.0
        if kick.kind == "shot":
            keeper = self.goalkeepers[1] if attack > 0 else self.goalkeepers[0]
            keeper_y = float(self.pos[keeper, 1])
            # aim for the side of the goal the keeper leaves open
            side = -np.sign(keeper_y) if abs(keeper_y) > 0.004 else (1.0 if self.rng.random() < 0.5 else -1.0)
            target = np.array([attack * (FIELD_X + 0.02), side * 0.028])
            to_goal = target - origin
            distance = float(np.linalg.norm(to_goal))
            angle = self.rng.normal(0.0, (0.02 + 0.03 * distance) * noise)
            # a long-range shot is struck for accuracy and rolls out before the line; a close one is hit hard
            speed = float(np.clip(0.075 - 0.025 * distance, 0.045, 0.07)) + 0.006 * self.rng.random()
            vz = float(np.clip(self.rng.normal(0.003 + 0.004 * distance, 0.002), 0.0, 0.012))
        else:
            receiver = choose_receiver(self.pos, self.vel, p, self.n_left, kick.aim, kick.kind)
            lead = 6.0 if kick.kind == "short" else 14.0
            target = self.pos[receiver] + self.vel[receiver] * lead
            to_goal = target - origin
            distance = max(float(np.linalg.norm(to_goal)), 0.02)
            angle = self.rng.normal(0.0, (0.03 if kick.kind == "short" else 0.05) * noise)
            if kick.kind == "short":
                speed = float(np.clip(0.018 + 0.06 * distance, 0.02, 0.05))
                vz = 0.0
            else:
                speed = float(np.clip((0.022 if kick.kind == "high" else 0.028) + 0.03 * distance, 0.026, 0.06))
                flight = distance / speed
                vz = GRAVITY * flight / 2.0 * (1.0 if kick.kind == "high" else 0.55)
        heading = np.arctan2(to_goal[1], to_goal[0]) + angle
        self.ball_vel[:] = (speed * np.cos(heading), speed * np.sin(heading), vz)
        self.ball[2] = 0.001 if vz > 0 else 0.0
        self.owner = -1
        self.kick = None
        self.guard_player, self.guard_frames = p, KICK_GUARD
        self.last_kick_kind = kick.kind
        self.kick_origin = origin

    def _check_goal_or_out(self) -> None:
        x, y, z = self.ball
        if abs(x) > FIELD_X:
            if abs(y) < GOAL_HALF_WIDTH and z < CROSSBAR:
                self.goal = 1 if x > 0 else -1
            else:
                self.out_of_play = True
        elif abs(y) > FIELD_Y:
            self.out_of_play = True

    # ---- possession ----
    def _possession(self, previous: np.ndarray, command: Command, controlled: int) -> None:
        right = self.is_right
        if self.owner >= 0:
            self._tackles(right, command, controlled)
            return
        if self.ball[2] >= GK_HEIGHT:
            return
        seg = self.ball[:2] - previous
        rel = self.pos - previous
        length2 = float(seg @ seg)
        t = np.clip(rel @ seg / length2, 0.0, 1.0) if length2 > 0 else np.zeros(self.n_players)
        dist = np.linalg.norm(rel - t[:, None] * seg, axis=1)
        keepers = np.array(self.goalkeepers)
        radius = np.full(self.n_players, CONTROL_RADIUS)
        height = np.full(self.n_players, CONTROL_HEIGHT)
        in_box = np.abs(self.pos[keepers, 0]) > 0.7
        radius[keepers[in_box]] = GK_RADIUS
        height[keepers[in_box]] = GK_HEIGHT
        reach = (dist < radius) & (self.ball[2] < height) & (self.missed == 0)
        if self.guard_frames > 0:
            reach[self.guard_player] = False
        if not reach.any():
            return
        speed = float(np.hypot(*self.ball_vel[:2]))
        kicker_right = self.guard_player >= self.n_left if self.guard_player >= 0 else None
        for i in np.flatnonzero(reach)[np.argsort(dist[reach])]:
            chance = self._control_chance(int(i), speed, kicker_right, keepers)
            if self.rng.random() < chance:
                self._gain(int(i))
                return
            self.missed[i] = 4

    def _control_chance(self, player: int, speed: float, kicker_right: bool | None, keepers: np.ndarray) -> float:
        same_side = kicker_right is None or (player >= self.n_left) == kicker_right
        if player in keepers and abs(self.pos[player, 0]) > 0.7 and not same_side:
            # a save: harder the faster the shot, easier the further away it was struck
            travelled = float(np.linalg.norm(self.ball[:2] - self.kick_origin)) if self.kick_origin is not None else 0
            return float(np.clip(0.95 - 8.0 * max(speed - 0.03, 0.0) + 0.6 * max(travelled - 0.25, 0.0)
                                 + 0.4 * self.difficulty, 0.15, 0.98))
        if same_side:
            return 1.0 if speed < 0.04 else 0.95
        if self.last_kick_kind == "shot" and speed > 0.03:  # a defender in the way of a shot may block it
            return 0.25 + 0.3 * self.difficulty
        return float(np.clip(0.25 - 6.0 * max(speed - 0.015, 0.0) + 0.65 * self.difficulty, 0.08, 0.95))

    def _tackles(self, right: np.ndarray, command: Command, controlled: int) -> None:
        carrier = self.owner
        rivals = right != (carrier >= self.n_left)
        dist = np.linalg.norm(self.pos - self.ball[:2], axis=1)
        close = np.flatnonzero(rivals & (dist < TACKLE_RADIUS))
        if len(close) == 0:
            return
        chance = ai.tackle_chance(self.difficulty, rival_is_ai_defender=carrier < self.n_left)
        if carrier == controlled:
            chance *= 0.45 if command.dribble else (1.2 if command.sprint else 1.0)
        for i in close[np.argsort(dist[close])]:
            if self.rng.random() < chance:
                self._gain(int(i))
                return

    def _gain(self, player: int) -> None:
        self.owner = player
        self.kick = None
        self.ball[2] = 0.0
        self.ball_vel[:] = 0.0
        self.missed[:] = 0


def choose_receiver(pos: np.ndarray, vel: np.ndarray, passer: int, n_left: int, aim: np.ndarray, kind: str) -> int:
    """The teammate a pass of ``kind`` along ``aim`` goes to: best aligned, at the distance the kind prefers."""
    team = np.arange(n_left) if passer < n_left else np.arange(n_left, len(pos))
    team = team[team != passer]
    rel = pos[team] + vel[team] * 5.0 - pos[passer]
    dist = np.maximum(np.linalg.norm(rel, axis=1), 1e-6)
    cos = rel @ np.asarray(aim, float) / dist / max(float(np.linalg.norm(aim)), 1e-6)
    if kind == "short":
        score = cos - 1.2 * np.maximum(dist - 0.3, 0.0) - 2.0 * np.maximum(0.04 - dist, 0.0)
    else:
        score = cos - 0.7 * np.abs(dist - 0.55)
    return int(team[int(np.argmax(score))])
