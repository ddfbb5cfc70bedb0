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
    return assemble(system_prompt, [user_message(o) for o in observations], responses, demonstration)


def assemble(system_prompt: str, user_messages: Sequence[Message], responses: Sequence[str] = (),
             demonstration: Sequence[Message] | None = None) -> list[Message]:
    """:func:`build_messages` from user messages already built (a rollout converts each image only once)."""
    if not (len(user_messages) - 1 <= len(responses) <= len(user_messages)):
        raise ValueError(f"{len(user_messages)} observations need {len(user_messages) - 1} or "
                         f"{len(user_messages)} responses, got {len(responses)}")
    messages: list[Message] = []
    if system_prompt:
        messages.append({"role": "system", "content": system_prompt})
    if demonstration:
        messages.extend(dict(m) for m in demonstration)
    for i, message in enumerate(user_messages):
        messages.append(message)
        if i < len(responses):
            messages.append({"role": "assistant", "content": responses[i]})
    return messages
