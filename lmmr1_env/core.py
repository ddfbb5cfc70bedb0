"""The base class every lmmr1 environment derives from, and the image letterbox they share."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import gymnasium as gym
import numpy as np
from PIL import Image

from lmmr1_env.spaces import DEFAULT_MAX_TEXT, TextSpace, observation_space
from lmmr1_env.types import Message, Observation

SPLITS = ("train", "test")
#: Each split's own random stream (the last key of a generator's seed): train and test never share a draw.
SPLIT_STREAM = {split: stream for stream, split in enumerate(SPLITS)}


class LMMEnv(gym.Env):
    """A Gymnasium env an LMM plays by text: observations ``{"text"[, "image"]}``, actions ``str``.

    Subclasses set :attr:`system_prompt` and :attr:`demonstration` and implement ``reset`` / ``step``
    with :meth:`_observation` and :meth:`_check_action`. The contract (docs/design.md): ``step`` takes any
    ``str`` and returns only the new turn; ``info["reward_terms"]`` sums to the reward;
    ``info["parse_error"]`` says why a response could not be read.
    """

    metadata: dict[str, Any] = {"render_modes": ["rgb_array"], "render_fps": 4}

    #: Instructions an agent sends as the system message (task rules, answer format).
    system_prompt: str = ""
    #: One solved exchange ``[user message, assistant message]`` in the env's answer format.
    demonstration: list[Message] = []

    def __init__(self, *, image_size: tuple[int, int] | None = None, split: str = "train",
                 render_mode: str | None = None, max_text: int = DEFAULT_MAX_TEXT):
        if split not in SPLITS:
            raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
        if render_mode is not None and render_mode not in self.metadata["render_modes"]:
            raise ValueError(f"render_mode must be one of {self.metadata['render_modes']}, got {render_mode!r}")
        if image_size is not None:
            image_size = _check_size(image_size)
        self.split = split
        self.image_size = image_size
        self.render_mode = render_mode
        self.observation_space = observation_space(image_size=image_size, max_text=max_text)
        self.action_space = TextSpace(max_text)
        self._needs_reset = True

    @classmethod
    def prepare_steps(cls, envs: Sequence[LMMEnv], actions: Sequence[Any]) -> None:
        """Optional batch hook, called with envs of this class and the actions they are about to ``step`` with.

        A runner that steps many envs at once (:func:`lmmr1_agent.rollout.step_all`) calls it first, so an env
        whose step has a part that batches well (the math reward: one verifier round trip for the whole batch)
        can do that part for all of them here; each ``step`` must then return exactly what it would have
        returned alone. The default does nothing.
        """

    def _observation(self, text: str, image: np.ndarray | None = None) -> Observation:
        obs: Observation = {"text": text}
        if self.image_size is not None:
            obs["image"] = image if image is not None else np.zeros((*self.image_size, 3), np.uint8)
        return obs

    def _check_action(self, action: Any) -> None:
        """Raise on programmer errors: a non-``str`` action, or ``step`` without a live episode."""
        if not isinstance(action, str):
            raise TypeError(f"{type(self).__name__}.step takes the model's response as str, "
                            f"got {type(action).__name__}")
        if self._needs_reset:
            raise RuntimeError(f"{type(self).__name__}.step called before reset() or after the episode ended")


def _check_size(size: Any) -> tuple[int, int]:
    if isinstance(size, int):
        size = (size, size)
    try:
        height, width = (int(v) for v in size)
    except (TypeError, ValueError):
        raise ValueError(f"image_size must be an int or (height, width), got {size!r}") from None
    if not (16 <= height <= 4096 and 16 <= width <= 4096):
        raise ValueError(f"image_size must be between 16 and 4096 pixels a side, got {(height, width)}")
    return height, width


def letterbox(image: Image.Image | np.ndarray, size: tuple[int, int], fill: tuple[int, int, int] = (0, 0, 0),
              resample: Image.Resampling = Image.Resampling.BICUBIC) -> np.ndarray:
    """``image`` scaled to fit ``size`` = (height, width) with its aspect kept, padded with ``fill``.

    Returns ``(height, width, 3)`` uint8. Never stretches: the image is centred on the padding.
    """
    pil = image if isinstance(image, Image.Image) else Image.fromarray(np.asarray(image, dtype=np.uint8))
    pil = pil.convert("RGB")
    height, width = size
    scale = min(width / pil.width, height / pil.height)
    new_w, new_h = max(1, round(pil.width * scale)), max(1, round(pil.height * scale))
    if (new_w, new_h) != pil.size:
        pil = pil.resize((new_w, new_h), resample)
    canvas = Image.new("RGB", (width, height), fill)
    canvas.paste(pil, ((width - new_w) // 2, (height - new_h) // 2))
    return np.asarray(canvas, dtype=np.uint8)
