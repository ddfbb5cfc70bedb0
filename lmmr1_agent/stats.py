"""The one standard error every table of the suite prints (evaluation, training summaries, alignment report)."""

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
