"""The pure math of the PPO trainer: advantages, KL, losses, normalisation, alpha schedules and
the RLSP combination of verifier and exploration rewards. No state beyond small controllers."""

from rlsp.algorithms.advantages import (
    ADVANTAGE_ESTIMATORS,
    AdvantageInputs,
    EstimatorTraits,
    compute_gae,
    compute_grpo_advantages,
    compute_reinforce_plus_plus,
    compute_rloo_advantages,
    estimator_traits,
    get_advantage_estimator,
    register_advantage_estimator,
)
from rlsp.algorithms.combine import (
    channel_sequence_rewards,
    combine_advantages,
    decoupled_token_rewards,
    gate_exploration,
    mix_channels,
    scores_on_last_token,
    terminal_token_rewards,
)
from rlsp.algorithms.kl import AdaptiveKLController, FixedKLController, kl_estimate
from rlsp.algorithms.losses import (
    aggregate_loss,
    clipped_policy_loss,
    clipped_value_loss,
    entropy_from_logits,
    explained_variance,
    kl_loss,
)
from rlsp.algorithms.normalization import (
    RewardNormalizer,
    RunningMeanStd,
    masked_mean,
    masked_var,
    masked_whiten,
)
from rlsp.algorithms.schedules import AlphaSchedule

__all__ = [
    "ADVANTAGE_ESTIMATORS",
    "AdaptiveKLController",
    "AdvantageInputs",
    "AlphaSchedule",
    "EstimatorTraits",
    "FixedKLController",
    "RewardNormalizer",
    "RunningMeanStd",
    "aggregate_loss",
    "channel_sequence_rewards",
    "clipped_policy_loss",
    "clipped_value_loss",
    "combine_advantages",
    "compute_gae",
    "compute_grpo_advantages",
    "compute_reinforce_plus_plus",
    "compute_rloo_advantages",
    "decoupled_token_rewards",
    "entropy_from_logits",
    "estimator_traits",
    "explained_variance",
    "gate_exploration",
    "get_advantage_estimator",
    "kl_estimate",
    "kl_loss",
    "masked_mean",
    "masked_var",
    "masked_whiten",
    "mix_channels",
    "register_advantage_estimator",
    "scores_on_last_token",
    "terminal_token_rewards",
]
