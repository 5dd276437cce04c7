"""Advantage estimators, selected by name from a registry.

Every registered estimator has the signature ``fn(inputs: AdvantageInputs, **hparams) ->
(advantages (B, T), returns (B, T))`` so the trainer can call
``get_advantage_estimator(name)(inputs, **hparams)``. Each estimator reads only the fields of
``AdvantageInputs`` it needs and raises ``ConfigError`` if one of them is missing.

Responses are right-padded; ``mask`` (B, T) is 1 on real response tokens. Outputs are 0 on
padding, and values at padded positions never change a result.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor

from rlsp.algorithms.normalization import masked_whiten
from rlsp.algorithms.part_registry import Registry
from rlsp.errors import ConfigError

AdvantageEstimator = Callable[..., tuple[Tensor, Tensor]]


@dataclass(frozen=True)
class EstimatorTraits:
    """What an estimator needs and what its paper does around it: the defaults a recipe gets
    for the settings it leaves unset (``rlsp.config.algorithm_defaults``).

    Fields:
        critic: needs a critic's values (one value head per reward channel).
        per_sequence: sees one score per sequence (group-relative), no per-token rewards; a KL
            penalty in the reward is then summed over the sequence into its score.
        whiten: the paper whitens the advantages over the whole batch afterwards.
        whitens_itself: the estimator's output is already whitened over the batch.
        normalize_rewards: the paper normalises the sequence rewards with running statistics.
        aggregation: the paper's loss aggregation (``rlsp.algorithms.losses.AGGREGATIONS``).
        kl_placement: where the paper puts the KL penalty: "reward" or "loss".
        hparams: the ``train`` settings passed to the estimator as keyword arguments.
        source: the paper.
    """

    critic: bool = False
    per_sequence: bool = False
    whiten: bool = False
    whitens_itself: bool = False
    normalize_rewards: bool = False
    aggregation: str = "token-mean"
    kl_placement: str = "loss"
    hparams: tuple[str, ...] = ()
    source: str = "user-registered"


ADVANTAGE_ESTIMATORS: Registry[AdvantageEstimator] = Registry("advantage estimator", "train.advantage_estimator",
                                                            EstimatorTraits())


@dataclass(frozen=True)
class AdvantageInputs:
    """What a rollout offers an advantage estimator.

    Fields:
        mask: (B, T) 1 on real response tokens, 0 on padding. Always required.
        rewards: (B, T) per-token rewards (score on the last token, minus any KL penalty).
            Needed by ``gae`` and ``reinforce++``.
        values: (B, T) critic values V(s_t). Needed by ``gae``.
        scores: (B,) sequence rewards. Needed by ``grpo`` and ``rloo``.
        group_ids: (B,) int, the prompt each sample answers. Needed by ``grpo`` and ``rloo``.
    """

    mask: Tensor
    rewards: Tensor | None = None
    values: Tensor | None = None
    scores: Tensor | None = None
    group_ids: Tensor | None = None


def register_advantage_estimator(
    name: str, traits: EstimatorTraits | None = None
) -> Callable[[AdvantageEstimator], AdvantageEstimator]:
    """Decorator: add ``fn`` to the registry under ``name`` (names must be unique), with its
    ``traits`` (default: critic-free, per-token rewards, token-mean, KL in the loss)."""
    return ADVANTAGE_ESTIMATORS.register(name, traits)


def estimator_traits(name: str) -> EstimatorTraits:
    """The traits registered with ``name`` (``ConfigError`` listing the choices otherwise)."""
    return ADVANTAGE_ESTIMATORS.traits(name)


def get_advantage_estimator(name: str) -> AdvantageEstimator:
    """The estimator registered as ``name``; ``ConfigError`` listing the choices otherwise."""
    return ADVANTAGE_ESTIMATORS[name]


def _require(inputs: AdvantageInputs, estimator: str, *fields: str) -> list[Tensor]:
    missing = [f for f in fields if getattr(inputs, f) is None]
    if missing:
        raise ConfigError(
            f"advantage estimator {estimator!r} needs AdvantageInputs.{', '.join(missing)}, "
            f"which this rollout did not provide (e.g. 'gae' needs a critic for values; "
            f"'grpo'/'rloo' need several samples per prompt with group_ids)"
        )
    return [getattr(inputs, f) for f in fields]


def compute_gae(
    rewards: Tensor, values: Tensor, mask: Tensor, gamma: float, lam: float
) -> tuple[Tensor, Tensor]:
    """Generalised advantage estimation over right-padded responses.

    ``delta_t = r_t + gamma * V_{t+1} - V_t``, ``A_t = delta_t + gamma * lam * A_{t+1}``, with
    ``V_{t+1} = 0`` after the last real token (the response ends there: no bootstrap).

    Args:
        rewards: (B, T) per-token rewards.
        values: (B, T) critic values.
        mask: (B, T) 1 on real tokens; padding must come after the real tokens.
        gamma: discount; lam: GAE lambda (RLSP: 1 and 0.95).

    Returns:
        advantages (B, T), not whitened (see ``masked_whiten``), and returns = advantages + values
        (B, T), the critic's targets; both 0 on padding.
    """
    mask = mask.to(values.dtype)
    rewards, values = rewards * mask, values * mask
    advantages = torch.zeros_like(values)
    last_gae = torch.zeros_like(values[:, 0])
    next_values = torch.zeros_like(values[:, 0])
    for t in reversed(range(values.shape[1])):
        delta = rewards[:, t] + gamma * next_values - values[:, t]
        last_gae = delta + gamma * lam * last_gae
        advantages[:, t] = last_gae
        next_values = values[:, t]
    advantages = advantages * mask
    return advantages, (advantages + values) * mask


def _group_mean_var(scores: Tensor, group_ids: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """Per-sample (B,) mean, unbiased variance (0 for a group of 1) and size of its group."""
    _, inverse = torch.unique(group_ids, return_inverse=True)
    n_groups = int(inverse.max()) + 1
    zeros = torch.zeros(n_groups, dtype=scores.dtype, device=scores.device)
    count = zeros.index_add(0, inverse, torch.ones_like(scores))
    mean = zeros.index_add(0, inverse, scores) / count
    ss = zeros.index_add(0, inverse, (scores - mean[inverse]) ** 2)
    var = torch.where(count > 1, ss / (count - 1).clamp(min=1.0), torch.zeros_like(ss))
    return mean[inverse], var[inverse], count[inverse]


def compute_grpo_advantages(
    scores: Tensor, group_ids: Tensor, mask: Tensor, scale_by_std: bool = True, eps: float = 1e-6
) -> Tensor:
    """GRPO outcome advantages (DeepSeekMath): ``(score - group mean) / (group std + eps)``.

    The std is the unbiased sample std, as in verl. A group of one sample gets advantage 0.
    ``scale_by_std=False`` skips the division (Dr. GRPO), leaving ``score - group mean``.

    Args:
        scores: (B,) sequence rewards; group_ids: (B,) int prompt index; mask: (B, T).

    Returns:
        (B, T) the sequence advantage on every real token, 0 on padding.
    """
    scores = scores.to(torch.promote_types(scores.dtype, torch.float32))
    mean, var, _ = _group_mean_var(scores, group_ids)
    adv = scores - mean
    if scale_by_std:
        adv = adv / (var.sqrt() + eps)
    return adv[:, None] * mask.to(adv.dtype)


def compute_rloo_advantages(scores: Tensor, group_ids: Tensor, mask: Tensor) -> Tensor:
    """RLOO advantages: score minus the mean score of the other samples of the same prompt.

    ``A_i = s_i - (sum_group - s_i) / (n - 1)``; a group of one sample gets advantage 0.

    Args:
        scores: (B,) sequence rewards; group_ids: (B,) int prompt index; mask: (B, T).

    Returns:
        (B, T) the sequence advantage on every real token, 0 on padding.
    """
    scores = scores.to(torch.promote_types(scores.dtype, torch.float32))
    mean, _, count = _group_mean_var(scores, group_ids)
    others_mean = (mean * count - scores) / (count - 1).clamp(min=1.0)
    adv = torch.where(count > 1, scores - others_mean, torch.zeros_like(scores))
    return adv[:, None] * mask.to(adv.dtype)


def compute_reinforce_plus_plus(
    rewards: Tensor, mask: Tensor, gamma: float = 1.0
) -> tuple[Tensor, Tensor]:
    """REINFORCE++ (Hu 2025): discounted token-level returns, whitened over the batch.

    ``G_t = r_t + gamma * G_{t+1}`` per response, then advantages = ``masked_whiten(G)`` over all
    real tokens of the batch (global, not per prompt). This follows verl's
    ``compute_reinforce_plus_plus_outcome_advantage`` (unbiased variance); OpenRLHF's
    ``reinforce`` uses the biased variance, a negligible difference at rollout batch sizes. Whiten
    over the whole rollout batch: call it once on all of it, not per micro-batch.

    Args:
        rewards: (B, T) per-token rewards (score on the last token, minus the KL penalty).
        mask: (B, T) 1 on real tokens, right-padded.

    Returns:
        advantages (B, T) whitened, and returns (B, T) = the un-whitened ``G``; 0 on padding.
    """
    mask = mask.to(rewards.dtype)
    rewards = rewards * mask
    returns = torch.zeros_like(rewards)
    running = torch.zeros_like(rewards[:, 0])
    for t in reversed(range(rewards.shape[1])):
        running = rewards[:, t] + gamma * running
        returns[:, t] = running
    returns = returns * mask
    return masked_whiten(returns, mask), returns


@register_advantage_estimator("gae", EstimatorTraits(
    critic=True, whiten=True, normalize_rewards=True, aggregation="token-mean", kl_placement="reward",
    hparams=("gamma", "lam"),
    source="GAE (Schulman et al. 2016) in PPO (Schulman et al. 2017), as RLSP (arXiv 2502.06773) trains: "
    "rewards normalised and clipped, per-token KL in the reward, advantages whitened"))
def gae_estimator(
    inputs: AdvantageInputs, gamma: float = 1.0, lam: float = 0.95
) -> tuple[Tensor, Tensor]:
    """Needs ``rewards``, ``values``, ``mask``. See ``compute_gae``."""
    rewards, values = _require(inputs, "gae", "rewards", "values")
    return compute_gae(rewards, values, inputs.mask, gamma=gamma, lam=lam)


@register_advantage_estimator("grpo", EstimatorTraits(
    per_sequence=True, aggregation="seq-mean-token-mean", kl_placement="loss",
    source="GRPO, DeepSeekMath (arXiv 2402.03300) Eq. 3: token mean per sequence, k3 KL in the loss"))
def grpo_estimator(inputs: AdvantageInputs, eps: float = 1e-6) -> tuple[Tensor, Tensor]:
    """Needs ``scores``, ``group_ids``, ``mask``. Returns (advantages, advantages), as verl does:
    there is no critic, so returns are only logged."""
    scores, group_ids = _require(inputs, "grpo", "scores", "group_ids")
    adv = compute_grpo_advantages(scores, group_ids, inputs.mask, True, eps)
    return adv, adv


@register_advantage_estimator("dr_grpo", EstimatorTraits(
    per_sequence=True, aggregation="token-sum-norm", kl_placement="loss",
    source="Dr. GRPO (arXiv 2503.20783): no std division, a constant normaliser rows x max_new_tokens"))
def dr_grpo_estimator(inputs: AdvantageInputs) -> tuple[Tensor, Tensor]:
    """GRPO's group-centred scores without the division by the group's std. Needs ``scores``,
    ``group_ids``, ``mask``."""
    scores, group_ids = _require(inputs, "dr_grpo", "scores", "group_ids")
    adv = compute_grpo_advantages(scores, group_ids, inputs.mask, scale_by_std=False)
    return adv, adv


@register_advantage_estimator("rloo", EstimatorTraits(
    per_sequence=True, aggregation="seq-mean-token-sum", kl_placement="reward",
    source="RLOO (Ahmadian et al. 2024, arXiv 2402.14740): the whole response is one action, its "
    "log-probability the sum over tokens; the KL penalty is part of the sequence reward"))
def rloo_estimator(inputs: AdvantageInputs) -> tuple[Tensor, Tensor]:
    """Needs ``scores``, ``group_ids``, ``mask``. Returns (advantages, advantages)."""
    scores, group_ids = _require(inputs, "rloo", "scores", "group_ids")
    adv = compute_rloo_advantages(scores, group_ids, inputs.mask)
    return adv, adv


@register_advantage_estimator("reinforce++", EstimatorTraits(
    whitens_itself=True, normalize_rewards=True, aggregation="token-mean", kl_placement="reward",
    hparams=("gamma",),
    source="REINFORCE++ (arXiv 2501.03262): rewards normalised and clipped, per-token KL in the reward, "
    "returns whitened over the batch"))
def reinforce_plus_plus_estimator(
    inputs: AdvantageInputs, gamma: float = 1.0
) -> tuple[Tensor, Tensor]:
    """Needs ``rewards``, ``mask``. See ``compute_reinforce_plus_plus``."""
    (rewards,) = _require(inputs, "reinforce++", "rewards")
    return compute_reinforce_plus_plus(rewards, inputs.mask, gamma=gamma)
