"""The learner, after LMM-R1's OpenRLHF fork: estimators and losses as pure functions (`algorithms`), the stage
config (`config`), episodes → samples (`samples`), the env-runner and learner halves (`trainer`), where they run
(`workers`: in-process; `ray_workers`: Ray actors), atomic checkpoints (`checkpoint`), plots."""

from lmmr1_agent.learner.algorithms import (
    AGGREGATIONS,
    ESTIMATORS,
    GROUP_ESTIMATORS,
    KL_ESTIMATORS,
    advantages_and_returns,
    aggregate,
    check_aggregation,
    check_estimator,
    check_kl_estimator,
    entropy,
    kl_estimate,
    kl_loss,
    last_token_index,
    masked_mean,
    needs_whitening,
    policy_loss,
    shape_rewards,
    token_rewards,
    value_loss,
    whiten,
)

__all__ = [
    "AGGREGATIONS",
    "ESTIMATORS",
    "GROUP_ESTIMATORS",
    "KL_ESTIMATORS",
    "advantages_and_returns",
    "aggregate",
    "check_aggregation",
    "check_estimator",
    "check_kl_estimator",
    "entropy",
    "kl_estimate",
    "kl_loss",
    "last_token_index",
    "masked_mean",
    "needs_whitening",
    "policy_loss",
    "shape_rewards",
    "token_rewards",
    "value_loss",
    "whiten",
]
