"""The learner's maths as small pure functions (docs/algorithms.md §1-4, after LMM-R1's OpenRLHF fork).

Token-level tensors are `(batch, seq)` over the response tokens, with `action_mask` 1 (or True) on tokens the
policy generated; rows may be left- or right-padded. Sequence-level tensors (`rewards`, `group_ids`) are
`(batch,)`. Nothing here touches a model, an optimizer or a process group.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch

ESTIMATORS = ("gae", "reinforce", "rloo", "reinforce_baseline", "dr_grpo", "group_norm")
KL_ESTIMATORS = ("k1", "k2", "k3")
AGGREGATIONS = ("token", "sequence", "dr_grpo")
GROUP_ESTIMATORS = ("rloo", "reinforce_baseline", "dr_grpo", "group_norm")  # shaped within each group; gamma is 1


def _check(kind: str, value: str, choices: tuple[str, ...]) -> str:
    if value not in choices:
        raise ValueError(f"unknown {kind} {value!r}; choose one of {', '.join(choices)}")
    return value


def check_estimator(estimator: str) -> str:
    """Return `estimator` if it is one of ESTIMATORS, else raise ValueError naming it and the choices."""
    return _check("advantage_estimator", estimator, ESTIMATORS)


def check_kl_estimator(estimator: str) -> str:
    """Return `estimator` if it is one of KL_ESTIMATORS, else raise ValueError naming it and the choices."""
    return _check("kl_estimator", estimator, KL_ESTIMATORS)


def check_aggregation(aggregation: str) -> str:
    """Return `aggregation` if it is one of AGGREGATIONS, else raise ValueError naming it and the choices."""
    return _check("aggregation", aggregation, AGGREGATIONS)


def needs_whitening(estimator: str) -> bool:
    """Whether advantages are whitened over the batch: every estimator except group_norm and dr_grpo."""
    return check_estimator(estimator) not in ("group_norm", "dr_grpo")


# ---- helpers shared by the losses ----


def _float(x: torch.Tensor) -> torch.Tensor:
    return x if x.is_floating_point() else x.float()


def masked_mean(x: torch.Tensor, mask: torch.Tensor, dim: int | None = None) -> torch.Tensor:
    """Mean of `x` over positions where `mask` is 1, along `dim` (all positions if None); 0 where nothing is valid."""
    mask = mask.bool()
    kept = torch.where(mask, x, torch.zeros_like(x))  # not x * mask: NaN or inf at padding must not leak in
    total, count = (kept.sum(), mask.sum()) if dim is None else (kept.sum(dim), mask.sum(dim))
    # An all-masked row or batch gives 0 rather than 0/0 = NaN.
    return total / count.clamp(min=1).to(total.dtype)


def aggregate(x: torch.Tensor, mask: torch.Tensor, aggregation: str, max_len: int | None = None) -> torch.Tensor:
    """Reduce per-token `x` `(batch, seq)` to a scalar: "token" (mean over all valid tokens), "sequence" (mean
    within each row, then over rows that have a valid token) or "dr_grpo" (sum over valid tokens / (batch·max_len)).
    """
    check_aggregation(aggregation)
    mask = mask.bool()
    if aggregation == "token":
        return masked_mean(x, mask)
    if aggregation == "sequence":
        per_row = masked_mean(x, mask, dim=-1)
        has_tokens = mask.any(dim=-1)
        return masked_mean(per_row, has_tokens)
    if max_len is None or max_len <= 0:
        raise ValueError(f"aggregation 'dr_grpo' needs max_len (the max generation length), got {max_len!r}")
    return torch.where(mask, x, 0.0).sum() / (x.shape[0] * max_len)


def kept_share(tokens: Sequence[int], kept: Sequence[bool], aggregation: str) -> float:
    """The kept rows' share of `aggregate`'s denominator over a whole batch: `aggregate` over the kept rows times
    this equals `aggregate` over the whole batch when the other rows' values are all 0 (zero-advantage rows).

    `tokens`: the valid tokens of each row; `kept`: whether each row is kept (at least one is).
    """
    check_aggregation(aggregation)
    if aggregation == "token":
        counts = list(tokens)
    elif aggregation == "sequence":
        counts = [int(n > 0) for n in tokens]
    else:  # dr_grpo divides by the rows (times max_len), whether or not they have tokens
        counts = [1] * len(tokens)
    # Both denominators clamp at 1, as masked_mean does.
    return max(1, sum(n for n, k in zip(counts, kept) if k)) / max(1, sum(counts))


# ---- 1. group shaping of the scalar reward ----


def shape_rewards(rewards: torch.Tensor, group_ids: torch.Tensor | None, estimator: str) -> torch.Tensor:
    """Shape `(batch,)` rewards within the groups given by `(batch,)` group_ids (docs/algorithms.md §1).

    A group whose rewards are all equal shapes to exactly 0. A group of one shapes to 0 for reinforce_baseline,
    dr_grpo and group_norm (the sample is its own baseline and its std is undefined); rloo raises.
    """
    check_estimator(estimator)
    rewards = _float(rewards)
    if estimator not in GROUP_ESTIMATORS:
        return rewards.clone()
    if group_ids is None or torch.as_tensor(group_ids).shape != rewards.shape:
        raise ValueError(f"{estimator} needs group_ids shaped like rewards {tuple(rewards.shape)}")
    ids, inverse, counts = torch.unique(torch.as_tensor(group_ids, device=rewards.device), return_inverse=True,
                                      return_counts=True)
    n = counts[inverse].to(rewards.dtype)
    group_sum = torch.zeros(len(counts), dtype=rewards.dtype, device=rewards.device).index_add_(0, inverse, rewards)
    group_max = torch.full_like(group_sum, -torch.inf).scatter_reduce(0, inverse, rewards, "amax")
    group_min = torch.full_like(group_sum, torch.inf).scatter_reduce(0, inverse, rewards, "amin")
    # Exact zeros for constant groups: sum/n is not exactly the shared value in floating point (0.1 * 3 / 3).
    constant = (group_max == group_min)[inverse]
    zero = torch.zeros_like(rewards)
    if estimator == "rloo":
        if bool((counts < 2).any()):
            bad = ids[counts < 2].tolist()
            raise ValueError(f"rloo needs at least 2 samples per group (n_samples_per_prompt); group ids {bad} have 1")
        baseline = (group_sum[inverse] - rewards) / (n - 1)
        return torch.where(constant, zero, rewards - baseline)
    centred = torch.where(constant, zero, rewards - group_sum[inverse] / n)
    if estimator != "group_norm":
        return centred
    sq = torch.zeros_like(group_sum).index_add_(0, inverse, centred**2)
    std = (sq[inverse] / (n - 1).clamp(min=1)).sqrt()  # unbiased, as torch.std; a group of one has centred == 0
    return centred / (std + 1e-9)


# ---- 2. KL estimate and token rewards ----


def kl_estimate(logprobs: torch.Tensor, ref_logprobs: torch.Tensor, estimator: str) -> torch.Tensor:
    """Per-token KL estimate `(batch, seq)` from policy and reference log-probs: k1, k2 or k3 of l = logp - ref_logp.

    Follows OpenRLHF's compute_approx_kl: float32 maths, k1 = l (signed, may be negative), k2 = l²/2,
    k3 = exp(-l) - 1 + l (>= 0), and the result clamped to [-10, 10].
    """
    check_kl_estimator(estimator)
    log_ratio = logprobs.float() - ref_logprobs.float()
    if estimator == "k1":
        kl = log_ratio
    elif estimator == "k2":
        kl = log_ratio**2 / 2.0
    else:
        kl = torch.exp(-log_ratio) - 1.0 + log_ratio
    return kl.clamp(min=-10.0, max=10.0)


def last_token_index(action_mask: torch.Tensor) -> torch.Tensor:
    """Index `(batch,)` of the last response token of each row (left or right padding); raises on an empty row."""
    mask = action_mask.bool()
    empty = ~mask.any(dim=-1)
    if bool(empty.any()):
        raise ValueError(f"action_mask rows {empty.nonzero().flatten().tolist()} have no response token")
    return mask.shape[-1] - 1 - mask.long().flip(-1).argmax(dim=-1)


def token_rewards(shaped: torch.Tensor, kl: torch.Tensor | None, action_mask: torch.Tensor, kl_coef: float,
                  clip: float = 10.0) -> torch.Tensor:
    """Token rewards `(batch, seq)`: -kl_coef·kl at every response token, plus the clipped `(batch,)` shaped
    reward at each row's last response token; 0 outside the mask. `kl` may be None when kl_coef is 0.
    """
    mask = action_mask.bool()
    shaped = _float(shaped).clamp(min=-clip, max=clip)
    rewards = torch.zeros(mask.shape, dtype=shaped.dtype, device=shaped.device)
    if kl_coef > 0:  # OpenRLHF treats a negative coefficient as 0
        if kl is None:
            raise ValueError(f"kl_coef={kl_coef} > 0 needs a kl tensor (a reference model)")
        rewards = torch.where(mask, -kl_coef * kl.to(shaped.dtype), rewards)
    last = last_token_index(mask)
    return rewards.scatter_add(1, last.unsqueeze(1), shaped.unsqueeze(1))


# ---- 3. advantages, returns, whitening ----


def advantages_and_returns(token_rewards: torch.Tensor, action_mask: torch.Tensor, estimator: str,
                           values: torch.Tensor | None = None, gamma: float = 1.0,
                           lam: float = 1.0) -> tuple[torch.Tensor, torch.Tensor]:
    """Advantages and returns, both `(batch, seq)` and 0 outside the mask: GAE with `values` for "gae",
    discounted returns (advantage = return) otherwise, with gamma forced to 1 for the group estimators.

    Positions outside the mask are skipped, not stepped through: in a multi-turn sequence the env's tokens
    between two responses neither discount nor break the bootstrap from one response to the next.
    """
    check_estimator(estimator)
    mask = action_mask.bool()
    zero = torch.zeros_like(token_rewards)
    rewards = torch.where(mask, token_rewards, zero)
    seq = rewards.shape[-1]
    if estimator == "gae":
        if values is None:
            raise ValueError("advantage_estimator 'gae' needs values from a critic")
        values = torch.where(mask, values.to(rewards.dtype), zero)
        # The value after a row's last response token is 0 (the episode ends there).
        advantages, running, next_value = [], torch.zeros_like(rewards[:, 0]), torch.zeros_like(rewards[:, 0])
        for t in reversed(range(seq)):
            delta = rewards[:, t] + gamma * next_value - values[:, t]
            valid = mask[:, t]
            running = torch.where(valid, delta + gamma * lam * running, running)
            next_value = torch.where(valid, values[:, t], next_value)
            advantages.append(running)
        adv = torch.stack(advantages[::-1], dim=1)
        return torch.where(mask, adv, zero), torch.where(mask, adv + values, zero)
    if estimator in GROUP_ESTIMATORS:
        gamma = 1.0
    returns, running = [], torch.zeros_like(rewards[:, 0])
    for t in reversed(range(seq)):
        running = torch.where(mask[:, t], rewards[:, t] + gamma * running, running)
        returns.append(running)
    ret = torch.where(mask, torch.stack(returns[::-1], dim=1), zero)
    return ret.clone(), ret


def whiten(advantages: torch.Tensor, action_mask: torch.Tensor, eps: float = 1e-8) -> torch.Tensor:
    """(A - μ) / sqrt(σ² + eps) with μ, σ² over the valid tokens of the whole `(batch, seq)` batch; 0 elsewhere.

    One process only: across data-parallel ranks, all-reduce Σ A, Σ (A - μ)² and the token count first.
    """
    mask = action_mask.bool()
    mean = masked_mean(advantages, mask)
    var = masked_mean((advantages - mean) ** 2, mask)
    return torch.where(mask, (advantages - mean) / torch.sqrt(var + eps), torch.zeros_like(advantages))


# ---- 4. losses ----


def policy_loss(logprobs: torch.Tensor, old_logprobs: torch.Tensor, advantages: torch.Tensor,
                action_mask: torch.Tensor, clip_eps: float = 0.2, aggregation: str = "token",
                max_len: int | None = None) -> tuple[torch.Tensor, dict[str, float]]:
    """Clipped-ratio policy loss over `(batch, seq)` tokens: -min(ρA, clip(ρ, 1±ε)A), aggregated to a scalar.

    Stats (floats): clip_fraction (tokens where the clipped term was the smaller), ratio_mean, approx_kl (k3 of
    old vs new), all token means over valid tokens.
    """
    log_ratio = logprobs - old_logprobs
    ratio = torch.exp(log_ratio)
    surr1 = ratio * advantages
    surr2 = ratio.clamp(1.0 - clip_eps, 1.0 + clip_eps) * advantages
    loss = aggregate(-torch.min(surr1, surr2), action_mask, aggregation, max_len)
    with torch.no_grad():
        stats = {
            "clip_fraction": masked_mean((surr2 < surr1).float(), action_mask).item(),
            "ratio_mean": masked_mean(ratio, action_mask).item(),
            "approx_kl": masked_mean(ratio - 1.0 - log_ratio, action_mask).item(),
        }
    return loss, stats


def value_loss(values: torch.Tensor, old_values: torch.Tensor, returns: torch.Tensor, action_mask: torch.Tensor,
               clip: float | None = 0.2, aggregation: str = "token",
               max_len: int | None = None) -> tuple[torch.Tensor, dict[str, float]]:
    """Critic loss 0.5·max((V_clip - G)², (V - G)²) over `(batch, seq)` tokens, V_clip = V_old + clip(V - V_old,
    ±clip) (unclipped when clip is None), aggregated to a scalar; stats: clip_fraction (clipped term larger).
    """
    unclipped = (values - returns) ** 2
    if clip is None:
        per_token, clipped_larger = unclipped, torch.zeros_like(unclipped, dtype=torch.bool)
    else:
        clipped = (old_values + (values - old_values).clamp(-clip, clip) - returns) ** 2
        per_token, clipped_larger = torch.max(clipped, unclipped), clipped > unclipped
    loss = 0.5 * aggregate(per_token, action_mask, aggregation, max_len)
    with torch.no_grad():
        stats = {"clip_fraction": masked_mean(clipped_larger.float(), action_mask).item()}
    return loss, stats


def kl_loss(logprobs: torch.Tensor, ref_logprobs: torch.Tensor, action_mask: torch.Tensor, estimator: str,
            aggregation: str = "token", kl_coef: float = 1.0, max_len: int | None = None) -> torch.Tensor:
    """"KL as a loss" (use_kl_loss): kl_coef · aggregate(k(logp - ref_logp)) over `(batch, seq)` tokens.

    kl_coef defaults to 1 so the caller may apply β itself, as OpenRLHF does (actor_loss + kl_loss · β).
    """
    return kl_coef * aggregate(kl_estimate(logprobs, ref_logprobs, estimator), action_mask, aggregation, max_len)


def entropy(logits: torch.Tensor, action_mask: torch.Tensor, aggregation: str = "token",
            max_len: int | None = None) -> torch.Tensor:
    """Mean policy entropy (nats) from `(batch, seq, vocab)` logits over the response tokens, aggregated to a
    scalar; the bonus is `loss - coef · entropy(...)`.
    """
    logp = torch.log_softmax(logits.float(), dim=-1)
    p = logp.exp()
    per_token = -(p * logp.masked_fill(p == 0, 0.0)).sum(dim=-1)  # 0·log 0 = 0 for banned (-inf) logits
    return aggregate(per_token, action_mask, aggregation, max_len)


def cosine_factor(step: int, total: int, warmup: int) -> float:
    """The learning-rate multiplier at ``step`` of ``total``: linear warm-up over ``warmup`` steps, then cosine decay
    to 0.1 (OpenRLHF's ``cosine_with_min_lr``, ``min_lr = 0.1 × lr``)."""
    warmup = max(1, warmup)
    if step < warmup:
        return (step + 1) / warmup
    progress = min(1.0, (step - warmup) / max(1, total - warmup))
    return 0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * progress))
