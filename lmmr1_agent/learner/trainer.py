"""The two halves of training, meeting through plain data (so Ray can put each on its own actor).

- :class:`EnvRunner`: envs + a policy copy → episodes, with the model's own token ids and log-probs.
- :class:`Learner`: episodes → advantages → clipped policy-gradient updates → new weights (a state dict).
"""

from __future__ import annotations

import copy
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import gymnasium as gym
import numpy as np
import torch

from lmmr1_agent.agents.hf import HFAgent
from lmmr1_agent.learner import algorithms as alg
from lmmr1_agent.learner.config import StageConfig
from lmmr1_agent.rollout import Episode, play_episodes

#: Seeds of different runs (and of eval vs train) never meet: each run's train seeds start at seed × STRIDE.
SEED_STRIDE = 10_000_000


@dataclass
class Sample:
    """One training sequence: a prompt, the policy's response to it, and the return credited to it."""

    prompt_ids: list[int]
    response_ids: list[int]
    logprobs: list[float]
    reward: float
    group: int
    conversation: list
    truncated: bool
    reward_terms: dict


def episodes_to_samples(episodes: Sequence[Episode], groups: Sequence[int]) -> list[Sample]:
    """Each turn becomes a sample whose reward is the return from that turn on (history ``last``)."""
    samples = []
    for episode, group in zip(episodes, groups):
        rewards = [t.reward for t in episode.turns]
        for k, turn in enumerate(episode.turns):
            if not turn.response_ids:
                continue  # an empty generation (immediate EOS is still one token): nothing to train
            samples.append(Sample(turn.prompt_ids, turn.response_ids, turn.response_logprobs,
                                  float(sum(rewards[k:])), group, turn.prompt, turn.truncated_response,
                                  turn.reward_terms))
    return samples


class EnvRunner:
    """Plays GRPO groups: each prompt is one env seed reset ``n`` times, so the group sees one task."""

    def __init__(self, config: StageConfig, agent: HFAgent):
        self.config, self.agent = config, agent
        self.weights = np.array([float(e.get("weight", 1.0)) for e in config.envs])
        self.weights /= self.weights.sum()

    def _make(self, index: int, split: str):
        spec = self.config.envs[index]
        return lambda: gym.make(spec["id"], **{**spec.get("kwargs", {}), "split": split})

    def collect(self, step: int) -> tuple[list[Episode], list[int]]:
        """The rollout of training ``step``: episodes and their group ids (deterministic in (seed, step))."""
        cfg = self.config
        rng = np.random.default_rng([cfg.seed, step])
        choices = rng.choice(len(cfg.envs), size=cfg.rollout_batch_size, p=self.weights)
        episodes, groups = [], []
        for env_index in sorted(set(choices.tolist())):
            prompts = [i for i, c in enumerate(choices) if c == env_index]
            seeds = [cfg.seed * SEED_STRIDE + step * cfg.rollout_batch_size + i for i in prompts]
            repeated = [s for s in seeds for _ in range(cfg.n_samples_per_prompt)]
            played = play_episodes(self._make(env_index, "train"), self.agent, repeated,
                                   env_id=cfg.envs[env_index]["id"], batch_size=len(repeated),
                                   history=cfg.history, demonstration=cfg.demonstration, max_turns=cfg.max_turns)
            episodes.extend(played)
            groups.extend(step * cfg.rollout_batch_size + i for i in prompts for _ in range(cfg.n_samples_per_prompt))
        return episodes, groups

    def evaluate(self, prompts: int, temperature: float) -> dict[str, float]:
        """Held-out score: ``prompts`` test-split seeds spread over the mixture, one sample each."""
        saved = self.agent.temperature
        self.agent.temperature = temperature
        returns, formats, successes = [], [], []
        #: A few episodes of the latest evaluation, for the sample pages.
        self.last_eval_episodes: list[Episode] = []
        try:
            share = np.floor(self.weights * prompts).astype(int)
            share[0] += prompts - share.sum()
            for index, count in enumerate(share.tolist()):
                for episode in play_episodes(self._make(index, "test"), self.agent, list(range(count)),
                                             batch_size=16, history=self.config.history,
                                             demonstration=self.config.demonstration, max_turns=self.config.max_turns):
                    returns.append(episode.total_return)
                    if len(self.last_eval_episodes) < 16:
                        self.last_eval_episodes.append(episode)
                    formats.append(float(episode.reward_terms.get("format", 0.0) > 0))
                    successes.append(float(bool(episode.success)))
        finally:
            self.agent.temperature = saved
        return {**_mean_se("reward", returns), **_mean_se("format", formats), **_mean_se("accuracy", successes)}

    def load_weights(self, state_dict: dict[str, torch.Tensor]) -> None:
        """Take the learner's new weights (one transfer; in-process this is the same model)."""
        if self.agent.model.state_dict() is not state_dict:
            self.agent.model.load_state_dict(state_dict, strict=False)


def _mean_se(name: str, values: Sequence[float]) -> dict[str, float]:
    n = len(values)
    mean = float(np.mean(values)) if n else 0.0
    se = float(np.std(values, ddof=1) / math.sqrt(n)) if n > 1 else 0.0
    return {name: mean, f"{name}_se": se}


class Learner:
    """Clipped policy-gradient updates on a Hugging Face model, micro-batched with gradient accumulation."""

    def __init__(self, config: StageConfig, agent: HFAgent):
        self.config, self.agent, self.model = config, agent, agent.model
        for name, param in self.model.named_parameters():
            if any(name.startswith(prefix) for prefix in config.freeze_prefix):
                param.requires_grad_(False)
        trainable = [p for p in self.model.parameters() if p.requires_grad]
        if not trainable:
            raise ValueError(f"freeze_prefix {config.freeze_prefix} froze every parameter")
        self.optimizer = torch.optim.AdamW(trainable, lr=config.actor_learning_rate, betas=tuple(config.adam_betas),
                                           weight_decay=config.weight_decay)
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(self.optimizer, self._lr_factor)
        # beta = 0 means no reference model at all (ALGORITHMS.md section 2).
        self.reference = None
        if config.init_kl_coef > 0:
            self.reference = copy.deepcopy(self.model).eval().requires_grad_(False)

    def _lr_factor(self, step: int) -> float:
        cfg = self.config
        if cfg.lr_scheduler == "constant":
            return 1.0
        warmup = max(1, int(cfg.lr_warmup_ratio * cfg.num_steps))
        if step < warmup:
            return (step + 1) / warmup
        progress = min(1.0, (step - warmup) / max(1, cfg.num_steps - warmup))
        return 0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * progress))

    def _batch(self, samples: Sequence[Sample]) -> dict[str, torch.Tensor]:
        """Right-padded prompt+response ids, the response mask (shifted to predict-next positions), images."""
        width = max(len(s.prompt_ids) + len(s.response_ids) for s in samples)
        pad = self.agent.tokenizer.pad_token_id
        ids = torch.full((len(samples), width), pad, dtype=torch.long)
        attention = torch.zeros((len(samples), width), dtype=torch.long)
        mask = torch.zeros((len(samples), width - 1), dtype=torch.bool)
        old = torch.zeros((len(samples), width - 1))
        for row, s in enumerate(samples):
            seq = s.prompt_ids + s.response_ids
            ids[row, : len(seq)] = torch.tensor(seq)
            attention[row, : len(seq)] = 1
            start = len(s.prompt_ids) - 1  # logits at position t predict token t + 1
            mask[row, start : start + len(s.response_ids)] = True
            old[row, start : start + len(s.response_ids)] = torch.tensor(s.logprobs)
        batch = {"input_ids": ids, "attention_mask": attention, "mask": mask, "old_logprobs": old}
        if hasattr(self.agent.adapter, "image_processor"):
            images = self.agent.adapter.prepare([s.conversation for s in samples])
            if "pixel_values" in images:
                batch["pixel_values"], batch["image_grid_thw"] = images["pixel_values"], images["image_grid_thw"]
        return batch

    def _logprobs(self, model, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        inputs = {k: batch[k] for k in ("input_ids", "attention_mask", "pixel_values", "image_grid_thw") if k in batch}
        logits = model(**inputs).logits[:, :-1].float() / self.config.temperature
        logp = torch.log_softmax(logits, dim=-1)
        taken = logp.gather(-1, batch["input_ids"][:, 1:, None]).squeeze(-1)
        return taken, logits

    def update(self, samples: list[Sample]) -> dict[str, float]:
        """One training step on ``samples``: advantages, then ``max_epochs`` passes of micro-batched updates."""
        cfg = self.config
        start = time.monotonic()
        rewards = torch.tensor([s.reward for s in samples])
        groups = torch.tensor([s.group for s in samples])
        shaped = alg.shape_rewards(rewards, groups, cfg.advantage_estimator)
        keep = list(range(len(samples)))
        if cfg.skip_zero_advantage_groups and cfg.init_kl_coef == 0:
            keep = [i for i in keep if shaped[i] != 0]
        metrics = {"rollout/zero_advantage_share": 1 - len(keep) / max(1, len(samples))}
        losses, clips, kls, grad_norms = [], [], [], []
        self.model.train()
        for _ in range(cfg.max_epochs):
            for lo in range(0, len(keep), cfg.train_batch_size):
                chunk = keep[lo : lo + cfg.train_batch_size]
                self.optimizer.zero_grad(set_to_none=True)
                for mlo in range(0, len(chunk), cfg.micro_train_batch_size):
                    micro = chunk[mlo : mlo + cfg.micro_train_batch_size]
                    loss, stats = self._micro_loss([samples[i] for i in micro], shaped[micro])
                    (loss * len(micro) / len(chunk)).backward()
                    losses.append(loss.item())
                    clips.append(stats["clip_fraction"])
                    kls.append(stats.get("kl", 0.0))
                params = [p for p in self.model.parameters() if p.requires_grad]
                grad_norms.append(float(torch.nn.utils.clip_grad_norm_(params, cfg.max_norm)))
                self.optimizer.step()
        if grad_norms:  # the schedule advances with the steps that updated the policy
            self.scheduler.step()
        self.model.eval()
        metrics.update({"losses/policy": float(np.mean(losses)) if losses else 0.0,
                        "losses/clip_fraction": float(np.mean(clips)) if clips else 0.0,
                        "losses/kl": float(np.mean(kls)) if kls else 0.0,
                        "losses/grad_norm": float(np.mean(grad_norms)) if grad_norms else 0.0,
                        "perf/update_seconds": time.monotonic() - start,
                        "losses/lr": self.scheduler.get_last_lr()[0]})
        return metrics

    def _micro_loss(self, samples: list[Sample], shaped: torch.Tensor) -> tuple[torch.Tensor, dict[str, float]]:
        cfg = self.config
        batch = self._batch(samples)
        mask = batch["mask"]
        logp, logits = self._logprobs(self.model, batch)
        kl = None
        if self.reference is not None:
            with torch.no_grad():
                ref_logp, _ = self._logprobs(self.reference, batch)
            kl = alg.kl_estimate(logp.detach(), ref_logp, cfg.kl_estimator)
        reward_kl = 0.0 if cfg.use_kl_loss else cfg.init_kl_coef
        token_rewards = alg.token_rewards(shaped, kl, mask, reward_kl)
        advantages, _ = alg.advantages_and_returns(token_rewards, mask, cfg.advantage_estimator)
        if alg.needs_whitening(cfg.advantage_estimator):
            advantages = alg.whiten(advantages, mask)
        loss, stats = alg.policy_loss(logp, batch["old_logprobs"], advantages, mask, clip_eps=cfg.eps_clip,
                                      aggregation=cfg.loss_aggregation, max_len=cfg.generate_max_len)
        if self.reference is not None:
            stats["kl"] = float(alg.masked_mean(kl, mask))
            if cfg.use_kl_loss:
                loss = loss + alg.kl_loss(logp, ref_logp, mask, cfg.kl_estimator, cfg.loss_aggregation,
                                          kl_coef=cfg.init_kl_coef, max_len=cfg.generate_max_len)
        if cfg.entropy_coef:
            loss = loss - cfg.entropy_coef * alg.entropy(logits, mask, cfg.loss_aggregation, cfg.generate_max_len)
        return loss, stats

    def state_dict(self) -> dict[str, Any]:
        """The current policy weights, for runners that hold their own copy."""
        return self.model.state_dict()
