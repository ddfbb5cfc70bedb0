"""Any Hugging Face VLM (and chat LM) plugs in: tiny random models of each family, saved with their own processor and
chat template, are evaluated on a single-turn and a multi-turn env, trained one MGT (or FRE) step from the CLI, and
scored by the learner with the sampler's log-probs."""

from __future__ import annotations

import json

import gymnasium as gym
import pytest
import torch

import lmmr1_env  # noqa: F401
from lmmr1_agent.agents.hf import HFAgent
from lmmr1_agent.evaluate import main as evaluate
from lmmr1_agent.learner.samples import episodes_to_samples
from lmmr1_agent.learner.trainer import Learner, train_mode
from lmmr1_agent.rollout import play_episodes
from lmmr1_agent.train import main as train
from tests.test_train import tiny_config
from tests.tiny_vlms import FAMILIES, TEXT_FAMILIES

VISUAL = 'LMMR1/VisualMath-v0:{"image_size": [48, 48], "difficulty": 1}'
SOKOBAN_STEP = 'LMMR1/Sokoban-v0:{"mode": "step", "image_size": [40, 48], "max_steps": 2}'
#: Families whose images take fewer tokens when a prompt holds several: multi-turn episodes use history "last".
NOT_GROWING = {"llava_onevision"}


@pytest.fixture(scope="module", params=sorted(FAMILIES))
def family(request, tmp_path_factory):
    return request.param, FAMILIES[request.param](tmp_path_factory.mktemp(request.param))


@pytest.fixture(scope="module", params=sorted(TEXT_FAMILIES))
def text_family(request, tmp_path_factory):
    return request.param, TEXT_FAMILIES[request.param](tmp_path_factory.mktemp(request.param))


def test_evaluate_prints_its_table_on_a_picture_env_and_a_multi_turn_game(family, tmp_path, capsys):
    name, folder = family
    history = ["--history", "last"] if name in NOT_GROWING else []
    code = evaluate(["--agent", str(folder), "--env", VISUAL, "--env", SOKOBAN_STEP, "--episodes", "2",
                     "--temperature", "1", "--max-new-tokens", "4", "--output", str(tmp_path), "--no-progress",
                     *history])
    out = capsys.readouterr().out
    assert code == 0
    assert "LMMR1/VisualMath-v0" in out and "LMMR1/Sokoban-v0" in out
    results = json.loads((tmp_path / "results.json").read_text())
    assert [r["env"] for r in results["results"]] == ["LMMR1/VisualMath-v0", "LMMR1/Sokoban-v0"]
    assert all(r["episodes"] == 2 for r in results["results"])
    assert next(r for r in results["results"] if r["env"] == "LMMR1/Sokoban-v0")["mean_turns"] == 2


def test_the_learner_scores_a_multi_turn_image_sequence_with_the_samplers_logprobs(family):
    """Two-turn Sokoban episodes as one growing sequence (an image per turn; LLaVA-OneVision: a turn per prompt): in
    its training mode the learner reproduces every sampled token's log-prob to 1e-5; vision markers are never
    sampled."""
    name, folder = family
    agent = HFAgent(str(folder), temperature=1.0, max_new_tokens=4, seed=0)
    make = lambda: gym.make("LMMR1/Sokoban-v0", mode="step", image_size=(40, 48))  # noqa: E731
    history = "full"
    if name in NOT_GROWING:  # a clear error, then each turn as a fresh prompt with its own image
        with pytest.raises(ValueError, match="--history last"):
            list(play_episodes(make, agent, [0], history="full", demonstration=False, max_turns=2))
        history = "last"
    episodes = list(play_episodes(make, agent, [0, 1], history=history, demonstration=False, max_turns=2))
    assert [len(e.turns) for e in episodes] == [2, 2]
    assert not any(set(agent.banned_token_ids) & set(t.response_ids) for e in episodes for t in e.turns)
    config = tiny_config(folder, "unused", stage="mgt", history=history, generate_max_len=4,
                         envs=[{"id": "LMMR1/Sokoban-v0", "weight": 1.0, "kwargs": {}}],
                         freeze_prefix=["vision_tower", "projector"])
    learner = Learner(config, agent.policy)
    batch = learner.policy.sequences(episodes_to_samples(episodes, [0, 0]))
    train_mode(agent.model)
    with torch.no_grad():
        logp, _ = learner.policy.logprobs(batch)
    mask = batch["mask"]
    assert torch.allclose(logp[mask], batch["old_logprobs"][mask], atol=1e-5)


def _train(stage: str, folder, out, env: str, extra=()) -> dict:
    """One step of ``stage``. A random tiny model earns the same reward on every sample, so the group estimators
    would skip the update: PPO's critic (``gae``) gives nonzero advantages and trains the critic head too."""
    code = train(["--advantage-estimator", "gae", "--stage", stage, "--model", str(folder), "--env", env,
                  "--num-steps", "1", "--n-samples-per-prompt", "2", "--rollout-batch-size", "2",
                  "--micro-train-batch-size", "2",
                  "--generate-max-len", "4", "--eval-prompts", "2", "--output-dir", str(out), "--no-progress",
                  *extra])
    assert code == 0
    rows = [json.loads(line) for line in (out / stage / "metrics.jsonl").read_text().splitlines()]
    assert len(rows) == 1 and torch.isfinite(torch.tensor(rows[0]["losses/policy"]))
    return rows[0]


def test_one_mgt_step_from_the_base_model_keeps_the_vision_side_frozen(family, tmp_path):
    """`train --stage mgt --model DIR --from-base`: the shipped config's `vision_tower` and `projector` freeze the
    family's own modules; the result folder loads again as an agent (its processor saved beside it)."""
    from transformers import AutoModelForImageTextToText

    from lmmr1_agent.models.parts import vision_parts

    name, folder = family
    _train("mgt", folder, tmp_path, VISUAL, ["--from-base"])
    final = tmp_path / "mgt" / "final"
    before = AutoModelForImageTextToText.from_pretrained(folder).state_dict()
    after = AutoModelForImageTextToText.from_pretrained(final).state_dict()
    frozen = tuple(p for prefixes in vision_parts(AutoModelForImageTextToText.from_pretrained(folder)).values()
                   for p in prefixes)
    assert frozen, name
    kept = [k for k in before if k.startswith(frozen)]
    assert kept and all(torch.equal(before[k], after[k]) for k in kept)
    assert any(not torch.equal(before[k], after[k]) for k in before if not k.startswith(frozen))
    from lmmr1_agent.agents.processors import load_processor

    assert load_processor(str(final), HFAgent(str(final)).tokenizer) is not None  # the processor was saved


def _text_logprobs_match(folder) -> bool:
    agent = HFAgent(str(folder), temperature=1.0, max_new_tokens=4, seed=0)
    episodes = list(play_episodes(lambda: gym.make("LMMR1/TextMath-v0"), agent, [0, 1], demonstration=False))
    learner = Learner(tiny_config(folder, "unused", generate_max_len=4), agent.policy)
    batch = learner.policy.sequences(episodes_to_samples(episodes, [0, 0]))
    train_mode(agent.model)
    with torch.no_grad():
        logp, _ = learner.policy.logprobs(batch)
    return torch.allclose(logp[batch["mask"]], batch["old_logprobs"][batch["mask"]], atol=1e-5)


def test_a_text_chat_model_of_another_family_trains_one_fre_step(text_family, tmp_path):
    name, folder = text_family
    _train("fre", folder, tmp_path, 'LMMR1/TextMath-v0:{"difficulty": 1}')
    assert _text_logprobs_match(folder), name


def test_a_vlm_samples_and_scores_text_only_prompts_as_fre_trains_it(family):
    """FRE runs on the VLM itself (as LMM-R1 runs it on Qwen2.5-VL): prompts without images go through the same
    processor, and the learner's log-probs are the sampler's."""
    name, folder = family
    assert _text_logprobs_match(folder), name


def test_a_model_type_lmmr1_cannot_drive_is_one_line_naming_it(tmp_path):
    from transformers import ViTConfig

    ViTConfig(hidden_size=8, num_hidden_layers=1, num_attention_heads=2, intermediate_size=8).save_pretrained(tmp_path)
    with pytest.raises(ValueError, match="model type 'vit'.*tested: .*qwen2_5_vl.*gemma3"):
        HFAgent(str(tmp_path))


def test_a_qwen_folder_keeps_its_own_image_processor(tmp_path):
    """Qwen3-VL normalises with mean 0.5 (Qwen2.5-VL with CLIP's): the folder's processor is used, with the
    agent's pixel bounds, and saved with the checkpoints."""
    folder = FAMILIES["qwen3_vl"](tmp_path / "qwen3_vl")
    agent = HFAgent(str(folder), max_pixels=48 * 48)
    processor = agent.adapter.image_processor
    assert tuple(processor.image_mean) == (0.5, 0.5, 0.5) and processor.size["longest_edge"] == 48 * 48
    assert agent.processor is agent.adapter.processor
