"""The DeepSpeed learner (``--zero-stage``) on this CPU: ZeRO-2 and ZeRO-3 in one process and data-parallel over two
Ray actors train the tiny VL model, and their first update is the torch learner's; its checkpoints resume exactly and
its ZeRO-3 weights load into a fresh Hugging Face model.

Tolerance: at lr 1e-3 AdamW's first step moves each weight by about ``lr * g / (|g| + eps)``, ±1e-3 for every weight
whose gradient is above ``eps`` (1e-8), so float32 rounding of the gradient (ZeRO sums it in another order, in flat
partitions, across ranks) changes a weight by far less than 1 % of a step except where ``|g|`` is near ``eps``. We
ask for 1e-5 (1 % of a step) on every weight and the same gradient norm to 1e-5 relative.
"""

from __future__ import annotations

import dataclasses
import json
import os
import pickle
import shutil

import pytest
import torch

pytest.importorskip("deepspeed", reason="the DeepSpeed learner needs the deepspeed extra (pip install '.[deepspeed]')")

import gymnasium as gym  # noqa: E402
from safetensors.torch import load_file  # noqa: E402

import tests.toy_env  # noqa: E402,F401  (the actors import the toy env by module name)
from lmmr1_agent.agents.hf import HFAgent  # noqa: E402
from lmmr1_agent.learner.checkpoint import latest_checkpoint  # noqa: E402
from lmmr1_agent.learner.config import ConfigError  # noqa: E402
from lmmr1_agent.learner.samples import episodes_to_samples  # noqa: E402
from lmmr1_agent.learner.trainer import Learner  # noqa: E402
from lmmr1_agent.rollout import play_episodes  # noqa: E402
from lmmr1_agent.train import run_stage  # noqa: E402
from tests.conftest import local_ray  # noqa: E402
from tests.test_train import tiny_config  # noqa: E402
from tests.tiny_vlms import FAMILIES  # noqa: E402

DIGITS = [{"id": "tests.toy_env:Toy/Digits-v0", "weight": 1.0, "kwargs": {}}]
#: PPO with a critic and a KL reference (every network the learner has), 4 micro-batches per optimizer step.
PPO = {"advantage_estimator": "gae", "init_kl_coef": 0.01, "train_batch_size": 8, "micro_train_batch_size": 2,
       "actor_learning_rate": 1e-3, "critic_learning_rate": 1e-3}


@pytest.fixture(scope="module")
def tiny_vl(tmp_path_factory):
    return FAMILIES["qwen2_5_vl"](tmp_path_factory.mktemp("zero") / "qwen2_5_vl")


def _samples(folder):
    agent = HFAgent(str(folder), temperature=1.0, max_new_tokens=6)
    make = lambda: gym.make("LMMR1/VisualMath-v0", image_size=(48, 48))  # noqa: E731
    samples = episodes_to_samples(list(play_episodes(make, agent, [0] * 4 + [1] * 4, demonstration=False)),
                                  [0] * 4 + [1] * 4)
    for sample, reward in zip(samples, [1, 0, 0, 1, 0, 1, 0, 0]):
        sample.reward = float(reward)
    return samples


@pytest.fixture(scope="module")
def torch_first_update(tiny_vl, tmp_path_factory):
    """The samples, the config and the torch learner's first update on them: what every ZeRO case is compared with."""
    config = tiny_config(tiny_vl, tmp_path_factory.mktemp("torch"), stage="mgt", generate_max_len=6, **PPO)
    samples = _samples(tiny_vl)
    return config, samples, *_first_update(tiny_vl, config, samples)


def _first_update(folder, config, samples):
    from lmmr1_agent.learner.zero import ZeroLearner

    torch.manual_seed(0)  # the critic's head
    policy = HFAgent(str(folder), temperature=1.0, max_new_tokens=6).policy
    learner = (ZeroLearner if config.zero_stage >= 0 else Learner)(config, policy)
    metrics = learner.update(samples)
    return metrics, learner.state_dict()


@pytest.mark.parametrize("stage,offload", [(2, False), (3, False), (2, True)])
def test_a_zero_learners_first_update_is_the_torch_learners(tiny_vl, torch_first_update, stage, offload):
    """ZeRO-2, ZeRO-3, and ZeRO-2 with the optimizer states offloaded to CPU memory (ZeRO-Offload)."""
    config, samples, torch_metrics, torch_weights = torch_first_update
    metrics, weights = _first_update(tiny_vl, dataclasses.replace(config, zero_stage=stage,
                                                                  offload_optimizer=offload), samples)
    start = HFAgent(str(tiny_vl)).model.state_dict()
    assert set(weights) == set(torch_weights) == set(start)
    assert max((torch_weights[k] - start[k]).abs().max() for k in start) > 5e-4  # the update moved the weights
    assert max((weights[k] - torch_weights[k]).abs().max() for k in start) < 1e-5
    assert metrics["losses/grad_norm"] == pytest.approx(torch_metrics["losses/grad_norm"], rel=1e-5)
    assert metrics["losses/value"] == pytest.approx(torch_metrics["losses/value"], rel=1e-5)
    assert metrics["losses/skipped_updates"] == 0


def test_zero3_checkpoints_resume_exactly_and_its_weights_load_into_a_fresh_model(tiny_vl, tmp_path):
    from transformers import AutoModelForImageTextToText

    config = tiny_config(tiny_vl, tmp_path / "straight", num_steps=2, eval_prompts=2, save_every=1,
                         rollout_batch_size=2, n_samples_per_prompt=4, zero_stage=3, envs=DIGITS, **PPO)
    run_stage(config, progress=False)
    first = tiny_config(tiny_vl, tmp_path / "resumed", num_steps=1, eval_prompts=2, save_every=1,
                        rollout_batch_size=2, n_samples_per_prompt=4, zero_stage=3, envs=DIGITS, **PPO)
    run_stage(first, progress=False)
    checkpoint = latest_checkpoint(tmp_path / "resumed" / "fre")
    assert (checkpoint / "deepspeed" / "actor").is_dir() and (checkpoint / "deepspeed" / "critic").is_dir()
    shutil.rmtree(tmp_path / "resumed" / "fre" / "final")
    run_stage(dataclasses.replace(first, num_steps=2), progress=False)  # resumes from step 1's checkpoint
    rows = [json.loads(line) for line in (tmp_path / "resumed" / "fre" / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [1, 2]
    straight = load_file(tmp_path / "straight" / "fre" / "final" / "model.safetensors")
    resumed = load_file(tmp_path / "resumed" / "fre" / "final" / "model.safetensors")
    assert all(torch.equal(straight[k], resumed[k]) for k in straight)
    model, info = AutoModelForImageTextToText.from_pretrained(tmp_path / "straight" / "fre" / "final",
                                                              output_loading_info=True)
    assert not info["missing_keys"] and not info["unexpected_keys"] and not info["mismatched_keys"]
    assert torch.equal(model.state_dict()["lm_head.weight"], straight["lm_head.weight"])


class _Payload:
    def __reduce__(self):
        return (os.system, ("touch pwned",))


def test_a_checkpoint_file_that_would_run_code_is_refused_before_deepspeed_unpickles_it(tiny_vl, tmp_path,
                                                                                         monkeypatch):
    config = tiny_config(tiny_vl, tmp_path, num_steps=1, eval_prompts=2, save_every=1, rollout_batch_size=2,
                         n_samples_per_prompt=4, zero_stage=2, envs=DIGITS)
    run_stage(config, progress=False)
    checkpoint = latest_checkpoint(tmp_path / "fre")
    target = next((checkpoint / "deepspeed" / "actor").glob("*optim_states.pt"))
    size = target.stat().st_size
    data = pickle.dumps(_Payload())
    target.write_bytes(data + b"\0" * (size - len(data)))  # same size: the checkpoint's file list still matches
    shutil.rmtree(tmp_path / "fre" / "final")
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ConfigError, match="holds more than tensors and plain data"):
        run_stage(dataclasses.replace(config, num_steps=2), progress=False)
    assert not (tmp_path / "pwned").exists()


def test_data_parallel_settings_are_checked_with_one_line_errors(tiny_vl, tmp_path):
    with pytest.raises(ConfigError, match="--zero-stage"):
        tiny_config(tiny_vl, tmp_path, learner_num_workers=2, num_env_runners=1)
    with pytest.raises(ConfigError, match="--num-env-runners"):
        tiny_config(tiny_vl, tmp_path, learner_num_workers=2, zero_stage=2)
    with pytest.raises(ConfigError, match="zero_stage must be"):
        tiny_config(tiny_vl, tmp_path, zero_stage=4)
    with pytest.raises(ConfigError, match="offload_optimizer needs"):
        tiny_config(tiny_vl, tmp_path, offload_optimizer=True, zero_stage=0)


@pytest.fixture(scope="module")
def cluster():
    with local_ray(3):
        yield


@pytest.mark.timeout(900)
def test_two_data_parallel_learners_on_ray_give_the_torch_learners_update(tiny_vl, tmp_path, cluster):
    """Two learner actors (gloo on loopback) split each optimizer step's micro-batches; ZeRO averages their
    gradients. After one step (rollouts from one runner actor, played from the same seeds as in-process) the
    weights are the in-process torch learner's, under ZeRO-3 (its weights partitioned over the two ranks). Each rank
    has its own placement-group bundle."""
    common = dict(num_steps=1, eval_prompts=2, rollout_batch_size=2, n_samples_per_prompt=4, envs=DIGITS, **PPO)
    run_stage(tiny_config(tiny_vl, tmp_path / "torch", **common), progress=False)
    reference = load_file(tmp_path / "torch" / "fre" / "final" / "model.safetensors")
    start = load_file(tiny_vl / "model.safetensors")
    assert max((reference[k] - start[k]).abs().max() for k in start) > 5e-4
    torch_norm = json.loads((tmp_path / "torch" / "fre" / "metrics.jsonl").read_text())["losses/grad_norm"]
    for stage in (3,):  # (ZeRO-2 in one process above; two ranks of ZeRO-3 also gather and partition across them)
        out = tmp_path / f"zero{stage}"
        run_stage(tiny_config(tiny_vl, out, zero_stage=stage, learner_num_workers=2, num_env_runners=1, **common),
                  progress=False)
        weights = load_file(out / "fre" / "final" / "model.safetensors")
        assert max((weights[k] - reference[k]).abs().max() for k in reference) < 1e-5, stage
        norm = json.loads((out / "fre" / "metrics.jsonl").read_text())["losses/grad_norm"]
        assert norm == pytest.approx(torch_norm, rel=1e-5)
