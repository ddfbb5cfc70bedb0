"""Time to generate one VisualMath problem with its image, per family (issue 3: well under 10 ms).

Run: ``python bench/bench_visualmath.py [--seeds 200] [--size 448]``. Prints the machine, then per family
the mean and 95th percentile over seeds (difficulties 1–5 in turn) of ``family(rng, difficulty, size)``,
and of the whole ``env.reset`` (split choice, drawing, letterboxing into the observation).
"""

from __future__ import annotations

import argparse
import os
import platform
import time

import gymnasium as gym
import numpy as np

import lmmr1_env  # noqa: F401  (registers the ids)
from lmmr1_env.visualmath.generators import FAMILIES


def _stats(samples: list[float]) -> tuple[float, float]:
    ms = np.asarray(samples) * 1000
    return float(ms.mean()), float(np.percentile(ms, 95))


def main() -> None:
    """Print per-family generation times in milliseconds."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=200)
    parser.add_argument("--size", type=int, default=448)
    args = parser.parse_args()
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
          f"Python {platform.python_version()}, {platform.system()}")
    print(f"{args.seeds} seeds per family, image {args.size}x{args.size}")
    print(f"{'family':<18}{'mean ms':>9}{'p95 ms':>9}")
    worst = 0.0
    for name, family in FAMILIES.items():
        family(np.random.default_rng(0), 1, args.size)  # warm the font cache
        times = []
        for seed in range(args.seeds):
            rng = np.random.default_rng(seed)
            start = time.perf_counter()
            family(rng, 1 + seed % 5, args.size)
            times.append(time.perf_counter() - start)
        mean, p95 = _stats(times)
        worst = max(worst, p95)
        print(f"{name:<18}{mean:>9.2f}{p95:>9.2f}")
    env = gym.make("LMMR1/VisualMath-v0", difficulty=[1, 2, 3, 4, 5], image_size=args.size)
    for split in ("train", "test"):
        env.unwrapped.split = split
        env.reset(seed=0)
        times = []
        for seed in range(args.seeds):
            start = time.perf_counter()
            env.reset(seed=seed)
            times.append(time.perf_counter() - start)
        mean, p95 = _stats(times)
        print(f"{'env.reset ' + split:<18}{mean:>9.2f}{p95:>9.2f}")
    print(f"worst family p95: {worst:.2f} ms (target: well under 10 ms)")


if __name__ == "__main__":
    main()
