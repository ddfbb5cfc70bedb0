"""build_messages: the chat every agent sends and the learner trains on."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from lmmr1_env import build_messages, letterbox


def test_text_turns_with_demonstration_and_history():
    demo = [{"role": "user", "content": "What is 7 + 5?"}, {"role": "assistant", "content": "<answer>12</answer>"}]
    messages = build_messages("Rules.", [{"text": "turn 1"}, {"text": "turn 2"}], ["reply 1"], demo)
    assert [m["role"] for m in messages] == ["system", "user", "assistant", "user", "assistant", "user"]
    assert messages[0]["content"] == "Rules." and messages[-1]["content"] == "turn 2"
    assert messages[4]["content"] == "reply 1"
    transcript = build_messages("Rules.", [{"text": "q"}], ["a"])
    assert transcript[-1] == {"role": "assistant", "content": "a"}
    with pytest.raises(ValueError):
        build_messages("Rules.", [{"text": "q"}], ["a", "b"])


def test_image_turns_have_image_parts():
    image = np.zeros((32, 48, 3), np.uint8)
    (message,) = build_messages("", [{"text": "How many?", "image": image}])
    kinds = [part["type"] for part in message["content"]]
    assert kinds == ["image", "text"]
    assert isinstance(message["content"][0]["image"], Image.Image)
    assert message["content"][0]["image"].size == (48, 32)


def test_letterbox_keeps_aspect_and_pads():
    tall = np.full((100, 50, 3), 255, np.uint8)
    boxed = letterbox(tall, (64, 64))
    assert boxed.shape == (64, 64, 3) and boxed.dtype == np.uint8
    assert boxed[:, :16].max() == 0 and boxed[:, 48:].max() == 0  # padding left and right
    assert boxed[:, 20:44].min() == 255  # the image, not stretched
