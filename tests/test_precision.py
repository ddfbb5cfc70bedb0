"""Devices and precision: ``--dtype bfloat16`` trains through float32 master weights that a checkpoint keeps,
gradient checkpointing gives the same gradients, and ``auto`` means the CPU here."""

from __future__ import annotations

import dataclasses
import math

import pytest
import torch

from lmmr1_agent.agents.hf import HFAgent
from lmmr1_agent.devices import resolve_device, resolve_dtype
from lmmr1_agent.learner.checkpoint import latest_checkpoint, load_trainer_state
from lmmr1_agent.learner.runner import EnvRunner
from lmmr1_agent.learner.samples import episodes_to_samples
from lmmr1_agent.learner.trainer import Learner, train_mode
from lmmr1_agent.train import run_stage
from tests.test_train import tiny_config


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA: auto means it")
def test_auto_is_the_cpu_in_float32_on_a_machine_without_cuda():
    assert resolve_device("auto") == "cpu" and resolve_dtype("auto", "cpu") == "float32"
    assert resolve_dtype("bfloat16", "cpu") == "bfloat16"


def test_bfloat16_weights_are_stepped_through_float32_masters_that_a_resume_restores(tiny_llama, tmp_path):
    """At lr 1e-5 an AdamW step moves a weight by about 1e-5, far below bfloat16's resolution (2^-8 of it): the
    float32 masters keep those steps, the weights are the masters rounded, and the checkpoint holds the masters."""
    config = tiny_config(tiny_llama, tmp_path, num_steps=2, eval_prompts=2, save_every=1, rollout_batch_size=2,
                         n_samples_per_prompt=4, dtype="bfloat16", actor_learning_rate=1e-5)
    run_stage(config, progress=False)
    last = latest_checkpoint(tmp_path / "fre")
    saved = torch.load(last / "master_weights.pt", weights_only=True)["params"]
    start = [p.detach() for p in HFAgent(str(tiny_llama), dtype="bfloat16").model.parameters()]
    assert saved and all(m.dtype == torch.float32 for m in saved)
    assert any(not torch.equal(m, s.float()) for m, s in zip(saved, start))  # the masters moved off the start
    assert any(not torch.equal(m, m.bfloat16().float()) for m in saved)  # with more precision than the weights

    learner = Learner(config, HFAgent(str(last), dtype="bfloat16").policy)
    assert all(w.dtype == torch.bfloat16 for w in learner.masters.weights)
    load_trainer_state(last, learner.optimizer, learner.scheduler, learner.extra_state())
    assert all(torch.equal(m, s) for m, s in zip(learner.masters.params, saved))
    assert all(torch.equal(w, m.bfloat16()) for w, m in zip(learner.masters.weights, saved))


def test_gradient_checkpointing_gives_the_same_logprobs_and_gradients(tiny_llama, tmp_path):
    config = tiny_config(tiny_llama, tmp_path, rollout_batch_size=2, n_samples_per_prompt=4)
    sampler = HFAgent(str(tiny_llama), temperature=1.0, max_new_tokens=8)
    samples = episodes_to_samples(*EnvRunner(config, sampler).collect(0))
    results = []
    for checkpointing in (False, True):
        agent = HFAgent(str(tiny_llama), temperature=1.0, max_new_tokens=8)
        learner = Learner(dataclasses.replace(config, gradient_checkpointing=checkpointing), agent.policy)
        assert agent.model.is_activation_checkpointing == checkpointing
        learner.policy.share_prefix = False  # the same arithmetic on both sides
        batch = learner.policy.sequences(samples)
        train_mode(agent.model)
        logp, _ = learner.policy.logprobs(batch)
        (logp * batch["mask"]).sum().backward()
        results.append((logp.detach(), {n: p.grad for n, p in agent.model.named_parameters()}))
    (plain, plain_grads), (checkpointed, checkpointed_grads) = results
    torch.testing.assert_close(checkpointed, plain, atol=1e-6, rtol=1e-5)
    for name, grad in plain_grads.items():
        torch.testing.assert_close(checkpointed_grads[name], grad, atol=1e-6, rtol=1e-4)


@pytest.mark.parametrize("family", ["qwen2_5_vl", "gemma3"])
def test_a_vlm_in_bfloat16_samples_and_trains_with_its_critic(family, tmp_path):
    """Pixels follow the weights into bfloat16, the critic's head takes the body's dtype, and the learner's
    log-probs match the sampler's within bfloat16's rounding (the cached generation and the full forward sum in
    different orders)."""
    import gymnasium as gym

    from lmmr1_agent.rollout import play_episodes
    from tests.tiny_vlms import FAMILIES

    folder = FAMILIES[family](tmp_path / family)
    agent = HFAgent(str(folder), temperature=1.0, max_new_tokens=4, dtype="bfloat16")
    make = lambda: gym.make("LMMR1/VisualMath-v0", image_size=(48, 48))  # noqa: E731
    samples = episodes_to_samples(list(play_episodes(make, agent, [0, 1], demonstration=False)), [0, 1])
    learner = Learner(tiny_config(folder, tmp_path, stage="mgt", generate_max_len=4, advantage_estimator="gae",
                                  dtype="bfloat16"), agent.policy)
    batch = learner.policy.sequences(samples)
    assert batch["pixel_values"].dtype == torch.bfloat16 and batch["old_logprobs"].dtype == torch.float32
    train_mode(agent.model)
    with torch.no_grad():
        logp, _ = learner.policy.logprobs(batch)
    agent.model.eval()
    assert torch.allclose(logp[batch["mask"]], batch["old_logprobs"][batch["mask"]], atol=1e-2)
    before = [m.clone() for m in learner.masters.params]
    metrics = learner.update(samples)
    assert math.isfinite(metrics["losses/policy"]) and math.isfinite(metrics["losses/value"])
    assert metrics["losses/skipped_updates"] == 0 and learner.masters.copies and learner.critic_masters.copies
    assert any(not torch.equal(b, m) for b, m in zip(before, learner.masters.params))
    assert all(torch.equal(w, m.bfloat16()) for w, m in zip(learner.masters.weights, learner.masters.params))
