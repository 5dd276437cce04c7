"""Masked statistics, whitening and running reward normalisation.

Responses are right-padded: tensors of shape (B, T) come with a ``mask`` (B, T) that is 1 on real
response tokens and 0 on padding. Padding never enters a statistic.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import Tensor


def masked_mean(x: Tensor, mask: Tensor, dim: int | None = None) -> Tensor:
    """Mean of ``x`` over the positions where ``mask`` is 1.

    Args:
        x: (B, T) values; padded positions may hold anything finite.
        mask: (B, T) 1 on real tokens, 0 on padding.
        dim: None for one mean over every real token of the batch (0-d result), or a dim to
            reduce (e.g. -1 gives the (B,) per-sequence means; an all-padding row gives 0).
    """
    mask = mask.to(x.dtype)
    if dim is None:
        return (x * mask).sum() / mask.sum().clamp(min=1.0)
    return (x * mask).sum(dim) / mask.sum(dim).clamp(min=1.0)


def masked_var(x: Tensor, mask: Tensor, unbiased: bool = True) -> Tensor:
    """Variance of ``x`` over the real tokens of the whole batch (0-d).

    ``unbiased`` applies Bessel's correction n / (n - 1), as TRL and verl do in ``masked_whiten``.
    """
    mean = masked_mean(x, mask)
    var = masked_mean((x - mean) ** 2, mask)
    if unbiased:
        n = mask.to(x.dtype).sum()
        if n < 2:
            raise ValueError(f"unbiased masked variance needs at least 2 real tokens, got {int(n)}")
        var = var * n / (n - 1)
    return var


def masked_whiten(x: Tensor, mask: Tensor, shift_mean: bool = True, eps: float = 1e-8) -> Tensor:
    """Whiten ``x`` with the mean and (unbiased) variance of its real tokens.

    Args:
        x: (B, T) e.g. advantages.
        mask: (B, T) 1 on real tokens.
        shift_mean: if False, add the mean back after scaling (only rescale, keep the offset).
        eps: added to the variance.

    Returns:
        (B, T) ``(x - mean) / sqrt(var + eps)`` on real tokens, 0 on padding.
    """
    mean, var = masked_mean(x, mask), masked_var(x, mask)
    whitened = (x - mean) * torch.rsqrt(var + eps)
    if not shift_mean:
        whitened = whitened + mean
    return whitened * mask.to(x.dtype)


class RunningMeanStd:
    """Exact running mean and population variance of every value seen, in float64.

    Batches are merged with Chan et al.'s parallel update, starting from count 0 (no pseudo-count),
    so after any sequence of ``update`` calls ``mean`` and ``var`` equal ``np.mean`` / ``np.var``
    of the concatenation of all batches.
    """

    def __init__(self) -> None:
        self.mean = 0.0
        self.var = 0.0
        self.count = 0

    @property
    def std(self) -> float:
        return math.sqrt(self.var)

    def update(self, x: Tensor) -> None:
        """Fold in every element of ``x`` (any shape)."""
        x = x.detach().reshape(-1).to(torch.float64)
        n = x.numel()
        if n == 0:
            return
        batch_mean = x.mean().item()
        batch_var = x.var(unbiased=False).item()
        total = self.count + n
        delta = batch_mean - self.mean
        m2 = self.var * self.count + batch_var * n + delta**2 * self.count * n / total
        self.mean += delta * n / total
        self.var = m2 / total
        self.count = total

    def state_dict(self) -> dict[str, Any]:
        return {"mean": self.mean, "var": self.var, "count": self.count}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        missing = {"mean", "var", "count"} - state.keys()
        if missing:
            raise KeyError(f"RunningMeanStd state is missing {sorted(missing)}")
        self.mean, self.var = float(state["mean"]), float(state["var"])
        self.count = int(state["count"])


class RewardNormalizer:
    """Normalise (B,) sequence rewards with running statistics, then clip to [-clip, clip].

    Use one instance per reward channel (verifier, exploration) so their scales stay independent.
    Each call first folds the batch into the statistics, then normalises it with them (so the first
    batch is normalised by its own mean and std), as gym's ``NormalizeReward`` does. The RLSP paper
    normalises and clips to [-10, 10].
    """

    def __init__(self, clip: float = 10.0, center: bool = True, eps: float = 1e-8) -> None:
        if clip <= 0:
            raise ValueError(f"clip must be > 0, got {clip}")
        self.clip, self.center, self.eps = clip, center, eps
        self.stats = RunningMeanStd()

    def __call__(self, scores: Tensor, update: bool = True) -> Tensor:
        """(B,) raw scores -> (B,) normalised, clipped scores (same dtype as ``scores``).

        ``update=False`` normalises with the current statistics without changing them (evaluation).
        """
        if update:
            self.stats.update(scores)
        x = scores.to(torch.float64)
        if self.center:
            x = x - self.stats.mean
        x = x / math.sqrt(self.stats.var + self.eps)
        return x.clamp(-self.clip, self.clip).to(scores.dtype)

    def state_dict(self) -> dict[str, Any]:
        return self.stats.state_dict()

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.stats.load_state_dict(state)
