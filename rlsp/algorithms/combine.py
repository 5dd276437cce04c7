"""Combining the verifier and exploration channels of RLSP into sequence and token rewards.

Two modes:

- ``paper``: one scalar reward per response, ``R = alpha * ver + (1 - alpha) * exp``, on the last
  real token, minus ``kl_coef * KL`` on every token (RLSP Eq. 1 and its per-token PPO reward);
  one critic, one GAE. See ``terminal_token_rewards``.
- ``decoupled``: each channel has its own per-token rewards (``decoupled_token_rewards``), value
  head and GAE; the advantages are mixed with ``combine_advantages``. Normalising each channel
  separately (``RewardNormalizer``) keeps one channel's scale from drowning the other.

``channel_sequence_rewards`` fixes the order of the steps before that, the same in both modes:
gate the exploration score on the raw verifier score, then normalise, then mix.

Responses are right-padded; ``mask`` (B, T) is 1 on real response tokens.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

MODES = ("paper", "decoupled")


def _check_alpha(alpha: float) -> None:
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"alpha must be in [0, 1], got {alpha}")


def mix_channels(verifier_scores: Tensor, exploration_scores: Tensor, alpha: float) -> Tensor:
    """``alpha * ver + (1 - alpha) * exp`` (RLSP Eq. 1); (B,) each -> (B,)."""
    _check_alpha(alpha)
    return alpha * verifier_scores + (1.0 - alpha) * exploration_scores


def gate_exploration(
    exploration_scores: Tensor, verifier_scores: Tensor, threshold: float, fill_value: float | None = None
) -> Tensor:
    """Keep the exploration score only where the verifier passed (score >= threshold).

    (B,) scores -> (B,). Failed responses get ``fill_value``; by default the lowest exploration
    score in the batch, not 0: with a negative-valued reward such as the paper's ``-C / |o|``, 0
    would be the *best* exploration score and would reward failing.
    """
    if fill_value is None:
        fill_value = float(exploration_scores.min())
    passed = verifier_scores >= threshold
    return torch.where(passed, exploration_scores, torch.full_like(exploration_scores, fill_value))


def channel_sequence_rewards(
    verifier_scores: Tensor,
    exploration_scores: Tensor,
    alpha: float,
    mode: str,
    gate_threshold: float | None = None,
    normalize: Callable[[str, Tensor], Tensor] | None = None,
) -> tuple[Tensor, Tensor, Tensor]:
    """The sequence rewards the advantages are computed from, in this order:

    1. gate: with ``gate_threshold`` set, the exploration score counts only where the *raw*
       verifier score reaches it (so the threshold is in the verifier's own units);
    2. normalise: ``normalize(name, scores)`` with name ``"verifier"`` and ``"exploration"``
       (decoupled mode: each channel on its own statistics) or ``"total"`` (paper mode: the mix);
    3. mix: ``trained = alpha * ver + (1 - alpha) * exp``, of the normalised channels when
       decoupled, the normalised mix itself in paper mode.

    Returns ``(verifier, exploration, trained)``, each (B,): the channels as their advantages
    see them (decoupled) or as scored (paper), and the reward the update is trained on.
    """
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
    if gate_threshold is not None:
        exploration_scores = gate_exploration(exploration_scores, verifier_scores, gate_threshold)
    if mode == "paper":
        total = mix_channels(verifier_scores, exploration_scores, alpha)
        return verifier_scores, exploration_scores, normalize("total", total) if normalize else total
    if normalize is not None:
        verifier_scores = normalize("verifier", verifier_scores)
        exploration_scores = normalize("exploration", exploration_scores)
    return verifier_scores, exploration_scores, mix_channels(verifier_scores, exploration_scores, alpha)


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
    sequence_rewards: Tensor, kl_per_token: Tensor | None, kl_coef: float, mask: Tensor
) -> Tensor:
    """``r_t = R * 1[t = last] - kl_coef * KL_t`` on real tokens (paper mode's per-token reward).

    Args:
        sequence_rewards: (B,) ``R``, e.g. ``mix_channels(ver, exp, alpha)``, normalised or not.
        kl_per_token: (B, T) KL estimate (paper: k1 of pi_old vs pi_sft), or None when the KL
            goes in the loss instead.
        kl_coef: beta (paper: 0.05).
        mask: (B, T) 1 on real tokens.

    Returns:
        (B, T) per-token rewards, 0 on padding.
    """
    kl_penalty = _kl_penalty(kl_per_token, kl_coef, mask, sequence_rewards.dtype)
    return scores_on_last_token(sequence_rewards, mask) - kl_penalty


def decoupled_token_rewards(
    verifier_scores: Tensor,
    exploration_scores: Tensor,
    alpha: float,
    kl_per_token: Tensor | None,
    kl_coef: float,
    mask: Tensor,
) -> tuple[Tensor, Tensor]:
    """Decoupled mode: per-token rewards for each channel, each score on its last real token.

    The KL penalty (if in the reward) goes to the verifier channel only, so it is counted once
    and the exploration critic learns the exploration score alone. It is scaled by
    ``kl_coef / alpha``: the advantages are mixed as ``alpha * A_ver + (1 - alpha) * A_exp``, so
    the KL then weighs ``kl_coef`` exactly as in paper mode. ``alpha`` 0 (exploration only)
    leaves the KL out; ``rlsp train`` refuses a KL reward with alpha 0 before it starts.

    Returns:
        (verifier rewards (B, T), exploration rewards (B, T)), 0 on padding.
    """
    _check_alpha(alpha)
    kl_scale = kl_coef / alpha if alpha > 0 else 0.0
    rewards_ver = terminal_token_rewards(verifier_scores, kl_per_token, kl_scale, mask)
    return rewards_ver, terminal_token_rewards(exploration_scores, None, 0.0, mask)


def combine_advantages(adv_ver: Tensor, adv_exp: Tensor, alpha: float) -> Tensor:
    """``alpha * A_ver + (1 - alpha) * A_exp``; (B, T) advantages of each channel -> (B, T)."""
    return mix_channels(adv_ver, adv_exp, alpha)
