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


class TorchUpdater:
    """The torch learner's optimizer for one network: AdamW on float32 master weights, the gradient clipped to
    ``max_norm``. :class:`~lmmr1_agent.learner.zero.ZeroUpdater` is DeepSpeed's, with the same calls."""

    #: A step needs no backward pass before it (an all-zero gradient is written in place).
    steps_without_backward = True

    def __init__(self, module: torch.nn.Module, weights: Sequence[torch.nn.Parameter], lr: float,
                 config: StageConfig):
        self.forward = module  # what runs the network's forward passes
        self.masters = MasterWeights(weights)
        self.params = self.masters.params
        self.optimizer = torch.optim.AdamW(self.params, lr=lr, betas=tuple(config.adam_betas),
                                           weight_decay=config.weight_decay)
        self.max_norm = config.max_norm

    def zero_grad(self) -> None:
        self.optimizer.zero_grad(set_to_none=True)

    def backward(self, loss: torch.Tensor) -> None:
        loss.backward()
        self.masters.gather()

    def clip(self, empty: bool) -> float:
        """Clip the accumulated gradient and return its norm. ``empty``: no micro-batch backpropagated anything;
        AdamW still steps on an all-zero gradient (its moments decay, its step count advances), as it would had the
        zero-advantage samples been run."""
        if empty:
            for p in self.params:
                p.grad = torch.zeros_like(p)
        self.norm = float(torch.nn.utils.clip_grad_norm_(self.params, self.max_norm))
        return self.norm

    def discard(self) -> None:
        """Drop the accumulated gradient without stepping."""
        self.zero_grad()

    def step(self) -> float | None:
        """Step on the clipped gradient; returns the gradient norm (None: the step was not applied)."""
        self.optimizer.step()
        self.masters.scatter()
        return self.norm

    def state(self, name: str) -> dict[str, Any]:
        """Checkpoint objects besides the optimizer: ``NAME_master_weights`` where the weights are low precision."""
        return {f"{name}master_weights": self.masters} if self.masters.copies else {}


class ValueModel(torch.nn.Module):
    """A critic: a copy of the policy's network with a scalar head on its last hidden state.

    ``forward`` returns values ``(batch, seq - 1)`` at the predict-next positions the response mask uses.
    """

    def __init__(self, body: torch.nn.Module, freeze_prefix: Sequence[str] = ()):
        super().__init__()
        self.body = body  # a copy of the policy's network, trained on its own
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
    :meth:`~lmmr1_agent.policy.Policy.logprobs` are the sampling ones), micro-batched with gradient accumulation.

    The optimizer of each network is an updater (:class:`TorchUpdater` here; DeepSpeed's in
    :class:`~lmmr1_agent.learner.zero.ZeroLearner`, which also runs data-parallel: each of ``world`` ranks gets every
    sample and trains on its share of the micro-batches)."""

    def __init__(self, config: StageConfig, policy: Policy):
        self.config, self.policy, self.model = config, policy, policy.model
        self.rank, self.world = self._ranks()
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
        # The reference and the critic's body are copies of the policy made before an updater takes it over (ZeRO-3
        # partitions the weights it is given). beta = 0 means no reference model at all (docs/algorithms.md §2).
        self.reference = None
        if config.init_kl_coef > 0:
            self.reference = copy.deepcopy(self.model).eval().requires_grad_(False)
        # PPO (gae) needs a critic: the policy's network with a scalar head, trained beside it.
        self.critic: ValueModel | None = None
        if config.advantage_estimator == "gae":
            self.critic = ValueModel(copy.deepcopy(self.model), self.frozen)
        self.actor = self._updater(self.model, trainable, config.actor_learning_rate)
        self.optimizer = self.actor.optimizer
        policy.forward = self.actor.forward
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(self.optimizer, self._lr_factor)
        self.critic_updater = None
        if self.critic is not None:
            self.critic_updater = self._updater(self.critic, [p for p in self.critic.parameters() if p.requires_grad],
                                                config.critic_learning_rate)

    # ---- what a subclass changes: the updaters, and the ranks ----

    def _updater(self, module: torch.nn.Module, weights: list[torch.nn.Parameter], lr: float) -> TorchUpdater:
        return TorchUpdater(module, weights, lr, self.config)

    def _ranks(self) -> tuple[int, int]:
        """``(rank, world)`` of the data-parallel learners; the torch learner is one."""
        return 0, 1

    def _all_reduce(self, values: list[float], op: str = "sum") -> list[float]:
        """``values`` summed (or maxed) over the ranks (themselves with one rank)."""
        return values

    # ---- the torch learner's names for its optimizer state ----

    @property
    def masters(self) -> MasterWeights:
        return self.actor.masters

    @property
    def critic_masters(self) -> MasterWeights | None:
        return self.critic_updater.masters if self.critic_updater is not None else None

    @property
    def critic_optimizer(self):
        return self.critic_updater.optimizer if self.critic_updater is not None else None

    def _lr_factor(self, step: int) -> float:
        cfg = self.config
        if cfg.lr_scheduler == "constant":
            return 1.0
        return alg.cosine_factor(step, cfg.num_steps, int(cfg.lr_warmup_ratio * cfg.num_steps))

    def _layout(self, n: int) -> list[tuple[range, list[range]]]:
        """The optimizer steps of one epoch over ``n`` samples: each step's samples and this rank's micro-batches of
        them (micro-batch ``k`` of a step is rank ``k % world``'s). Every rank gets as many micro-batches per step
        (an empty range pads; it runs a zero-weighted pass), because ZeRO's reductions and gathers are collective."""
        cfg, steps = self.config, []
        for lo in range(0, n, cfg.train_batch_size):
            chunk = range(lo, min(lo + cfg.train_batch_size, n))
            micros = [chunk[m : m + cfg.micro_train_batch_size] for m in range(0, len(chunk),
                                                                               cfg.micro_train_batch_size)]
            mine = micros[self.rank :: self.world]
            mine += [range(0)] * (math.ceil(len(micros) / self.world) - len(mine))
            steps.append((chunk, mine))
        return steps

    def _experience(self, samples: list[Sample], shaped: torch.Tensor) -> dict[str, list[torch.Tensor]]:
        """OpenRLHF's "make experience": reference log-probs, values, token rewards, advantages and returns.

        Computed for the whole rollout batch (this rank's part of it) before any update, so whitening spans all its
        valid tokens (on every rank). Per-sample 1-D tensors over the response tokens.
        """
        cfg = self.config
        out: dict[str, list[torch.Tensor]] = {"advantages": [], "returns": [], "values": [], "kl": []}
        passes = math.ceil(len(samples) / cfg.micro_train_batch_size)
        # a critic under ZeRO-3 gathers its weights in every forward: every rank runs as many
        passes = int(self._all_reduce([passes], "max")[0]) if self.critic is not None else passes
        with torch.no_grad():
            for k in range(passes):
                micro = samples[k * cfg.micro_train_batch_size : (k + 1) * cfg.micro_train_batch_size]
                if not micro:  # a rank with fewer samples: a pass to join the others' gathers
                    self.critic_updater.forward(**Policy.model_inputs(self.policy.sequences([self._spare])))
                    continue
                lo = k * cfg.micro_train_batch_size
                batch = self.policy.sequences(micro)
                mask = batch["mask"]
                kl = None
                if self.reference is not None:
                    ref_logp, _ = self.policy.logprobs(batch, self.reference)
                    kl = alg.kl_estimate(batch["old_logprobs"], ref_logp, cfg.kl_estimator)
                values = self.critic_updater.forward(**Policy.model_inputs(batch)) if self.critic is not None else None
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
        if alg.needs_whitening(cfg.advantage_estimator):
            out["advantages"] = self._whiten(out["advantages"])
        return out

    def _whiten(self, advantages: list[torch.Tensor]) -> list[torch.Tensor]:
        """Whitened advantages over every valid token of the rollout batch (all ranks' samples)."""
        if self.world == 1:
            if not advantages:
                return advantages
            flat = torch.cat(advantages)
            whitened = alg.whiten(flat[None], torch.ones_like(flat, dtype=torch.bool)[None])[0]
            return list(whitened.split([len(a) for a in advantages]))
        flat = torch.cat(advantages) if advantages else torch.zeros(0)
        total, count = self._all_reduce([float(flat.double().sum()), float(len(flat))])
        mean = total / max(count, 1.0)
        (square,) = self._all_reduce([float(((flat.double() - mean) ** 2).sum())])
        scale = 1 / math.sqrt(square / max(count, 1.0) + 1e-8)
        return list(((flat - mean) * scale).split([len(a) for a in advantages]))

    def _updaters(self) -> list:
        return [u for u in (self.actor, self.critic_updater) if u is not None]

    def _padding_pass(self, sample: Sample) -> None:
        """A zero-weighted forward and backward of one sample: a rank with no micro-batch left (or none with a
        nonzero advantage) still joins the collective reductions of the others; it adds nothing to the gradient."""
        batch = self.policy.sequences([sample])
        logp, _ = self.policy.logprobs(batch)
        self.actor.backward(logp.sum() * 0.0)
        if self.critic is not None:
            self.critic_updater.backward(self.critic_updater.forward(**Policy.model_inputs(batch)).sum() * 0.0)

    def update(self, samples: list[Sample]) -> dict[str, float]:
        """One training step on ``samples``: experience, then ``max_epochs`` passes of micro-batched updates."""
        cfg = self.config
        start = time.monotonic()
        rewards = torch.tensor([s.reward for s in samples])
        groups = torch.tensor([s.group for s in samples])
        shaped = alg.shape_rewards(rewards, groups, cfg.advantage_estimator)
        self._spare = samples[0]
        layout = self._layout(len(samples))
        kept = self._kept_samples(groups, shaped)
        mine = sorted(i for _, micros in layout for micro in micros for i in micro if kept[i])
        metrics = {"rollout/zero_advantage_share": 1 - int(kept.sum()) / max(1, len(samples))}
        row = {i: k for k, i in enumerate(mine)}  # sample index -> its row in experience
        experience = self._experience([samples[i] for i in mine], shaped[mine])
        metrics["perf/experience_seconds"] = time.monotonic() - start  # reference log-probs, values, advantages
        tokens = [len(s.response_ids) if s.response_mask is None else sum(s.response_mask) for s in samples]
        losses, value_losses, clips, grad_norms, skipped = [], [], [], [], 0
        train_mode(self.model)
        if self.critic is not None:
            train_mode(self.critic)  # (gradient checkpointing applies in training mode only)
        # The layout of optimizer steps and micro-batches is the one without skipping, so skipping is exact: a
        # skipped micro-batch adds 0, a partly skipped one is scaled to its whole denominator (alg.kept_share).
        for _ in range(cfg.max_epochs):
            for chunk, micros in layout:
                for updater in self._updaters():
                    updater.zero_grad()
                chunk_losses, chunk_values, passes = [], [], 0
                for micro in micros:
                    mine = [i for i in micro if i in row]
                    if not mine:
                        if micro:
                            chunk_losses.append(0.0)  # every advantage 0: the loss is exactly 0
                        if self.world > 1:
                            self._padding_pass(samples[chunk[0]])
                        continue
                    part = {k: [v[row[i]] for i in mine] for k, v in experience.items()}
                    loss, value_loss, stats = self._micro_loss([samples[i] for i in mine], part)
                    share = alg.kept_share([tokens[i] for i in micro], [i in row for i in micro],
                                           cfg.loss_aggregation)
                    # each rank's gradient is a share of the step's; data-parallel reductions average over ranks
                    scale = share * len(micro) / len(chunk) * self.world
                    self.actor.backward(loss * scale)
                    passes += 1
                    if value_loss is not None:
                        self.critic_updater.backward(value_loss * scale)
                        chunk_values.append(value_loss.item() * share)
                    chunk_losses.append(loss.item() * share)
                    clips.append(stats["clip_fraction"])
                empty = not any(i in row for i in chunk)
                if empty and passes == 0 and not self.actor.steps_without_backward and self.world == 1:
                    self._padding_pass(samples[chunk[0]])
                # One bad number would poison AdamW's moments for good: drop this update, keep the state. Every rank
                # decides the same (a rank that stepped alone would wait in the others' reduction).
                norms = [updater.clip(empty) for updater in self._updaters()]
                known = [n for n in norms if n is not None]  # (ZeRO 1-3 check their own norm in the step)
                finite = all(math.isfinite(x) for x in (*chunk_losses, *chunk_values, *known))
                (bad,) = self._all_reduce([float(not finite)], "max")
                if bad:
                    skipped += 1
                    for updater in self._updaters():
                        updater.discard()
                    continue
                stepped = [updater.step() for updater in self._updaters()]
                if any(s is None for s in stepped):  # DeepSpeed found a non-finite gradient and skipped the step itself
                    skipped += 1
                    continue
                losses.extend(chunk_losses)
                value_losses.extend(chunk_values)
                grad_norms.append(stepped[0])
        if skipped:
            warnings.warn(f"skipped {skipped} update(s) with a non-finite loss or gradient; weights and optimizer "
                          "state left as they were", RuntimeWarning, stacklevel=2)
        if grad_norms:  # the schedule advances with the steps that updated the policy
            self.scheduler.step()
        self.model.eval()
        if self.critic is not None:
            self.critic.eval()
        kl_tokens = torch.cat(experience["kl"]).cpu() if experience["kl"] else torch.zeros(0)
        means = self._means([losses, clips, kl_tokens.tolist() if self.world > 1 else [], value_losses])
        if self.world == 1:
            means[2] = float(kl_tokens.mean()) if len(kl_tokens) else 0.0
        metrics.update({"losses/skipped_updates": skipped,
                        "losses/policy": means[0],
                        "losses/clip_fraction": means[1],
                        "losses/kl": means[2],
                        "losses/grad_norm": float(np.mean(grad_norms)) if grad_norms else 0.0,
                        "perf/update_seconds": time.monotonic() - start,
                        "losses/lr": self.scheduler.get_last_lr()[0]})
        if value_losses:
            metrics["losses/value"] = means[3]
        return metrics

    def _means(self, lists: list[list[float]]) -> list[float]:
        """The mean of each list over every rank's entries (0 for none)."""
        if self.world == 1:
            return [float(np.mean(v)) if len(v) else 0.0 for v in lists]
        sums = self._all_reduce([x for v in lists for x in (float(np.sum(v)), float(len(v)))])
        return [total / count if count else 0.0 for total, count in zip(sums[::2], sums[1::2])]

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
            values = self.critic_updater.forward(**Policy.model_inputs(batch))
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
        extra = self.actor.state("")
        if self.critic is None:
            return extra
        return {**extra, **self.critic_updater.state("critic_"), "critic": self.critic,
                "critic_optimizer": self.critic_optimizer}

    def state_dict(self) -> dict[str, Any]:
        """The current policy weights, for runners that hold their own copy."""
        return self.model.state_dict()
