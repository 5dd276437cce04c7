"""Policy-gradient loss variants beside PPO's clipped surrogate, chosen by ``train.policy_loss``.

All take right-padded (B, T) tensors and a ``mask`` (B, T), 1 on real response tokens, and
return ``(loss, stats)`` with detached 0-d stats.

- ``ppo`` (Schulman et al. 2017; RLSP): ``losses.clipped_policy_loss``, with DAPO's clip-higher
  when ``clip_high`` differs from ``clip_low`` (Yu et al. 2025, arXiv 2503.14476).
- ``gspo`` (Zheng et al. 2025, arXiv 2507.18071): one importance ratio per *sequence*, the
  geometric mean of its token ratios ``s = exp(mean_t(logp - old_logp))``, clipped to
  ``[1 - clip_low, 1 + clip_high]`` (the paper: 3e-4 and 4e-4), times the sequence's advantage;
  averaged over sequences.
- ``cispo`` (MiniMax-M1, arXiv 2506.13585): REINFORCE with the clipped importance weight held
  constant, ``-sg(clip(ratio, 1 - clip_low, 1 + clip_high)) * A * logp``: every token keeps a
  gradient (PPO drops clipped ones), only its weight is bounded.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor

from rlsp.algorithms.losses import aggregate_loss, clipped_policy_loss
from rlsp.algorithms.normalization import masked_mean
from rlsp.algorithms.part_registry import Registry


@dataclass(frozen=True)
class ClipSettings:
    """What the recipe sets around a policy loss: the clip range ``[1 - low, 1 + high]`` of the
    ratio, the loss aggregation, PPO's dual clip and the generation limit (``token-sum-norm``)."""

    low: float
    high: float
    aggregation: str = "token-mean"
    dual_clip: float | None = None
    max_tokens: int | None = None


@dataclass(frozen=True)
class PolicyLossTraits:
    """What a policy loss's paper does around it: the defaults a recipe gets for the settings it
    leaves unset (``rlsp.config.algorithm_defaults``).

    Fields:
        clip_eps: the lower clip range.
        clip_eps_high: the upper one (None: ``clip_eps``).
        aggregation: the paper's loss aggregation (None: the advantage estimator's).
        own_aggregation: what the loss averages over whatever the recipe says (GSPO: its
            sequence ratios over sequences), None where it honours ``train.loss_aggregation``.
        source: the paper.
    """

    clip_eps: float = 0.2
    clip_eps_high: float | None = None
    aggregation: str | None = None
    own_aggregation: str | None = None
    source: str = "user-registered"


# Each: fn(logp, old_logp, advantages, mask, clip: ClipSettings) -> (loss, stats).
PolicyLoss = Callable[[Tensor, Tensor, Tensor, Tensor, ClipSettings], tuple[Tensor, dict[str, Tensor]]]
POLICY_LOSSES: Registry[PolicyLoss] = Registry("policy loss", "train.policy_loss", PolicyLossTraits())


def policy_loss(kind: str, logp: Tensor, old_logp: Tensor, advantages: Tensor, mask: Tensor, clip_low: float,
                clip_high: float, aggregation: str = "token-mean", dual_clip: float | None = None,
                max_tokens: int | None = None) -> tuple[Tensor, dict[str, Tensor]]:
    """The policy loss registered as ``kind`` (``train.policy_loss``) on one micro-batch."""
    clip = ClipSettings(clip_low, clip_high, aggregation, dual_clip, max_tokens)
    return POLICY_LOSSES[kind](logp, old_logp, advantages, mask, clip)


@POLICY_LOSSES.register("ppo", PolicyLossTraits(0.2, None, None, None, "PPO (Schulman et al. 2017), as RLSP "
                                                "trains: clip 0.2"))
def _ppo(logp: Tensor, old_logp: Tensor, advantages: Tensor, mask: Tensor,
         clip: ClipSettings) -> tuple[Tensor, dict[str, Tensor]]:
    return clipped_policy_loss(logp, old_logp, advantages, mask, clip.low, clip.aggregation, clip.dual_clip,
                               clip_high=clip.high, max_tokens=clip.max_tokens)


@POLICY_LOSSES.register("gspo", PolicyLossTraits(3e-4, 4e-4, None, "seq-mean-token-mean", "GSPO (arXiv 2507.18071): "
                                                 "sequence ratio clipped to [1-3e-4, 1+4e-4]"))
def _gspo(logp: Tensor, old_logp: Tensor, advantages: Tensor, mask: Tensor,
          clip: ClipSettings) -> tuple[Tensor, dict[str, Tensor]]:
    return gspo_loss(logp, old_logp, advantages, mask, clip.low, clip.high)


@POLICY_LOSSES.register("cispo", PolicyLossTraits(1.0, 4.0, "token-mean", None, "CISPO (MiniMax-M1, arXiv "
                                                  "2506.13585): no lower bound on the weight, capped at 5 "
                                                  "(ScaleRL's epsilon_max), token-level normalisation"))
def _cispo(logp: Tensor, old_logp: Tensor, advantages: Tensor, mask: Tensor,
           clip: ClipSettings) -> tuple[Tensor, dict[str, Tensor]]:
    return cispo_loss(logp, old_logp, advantages, mask, clip.low, clip.high, clip.aggregation, clip.max_tokens)


def gspo_loss(logp: Tensor, old_logp: Tensor, advantages: Tensor, mask: Tensor, clip_low: float,
              clip_high: float) -> tuple[Tensor, dict[str, Tensor]]:
    """GSPO. ``advantages`` (B, T) is read per sequence as its mean over real tokens (critic-free
    estimators give every token the sequence's advantage). Sequences without tokens are left out."""
    mask = mask.to(logp.dtype)
    tokens = mask.sum(-1)
    has = tokens > 0
    mean_log_ratio = ((logp - old_logp) * mask).sum(-1) / tokens.clamp(min=1.0)
    seq_ratio = torch.exp(mean_log_ratio)  # (B,), with gradient through every token
    seq_adv = (advantages * mask).sum(-1) / tokens.clamp(min=1.0)
    unclipped = -seq_adv * seq_ratio
    clipped = -seq_adv * torch.clamp(seq_ratio, 1.0 - clip_low, 1.0 + clip_high)
    per_seq = torch.maximum(unclipped, clipped)
    weight = has.to(logp.dtype)
    loss = (per_seq * weight).sum() / weight.sum().clamp(min=1.0)
    stats = {
        "clipfrac": ((clipped > unclipped).to(logp.dtype) * weight).sum().detach() / weight.sum().clamp(min=1.0),
        "approx_kl": masked_mean(torch.exp(logp - old_logp) - 1.0 - (logp - old_logp), mask).detach(),
    }
    return loss, stats


def cispo_loss(logp: Tensor, old_logp: Tensor, advantages: Tensor, mask: Tensor, clip_low: float,
               clip_high: float, aggregation: str = "token-mean",
               max_tokens: int | None = None) -> tuple[Tensor, dict[str, Tensor]]:
    """CISPO: the clipped ratio is a constant weight on the REINFORCE term ``A * logp``."""
    log_ratio = logp - old_logp
    ratio = torch.exp(log_ratio).detach()
    weight = torch.clamp(ratio, 1.0 - clip_low, 1.0 + clip_high)
    per_token = -weight * advantages * logp
    stats = {
        "clipfrac": masked_mean((weight != ratio).to(logp.dtype), mask).detach(),
        "approx_kl": masked_mean(torch.exp(log_ratio) - 1.0 - log_ratio, mask).detach(),
    }
    return aggregate_loss(per_token, mask, aggregation, max_tokens), stats


def truncated_is_weights(trainer_logp: Tensor, sampling_logp: Tensor, mask: Tensor, level: str,
                         cap: float) -> Tensor:
    """Truncated importance sampling (Yao et al. 2025, "Your efficient RL framework secretly brings
    you off-policy RL"): (B, T) detached weights ``min(pi_trainer / pi_sampler, cap)`` per token
    (``level="token"``), or one ``min(prod_t ratio_t, cap)`` per sequence (``"sequence"``), for
    rollouts sampled by another engine or precision than the one being trained."""
    log_ratio = (trainer_logp.detach() - sampling_logp) * mask
    if level == "sequence":
        log_ratio = log_ratio.sum(-1, keepdim=True).expand_as(trainer_logp)
    elif level != "token":
        raise ValueError(f"unknown importance-sampling level {level!r}; choose token or sequence")
    return torch.clamp(torch.exp(log_ratio), max=cap) * mask
