"""Combining the verifier and exploration channels of RLSP into rewards or advantages.

Two modes:

- ``paper``: one scalar reward per response, ``R = alpha * ver + (1 - alpha) * exp``, on the last
  real token, minus ``kl_coef * KL`` on every token (RLSP Eq. 1 and its per-token PPO reward);
  one critic, one GAE. See ``terminal_token_rewards``.
- ``decoupled``: each channel has its own per-token rewards (``decoupled_token_rewards``), value
  head and GAE; the advantages are mixed with ``combine_advantages``. Normalising each channel
  separately (``RewardNormalizer``) keeps one channel's scale from drowning the other.

Responses are right-padded; ``mask`` (B, T) is 1 on real response tokens.
"""

from __future__ import annotations

import torch
from torch import Tensor


def _check_alpha(alpha: float) -> None:
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"alpha must be in [0, 1], got {alpha}")


def scores_on_last_token(scores: Tensor, mask: Tensor) -> Tensor:
    """(B,) sequence scores -> (B, T) zeros with each score on its response's last real token.

    Every row of ``mask`` must have at least one real token (the EOS or truncation point).
    """
    lengths = mask.sum(-1).long()
    if (lengths == 0).any():
        raise ValueError("every response needs at least one real token; got an all-padding row")
    rewards = torch.zeros(mask.shape, dtype=scores.dtype, device=scores.device)
    rewards[torch.arange(mask.shape[0], device=mask.device), lengths - 1] = scores
    return rewards


def _kl_penalty(
    kl_per_token: Tensor | None, kl_coef: float, mask: Tensor, dtype: torch.dtype
) -> Tensor:
    if kl_per_token is None or kl_coef == 0.0:
        return torch.zeros(mask.shape, dtype=dtype, device=mask.device)
    return kl_coef * kl_per_token.to(dtype) * mask.to(dtype)


def terminal_token_rewards(
    verifier_scores: Tensor,
    exploration_scores: Tensor,
    alpha: float,
    kl_per_token: Tensor | None,
    kl_coef: float,
    mask: Tensor,
) -> Tensor:
    """Paper mode: ``r_t = R(q, o) * 1[t = last] - kl_coef * KL_t`` on real tokens.

    Args:
        verifier_scores: (B,) verifier channel (e.g. 1 correct, 0 wrong, -0.5 no answer).
        exploration_scores: (B,) exploration channel (e.g. ``-C / |o|`` or a judge's 0..1).
        alpha: verifier weight in [0, 1] (paper: 0.8).
        kl_per_token: (B, T) KL estimate (paper: k1 of pi_old vs pi_sft), or None when the KL
            goes in the loss instead.
        kl_coef: beta (paper: 0.05).
        mask: (B, T) 1 on real tokens.

    Returns:
        (B, T) per-token rewards, 0 on padding.
    """
    _check_alpha(alpha)
    scores = alpha * verifier_scores + (1.0 - alpha) * exploration_scores
    kl_penalty = _kl_penalty(kl_per_token, kl_coef, mask, scores.dtype)
    return scores_on_last_token(scores, mask) - kl_penalty


def decoupled_token_rewards(
    verifier_scores: Tensor,
    exploration_scores: Tensor,
    kl_per_token: Tensor | None,
    kl_coef: float,
    mask: Tensor,
) -> tuple[Tensor, Tensor]:
    """Decoupled mode: per-token rewards for each channel, each score on its last real token.

    The KL penalty (if in the reward) goes to the verifier channel only, so it is counted once
    and the exploration critic learns the exploration score alone. Since the advantages are then
    mixed as ``alpha * A_ver + (1 - alpha) * A_exp``, the effective KL weight is
    ``alpha * kl_coef``; pass ``kl_coef / alpha`` to match the paper mode's penalty.

    Args: as ``terminal_token_rewards`` without ``alpha``.

    Returns:
        (verifier rewards (B, T), exploration rewards (B, T)), 0 on padding.
    """
    rewards_ver = scores_on_last_token(verifier_scores, mask)
    rewards_ver = rewards_ver - _kl_penalty(kl_per_token, kl_coef, mask, rewards_ver.dtype)
    return rewards_ver, scores_on_last_token(exploration_scores, mask)


def combine_advantages(adv_ver: Tensor, adv_exp: Tensor, alpha: float) -> Tensor:
    """``alpha * A_ver + (1 - alpha) * A_exp``; (B, T) advantages of each channel -> (B, T)."""
    _check_alpha(alpha)
    return alpha * adv_ver + (1.0 - alpha) * adv_exp


def gate_exploration(
    exploration_scores: Tensor, verifier_scores: Tensor, threshold: float, fill_value: float = 0.0
) -> Tensor:
    """Keep the exploration score only where the verifier passed (score >= threshold).

    (B,) scores -> (B,); failed responses get ``fill_value``. Caution: with a negative-valued
    exploration reward such as the paper's ``-C / |o|``, the default 0 would be the *best*
    exploration score, rewarding failure; set ``fill_value`` to the worst possible score (e.g.
    ``-C``) or gate a non-negative reward.
    """
    passed = verifier_scores >= threshold
    return torch.where(passed, exploration_scores, torch.full_like(exploration_scores, fill_value))
