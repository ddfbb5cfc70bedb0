"""The learner half of a training step: episodes → advantages → clipped policy-gradient updates → new weights (a
state dict). It meets the env-runner half (:mod:`lmmr1_agent.learner.runner`) through plain data, so Ray can put each
on its own actor; the loop that alternates them is :func:`lmmr1_agent.train.run_stage`'s."""

from __future__ import annotations

import copy
import math
import time
import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from lmmr1_agent.learner import algorithms as alg
from lmmr1_agent.learner.config import StageConfig
from lmmr1_agent.learner.samples import Sample
from lmmr1_agent.models.parts import frozen_prefixes
from lmmr1_agent.policy import Policy


def train_mode(model: torch.nn.Module) -> torch.nn.Module:
    """``model.train()``, except batch-norm layers, which keep normalising with their running statistics: in
    training mode they would normalise by the micro-batch, so the learner's log-probs would depend on which
    samples share it and differ from the sampler's, and their statistics would drift even in a frozen tower."""
    model.train()
    for module in model.modules():
        if isinstance(module, torch.nn.modules.batchnorm._BatchNorm):
            module.eval()
    return model


class MasterWeights:
    """What an optimizer steps for some trainable weights: the weights themselves when they are float32, else float32
    copies of them, copied back after every step. AdamW on bfloat16 weights rounds an update below about 2^-8 of a
    weight away, so at LMM-R1's learning rates (1e-6) the policy would never move."""

    def __init__(self, weights: Sequence[torch.nn.Parameter]):
        self.weights = list(weights)
        self.copies = any(w.dtype != torch.float32 for w in self.weights)
        self.params = ([w.detach().float().clone().requires_grad_() for w in self.weights] if self.copies
                       else self.weights)

    def gather(self) -> None:
        """Add the weights' gradients into the float32 copies' and clear them (nothing to do without copies). Called
        after every micro-batch, so gradient accumulation happens in float32."""
        if self.copies:
            for weight, master in zip(self.weights, self.params):
                if weight.grad is not None:
                    master.grad = weight.grad.float() if master.grad is None else master.grad.add_(weight.grad)
                    weight.grad = None

    @torch.no_grad()
    def scatter(self) -> None:
        """Write the stepped float32 copies back into the weights."""
        if self.copies:
            for weight, master in zip(self.weights, self.params):
                weight.copy_(master)

    def state_dict(self) -> dict[str, list[torch.Tensor]]:
        return {"params": [m.detach() for m in self.params] if self.copies else []}

    @torch.no_grad()
    def load_state_dict(self, state: dict[str, list[torch.Tensor]]) -> None:
        for master, saved in zip(self.params if self.copies else [], state.get("params", [])):
            master.copy_(saved)
        self.scatter()


class ValueModel(torch.nn.Module):
    """A critic: a copy of the policy's network with a scalar head on its last hidden state.

    ``forward`` returns values ``(batch, seq - 1)`` at the predict-next positions the response mask uses.
    """

    def __init__(self, policy: torch.nn.Module, freeze_prefix: Sequence[str] = ()):
        super().__init__()
        self.body = copy.deepcopy(policy)
        for name, param in self.body.named_parameters():
            param.requires_grad_(not any(name.startswith(p) for p in freeze_prefix))
        hidden = self.body.config.get_text_config().hidden_size
        first = next(self.body.parameters())
        self.head = torch.nn.Linear(hidden, 1, device=first.device, dtype=first.dtype)
        torch.nn.init.normal_(self.head.weight, std=1 / (hidden + 1))
        torch.nn.init.zeros_(self.head.bias)

    def forward(self, **inputs: torch.Tensor) -> torch.Tensor:
        hidden = self.body(**inputs, output_hidden_states=True).hidden_states[-1]
        return self.head(hidden).squeeze(-1)[:, :-1].float()


class Learner:
    """Clipped policy-gradient updates on a :class:`~lmmr1_agent.policy.Policy` (the sampler's own: its
    :meth:`~lmmr1_agent.policy.Policy.logprobs` are the sampling ones), micro-batched with gradient accumulation."""

    def __init__(self, config: StageConfig, policy: Policy):
        self.config, self.policy, self.model = config, policy, policy.model
        #: The parameter-name prefixes ``config.freeze_prefix`` means for this model (aliases resolved).
        self.frozen = frozen_prefixes(self.model, config.freeze_prefix)
        for name, param in self.model.named_parameters():
            if name.startswith(self.frozen):
                param.requires_grad_(False)
        trainable = [p for p in self.model.parameters() if p.requires_grad]
        if not trainable:
            raise ValueError(f"freeze_prefix {config.freeze_prefix} froze every parameter")
        if config.gradient_checkpointing:
            self.model.activation_checkpointing_enable(activation_checkpointing_kwargs={"use_reentrant": False})
            # a checkpointed forward in training mode keeps no cache, which a shared prompt continues from
            policy.share_prefix = False
        self.masters = MasterWeights(trainable)
        self.optimizer = torch.optim.AdamW(self.masters.params, lr=config.actor_learning_rate,
                                           betas=tuple(config.adam_betas), weight_decay=config.weight_decay)
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(self.optimizer, self._lr_factor)
        # beta = 0 means no reference model at all (docs/algorithms.md §2).
        self.reference = None
        if config.init_kl_coef > 0:
            self.reference = copy.deepcopy(self.model).eval().requires_grad_(False)
        # PPO (gae) needs a critic: the policy's network with a scalar head, trained beside it.
        self.critic: ValueModel | None = None
        self.critic_optimizer = self.critic_masters = None
        if config.advantage_estimator == "gae":
            self.critic = ValueModel(self.model, self.frozen)
            self.critic_masters = MasterWeights([p for p in self.critic.parameters() if p.requires_grad])
            self.critic_optimizer = torch.optim.AdamW(self.critic_masters.params, lr=config.critic_learning_rate,
                                                      betas=tuple(config.adam_betas), weight_decay=config.weight_decay)

    def _lr_factor(self, step: int) -> float:
        cfg = self.config
        if cfg.lr_scheduler == "constant":
            return 1.0
        return alg.cosine_factor(step, cfg.num_steps, int(cfg.lr_warmup_ratio * cfg.num_steps))

    def _experience(self, samples: list[Sample], shaped: torch.Tensor) -> dict[str, list[torch.Tensor]]:
        """OpenRLHF's "make experience": reference log-probs, values, token rewards, advantages and returns.

        Computed for the whole rollout batch before any update, so whitening spans all its valid tokens.
        Per-sample 1-D tensors over the response tokens.
        """
        cfg = self.config
        out: dict[str, list[torch.Tensor]] = {"advantages": [], "returns": [], "values": [], "kl": []}
        with torch.no_grad():
            for lo in range(0, len(samples), cfg.micro_train_batch_size):
                micro = samples[lo : lo + cfg.micro_train_batch_size]
                batch = self.policy.sequences(micro)
                mask = batch["mask"]
                kl = None
                if self.reference is not None:
                    ref_logp, _ = self.policy.logprobs(batch, self.reference)
                    kl = alg.kl_estimate(batch["old_logprobs"], ref_logp, cfg.kl_estimator)
                values = self.critic(**Policy.model_inputs(batch)) if self.critic is not None else None
                reward_kl = 0.0 if cfg.use_kl_loss else cfg.init_kl_coef
                rewards = alg.token_rewards(shaped[lo : lo + len(micro)].to(mask.device), kl, mask, reward_kl)
                advantages, returns = alg.advantages_and_returns(rewards, mask, cfg.advantage_estimator,
                                                                 values=values, gamma=cfg.gamma, lam=cfg.lambd)
                for row in range(len(micro)):
                    keep = mask[row]
                    none = torch.zeros(int(keep.sum()), device=mask.device)
                    out["advantages"].append(advantages[row][keep])
                    out["returns"].append(returns[row][keep])
                    out["values"].append(values[row][keep] if values is not None else none)
                    out["kl"].append(kl[row][keep] if kl is not None else none)
        if alg.needs_whitening(cfg.advantage_estimator) and out["advantages"]:
            flat = torch.cat(out["advantages"])
            whitened = alg.whiten(flat[None], torch.ones_like(flat, dtype=torch.bool)[None])[0]
            out["advantages"] = list(whitened.split([len(a) for a in out["advantages"]]))
        return out

    def update(self, samples: list[Sample]) -> dict[str, float]:
        """One training step on ``samples``: experience, then ``max_epochs`` passes of micro-batched updates."""
        cfg = self.config
        start = time.monotonic()
        rewards = torch.tensor([s.reward for s in samples])
        groups = torch.tensor([s.group for s in samples])
        shaped = alg.shape_rewards(rewards, groups, cfg.advantage_estimator)
        keep = self._kept_samples(groups, shaped).nonzero().flatten().tolist()
        metrics = {"rollout/zero_advantage_share": 1 - len(keep) / max(1, len(samples))}
        row = {i: k for k, i in enumerate(keep)}  # sample index -> its row in experience
        experience = self._experience([samples[i] for i in keep], shaped[keep])
        tokens = [len(s.response_ids) if s.response_mask is None else sum(s.response_mask) for s in samples]
        params = self.masters.params
        losses, value_losses, clips, grad_norms, skipped = [], [], [], [], 0
        train_mode(self.model)
        if self.critic is not None:
            train_mode(self.critic)  # (gradient checkpointing applies in training mode only)
        # The layout of optimizer steps and micro-batches is the one without skipping, so skipping is exact: a
        # skipped micro-batch adds 0, a partly skipped one is scaled to its whole denominator (alg.kept_share).
        for _ in range(cfg.max_epochs):
            for lo in range(0, len(samples), cfg.train_batch_size):
                chunk = range(lo, min(lo + cfg.train_batch_size, len(samples)))
                self.optimizer.zero_grad(set_to_none=True)
                if self.critic_optimizer is not None:
                    self.critic_optimizer.zero_grad(set_to_none=True)
                chunk_losses, chunk_values = [], []
                for mlo in range(0, len(chunk), cfg.micro_train_batch_size):
                    micro = chunk[mlo : mlo + cfg.micro_train_batch_size]
                    mine = [i for i in micro if i in row]
                    if not mine:
                        chunk_losses.append(0.0)  # every advantage 0: the loss is exactly 0
                        continue
                    part = {k: [v[row[i]] for i in mine] for k, v in experience.items()}
                    loss, value_loss, stats = self._micro_loss([samples[i] for i in mine], part)
                    share = alg.kept_share([tokens[i] for i in micro], [i in row for i in micro],
                                           cfg.loss_aggregation)
                    scale = share * len(micro) / len(chunk)
                    (loss * scale).backward()
                    self.masters.gather()
                    if value_loss is not None:
                        (value_loss * scale).backward()
                        self.critic_masters.gather()
                        chunk_values.append(value_loss.item() * share)
                    chunk_losses.append(loss.item() * share)
                    clips.append(stats["clip_fraction"])
                if not any(i in row for i in chunk):
                    # AdamW still steps on an all-zero gradient (its moments decay, its step count advances), as
                    # it would without skipping.
                    for p in params:
                        p.grad = torch.zeros_like(p)
                grad_norm = float(torch.nn.utils.clip_grad_norm_(params, cfg.max_norm))
                critic_norm = 0.0
                if self.critic_optimizer is not None:
                    critic_norm = float(torch.nn.utils.clip_grad_norm_(self.critic_masters.params, cfg.max_norm))
                if not all(math.isfinite(x) for x in (*chunk_losses, *chunk_values, grad_norm, critic_norm)):
                    # One bad number would poison AdamW's moments for good: drop this update, keep the state.
                    skipped += 1
                    self.optimizer.zero_grad(set_to_none=True)
                    if self.critic_optimizer is not None:
                        self.critic_optimizer.zero_grad(set_to_none=True)
                    continue
                losses.extend(chunk_losses)
                value_losses.extend(chunk_values)
                grad_norms.append(grad_norm)
                self.optimizer.step()
                self.masters.scatter()
                if self.critic_optimizer is not None:
                    self.critic_optimizer.step()
                    self.critic_masters.scatter()
        if skipped:
            warnings.warn(f"skipped {skipped} update(s) with a non-finite loss or gradient; weights and optimizer "
                          "state left as they were", RuntimeWarning, stacklevel=2)
        if grad_norms:  # the schedule advances with the steps that updated the policy
            self.scheduler.step()
        self.model.eval()
        if self.critic is not None:
            self.critic.eval()
        kl_tokens = torch.cat(experience["kl"]).cpu() if experience["kl"] else torch.zeros(0)
        metrics.update({"losses/skipped_updates": skipped,
                        "losses/policy": float(np.mean(losses)) if losses else 0.0,
                        "losses/clip_fraction": float(np.mean(clips)) if clips else 0.0,
                        "losses/kl": float(kl_tokens.mean()) if len(kl_tokens) else 0.0,
                        "losses/grad_norm": float(np.mean(grad_norms)) if grad_norms else 0.0,
                        "perf/update_seconds": time.monotonic() - start,
                        "losses/lr": self.scheduler.get_last_lr()[0]})
        if value_losses:
            metrics["losses/value"] = float(np.mean(value_losses))
        return metrics

    def _kept_samples(self, groups: torch.Tensor, shaped: torch.Tensor) -> torch.Tensor:
        """Which samples ``(batch,)`` the update trains on: all, or with ``skip_zero_advantage_groups`` those of groups
        with a nonzero advantage. Skipping is on only where it is exact: a zero shaped reward is a zero advantage
        (group estimators without whitening, no KL term, no critic) and adds no gradient (no entropy bonus)."""
        cfg = self.config
        if not (cfg.skip_zero_advantage_groups and cfg.advantage_estimator in ("group_norm", "dr_grpo")
                and cfg.init_kl_coef == 0 and cfg.entropy_coef == 0):
            return torch.ones(len(shaped), dtype=torch.bool)
        ids, inverse = torch.unique(groups, return_inverse=True)
        signal = torch.zeros(len(ids)).index_add_(0, inverse, shaped.abs().float())
        return signal[inverse] > 0

    @staticmethod
    def _place(rows: list[torch.Tensor], mask: torch.Tensor) -> torch.Tensor:
        """Per-sample 1-D response tensors laid out in the micro-batch's ``(batch, seq)`` mask."""
        out = torch.zeros(mask.shape, device=mask.device)
        for row, values in enumerate(rows):
            out[row, mask[row]] = values
        return out

    def _micro_loss(self, samples: list[Sample], experience: dict[str, list[torch.Tensor]]
                    ) -> tuple[torch.Tensor, torch.Tensor | None, dict[str, float]]:
        cfg = self.config
        batch = self.policy.sequences(samples)
        mask = batch["mask"]
        logp, logits = self.policy.logprobs(batch)
        advantages = self._place(experience["advantages"], mask)
        loss, stats = alg.policy_loss(logp, batch["old_logprobs"], advantages, mask, clip_eps=cfg.eps_clip,
                                      aggregation=cfg.loss_aggregation, max_len=cfg.generate_max_len)
        if self.reference is not None and cfg.use_kl_loss:
            with torch.no_grad():
                ref_logp, _ = self.policy.logprobs(batch, self.reference)
            loss = loss + alg.kl_loss(logp, ref_logp, mask, cfg.kl_estimator, cfg.loss_aggregation,
                                      kl_coef=cfg.init_kl_coef, max_len=cfg.generate_max_len)
        if cfg.entropy_coef:
            response = mask[:, mask.shape[1] - logits.shape[1] :]  # the logits start at the first response position
            loss = loss - cfg.entropy_coef * alg.entropy(logits, response, cfg.loss_aggregation, cfg.generate_max_len)
        value_loss = None
        if self.critic is not None:
            values = self.critic(**Policy.model_inputs(batch))
            value_loss, _ = alg.value_loss(values, self._place(experience["values"], mask),
                                           self._place(experience["returns"], mask), mask, clip=cfg.value_clip,
                                           aggregation=cfg.loss_aggregation, max_len=cfg.generate_max_len)
        return loss, value_loss, stats

    def load_reference(self, folder: str) -> None:
        """Reload the KL reference from the stage's starting model ``folder``. On a resume the policy is loaded from
        the checkpoint, so the reference copied from it would move with every resume; it must stay the start."""
        if self.reference is not None:
            start = type(self.model).from_pretrained(folder, dtype=next(self.model.parameters()).dtype)
            self.reference.load_state_dict(start.state_dict())

    def extra_state(self) -> dict[str, Any]:
        """What a checkpoint needs besides the policy, optimizer and scheduler: float32 master weights where the
        weights are lower precision, the critic and its optimizer."""
        extra = {"master_weights": self.masters} if self.masters.copies else {}
        if self.critic is None:
            return extra
        if self.critic_masters.copies:
            extra["critic_master_weights"] = self.critic_masters
        return {**extra, "critic": self.critic, "critic_optimizer": self.critic_optimizer}

    def state_dict(self) -> dict[str, Any]:
        """The current policy weights, for runners that hold their own copy."""
        return self.model.state_dict()
