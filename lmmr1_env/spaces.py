"""Observation and action spaces shared by every lmmr1 environment."""

from __future__ import annotations

import string
from typing import Any

import numpy as np
from gymnasium import spaces

#: Characters ``TextSpace.sample()`` draws from: printable ASCII, so samples are readable.
SAMPLE_CHARSET = string.printable

#: Default upper bound on text length (characters): a 1 MB response still fits.
DEFAULT_MAX_TEXT = 1 << 20


class TextSpace(spaces.Text):
    """A ``spaces.Text`` that contains any ``str`` up to ``max_length`` characters.

    Gymnasium's ``Text`` only admits its charset (62 alphanumerics by default), but problem text has
    π, °, newlines and LaTeX, and model responses are arbitrary. ``sample()`` draws printable ASCII.
    """

    def __init__(self, max_length: int = DEFAULT_MAX_TEXT, *, min_length: int = 0, seed: Any = None):
        super().__init__(max_length=max_length, min_length=min_length, charset=SAMPLE_CHARSET, seed=seed)

    def contains(self, x: Any) -> bool:
        return isinstance(x, str) and self.min_length <= len(x) <= self.max_length

    def sample(self, mask: Any = None, probability: Any = None) -> str:
        # Short samples: a random 1 MB string is useless to every caller and slow to score.
        length = int(self.np_random.integers(self.min_length, min(self.max_length, 64) + 1))
        idx = self.np_random.integers(0, len(SAMPLE_CHARSET), size=length)
        return "".join(SAMPLE_CHARSET[i] for i in idx)

    def __repr__(self) -> str:
        return f"TextSpace(max_length={self.max_length})"

    def __eq__(self, other: Any) -> bool:
        return (isinstance(other, TextSpace) and other.max_length == self.max_length
                and other.min_length == self.min_length)


def image_space(height: int, width: int) -> spaces.Box:
    """The image observation space: ``(height, width, 3)`` uint8 RGB."""
    return spaces.Box(0, 255, (height, width, 3), np.uint8)


def observation_space(*, image_size: tuple[int, int] | None = None, max_text: int = DEFAULT_MAX_TEXT) -> spaces.Dict:
    """``Dict`` with ``"text"`` and, when ``image_size`` = (height, width) is given, ``"image"``."""
    parts: dict[str, spaces.Space] = {"text": TextSpace(max_text)}
    if image_size is not None:
        parts["image"] = image_space(*image_size)
    return spaces.Dict(parts)
