"""Phase 5 of a step: PPO epochs over minibatches, micro-batches accumulated exactly.

Each micro-batch's mean loss is scaled by its share of the minibatch (tokens for 'token-mean',
sequences otherwise), so the accumulated gradient equals the gradient of one pass over the whole
minibatch: batch 4 x accumulation 1 equals batch 1 x accumulation 4.
"""

from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import dataclass

import torch

from rlsp.algorithms import aggregate_loss, clipped_value_loss, kl_loss
from rlsp.algorithms.normalization import masked_mean
from rlsp.algorithms.policy_losses import POLICY_LOSSES, policy_loss, truncated_is_weights
from rlsp.config.train_schema import TrainConfig
from rlsp.hooks import HookRunner
from rlsp.hooks.replay import replay_gradients
from rlsp.training.distributed import Distributed
from rlsp.training.forward import Sequences, completion_logprobs, completion_values
from rlsp.training.nonfinite import check_losses
from rlsp.training.packing import micro_batch_order


@dataclass
class UpdateBatch:
    """Everything the update needs for B sequences of T completion tokens."""

    seqs: Sequences
    # (B, T) policy log-probs before this step's update. None when the update is one optimizer
    # step over the whole batch: the policy it sees is then still the sampling policy, so its own
    # log-probs (detached) are the old ones and a separate no-grad pass would be wasted work.
    # ppo_update then returns the ones it computed.
    old_logprobs: torch.Tensor | None
    ref_logprobs: torch.Tensor | None  # (B, T), when the KL is in the loss
    advantages: torch.Tensor  # (B, T)
    old_values: torch.Tensor | None  # (B, T, H) critic values before the update
    returns: torch.Tensor | None  # (B, T, H) critic targets
    max_tokens: int | None = None  # generation.max_new_tokens: the normaliser of token-sum-norm
    keep: torch.Tensor | None = None  # (B,) 0 for samples left out of the losses (truncated ones)
    sampling_logprobs: torch.Tensor | None = None  # (B, T) the generator's, for truncated importance sampling

    def __len__(self) -> int:
        return self.seqs.completion_ids.shape[0]

    def rows(self, index: torch.Tensor) -> UpdateBatch:
        pick = lambda x: None if x is None else x[index]
        return UpdateBatch(self.seqs.index(index), pick(self.old_logprobs), pick(self.ref_logprobs),
                           pick(self.advantages), pick(self.old_values), pick(self.returns), self.max_tokens,
                           pick(self.keep), pick(self.sampling_logprobs))

    def loss_mask(self) -> torch.Tensor:
        """(B, T) 1 on the completion tokens that enter the losses."""
        mask = self.seqs.completion_mask.float()
        return mask if self.keep is None else mask * self.keep[:, None]


@dataclass
class Optimisation:
    """A model with its optimizer and learning-rate scheduler."""

    model: torch.nn.Module
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LRScheduler


def ppo_update(
    batch: UpdateBatch,
    actor: Optimisation | None,
    critic: Optimisation | None,
    cfg: TrainConfig,
    temperature: float,
    kl_coef_in_loss: float,
    dist: Distributed,
    hooks: HookRunner | None = None,
) -> tuple[dict[str, float], torch.Tensor | None]:
    """Run ``cfg.ppo_epochs`` passes; ``actor`` None trains the critic only (warm-up).

    ``hooks`` get the policy's forward (grad=True), backward and optimizer-step events.

    Returns the mean statistics and the (B, T) old log-probs: ``batch.old_logprobs``, or the
    ones the single optimizer step computed when the batch came without them.
    """
    fill_old = batch.old_logprobs is None
    old_logprobs = batch.old_logprobs
    if fill_old:
        if not single_optimizer_step(cfg, len(batch)) or actor is None:
            raise ValueError("old_logprobs may be left out only for one actor optimizer step over the whole batch")
        old_logprobs = torch.zeros_like(batch.advantages)
    hooks = hooks or HookRunner([], "rl", lambda: None)
    sums: dict[str, float] = defaultdict(float)
    counts: dict[str, int] = defaultdict(int)
    for _ in range(cfg.ppo_epochs):
        order = torch.randperm(len(batch))
        for start in range(0, len(batch), cfg.minibatch_size):
            rows = order[start : start + cfg.minibatch_size]
            # Micro-batches of similar lengths (or of whole prompts, padding-free) waste the least;
            # the accumulated gradient does not depend on how the minibatch is split.
            seqs = batch.seqs.index(rows)
            rows = rows[micro_batch_order(seqs.prompt_ids, seqs.prompt_mask, seqs.completion_mask,
                                          padding_free(cfg, hooks))]
            minibatch = batch.rows(rows)
            stats, seen_logprobs = _minibatch_step(minibatch, actor, critic, cfg, temperature, kl_coef_in_loss,
                                                   dist, hooks)
            if fill_old:
                old_logprobs[rows] = seen_logprobs
            for k, v in stats.items():
                sums[k] += v
                counts[k] += 1
    # Each process's statistics are its share of the global minibatch's, times the process count.
    stats = dist.sum_across({k: sums[k] / counts[k] / dist.num_processes for k in sums})
    return stats, old_logprobs


def padding_free(cfg: TrainConfig, hooks: HookRunner) -> bool:
    """The policy's passes pack each prompt's samples (packing.py), unless hooks are set: they see
    the plain padded layout (gradient diagnostics mask its response positions)."""
    return cfg.padding_free and not hooks.hooks


def single_optimizer_step(cfg: TrainConfig, batch_size: int) -> bool:
    """One PPO epoch with one minibatch: the update's policy is the one that sampled the batch."""
    return cfg.ppo_epochs == 1 and cfg.minibatch_size >= batch_size


@dataclass(frozen=True)
class MinibatchCounts:
    """What the aggregations of one optimizer step divide by, over the whole minibatch: its rows on
    every process together, so that N processes with B rows each compute the loss of one process
    with N x B rows (DDP and DeepSpeed average the processes' gradients; the factor N undoes it)."""

    tokens: float  # loss tokens
    rows: float  # every row (token-sum-norm's constant counts them all)
    sequences: float  # rows with at least one loss token (the sequence means)
    processes: int

    @classmethod
    def of(cls, mask: torch.Tensor, dist: Distributed) -> MinibatchCounts:
        totals = dist.sum_across(_counts(mask))
        return cls(totals["tokens"], totals["rows"], totals["sequences"], dist.num_processes)

    def share(self, mask: torch.Tensor, aggregation: str) -> float:
        """A micro-batch's part of the minibatch's normaliser under ``aggregation``: its loss (a mean
        over its own tokens or rows) times this is its term of the minibatch's loss, exactly."""
        key = {"token-mean": "tokens", "token-sum-norm": "rows"}.get(aggregation, "sequences")
        return _counts(mask)[key] / max(getattr(self, key), 1.0) * self.processes


def _counts(mask: torch.Tensor) -> dict[str, float]:
    return {"tokens": float(mask.sum()), "rows": float(mask.shape[0]), "sequences": float((mask.sum(-1) > 0).sum())}


def _minibatch_step(mb: UpdateBatch, actor, critic, cfg, temperature, kl_coef_in_loss, dist: Distributed,
                    hooks: HookRunner):
    """One optimizer step; returns its statistics and, when ``mb.old_logprobs`` is None, the
    detached log-probs the actor computed (used as the old ones)."""
    stats: dict[str, float] = defaultdict(float)
    seen_logprobs, non_finite = [], []
    n = len(mb)
    micro_starts = list(range(0, n, cfg.micro_batch_size))

    counts = MinibatchCounts.of(mb.loss_mask(), dist)

    def micro_batches():
        for i, start in enumerate(micro_starts):
            micro = mb.rows(torch.arange(start, min(start + cfg.micro_batch_size, n)))
            mask = micro.loss_mask()
            yield i == len(micro_starts) - 1, micro, mask, lambda agg, m=mask: counts.share(m, agg)

    def replay() -> dict[str, torch.Tensor]:
        """This step's actor gradients again, every hook suspended (for gradient diagnostics)."""
        def run_micro_batches():
            for _, micro, mask, share in micro_batches():
                loss = _actor_loss(actor.model, micro, mask, share, cfg, temperature, kl_coef_in_loss)[0]
                dist.backward(loss, actor.model)

        return replay_gradients(actor.model, dist.unwrap(actor.model), hooks, run_micro_batches)

    for last, micro, mask, share in micro_batches():
        if actor is not None:
            with dist.no_sync_unless(last, actor.model):
                token_mask = response_token_mask(micro.seqs) if hooks.hooks else None
                with hooks.around("forward", role="policy", grad=True, token_mask=token_mask):
                    loss, actor_stats, logp = _actor_loss(actor.model, micro, mask, share, cfg, temperature,
                                                          kl_coef_in_loss, padding_free(cfg, hooks))
                non_finite += _non_finite("policy loss", loss)
                dist.backward(loss, actor.model)
                hooks.fire("backward_end")
            seen_logprobs.append(logp.detach())
            for k, v in actor_stats.items():
                stats[k] += v
        if critic is not None:
            with dist.no_sync_unless(last, critic.model):
                loss, critic_stats = _critic_loss(critic.model, micro, mask, share, cfg, padding_free(cfg, hooks))
                non_finite += _non_finite("value loss", loss)
                dist.backward(loss, critic.model)
            for k, v in critic_stats.items():
                stats[k] += v
    check_losses(non_finite, dist)  # every process, before any optimizer step
    for name, opt in (("actor", actor), ("critic", critic)):
        if opt is None:
            continue
        def before_step(name=name):
            if name == "actor":
                hooks.fire("optimizer_step_start", replay=replay if hooks.wants_replay else None)

        stats[f"{name}/grad_norm"] = dist.optimizer_step(opt, cfg.max_grad_norm, before_step, name)
        opt.scheduler.step()
        stats[f"{name}/lr"] = opt.scheduler.get_last_lr()[0]
        if name == "actor":
            hooks.fire("optimizer_step_end")
    return stats, (torch.cat(seen_logprobs) if seen_logprobs else None)


def _non_finite(name: str, loss: torch.Tensor) -> list[str]:
    value = loss.item()
    return [] if math.isfinite(value) else [f"the {name} is {value}"]


def response_token_mask(seqs: Sequences) -> torch.Tensor:
    """(B, L) 1 on the completion tokens of the model's input, as ``completion_logprobs`` builds
    it (the rows trimmed of shared padding)."""
    trimmed = seqs.trimmed()
    return torch.cat([torch.zeros_like(trimmed.prompt_mask), trimmed.completion_mask], dim=1)


def _actor_loss(model, micro: UpdateBatch, mask, share, cfg: TrainConfig, temperature, kl_coef_in_loss,
                padding_free: bool = False):
    """The micro-batch's term of the minibatch's actor loss, and its statistics weighted alike.

    Each part is scaled by ``share(aggregation)`` of its own normaliser (``MinibatchCounts``), so the terms
    of all micro-batches add up to the loss of one pass over the minibatch: the policy loss by its
    aggregation (GSPO's: a mean over sequences), the entropy and the KL by ``train.loss_aggregation``.
    """
    logp, entropy = completion_logprobs(model, micro.seqs, temperature, with_entropy=True,
                                        entropy_grad=cfg.entropy_coef > 0, padding_free=padding_free)
    old = logp.detach() if micro.old_logprobs is None else micro.old_logprobs
    high = cfg.clip_eps if cfg.clip_eps_high is None else cfg.clip_eps_high
    advantages, tis_stats = micro.advantages, {}
    token_share, agg_share = share("token-mean"), share(cfg.loss_aggregation)
    if cfg.tis != "off" and micro.sampling_logprobs is not None:
        weights = truncated_is_weights(old, micro.sampling_logprobs, mask, cfg.tis, cfg.tis_cap)
        # every loss here is linear in a positive per-token scale of A, so weighting A is exact
        advantages = advantages * weights
        tis_stats = {"tis/weight_mean": float(masked_mean(weights, mask)) * token_share,
                     "tis/capped_share": float(masked_mean((weights >= cfg.tis_cap).float(), mask)) * token_share}
    loss, pg = policy_loss(cfg.policy_loss, logp, old, advantages, mask, cfg.clip_eps, high,
                           cfg.loss_aggregation, cfg.dual_clip, micro.max_tokens)
    own_aggregation = POLICY_LOSSES.traits(cfg.policy_loss).own_aggregation  # GSPO's: over sequences
    pg_share = share(own_aggregation or cfg.loss_aggregation)
    loss = loss * pg_share
    mean_entropy = aggregate_loss(entropy, mask, cfg.loss_aggregation, micro.max_tokens) * agg_share
    clip_share = pg_share if own_aggregation else token_share  # a share of what it counts
    stats = {"policy/loss": loss.item(), "policy/clipfrac": float(pg["clipfrac"]) * clip_share,
             "policy/approx_kl": float(pg["approx_kl"]) * token_share, "policy/entropy": mean_entropy.item(),
             **tis_stats}
    if "dual_clipfrac" in pg:
        stats["policy/dual_clipfrac"] = float(pg["dual_clipfrac"]) * token_share
    if cfg.entropy_coef > 0:
        loss = loss - cfg.entropy_coef * mean_entropy
    if kl_coef_in_loss > 0 and micro.ref_logprobs is not None:
        kl = kl_loss(logp, micro.ref_logprobs, mask, cfg.kl.estimator, cfg.loss_aggregation, micro.max_tokens)
        kl = kl * agg_share
        stats["policy/kl_loss"] = kl.item()
        loss = loss + kl_coef_in_loss * kl
    return loss, stats, logp


def _critic_loss(critic, micro: UpdateBatch, mask, share, cfg: TrainConfig, padding_free: bool = False):
    """The micro-batch's term of the minibatch's value loss (see ``_actor_loss``)."""
    values = completion_values(critic, micro.seqs, padding_free)
    total, clipfrac = 0.0, 0.0
    heads = values.shape[-1]
    for h in range(heads):
        loss, vs = clipped_value_loss(values[..., h], micro.old_values[..., h], micro.returns[..., h], mask,
                                      cfg.value_clip_eps, cfg.loss_aggregation, micro.max_tokens)
        total = total + loss
        clipfrac += float(vs["value_clipfrac"]) / heads
    total = total * share(cfg.loss_aggregation)
    return total, {"value/loss": total.item(), "value/clipfrac": clipfrac * share("token-mean")}
