"""PPO losses, their aggregation over tokens, and the standard diagnostics.

Every loss takes right-padded (B, T) tensors and a ``mask`` (B, T), 1 on real response tokens.
``aggregation`` says how a (B, T) per-token loss becomes a scalar:

- ``"token-mean"``: mean over all real tokens of the batch (long answers weigh more);
- ``"seq-mean-token-mean"``: mean over each sequence's tokens, then over sequences;
- ``"seq-mean-token-sum"``: sum over each sequence's tokens, then mean over sequences;
- ``"token-sum-norm"``: sum over all real tokens divided by ``rows x max_tokens`` (Dr. GRPO,
  arXiv 2503.20783: a constant normaliser, so neither long nor short answers are favoured).

Stats are detached 0-d tensors, so callers can accumulate them without a device sync.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

from rlsp.algorithms.kl import kl_estimate
from rlsp.algorithms.normalization import masked_mean
from rlsp.algorithms.part_registry import Registry

# Each maps a (B, T) per-token loss, its (B, T) mask (in the loss's dtype) and the generation
# limit (token-sum-norm's normaliser) to the 0-d loss.
AGGREGATIONS: Registry[Callable[[Tensor, Tensor, int | None], Tensor]] = Registry("loss aggregation",
                                                                                 "train.loss_aggregation")


@AGGREGATIONS.register("token-mean")
def _token_mean(loss: Tensor, mask: Tensor, max_tokens: int | None) -> Tensor:
    return masked_mean(loss, mask)


@AGGREGATIONS.register("seq-mean-token-mean")
def _seq_mean_token_mean(loss: Tensor, mask: Tensor, max_tokens: int | None) -> Tensor:
    return _mean_over_sequences((loss * mask).sum(-1) / mask.sum(-1).clamp(min=1.0), mask)


@AGGREGATIONS.register("seq-mean-token-sum")
def _seq_mean_token_sum(loss: Tensor, mask: Tensor, max_tokens: int | None) -> Tensor:
    return _mean_over_sequences((loss * mask).sum(-1), mask)


@AGGREGATIONS.register("token-sum-norm")
def _token_sum_norm(loss: Tensor, mask: Tensor, max_tokens: int | None) -> Tensor:
    if not max_tokens:
        raise ValueError("token-sum-norm needs max_tokens (generation.max_new_tokens)")
    return (loss * mask).sum() / (loss.shape[0] * max_tokens)


def _mean_over_sequences(per_seq: Tensor, mask: Tensor) -> Tensor:
    """The mean of (B,) ``per_seq`` over the sequences with at least one real token."""
    has_tokens = (mask.sum(-1) > 0).to(per_seq.dtype)
    return (per_seq * has_tokens).sum() / has_tokens.sum().clamp(min=1.0)


__all__ = [
    "AGGREGATIONS",
    "aggregate_loss",
    "clipped_policy_loss",
    "clipped_value_loss",
    "entropy_from_logits",
    "explained_variance",
    "kl_loss",
    "masked_mean",
]


def aggregate_loss(
    loss: Tensor, mask: Tensor, aggregation: str = "token-mean", max_tokens: int | None = None
) -> Tensor:
    """(B, T) per-token loss -> 0-d loss. Sequences with no real token are left out of the
    sequence means. ``max_tokens`` (the generation limit) is the normaliser of ``token-sum-norm``."""
    return AGGREGATIONS[aggregation](loss, mask.to(loss.dtype), max_tokens)


def clipped_policy_loss(
    logp: Tensor,
    old_logp: Tensor,
    advantages: Tensor,
    mask: Tensor,
    clip_eps: float = 0.2,
    aggregation: str = "token-mean",
    dual_clip: float | None = None,
    clip_high: float | None = None,
    max_tokens: int | None = None,
) -> tuple[Tensor, dict[str, Tensor]]:
    """PPO clipped surrogate: ``max(-A * ratio, -A * clip(ratio, 1 - eps, 1 + eps_high))``.

    Args:
        logp: (B, T) log pi_theta of the sampled tokens (with grad).
        old_logp: (B, T) the same under the rollout policy.
        advantages: (B, T).
        mask: (B, T) 1 on real tokens.
        clip_eps: PPO clip range (RLSP: 0.2).
        dual_clip: if set (> 1, e.g. 3), for negative advantages the loss is also capped at
            ``-A * dual_clip`` (Ye et al. 2020), so a huge ratio cannot blow up the update.
        clip_high: the upper clip range, when it differs from ``clip_eps`` (DAPO's clip-higher,
            e.g. 0.28 with 0.2 below, lets unlikely tokens gain probability faster).
        max_tokens: the normaliser of ``token-sum-norm`` aggregation.

    Returns:
        loss (0-d) and stats: ``clipfrac`` (share of real tokens where clipping was active),
        ``approx_kl`` (mean of ``(ratio - 1) - log ratio``, the k3 estimate of
        KL(pi_old || pi_theta)), and ``dual_clipfrac`` when ``dual_clip`` is set.
    """
    log_ratio = logp - old_logp
    ratio = torch.exp(log_ratio)
    pg_unclipped = -advantages * ratio
    high = clip_eps if clip_high is None else clip_high
    pg_clipped = -advantages * torch.clamp(ratio, 1.0 - clip_eps, 1.0 + high)
    pg = torch.maximum(pg_unclipped, pg_clipped)
    stats = {
        "clipfrac": masked_mean((pg_clipped > pg_unclipped).to(logp.dtype), mask).detach(),
        "approx_kl": masked_mean((ratio - 1.0) - log_ratio, mask).detach(),
    }
    if dual_clip is not None:
        if dual_clip <= 1.0:
            raise ValueError(f"dual_clip must be > 1, got {dual_clip}")
        pg_dual = -advantages * dual_clip
        dual_active = (advantages < 0) & (pg > pg_dual)
        pg = torch.where(dual_active, pg_dual, pg)
        stats["dual_clipfrac"] = masked_mean(dual_active.to(logp.dtype), mask).detach()
    return aggregate_loss(pg, mask, aggregation, max_tokens), stats


def clipped_value_loss(
    values: Tensor,
    old_values: Tensor,
    returns: Tensor,
    mask: Tensor,
    clip_eps: float | None = 0.2,
    aggregation: str = "token-mean",
    max_tokens: int | None = None,
) -> tuple[Tensor, dict[str, Tensor]]:
    """Clipped value loss: ``0.5 * max((V - R)^2, (V_old + clip(V - V_old, -eps, eps) - R)^2)``.

    Args:
        values: (B, T) critic values (with grad); old_values: (B, T) at rollout time;
        returns: (B, T) targets; mask: (B, T).
        clip_eps: value clip range (RLSP: 0.2); None for the plain squared error.

    Returns:
        loss (0-d) and stats: ``value_clipfrac`` (share of real tokens where the clipped error won).
    """
    err_unclipped = (values - returns) ** 2
    if clip_eps is None:
        loss, clipfrac = err_unclipped, torch.zeros((), dtype=values.dtype)
    else:
        values_clipped = old_values + torch.clamp(values - old_values, -clip_eps, clip_eps)
        err_clipped = (values_clipped - returns) ** 2
        loss = torch.maximum(err_unclipped, err_clipped)
        clipfrac = masked_mean((err_clipped > err_unclipped).to(values.dtype), mask)
    return 0.5 * aggregate_loss(loss, mask, aggregation, max_tokens), {"value_clipfrac": clipfrac.detach()}


def entropy_from_logits(logits: Tensor) -> Tensor:
    """(B, T, V) logits -> (B, T) entropy of the softmax, ``logsumexp(z) - sum(p * z)``."""
    probs = torch.softmax(logits, dim=-1)
    return torch.logsumexp(logits, dim=-1) - (probs * logits).sum(-1)


def kl_loss(
    logp: Tensor, logp_ref: Tensor, mask: Tensor, kind: str = "k3", aggregation: str = "token-mean",
    max_tokens: int | None = None,
) -> Tensor:
    """KL(pi || pi_ref) as a loss term, for when the KL is put in the loss instead of the reward
    (GRPO style; add ``kl_coef * kl_loss(...)``). (B, T) inputs -> 0-d."""
    return aggregate_loss(kl_estimate(logp, logp_ref, kind), mask, aggregation, max_tokens)


def explained_variance(values: Tensor, returns: Tensor, mask: Tensor) -> Tensor:
    """``1 - Var(returns - values) / Var(returns)`` over real tokens (0-d, detached).

    1 is a perfect critic, 0 no better than a constant, negative worse; NaN if the returns are
    constant.
    """
    values, returns = values.detach(), returns.detach()

    def var(x: Tensor) -> Tensor:
        return masked_mean((x - masked_mean(x, mask)) ** 2, mask)

    var_returns = var(returns)
    if var_returns == 0:
        return torch.full((), float("nan"), dtype=returns.dtype)
    return 1.0 - var(returns - values) / var_returns
