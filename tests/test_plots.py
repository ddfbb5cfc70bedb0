"""The suite's plots: smoothing is TensorBoard's debiased moving average, and both curves are written as PNGs."""

from __future__ import annotations

import pytest
from PIL import Image

from lmmr1_agent.plots import reward_curve, share_curve, smooth


def test_smoothing_is_a_debiased_moving_average():
    assert smooth([2.0, 2.0, 2.0]) == pytest.approx([2.0, 2.0, 2.0])  # no pull towards zero at the start
    values = smooth([0.0, 1.0], weight=0.5)
    assert values == pytest.approx([0.0, 0.5 / 0.75])  # (0.5 * 0 + 0.5 * 1) / (1 - 0.5 ** 2)


def test_both_curves_are_written_as_images(tmp_path):
    reward = reward_curve(tmp_path / "a" / "reward.png", "fre", [1, 2, 3], {"reward": [0.1, 0.5, 0.4]},
                          [(0, 0.1, 0.02), (3, 0.4, 0.05)])
    share = share_curve(tmp_path / "share.png", "align", {"clock": [(1.0, 0.2), (2.0, 0.9)]}, "minutes")
    for path in (reward, share):
        with Image.open(path) as image:
            assert image.format == "PNG" and image.width > 600 and image.height > 400
    reward_curve(tmp_path / "empty.png", "no steps yet", [], {})  # a run killed before its first step
    assert (tmp_path / "empty.png").is_file()
