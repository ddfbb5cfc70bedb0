"""Turn (system prompt, demonstration, observations, responses) into OpenAI-style chat messages."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from PIL import Image

from lmmr1_env.types import Message, Observation


def user_message(observation: Observation) -> Message:
    """One user turn: a plain string for text-only observations, else ``[image part, text part]``.

    Image parts use LMM-R1's dataset shape ``{"type": "image", "image": PIL.Image}``; agents that speak
    HTTP turn them into ``image_url`` parts themselves.
    """
    text = observation["text"]
    image = observation.get("image")
    if image is None:
        return {"role": "user", "content": text}
    pil = image if isinstance(image, Image.Image) else Image.fromarray(np.asarray(image, dtype=np.uint8))
    return {"role": "user", "content": [{"type": "image", "image": pil}, {"type": "text", "text": text}]}


def build_messages(
    system_prompt: str,
    observations: Sequence[Observation],
    responses: Sequence[str] = (),
    demonstration: Sequence[Message] | None = None,
) -> list[Message]:
    """The conversation so far as chat messages.

    ``observations`` are the episode's turns in order and ``responses`` the assistant's replies to them:
    ``len(observations) - 1`` replies gives a prompt for the next response, ``len(observations)`` a full
    transcript. ``demonstration`` (the env's solved example exchange) goes right after the system message.
    """
    if not (len(observations) - 1 <= len(responses) <= len(observations)):
        raise ValueError(f"{len(observations)} observations need {len(observations) - 1} or "
                         f"{len(observations)} responses, got {len(responses)}")
    messages: list[Message] = []
    if system_prompt:
        messages.append({"role": "system", "content": system_prompt})
    if demonstration:
        messages.extend(dict(m) for m in demonstration)
    for i, observation in enumerate(observations):
        messages.append(user_message(observation))
        if i < len(responses):
            messages.append({"role": "assistant", "content": responses[i]})
    return messages
