"""Agents: Hugging Face models (text, the Qwen2.5-VL graft, FastVLM), the OpenAI-compatible client over real HTTP."""

from __future__ import annotations

import json
import time

import numpy as np
import pytest
import torch

from lmmr1_agent.agents import make_agent
from lmmr1_agent.agents.hf import HFAgent
from lmmr1_agent.agents.openai_http import AgentError, OpenAIAgent
from lmmr1_env import build_messages
from tests.chat_server import TEXT_CHAT, FakeChatServer, reply
from tests.tiny_models import build_llama, build_tokenizer

IMAGE_CHAT = build_messages("You count.", [{"text": "How many red circles?",
                                            "image": np.random.default_rng(0).integers(0, 255, (56, 84, 3), np.uint8)}])


@pytest.fixture(scope="module")
def tiny_graft(tmp_path_factory, tiny_llama):
    from transformers import AutoTokenizer, LlamaForCausalLM

    from lmmr1_agent.models.graft import graft_into_qwen2_5_vl

    llama = LlamaForCausalLM.from_pretrained(tiny_llama, dtype=torch.float32)
    model, tokenizer = graft_into_qwen2_5_vl(llama, AutoTokenizer.from_pretrained(tiny_llama),
                                             vision={"depth": 1, "hidden_size": 32, "num_heads": 2,
                                                     "intermediate_size": 64})
    folder = tmp_path_factory.mktemp("tiny-graft")
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


def test_hf_agent_returns_tokens_and_logprobs(tiny_llama):
    agent = HFAgent(str(tiny_llama), temperature=1.0, max_new_tokens=12, seed=3)
    responses = agent.act([TEXT_CHAT, TEXT_CHAT[:1] + [{"role": "user", "content": "Calculate: 13 + 29"}]], [{}, {}])
    assert len(responses) == 2
    for r in responses:
        assert r.token_ids and len(r.token_ids) == len(r.logprobs) <= 12
        assert all(np.isfinite(r.logprobs)) and max(r.logprobs) <= 0
        assert r.text == agent.tokenizer.decode(r.token_ids, skip_special_tokens=True)
        assert r.truncated == (r.token_ids[-1] != agent.tokenizer.eos_token_id)


@pytest.mark.parametrize("generation_file", [True, False])
def test_the_turn_end_tokens_are_the_ones_transformers_gives_the_model(tiny_llama, tmp_path, generation_file):
    """With or without ``generation_config.json`` (then ``config.json``'s generation fields), the agent stops where
    ``from_pretrained``'s generation config says (what the vLLM agent uses too, without loading the weights)."""
    import shutil

    from transformers import AutoModelForCausalLM

    folder = tmp_path / "model"
    shutil.copytree(tiny_llama, folder)
    config = json.loads((folder / "config.json").read_text())
    config["eos_token_id"] = [config.get("eos_token_id", 2), 5]
    (folder / "config.json").write_text(json.dumps(config))
    (folder / "generation_config.json").write_text(json.dumps({"eos_token_id": [7, 9]}))
    if not generation_file:
        (folder / "generation_config.json").unlink()
    eos = AutoModelForCausalLM.from_pretrained(folder).generation_config.eos_token_id
    assert HFAgent(str(folder)).eos_ids == set(eos) == ({7, 9} if generation_file else set(config["eos_token_id"]))


def test_greedy_is_deterministic(tiny_llama):
    agent = HFAgent(str(tiny_llama), max_new_tokens=8)
    assert agent.act([TEXT_CHAT], [{}])[0].token_ids == agent.act([TEXT_CHAT], [{}])[0].token_ids


def test_text_model_refuses_images(tiny_llama):
    agent = HFAgent(str(tiny_llama), max_new_tokens=4)
    with pytest.raises(ValueError, match="text-only model"):
        agent.act([IMAGE_CHAT], [{}])


def test_graft_text_logits_match_the_original(tiny_llama, tiny_graft):
    from transformers import LlamaForCausalLM, Qwen2_5_VLForConditionalGeneration

    llama = LlamaForCausalLM.from_pretrained(tiny_llama, dtype=torch.float32)
    graft = Qwen2_5_VLForConditionalGeneration.from_pretrained(tiny_graft, dtype=torch.float32)
    ids = build_tokenizer()(["What is 7 + 5? <think>7 + 5 = 12</think>"], return_tensors="pt").input_ids
    with torch.no_grad():
        original = llama(ids).logits
        grafted = graft(input_ids=ids).logits[..., : original.shape[-1]]
    assert torch.allclose(original, grafted, atol=1e-4)


def test_graft_agent_sees_images(tiny_graft):
    agent = HFAgent(str(tiny_graft), max_new_tokens=6, min_pixels=28 * 28, max_pixels=56 * 56)
    inputs = agent.adapter.prepare([IMAGE_CHAT])
    pads = (inputs["input_ids"] == agent.model.config.image_token_id).sum().item()
    assert pads == int(inputs["image_grid_thw"].prod()) // 4 > 0
    (response,) = agent.act([IMAGE_CHAT], [{}])
    assert response.token_ids and len(response.logprobs) == len(response.token_ids)


def test_prompt_over_the_context_is_a_clear_error(tmp_path):
    folder = build_llama(tmp_path / "short", max_positions=40)
    agent = HFAgent(str(folder), max_new_tokens=16)
    with pytest.raises(ValueError, match="exceeds .* context of 40"):
        agent.act([build_messages("rules " * 20, [{"text": "question " * 10}])], [{}])


def test_unknown_agent_names_the_choices():
    with pytest.raises(ValueError, match="unknown agent 'gpt-17'.*oracle"):
        make_agent("gpt-17")
    with pytest.raises(ValueError, match="--api-model"):
        make_agent("http://127.0.0.1:9/v1")


def test_embedded_vlm_before_alignment_matches_smollm2():
    """The embedded VLM's build: SmolLM2-135M-Instruct inside FastVLM gives SmolLM2's text logits and template."""
    from transformers import AutoModelForImageTextToText, AutoTokenizer, LlamaForCausalLM

    from lmmr1_agent.models.embedded import smollm2_path, smollm2_vl_path

    text, vl = smollm2_path(), smollm2_vl_path(aligned=False)
    tokenizer = AutoTokenizer.from_pretrained(text)
    prompt = tokenizer.apply_chat_template([{"role": "user", "content": "What is 7 + 5?"}], tokenize=False,
                                           add_generation_prompt=True)
    assert AutoTokenizer.from_pretrained(vl).apply_chat_template(
        [{"role": "user", "content": "What is 7 + 5?"}], tokenize=False, add_generation_prompt=True) == prompt
    ids = tokenizer(prompt, return_tensors="pt").input_ids
    with torch.no_grad():
        original = LlamaForCausalLM.from_pretrained(text, dtype=torch.float32)(ids).logits
        built = AutoModelForImageTextToText.from_pretrained(vl, dtype=torch.float32)(input_ids=ids).logits
    assert (original - built[..., : original.shape[-1]]).abs().max().item() < 1e-4


def test_fastvlm_agent_sees_images_and_never_writes_the_image_token(tmp_path, tiny_llama):
    from tests.tiny_models import build_fastvlm

    agent = HFAgent(str(build_fastvlm(tmp_path / "vlm", tiny_llama)), temperature=1.0, max_new_tokens=6, seed=0)
    assert type(agent.model).__name__ == "FastVlmForConditionalGeneration"
    image_token = agent.model.config.image_token_id
    assert agent.banned_token_ids == [image_token]
    inputs = agent.adapter.prepare([IMAGE_CHAT, TEXT_CHAT])
    assert inputs["pixel_values"].shape == (1, 3, 32, 32)  # the 56 × 84 picture, resized to the tower's square
    assert (inputs["input_ids"][0] == image_token).sum().item() == 4 and image_token not in inputs["input_ids"][1]
    replies = agent.act([IMAGE_CHAT, TEXT_CHAT], [{}, {}])
    assert all(r.token_ids and image_token not in r.token_ids for r in replies)
    assert replies[0].prompt_token_ids.count(image_token) == 4


# ---- the OpenAI-compatible agent against real HTTP servers on loopback ----


def test_http_agent_sends_chat_with_images():
    with FakeChatServer(lambda n, body: reply(f"<answer>{len(body['messages'])}</answer>")) as server:
        agent = OpenAIAgent(server.url, "my-model", api_key="sk-test", temperature=0.5, max_new_tokens=64)
        (text_reply, image_reply) = agent.act([TEXT_CHAT, IMAGE_CHAT], [{}, {}])
        agent.close()
    assert text_reply.text == "<answer>2</answer>" and text_reply.token_ids is None
    bodies = {len(r["body"]["messages"][1]["content"]) if isinstance(r["body"]["messages"][1]["content"], list)
              else 0: r for r in server.requests}
    image_request = bodies[2]
    assert image_request["path"] == "/v1/chat/completions" and image_request["auth"] == "Bearer sk-test"
    body = image_request["body"]
    assert body["model"] == "my-model" and body["temperature"] == 0.5 and body["max_tokens"] == 64
    image_part, text_part = body["messages"][1]["content"]
    assert image_part["type"] == "image_url" and image_part["image_url"]["url"].startswith("data:image/png;base64,")
    assert text_part == {"type": "text", "text": "How many red circles?"}


def test_http_agent_retries_a_slow_then_failing_server():
    def behave(attempt, body):
        if attempt == 1:
            time.sleep(1.5)  # past the client's timeout
        if attempt == 2:
            return 503, {"error": "overloaded"}
        return reply("<answer>ok</answer>", finish="length")

    with FakeChatServer(behave) as server:
        agent = OpenAIAgent(server.url, "m", timeout=0.5, retries=3, backoff=0.05)
        (response,) = agent.act([TEXT_CHAT], [{}])
        agent.close()
    assert response.text == "<answer>ok</answer>" and response.truncated
    assert len(server.requests) == 3


def test_http_agent_gives_up_with_a_clear_error():
    with FakeChatServer(lambda n, body: (500, {"error": "boom"})) as server:
        agent = OpenAIAgent(server.url, "m", retries=2, backoff=0.01)
        start = time.monotonic()
        with pytest.raises(AgentError, match=r"127\.0\.0\.1.*3 attempt\(s\).*HTTP 500"):
            agent.act([TEXT_CHAT], [{}])
        assert time.monotonic() - start < 10
    with FakeChatServer(lambda n, body: (400, {"error": "bad request"})) as server:
        with pytest.raises(AgentError, match="1 attempt"):
            OpenAIAgent(server.url, "m", retries=5, backoff=0.01).act([TEXT_CHAT], [{}])
    with pytest.raises(AgentError, match="ConnectionRefused|URLError"):
        OpenAIAgent("http://127.0.0.1:9/v1", "m", retries=0).act([TEXT_CHAT], [{}])


def test_http_agent_respects_its_concurrency_limit():
    def slow(n, body):
        time.sleep(0.2)
        return reply("x")

    with FakeChatServer(slow) as server:
        agent = OpenAIAgent(server.url, "m", max_concurrency=3)
        assert len(agent.act([TEXT_CHAT] * 9, [{}] * 9)) == 9
        agent.close()
    assert server.max_in_flight == 3


def test_qwen_vl_models_get_3d_image_positions_and_the_graft_keeps_sequence_ones(tiny_graft, tmp_path):
    """A real Qwen2.5-VL needs ``mm_token_type_ids`` for its 3-D (time, height, width) image positions; the
    embedded graft, whose language model only knows 1-D RoPE, declares sequence positions instead."""

    graft = HFAgent(str(tiny_graft), max_new_tokens=2)
    assert "mm_token_type_ids" not in graft.adapter.prepare([IMAGE_CHAT])
    config = json.loads((tiny_graft / "config.json").read_text())
    assert config.pop("lmmr1_image_positions") == "sequence"
    qwen = tmp_path / "qwen"
    qwen.mkdir()
    for item in tiny_graft.iterdir():
        (qwen / item.name).write_bytes(item.read_bytes())
    (qwen / "config.json").write_text(json.dumps(config))
    agent = HFAgent(str(qwen), max_new_tokens=2)
    inputs = agent.adapter.prepare([IMAGE_CHAT])
    image = inputs["input_ids"][0] == agent.model.config.image_token_id
    assert torch.equal(inputs["mm_token_type_ids"][0].bool(), image)
    positions, _ = agent.model.model.get_rope_index(
        inputs["input_ids"], image_grid_thw=inputs["image_grid_thw"], attention_mask=inputs["attention_mask"],
        mm_token_type_ids=inputs["mm_token_type_ids"])
    height, width = positions[1, 0, image], positions[2, 0, image]
    assert len(set(height.tolist())) > 1 and len(set(width.tolist())) > 1  # a grid, not a line
    assert agent.act([IMAGE_CHAT], [{}])[0].token_ids  # generation runs with them
