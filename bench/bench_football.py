"""Football simulation speed on one core: frames per second without and with rendering, and env turns per second.

- ``simulation``: ``Match.step`` (physics, AI, possession) plus MageBench's reward, random commands each frame.
- ``+ render``: the same with a ``render_frame`` picture at the env's default size (360 × 640) every frame.
- ``env.step``: whole turns of ``LMMR1/FootballGame-v0`` (parse, macro-actions, reward, observation image)
  for a uniformly random policy.

Usage: ``python bench/bench_football.py [--seconds 5]``. Prints the machine it ran on.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
from machine import describe  # bench/machine.py, beside this script

from lmmr1_env.football.actions import ACTION_IDS, DIRECTIONS, KICKS
from lmmr1_env.football.env import FootballEnv
from lmmr1_env.football.render import render_frame
from lmmr1_env.football.reward import FrameView, RewardTracker
from lmmr1_env.football.scenarios import load_scenarios
from lmmr1_env.football.sim import Command, Match

SIZE = (360, 640)


def simulated_frames(seconds: float, render: bool) -> float:
    """Frames per second of match + reward (and a picture per frame when ``render``)."""
    rng = np.random.default_rng(0)
    scenarios = list(load_scenarios().values())
    directions = [np.array(v) for v in DIRECTIONS.values()]
    kicks = list(KICKS.values())
    frames, start, episode = 0, time.perf_counter(), 0
    while time.perf_counter() - start < seconds:
        match = Match.from_scenario(scenarios[episode % len(scenarios)], np.random.default_rng(episode))
        episode += 1
        view = _view(match)
        tracker = RewardTracker(view)
        controlled = match.owner
        for _ in range(400):
            kick = kicks[int(rng.integers(4))] if rng.random() < 0.05 else None
            match.step(Command(direction=directions[int(rng.integers(8))], kick=kick), controlled)
            tracker.frame(_view(match), "action_right")
            if 0 <= match.owner < match.n_left:
                controlled = match.owner
            if render:
                render_frame(match, controlled, SIZE, "frame")
            frames += 1
            if match.over or match.owner_team == 1:
                break
    return frames / (time.perf_counter() - start)


def _view(match: Match) -> FrameView:
    return FrameView(ball=match.ball[:2].copy(), owner_team=match.owner_team, owner=match.owner,
                     opponents=match.pos[match.n_left:], scored=match.goal > 0, steps_left=400 - match.frame)


def env_turns(seconds: float) -> tuple[float, float]:
    """(turns per second, frames per second) of the env under a uniformly random policy."""
    env = FootballEnv(image_size=SIZE)
    rng = np.random.default_rng(0)
    turns = frames = seed = 0
    start = time.perf_counter()
    while time.perf_counter() - start < seconds:
        env.reset(seed=seed)
        seed += 1
        done = False
        while not done:
            _, _, terminated, truncated, info = env.step(f"<answer>{ACTION_IDS[int(rng.integers(16))]}</answer>")
            turns += 1
            frames += info["frames"]
            done = terminated or truncated
    elapsed = time.perf_counter() - start
    return turns / elapsed, frames / elapsed


def main() -> None:
    """Print the three speeds."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=5.0, help="time per measurement")
    args = parser.parse_args()
    print(f"machine: {describe()}; numpy {np.__version__}")
    print(f"simulation (no rendering):   {simulated_frames(args.seconds, render=False):8.0f} frames/s")
    print(f"simulation + render 360x640: {simulated_frames(args.seconds, render=True):8.0f} frames/s")
    turns, frames = env_turns(args.seconds)
    print(f"env.step, random policy:     {turns:8.0f} turns/s ({frames:.0f} frames/s, one image per turn)")
    print("reference: the real engine (gfootball 2.10.2) runs 170-210 frames/s per process without rendering")


if __name__ == "__main__":
    main()
