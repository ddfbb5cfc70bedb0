"""The learner's estimators and losses against numbers worked out by hand (docs/algorithms.md §1-4)."""

from __future__ import annotations

import math

import pytest
import torch

from lmmr1_agent.learner import (
    AGGREGATIONS,
    ESTIMATORS,
    advantages_and_returns,
    aggregate,
    entropy,
    kept_share,
    kl_estimate,
    kl_loss,
    masked_mean,
    needs_whitening,
    policy_loss,
    shape_rewards,
    token_rewards,
    value_loss,
    whiten,
)


def t(*rows) -> torch.Tensor:
    """t(1, 2) is a (2,) tensor, t([1, 2]) a one-row (1, 2) batch, t([1, 2], [3, 4]) a (2, 2) batch."""
    return torch.tensor(list(rows), dtype=torch.float32)


def close(actual: torch.Tensor, expected, atol: float = 1e-5) -> None:
    torch.testing.assert_close(actual, torch.as_tensor(expected, dtype=actual.dtype), atol=atol, rtol=0)


# ---- 1. group shaping ----


def test_group_norm_is_grpo_with_unbiased_std():
    # Group [1, 0, 0, 1]: mean 0.5, deviations ±0.5, unbiased var = 4·0.25 / 3 = 1/3, std = 0.57735;
    # advantages ±0.5 / 0.57735 = ±0.866025.
    shaped = shape_rewards(t(1, 0, 0, 1), torch.tensor([0, 0, 0, 0]), "group_norm")
    close(shaped, [0.866025, -0.866025, -0.866025, 0.866025])


def test_groups_are_found_by_id_not_by_position():
    # Interleaved groups 7 -> [1, 0] and 3 -> [2, 4]: each has deviations ±d and unbiased std |d|·sqrt(2), so
    # GRPO gives ±1/sqrt(2) = ±0.707107 in both, whatever the scale.
    shaped = shape_rewards(t(1, 2, 0, 4), torch.tensor([7, 3, 7, 3]), "group_norm")
    close(shaped, [0.707107, -0.707107, -0.707107, 0.707107])


@pytest.mark.parametrize("estimator", ["group_norm", "reinforce_baseline", "dr_grpo", "rloo"])
def test_identical_rewards_give_exact_zeros_and_no_nan(estimator):
    # 0.1 + 0.1 + 0.1 = 0.30000000000000004 in floating point, so a naive r - mean would not be exactly 0,
    # and std = 0 would turn that into a huge advantage; a constant group must give exactly 0.
    shaped = shape_rewards(t(0.1, 0.1, 0.1, 1.5, 1.5), torch.tensor([0, 0, 0, 1, 1]), estimator)
    assert torch.equal(shaped, torch.zeros(5))


@pytest.mark.parametrize("estimator", ["group_norm", "reinforce_baseline", "dr_grpo"])
def test_group_of_one_shapes_to_zero(estimator):
    # The lone sample (group 9) is its own mean; its std is undefined (n - 1 = 0): 0, not NaN.
    shaped = shape_rewards(t(1, 0, 5), torch.tensor([0, 0, 9]), estimator)
    assert shaped[2].item() == 0.0 and torch.isfinite(shaped).all()


def test_rloo_leave_one_out():
    # Group [3, 1, 2], n = 3, sum 6: baselines (6-3)/2 = 1.5, (6-1)/2 = 2.5, (6-2)/2 = 2
    # -> 3 - 1.5 = 1.5, 1 - 2.5 = -1.5, 2 - 2 = 0.
    close(shape_rewards(t(3, 1, 2), torch.tensor([0, 0, 0]), "rloo"), [1.5, -1.5, 0.0])


def test_rloo_needs_two_samples_per_group():
    with pytest.raises(ValueError, match=r"rloo needs at least 2 samples.*\[5\]"):
        shape_rewards(t(3, 1, 2), torch.tensor([0, 0, 5]), "rloo")


@pytest.mark.parametrize("estimator", ["reinforce_baseline", "dr_grpo"])
def test_mean_baseline(estimator):
    # Group [3, 1, 2]: mean 2 -> [1, -1, 0]; no division by the std.
    close(shape_rewards(t(3, 1, 2), torch.tensor([0, 0, 0]), estimator), [1.0, -1.0, 0.0])


@pytest.mark.parametrize("estimator", ["gae", "reinforce"])
def test_ungrouped_estimators_keep_the_reward(estimator):
    close(shape_rewards(t(3, 1, 2), None, estimator), [3.0, 1.0, 2.0])


def test_bad_names_are_errors_naming_value_and_choices():
    with pytest.raises(ValueError, match=r"'grpo'.*group_norm"):
        shape_rewards(t(1, 0), torch.tensor([0, 0]), "grpo")
    with pytest.raises(ValueError, match=r"'k4'.*k1, k2, k3"):
        kl_estimate(t(0.0), t(0.0), "k4")
    with pytest.raises(ValueError, match=r"'mean'.*token, sequence, dr_grpo"):
        aggregate(t([1.0]), t([1.0]), "mean")
    with pytest.raises(ValueError, match="group_ids"):
        shape_rewards(t(1, 0), None, "group_norm")
    assert set(AGGREGATIONS) == {"token", "sequence", "dr_grpo"} and len(ESTIMATORS) == 6


# ---- 2. KL estimators and token rewards ----


def test_kl_estimators_on_two_tokens():
    # l = logp - ref = [-1 - (-1.5), -2 - (-1)] = [0.5, -1.0]
    logp, ref = t([-1.0, -2.0]), t([-1.5, -1.0])
    close(kl_estimate(logp, ref, "k1"), [[0.5, -1.0]])  # k1 = l, signed
    close(kl_estimate(logp, ref, "k2"), [[0.125, 0.5]])  # l²/2
    # k3 = exp(-l) - 1 + l: exp(-0.5) - 0.5 = 0.106531; exp(1) - 2 = 0.718282
    close(kl_estimate(logp, ref, "k3"), [[0.106531, 0.718282]])


def test_kl_is_clamped_to_ten():
    # l = -20: k1 = -20 -> -10; k2 = 200 -> 10; k3 = exp(20) - 21 -> 10.
    logp, ref = t([-21.0]), t([-1.0])
    assert [kl_estimate(logp, ref, k).item() for k in ("k1", "k2", "k3")] == [-10.0, 10.0, 10.0]


RIGHT_PAD = t([1, 1, 1, 0], [1, 1, 0, 0])
LEFT_PAD = t([0, 1, 1, 1], [0, 0, 1, 1])


def test_token_rewards_right_padding():
    # β = 0.1, k = 1 everywhere (padding too): -0.1 per response token, 0 on padding. Shaped [2, 15]: 15 clips
    # to 10. Row 0's last token is index 2: -0.1 + 2 = 1.9; row 1's is index 1: -0.1 + 10 = 9.9.
    rewards = token_rewards(t(2.0, 15.0), torch.ones(2, 4), RIGHT_PAD, kl_coef=0.1)
    close(rewards, [[-0.1, -0.1, 1.9, 0.0], [-0.1, 9.9, 0.0, 0.0]])


def test_token_rewards_left_padding():
    # Same numbers; the last valid token of both rows is index 3.
    rewards = token_rewards(t(2.0, -15.0), torch.ones(2, 4), LEFT_PAD, kl_coef=0.1)
    close(rewards, [[0.0, -0.1, -0.1, 1.9], [0.0, 0.0, -0.1, -10.1]])


def test_token_rewards_without_reference_model():
    # β = 0 means no reference model: kl may be None, and only the shaped reward remains.
    rewards = token_rewards(t(1.0, -1.0), None, RIGHT_PAD, kl_coef=0.0)
    close(rewards, [[0.0, 0.0, 1.0, 0.0], [0.0, -1.0, 0.0, 0.0]])
    with pytest.raises(ValueError, match="no response token"):
        token_rewards(t(1.0, 1.0), None, t([1, 0], [0, 0]), kl_coef=0.0)


# ---- 3. advantages, returns, whitening ----


def test_gae_with_gamma_lambda_one_is_reward_to_go_minus_value():
    # Row 0 (full): R = [0, 0, 1], V = [0.5, 0.2, 0.7]; reward-to-go [1, 1, 1] -> A = [0.5, 0.8, 0.3], G = [1, 1, 1].
    # Row 1 (right-padded, garbage value 9 on the pad): R = [0.2, 1], V = [0.1, 0.4]; reward-to-go [1.2, 1]
    # -> A = [1.1, 0.6], G = [1.2, 1.0]; the pad bootstraps to 0 and stays 0.
    mask = t([1, 1, 1], [1, 1, 0])
    rewards, values = t([0, 0, 1], [0.2, 1, 0]), t([0.5, 0.2, 0.7], [0.1, 0.4, 9.0])
    adv, ret = advantages_and_returns(rewards, mask, "gae", values=values)
    close(adv, [[0.5, 0.8, 0.3], [1.1, 0.6, 0.0]])
    close(ret, [[1.0, 1.0, 1.0], [1.2, 1.0, 0.0]])


def test_gae_with_discount():
    # γ = λ = 0.5, R = [0, 1], V = [0.2, 0.4]: δ1 = 1 + 0 - 0.4 = 0.6; δ0 = 0 + 0.5·0.4 - 0.2 = 0;
    # A1 = 0.6, A0 = δ0 + 0.25·0.6 = 0.15; G = A + V = [0.35, 1.0].
    adv, ret = advantages_and_returns(t([0, 1]), t([1, 1]), "gae", values=t([0.2, 0.4]), gamma=0.5, lam=0.5)
    close(adv, [[0.15, 0.6]])
    close(ret, [[0.35, 1.0]])
    with pytest.raises(ValueError, match="values"):
        advantages_and_returns(t([0, 1]), t([1, 1]), "gae")


def test_reinforce_discounted_returns_and_forced_gamma():
    # γ = 0.5, R = [1, 0, 2] (left pad first): G2 = 2, G1 = 0 + 0.5·2 = 1, G0 = 1 + 0.5·1 = 1.5; A = G.
    rewards, mask = t([0, 1, 0, 2]), t([0, 1, 1, 1])
    adv, ret = advantages_and_returns(rewards, mask, "reinforce", gamma=0.5)
    close(ret, [[0.0, 1.5, 1.0, 2.0]])
    assert torch.equal(adv, ret)
    # Group estimators ignore γ: reward-to-go [3, 2, 2].
    for estimator in ("rloo", "reinforce_baseline", "group_norm", "dr_grpo"):
        close(advantages_and_returns(rewards, mask, estimator, gamma=0.5)[0], [[0.0, 3.0, 2.0, 2.0]])


def test_multi_turn_gaps_are_skipped_not_stepped_through():
    # A full-history sequence: response tokens a, b | two env tokens (mask 0, garbage values 9) | response token c.
    # GAE, γ = 0.5, λ = 1, R = [0, 0, 1] at a, b, c and V = [0.5, 0.6, 0.8]: the env tokens are skipped, so
    # A_c = 1 - 0.8 = 0.2; δ_b = 0 + 0.5·0.8 - 0.6 = -0.2, A_b = -0.2 + 0.5·0.2 = -0.1;
    # δ_a = 0.5·0.6 - 0.5 = -0.2, A_a = -0.2 + 0.5·(-0.1) = -0.25; G = A + V = [0.25, 0.5, 1.0].
    mask = t([1, 1, 0, 0, 1])
    rewards, values = t([0, 0, 0, 0, 1]), t([0.5, 0.6, 9.0, 9.0, 0.8])
    adv, ret = advantages_and_returns(rewards, mask, "gae", values=values, gamma=0.5, lam=1.0)
    close(adv, [[-0.25, -0.1, 0.0, 0.0, 0.2]])
    close(ret, [[0.25, 0.5, 0.0, 0.0, 1.0]])
    # REINFORCE, γ = 0.5: discounted per response token, G = [0.25, 0.5, 1]; the gap costs no discount.
    close(advantages_and_returns(rewards, mask, "reinforce", gamma=0.5)[1], [[0.25, 0.5, 0.0, 0.0, 1.0]])


def test_whitening_over_valid_tokens_only():
    # Valid [1, 2, 3, 4] (the 100 is padding): μ = 2.5, σ² = (2.25 + 0.25 + 0.25 + 2.25)/4 = 1.25,
    # (x - 2.5)/sqrt(1.25) = [-1.341641, -0.447214, 0.447214, 1.341641]; padding -> 0.
    mask = t([1, 1, 1, 0], [1, 0, 0, 0])
    white = whiten(t([1, 2, 3, 100], [4, 0, 0, 0]), mask)
    close(white, [[-1.341641, -0.447214, 0.447214, 0.0], [1.341641, 0.0, 0.0, 0.0]])
    valid = white[mask.bool()]
    assert abs(valid.mean().item()) < 1e-6 and abs(valid.pow(2).mean().item() - 1.0) < 1e-5


def test_which_estimators_whiten():
    assert [e for e in ESTIMATORS if needs_whitening(e)] == ["gae", "reinforce", "rloo", "reinforce_baseline"]


# ---- 4. losses ----

# Policy-loss fixture, ε = 0.2. log ρ = logp - old: row 0 [0.5, 0.5, -0.5], row 1 [-0.5, 0, pad].
# ρ = e^0.5 = 1.648721 or e^-0.5 = 0.606531. Per token -min(ρA, clip(ρ, 0.8, 1.2)·A):
#   ρ 1.6487, A +1: min(1.6487, 1.2)   =  1.2    -> -1.2      (clipped)
#   ρ 1.6487, A -1: min(-1.6487, -1.2) = -1.6487 -> +1.648721 (not clipped)
#   ρ 0.6065, A +1: min(0.6065, 0.8)   =  0.6065 -> -0.606531 (not clipped)
#   ρ 0.6065, A -1: min(-0.6065, -0.8) = -0.8    -> +0.8      (clipped)
#   ρ 1,      A +2:                              -> -2.0
LOGP = t([0.5, 0.5, -0.5], [-0.5, 0.0, 5.0])
OLD = t([0.0, 0.0, 0.0], [0.0, 0.0, -7.0])
ADV = t([1.0, -1.0, 1.0], [-1.0, 2.0, 3.0])
MASK = t([1, 1, 1], [1, 1, 0])
ROW0 = -1.2 + math.exp(0.5) - math.exp(-0.5)  # -0.157810
ROW1 = 0.8 - 2.0  # -1.2


def test_policy_loss_token_sequence_dr_grpo():
    loss, stats = policy_loss(LOGP, OLD, ADV, MASK)
    assert loss.item() == pytest.approx((ROW0 + ROW1) / 5, abs=1e-6)  # -1.357810 / 5 = -0.271562
    loss, _ = policy_loss(LOGP, OLD, ADV, MASK, aggregation="sequence")
    assert loss.item() == pytest.approx((ROW0 / 3 + ROW1 / 2) / 2, abs=1e-6)  # (-0.052603 - 0.6)/2 = -0.326302
    loss, _ = policy_loss(LOGP, OLD, ADV, MASK, aggregation="dr_grpo", max_len=4)
    assert loss.item() == pytest.approx((ROW0 + ROW1) / (2 * 4), abs=1e-6)  # -1.357810 / 8 = -0.169726
    # Clipped on 2 of 5 tokens; mean ρ = (2·1.648721 + 2·0.606531 + 1)/5 = 1.102101.
    assert stats["clip_fraction"] == pytest.approx(0.4)
    assert stats["ratio_mean"] == pytest.approx((2 * math.exp(0.5) + 2 * math.exp(-0.5) + 1) / 5, abs=1e-6)
    assert all(isinstance(v, float) for v in stats.values())
    with pytest.raises(ValueError, match="max_len"):
        policy_loss(LOGP, OLD, ADV, MASK, aggregation="dr_grpo")


def test_policy_loss_gradients():
    # Token mean over 5 tokens: d loss / d logp = -A·ρ/5 where the unclipped term is active, 0 where the clipped
    # one is (ρ outside [0.8, 1.2] on the side that would help) and on padding.
    logp = LOGP.clone().requires_grad_(True)
    policy_loss(logp, OLD, ADV, MASK)[0].backward()
    rho = math.exp(0.5), math.exp(-0.5)
    close(logp.grad, [[0.0, rho[0] / 5, -rho[1] / 5], [0.0, -2.0 / 5, 0.0]])
    assert torch.isfinite(logp.grad).all()


def test_aggregation_on_unequal_rows():
    # x row 0 [1, 2, 3], row 1 [4] (+ padding): token 10/4 = 2.5; sequence (2 + 4)/2 = 3; dr_grpo 10/(2·5) = 1.
    x, mask = t([1, 2, 3], [4, 50, 60]), t([1, 1, 1], [1, 0, 0])
    assert [aggregate(x, mask, a, max_len=5).item() for a in AGGREGATIONS] == [2.5, 3.0, 1.0]
    # A row without response tokens is left out of the sequence mean instead of making it NaN.
    x3, mask3 = torch.cat([x, t([9, 9, 9])]), torch.cat([mask, t([0, 0, 0])])
    assert aggregate(x3, mask3, "sequence").item() == 3.0
    assert masked_mean(x, torch.zeros_like(mask)).item() == 0.0


@pytest.mark.parametrize("aggregation", AGGREGATIONS)
def test_kept_rows_scaled_by_their_share_aggregate_like_the_whole_batch(aggregation):
    """What zero-advantage skipping relies on: rows whose values are all 0 can be left out of a batch exactly."""
    x = t([1, 2, 3, 0], [0, 0, 0, 0], [4, 5, 0, 0], [0, 0, 0, 0])
    mask = t([1, 1, 1, 0], [1, 1, 0, 0], [1, 1, 0, 0], [0, 0, 0, 0])  # row 3 has no response token
    kept = [True, False, True, False]
    share = kept_share(mask.sum(-1).int().tolist(), kept, aggregation)
    assert share == {"token": 5 / 7, "sequence": 2 / 3, "dr_grpo": 2 / 4}[aggregation]
    rows = torch.tensor(kept)
    whole = aggregate(x, mask, aggregation, max_len=4)
    close(aggregate(x[rows], mask[rows], aggregation, max_len=4) * share, whole.item())


def test_value_loss_clipping():
    # Token 0: V 1.0, V_old 0.5, G 1.2: V - V_old = 0.5 clips to 0.2, V_clip = 0.7; (0.7 - 1.2)² = 0.25 beats
    # (1.0 - 1.2)² = 0.04. Token 1: V 0.5, V_old 0.45, G 0.6: inside the clip, both 0.01.
    # Clipped: 0.5·(0.25 + 0.01)/2 = 0.065. Unclipped: 0.5·(0.04 + 0.01)/2 = 0.0125.
    values = t([1.0, 0.5]).requires_grad_(True)
    old, returns, mask = t([0.5, 0.45]), t([1.2, 0.6]), t([1, 1])
    loss, stats = value_loss(values, old, returns, mask)
    assert loss.item() == pytest.approx(0.065, abs=1e-6) and stats["clip_fraction"] == 0.5
    assert value_loss(values, old, returns, mask, clip=None)[0].item() == pytest.approx(0.0125, abs=1e-6)
    loss.backward()
    # The clipped term has no gradient in V; token 1: 0.5 · 2(V - G) / 2 = 0.5·(0.5 - 0.6) = -0.05.
    close(values.grad, [[0.0, -0.05]])


def test_kl_loss():
    # k3 on the two-token example: mean(0.106531, 0.718282) = 0.412406; β = 0.01 -> 0.00412406.
    loss = kl_loss(t([-1.0, -2.0]), t([-1.5, -1.0]), t([1, 1]), "k3", kl_coef=0.01)
    assert loss.item() == pytest.approx(0.00412406, abs=1e-7)
    assert kl_loss(t([-1.0, -2.0]), t([-1.5, -1.0]), t([1, 0]), "k1").item() == pytest.approx(0.5)


def test_entropy():
    # Uniform over 4 tokens: ln 4 = 1.386294; one-hot (other logits -inf): 0, not NaN. Padding ignored.
    logits = torch.tensor([[[0.0, 0.0, 0.0, 0.0], [0.0, -math.inf, -math.inf, -math.inf], [9.0, 1.0, 2.0, 3.0]]])
    assert entropy(logits, t([[1, 1, 0]])).item() == pytest.approx(math.log(4) / 2, abs=1e-6)


def test_gradients_flow_through_every_loss():
    torch.manual_seed(0)
    logits = torch.randn(2, 3, 5, requires_grad=True)
    logp = torch.log_softmax(logits, -1)[..., 0]
    values = torch.randn(2, 3, requires_grad=True)
    loss = (policy_loss(logp, logp.detach() - 0.1, ADV, MASK, aggregation="sequence")[0]
            + value_loss(values, values.detach() + 0.1, torch.zeros(2, 3), MASK)[0]
            + kl_loss(logp, logp.detach() + 0.3, MASK, "k2")
            - 0.01 * entropy(logits, MASK))
    loss.backward()
    for grad in (logits.grad, values.grad):
        assert torch.isfinite(grad).all() and grad.abs().sum() > 0


def test_cosine_schedule_warms_up_then_decays_to_a_tenth():
    """The one schedule the learner and the alignment share."""
    from lmmr1_agent.learner.algorithms import cosine_factor

    factors = [cosine_factor(step, 100, 10) for step in range(100)]
    assert all(math.isclose(a, b) for a, b in zip(factors[:3], [0.1, 0.2, 0.3]))
    assert factors[9] == 1.0 == cosine_factor(10, 100, 10)
    assert all(a >= b for a, b in zip(factors[10:], factors[11:]))
    assert abs(cosine_factor(100, 100, 10) - 0.1) < 1e-12
    assert cosine_factor(500, 100, 10) == cosine_factor(100, 100, 10)
    assert cosine_factor(0, 5, 0) == 1.0  # no warm-up asked: one step of it
