"""Multi-turn episodes: ``full`` history is one growing token sequence, trained on the model's tokens only."""

from __future__ import annotations

import json

import gymnasium as gym
import numpy as np
import pytest
import torch

import tests.toy_env  # noqa: F401  (registers Toy/Countdown-v0)
from lmmr1_agent.agents.hf import HFAgent
from lmmr1_agent.learner.samples import episodes_to_samples
from lmmr1_agent.learner.trainer import Learner
from lmmr1_agent.rollout import play_episodes
from lmmr1_agent.train import run_stage
from lmmr1_env import build_messages
from tests.test_train import tiny_config
from tests.tiny_models import build_fastvlm, build_graft, build_llama

COUNTDOWN = [{"id": "Toy/Countdown-v0", "weight": 1.0, "kwargs": {}}]


@pytest.fixture(scope="module")
def long_llama(tmp_path_factory):
    return build_llama(tmp_path_factory.mktemp("tiny-llama-long"), max_positions=4096)  # Sokoban's text maps


@pytest.fixture(scope="module", params=["qwen2.5-vl-graft", "fastvlm"])
def tiny_vlm(request, tmp_path_factory, long_llama):
    """Both image architectures: the Qwen2.5-VL graft and the embedded VLM's FastVLM with a BatchNorm tower."""
    build = build_graft if request.param == "qwen2.5-vl-graft" else build_fastvlm
    return build(tmp_path_factory.mktemp(f"tiny-{request.param}-multiturn"), long_llama)


def _template_ids(agent, conversation):
    return agent.tokenizer(agent.adapter.prompt_text(conversation), add_special_tokens=False)["input_ids"]


@pytest.mark.parametrize("ended", [True, False])
def test_a_continuation_appends_only_the_new_turn(tiny_llama, ended):
    """After a response that ended with EOS the continuation equals the re-templated chat token for token;
    after a cut-off response the template's closing is added, and the response tokens stay as generated."""
    agent = HFAgent(str(tiny_llama), max_new_tokens=4)
    first = build_messages("Digits only.", [{"text": "Turn 1."}])
    answer = "12 + 30 = 42"
    response = agent.tokenizer(answer, add_special_tokens=False)["input_ids"]
    if ended:
        response = response + [agent.tokenizer.convert_tokens_to_ids("<|im_end|>")]
    prefix = _template_ids(agent, first) + response
    second = build_messages("Digits only.", [{"text": "Turn 1."}, {"text": "Turn 2."}], [answer])
    reply = agent.respond([second], [{}], prefix_ids=[prefix])[0]
    assert reply.prompt_token_ids[:len(prefix)] == prefix
    if ended:
        assert reply.prompt_token_ids == _template_ids(agent, second)
    else:
        tail = agent.tokenizer.decode(reply.prompt_token_ids[len(prefix):])
        assert tail.startswith("<|im_end|>\n<|im_start|>user\nTurn 2.<|im_end|>\n<|im_start|>assistant\n")


def test_a_continuation_of_the_wrong_shape_is_a_clear_error(tiny_llama):
    agent = HFAgent(str(tiny_llama), max_new_tokens=4)
    with pytest.raises(ValueError, match="must end with an assistant response and then a user message"):
        agent.respond([build_messages("s", [{"text": "hi"}])], [{}], prefix_ids=[[1, 2, 3]])


def test_full_history_is_one_sequence_and_trains_only_the_model_tokens(tiny_llama):
    agent = HFAgent(str(tiny_llama), temperature=1.0, max_new_tokens=6, seed=1)
    episodes = list(play_episodes(lambda: gym.make("Toy/Countdown-v0"), agent, [0, 0, 1, 1], history="full",
                                  demonstration=False))
    assert all(e.history == "full" and len(e.turns) == 3 for e in episodes)
    for episode in episodes:
        for before, after in zip(episode.turns, episode.turns[1:]):
            assert after.prompt_ids[:len(before.prompt_ids) + len(before.response_ids)] == (
                before.prompt_ids + before.response_ids)
    samples = episodes_to_samples(episodes, [0, 0, 1, 1])
    assert len(samples) == 4
    for sample, episode in zip(samples, episodes):
        assert sample.prompt_ids == episode.turns[0].prompt_ids
        assert sample.reward == pytest.approx(episode.total_return)
        trained = [t for t, m in zip(sample.response_ids, sample.response_mask) if m]
        assert trained == [t for turn in episode.turns for t in turn.response_ids]
        assert [lp for lp, m in zip(sample.logprobs, sample.response_mask) if m] == pytest.approx(
            [lp for turn in episode.turns for lp in turn.response_logprobs])
        assert not all(sample.response_mask)  # the env's turns sit between the responses, untrained
    # history "last": every turn is a sample of its own, credited with the return from that turn on
    last = list(play_episodes(lambda: gym.make("Toy/Countdown-v0"), agent, [0], history="last",
                              demonstration=False))
    per_turn = episodes_to_samples(last, [0])
    assert len(per_turn) == 3 and per_turn[0].reward == pytest.approx(last[0].total_return)


def test_the_learner_scores_a_sequence_with_the_samplers_logprobs(tiny_llama):
    """Ratio 1 at the first update: the learner's log-probs over the masked tokens are the sampling ones."""
    config = tiny_config(tiny_llama, "unused", envs=COUNTDOWN, history="full", generate_max_len=6)
    agent = HFAgent(str(tiny_llama), temperature=1.0, max_new_tokens=6, seed=2)
    episodes = list(play_episodes(lambda: gym.make("Toy/Countdown-v0"), agent, [3, 3], history="full",
                                  demonstration=False))
    learner = Learner(config, agent.policy)
    batch = learner.policy.sequences(episodes_to_samples(episodes, [0, 0]))
    with torch.no_grad():
        logp, _ = learner.policy.logprobs(batch)
    mask = batch["mask"]
    assert torch.allclose(logp[mask], batch["old_logprobs"][mask], atol=1e-5)


@pytest.mark.parametrize("estimator", ["group_norm", "gae"])
def test_training_on_a_multi_turn_env_with_full_history(tiny_llama, tmp_path, estimator):
    config = tiny_config(tiny_llama, tmp_path, envs=COUNTDOWN, history="full", num_steps=2, eval_prompts=4,
                         rollout_batch_size=2, n_samples_per_prompt=4, advantage_estimator=estimator)
    run_stage(config, progress=False)
    rows = [json.loads(line) for line in (tmp_path / "fre" / "metrics.jsonl").read_text().splitlines()]
    assert len(rows) == 2 and all(np.isfinite(r["losses/policy"]) for r in rows)


def test_images_of_every_turn_travel_with_the_sequence(tiny_vlm):
    """Sokoban step mode on a tiny VLM: each turn's image is expanded once, in its own turn; the learner sees all
    of them in one sequence and, in its training mode, reproduces the sampling log-probs."""
    from lmmr1_agent.learner.trainer import train_mode

    agent = HFAgent(str(tiny_vlm), temperature=1.0, max_new_tokens=4, seed=0, max_pixels=56 * 56)
    make = lambda: gym.make("LMMR1/Sokoban-v0", mode="step", image_size=(56, 56))  # noqa: E731
    episodes = list(play_episodes(make, agent, [0, 0], history="full", demonstration=False, max_turns=3))
    assert all(len(e.turns) == 3 for e in episodes)
    pad = agent.model.config.image_token_id
    per_image = episodes[0].turns[0].prompt_ids.count(pad)
    assert per_image > 0
    for turn_index, turn in enumerate(episodes[0].turns):
        assert turn.prompt_ids.count(pad) == per_image * (turn_index + 1)
        assert not set(agent.banned_token_ids) & set(turn.response_ids)  # vision markers are never sampled
    config = tiny_config(tiny_vlm, "unused", stage="mgt", history="full", generate_max_len=4,
                         max_pixels=56 * 56, envs=[{"id": "LMMR1/Sokoban-v0", "weight": 1.0, "kwargs": {}}])
    learner = Learner(config, agent.policy)
    samples = episodes_to_samples(episodes, [0, 0])
    batch = learner.policy.sequences(samples)
    images = batch["image_grid_thw"] if "image_grid_thw" in batch else batch["pixel_values"]
    assert images.shape[0] == 6  # three turns' images for each of the two sequences
    train_mode(agent.model)  # what update() runs in: batch norms must still use their running statistics
    with torch.no_grad():
        logp, _ = learner.policy.logprobs(batch)
    agent.model.eval()
    assert torch.allclose(logp[batch["mask"]], batch["old_logprobs"][batch["mask"]], atol=1e-5)
    learner.update(samples)


def test_an_episode_that_fills_the_context_ends_truncated(tiny_llama):
    """A continued episode with no room for another response ends as truncated; the batch plays on."""
    agent = HFAgent(str(tiny_llama), temperature=1.0, max_new_tokens=6, seed=4)
    full = list(play_episodes(lambda: gym.make("Toy/Countdown-v0"), agent, [5], history="full",
                              demonstration=False, sampling_seeds=[9]))[0]
    assert len(full.turns) == 3 and not full.truncated
    agent.context = len(full.turns[1].prompt_ids) + agent.max_new_tokens  # room for two turns, not three
    cut = list(play_episodes(lambda: gym.make("Toy/Countdown-v0"), agent, [5], history="full",
                             demonstration=False, sampling_seeds=[9]))[0]
    assert len(cut.turns) == 2 and cut.truncated and cut.final_info["truncated_by"] == "context"
    assert [t.response_ids for t in cut.turns] == [t.response_ids for t in full.turns[:2]]
    agent.context = 10  # a first prompt that does not fit is the user's error, said plainly
    with pytest.raises(ValueError, match="exceeds .* context of 10"):
        list(play_episodes(lambda: gym.make("Toy/Countdown-v0"), agent, [5], history="full", demonstration=False))
