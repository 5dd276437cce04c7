"""Phase 4 of a step: turn the two reward channels into token advantages and returns.

'paper' mode (RLSP Eq. 1): one sequence reward ``R = alpha * ver + (1 - alpha) * exp``, optionally
normalised, placed on the last token, minus ``beta * KL`` per token; one value head.
'decoupled' mode: each channel normalised on its own running statistics, its own value head and
GAE (or critic-free estimator); advantages mixed as ``alpha * A_ver + (1 - alpha) * A_exp``.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from rlsp.algorithms import (
    AdvantageInputs,
    RewardNormalizer,
    channel_sequence_rewards,
    combine_advantages,
    decoupled_token_rewards,
    estimator_traits,
    get_advantage_estimator,
    masked_whiten,
    terminal_token_rewards,
)
from rlsp.config.train_schema import TrainConfig


@dataclass
class ChannelNormalizers:
    """Running reward statistics: one per channel (decoupled) or one for the mix (paper)."""

    verifier: RewardNormalizer
    exploration: RewardNormalizer
    total: RewardNormalizer

    @classmethod
    def create(cls, clip: float) -> ChannelNormalizers:
        return cls(RewardNormalizer(clip), RewardNormalizer(clip), RewardNormalizer(clip))

    def normalize(self, name: str, scores: torch.Tensor) -> torch.Tensor:
        """Normalise ``scores`` with the running statistics ``name`` (updating them)."""
        return getattr(self, name)(scores)

    def state_dict(self) -> dict:
        return {k: getattr(self, k).state_dict() for k in ("verifier", "exploration", "total")}

    def load_state_dict(self, state: dict) -> None:
        for k, v in state.items():
            getattr(self, k).load_state_dict(v)


@dataclass
class AdvantageResult:
    advantages: torch.Tensor  # (B, T)
    returns: torch.Tensor | None  # (B, T, n_heads) critic targets; None for critic-free estimators
    stats: dict[str, float]
    # (B,) the sequence reward the advantages came from, after gating and normalisation: the
    # mixed total in paper mode, the alpha-mix of the two normalised channels in decoupled mode.
    trained_rewards: torch.Tensor


def value_heads(cfg: TrainConfig) -> int:
    """Value heads the critic needs: none for critic-free estimators, one per channel if decoupled."""
    if not estimator_traits(cfg.advantage_estimator).critic:
        return 0
    return 2 if cfg.reward.mode == "decoupled" else 1


def compute_advantages(
    cfg: TrainConfig,
    *,
    alpha: float,
    verifier: torch.Tensor,
    exploration: torch.Tensor,
    kl: torch.Tensor | None,
    kl_coef: float,
    values: torch.Tensor | None,
    mask: torch.Tensor,
    group_ids: torch.Tensor,
    normalizers: ChannelNormalizers,
) -> AdvantageResult:
    """Shapes: verifier, exploration, group_ids (B,); kl (B, T) or None when the KL is in the
    loss; values (B, T, n_heads) or None; mask (B, T). The order of gating, normalising and
    mixing is ``channel_sequence_rewards``'s. An estimator that sees one score per sequence gets
    the sum of the sequence's token rewards: its score minus the KL penalty summed over its
    tokens (RLOO's sequence-level KL reward)."""
    mix = cfg.reward
    mask_f = mask.float()
    estimator = get_advantage_estimator(cfg.advantage_estimator)
    hparams = _estimator_hparams(cfg)
    verifier, exploration, trained = channel_sequence_rewards(
        verifier, exploration, alpha, mix.mode, gate_threshold=mix.gate_threshold if mix.gate_exploration else None,
        normalize=normalizers.normalize if mix.normalize else None,
    )
    if mix.mode == "paper":
        stats = {"reward/total_normalized/mean": trained.mean().item()}
        token_rewards = terminal_token_rewards(trained, kl, kl_coef, mask_f)
        advantages, returns = estimator(_inputs(mask_f, token_rewards, values, 0, group_ids), **hparams)
        returns = returns.unsqueeze(-1) if values is not None else None
    else:
        stats = {"reward/verifier_normalized/mean": verifier.mean().item(),
                 "reward/exploration_normalized/mean": exploration.mean().item()}
        rewards_ver, rewards_exp = decoupled_token_rewards(verifier, exploration, alpha, kl, kl_coef, mask_f)
        adv_ver, ret_ver = estimator(_inputs(mask_f, rewards_ver, values, 0, group_ids), **hparams)
        adv_exp, ret_exp = estimator(_inputs(mask_f, rewards_exp, values, 1, group_ids), **hparams)
        advantages = combine_advantages(adv_ver, adv_exp, alpha)
        returns = torch.stack([ret_ver, ret_exp], dim=-1) if values is not None else None

    if cfg.whiten_advantages:
        advantages = masked_whiten(advantages, mask_f)
    return AdvantageResult(advantages * mask_f, returns, stats, trained)


def global_advantages(cfg: TrainConfig, dist, *, alpha: float, verifier: torch.Tensor, exploration: torch.Tensor,
                      kl: torch.Tensor | None, kl_coef: float, values: torch.Tensor | None, mask: torch.Tensor,
                      group_ids: torch.Tensor, normalizers: ChannelNormalizers) -> AdvantageResult:
    """``compute_advantages`` over the rows of every process at once, returning this process's.

    Each process gathers every process's inputs (a few numbers per token), runs the same computation
    on the whole batch and keeps its own rows: N processes with B rows compute what one process with
    N x B rows computes, including what is a statistic of the whole batch (the reward normalisers'
    running statistics, which stay the same on every process, whitening, REINFORCE++'s baseline).
    """
    if dist.num_processes == 1:
        return compute_advantages(cfg, alpha=alpha, verifier=verifier, exploration=exploration, kl=kl,
                                  kl_coef=kl_coef, values=values, mask=mask, group_ids=group_ids,
                                  normalizers=normalizers)
    device, rows, width = mask.device, mask.shape[0], mask.shape[1]
    mine = {"verifier": verifier, "exploration": exploration, "kl": kl, "values": values, "mask": mask,
            "group_ids": group_ids}
    parts = dist.gather_objects([{k: None if v is None else v.detach().cpu() for k, v in mine.items()}])
    longest = max(p["mask"].shape[1] for p in parts)
    pad = lambda t: None if t is None else torch.nn.functional.pad(
        t, (0, 0, 0, longest - t.shape[1]) if t.dim() == 3 else (0, longest - t.shape[1]))
    offsets = [0]
    for p in parts:  # group ids made unique across processes: a prompt's samples are on one process
        offsets.append(offsets[-1] + int(p["group_ids"].max()) + 1)
    joined = {k: None if parts[0][k] is None else torch.cat([
        (p[k] + offsets[i]) if k == "group_ids" else (p[k] if k in ("verifier", "exploration") else pad(p[k]))
        for i, p in enumerate(parts)]).to(device) for k in mine}
    result = compute_advantages(cfg, alpha=alpha, kl_coef=kl_coef, normalizers=normalizers, **joined)
    start = sum(p["mask"].shape[0] for p in parts[:dist.process_index])
    mine_rows = slice(start, start + rows)
    return AdvantageResult(
        result.advantages[mine_rows, :width],
        None if result.returns is None else result.returns[mine_rows, :width],
        result.stats, result.trained_rewards[mine_rows])


def _inputs(mask, token_rewards, values, head, group_ids) -> AdvantageInputs:
    return AdvantageInputs(
        mask=mask,
        rewards=token_rewards,
        values=values[..., head] if values is not None else None,
        scores=token_rewards.sum(-1),  # the sequence's reward; 0 on padding
        group_ids=group_ids,
    )


def _estimator_hparams(cfg: TrainConfig) -> dict:
    """The ``train`` settings the estimator's traits name (gae: gamma and lam)."""
    return {name: getattr(cfg, name) for name in estimator_traits(cfg.advantage_estimator).hparams}
