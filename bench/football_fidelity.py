"""Football fidelity: scripted policies on our simulation next to the real engine (GRF 2.10.2 + MageBench).

Plays every scenario × ``--repeats`` seeds per policy and prints mean return ± standard error, mean episode
length in frames and the share of episodes that end with the ball lost, beside the real engine's numbers
(docs/design.md: 108 scenarios × 3 seeds). Usage: ``python bench/football_fidelity.py [--repeats 3]``.
"""

from __future__ import annotations

import argparse
import math
import platform
import time

import numpy as np

from lmmr1_agent.agents.football import FootballHeuristicAgent
from lmmr1_env.football.actions import ACTION_IDS
from lmmr1_env.football.env import FootballEnv

#: The real engine's scores: (mean, stderr, frames, % ball lost); heuristic has no reference.
REAL = {"idle": (2.43, 0.26, 164, 65), "random": (16.03, 1.08, 63, 82), "right-right-shot": (21.26, 0.89, 54, 69)}


class Policy:
    """A scripted policy: a response per turn from ``(turn, info)``."""

    def __init__(self, name: str, seed: int):
        self.name = name
        self.rng = np.random.default_rng(seed)
        self.heuristic = FootballHeuristicAgent(seed)

    def respond(self, turn: int, info: dict) -> str:
        """This turn's response text."""
        if self.name == "idle":
            return ""
        if self.name == "random":
            return f"<answer>{ACTION_IDS[int(self.rng.integers(len(ACTION_IDS)))]}</answer>"
        if self.name == "right-right-shot":
            return "<answer>" + ("action_right", "action_right", "action_shot")[turn % 3] + "</answer>"
        return self.heuristic.act([[]], [info])[0].text


def play(policy: str, repeats: int, scenario: str = "all", image_size: int = 64) -> dict:
    """Every scenario × ``repeats`` seeds with ``policy``: returns, frames, ends."""
    env = FootballEnv(scenario=scenario, image_size=image_size, panel=False)
    n = len(env.scenario_ids)
    returns, frames, lost = [], [], []
    agent = Policy(policy, seed=0)
    for seed in range(n * repeats):
        _, info = env.reset(seed=seed)
        total, turn, done = 0.0, 0, False
        while not done:
            _, reward, terminated, truncated, info = env.step(agent.respond(turn, info))
            total += reward
            turn += 1
            done = terminated or truncated
        returns.append(total)
        frames.append(info["frame"])
        lost.append(info["end"] == "ball_lost")
    r = np.array(returns)
    return {"mean": r.mean(), "stderr": r.std(ddof=1) / math.sqrt(len(r)), "frames": float(np.mean(frames)),
            "lost": 100.0 * float(np.mean(lost)), "episodes": len(r)}


def main() -> None:
    """Print the fidelity table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3, help="seeds per scenario (the reference used 3)")
    parser.add_argument("--scenario", default="all", help="scenario id, subset or comma-separated ids")
    args = parser.parse_args()
    scenario = args.scenario.split(",") if "," in args.scenario else args.scenario
    print(f"machine: {platform.processor() or platform.machine()}, Python {platform.python_version()}")
    header = f"{'policy':<18}{'ours':>16}{'frames':>8}{'lost':>7}   {'real engine':>16}{'frames':>8}{'lost':>7}"
    print(header)
    print("-" * len(header))
    for name in ("idle", "random", "right-right-shot", "heuristic"):
        start = time.perf_counter()
        got = play(name, args.repeats, scenario)
        real = REAL.get(name)
        ref = (f"{real[0]:>9.2f} ± {real[1]:<4.2f}{real[2]:>8d}{real[3]:>6d}%" if real
               else f"{'—':>16}{'—':>8}{'—':>7}")
        ratio = f"  ({got['mean'] / real[0]:.2f}×)" if real else ""
        print(f"{name:<18}{got['mean']:>9.2f} ± {got['stderr']:<4.2f}{got['frames']:>8.0f}{got['lost']:>6.0f}%   "
              f"{ref}{ratio}  [{got['episodes']} episodes, {time.perf_counter() - start:.0f} s]", flush=True)


if __name__ == "__main__":
    main()
