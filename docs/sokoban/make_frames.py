"""Write the PNG frames in this folder: python docs/sokoban/make_frames.py (from the repository root)."""

from __future__ import annotations

from pathlib import Path

import gymnasium as gym
import numpy as np
from PIL import Image

import lmmr1_env  # noqa: F401 - registers LMMR1/*
from lmmr1_env.sokoban.solver import solve

HERE = Path(__file__).resolve().parent


def main() -> None:
    """The start frame of small-v0 seed 1, of a shipped starter level, and a 4-frame strip of a solved episode."""
    env = gym.make("LMMR1/Sokoban-v0", mode="step", levels="small-v1", image_size=224)
    obs, _ = env.reset(seed=0)
    Image.fromarray(gym.make("LMMR1/Sokoban-v0").reset(seed=1)[0]["image"]).save(HERE / "small-v0_seed1_start.png")
    Image.fromarray(gym.make("LMMR1/Sokoban-v0", levels="starter").reset(seed=6)[0]["image"]).save(
        HERE / "starter_level6_start.png")
    state = env.unwrapped
    plan = solve(state.room_fixed, state.room_state).moves
    frames = [obs["image"]]
    for move in plan:
        obs, *_ = env.step(f"<answer>{move}</answer>")
        frames.append(obs["image"])
    picks = [frames[round(i * (len(frames) - 1) / 3)] for i in range(4)]
    gap = np.full((224, 8, 3), 255, np.uint8)
    strip = np.concatenate([part for frame in picks for part in (frame, gap)][:-1], axis=1)
    Image.fromarray(strip).save(HERE / "small-v1_seed0_solved_strip.png")
    print(f"{len(plan)} moves: {', '.join(plan)}")


if __name__ == "__main__":
    main()
