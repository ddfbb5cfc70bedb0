"""The one standard error every table of the suite prints (evaluation, training summaries, alignment report), and
its form over seeds for the comparison of arms."""

from __future__ import annotations

import math
from collections.abc import Sequence


def mean_stderr(values: Sequence[float]) -> tuple[float, float]:
    """``(mean, standard error of the mean)``: sample standard deviation (n − 1) over √n; 0 for fewer than two
    values (and a mean of 0 for none). For 0/1 outcomes this is √(p(1 − p) / (n − 1))."""
    n = len(values)
    if n == 0:
        return 0.0, 0.0
    mean = math.fsum(values) / n
    if n == 1:
        return mean, 0.0
    variance = math.fsum((v - mean) ** 2 for v in values) / (n - 1)
    return mean, math.sqrt(variance / n)


def seeds_mean_stderr(per_seed: Sequence[Sequence[float]]) -> tuple[float, float, int]:
    """``(mean, standard error, seeds)`` of a metric: the mean of the seeds' means, and a standard error with the
    spread between seeds and each seed's own over episodes, se² = (var of seed means + mean episode se²) / seeds."""
    per_seed = [v for v in per_seed if v]
    if not per_seed:
        return math.nan, math.nan, 0
    stats = [mean_stderr(v) for v in per_seed]
    means = [m for m, _ in stats]
    mean, se_of_means = mean_stderr(means)  # se² = variance of the seed means / seeds
    within = math.fsum(se**2 for _, se in stats) / len(stats)
    return mean, math.sqrt(se_of_means**2 + within / len(stats)), len(stats)
