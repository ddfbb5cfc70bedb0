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
    """``(mean, standard error, seeds)`` of a metric: the mean of the seeds' means, and a standard error with both
    sources of noise, the training seed and the test problems.

    The comparison plays the same test problems for every seed (episode i is the same problem in each), so the
    problems' noise is shared by the seeds and more seeds do not shrink it: se² = var(seed means) / seeds +
    var(episode means over the seeds) / episodes. Seeds with different numbers of episodes are not paired, and
    each seed's episodes count as their own sample: se² = (var(seed means) + mean episode se²) / seeds."""
    per_seed = [list(v) for v in per_seed if v]
    if not per_seed:
        return math.nan, math.nan, 0
    seeds = len(per_seed)
    stats = [mean_stderr(v) for v in per_seed]
    mean, se_of_means = mean_stderr([m for m, _ in stats])  # se² = variance of the seed means / seeds
    if len({len(v) for v in per_seed}) == 1:
        _, se_of_problems = mean_stderr([math.fsum(episode) / seeds for episode in zip(*per_seed)])
        return mean, math.sqrt(se_of_means**2 + se_of_problems**2), seeds
    within = math.fsum(se**2 for _, se in stats) / seeds
    return mean, math.sqrt(se_of_means**2 + within / seeds), seeds
