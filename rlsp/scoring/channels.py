"""Scoring a batch with every reward function of a recipe, summed into the two channels.

The trainer calls ``build_reward_functions`` once (at load time, so a bad entry fails before any
model loads), then ``score_all`` and ``channel_totals`` on every step.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch

from rlsp.config.train_schema import RewardSpec
from rlsp.errors import ConfigError, RewardError, RlspError
from rlsp.scoring.reward_function import RewardFunction, RewardResult

CHANNELS = ("verifier", "exploration")  # the values RewardSpec.channel allows


def build_reward_functions(
    specs: Sequence[RewardSpec], base_dir: Path | None = None
) -> list[RewardFunction]:
    """``RewardFunction`` for each recipe entry; fails at load time on duplicate log names.

    Errors name the recipe entry (``rewards.1: ...``) so the user knows which one to fix.
    """
    functions = []
    for i, spec in enumerate(specs):
        try:
            functions.append(RewardFunction(spec, base_dir))
        except RlspError as e:
            raise type(e)(f"rewards.{i} ({spec.function}): {e}") from None
    _check_unique_names(functions)
    return functions


def _check_unique_names(reward_functions: Sequence[RewardFunction]) -> None:
    seen: set[str] = set()
    for fn in reward_functions:
        if fn.name in seen:
            raise ConfigError(
                f"two reward functions are named '{fn.name}'; give one of them a distinct `name:`"
            )
        seen.add(fn.name)


def reward_columns(examples: Sequence[Any], lengths: Sequence[int], finish_reasons: Sequence[str]) -> dict[str, list]:
    """The keyword columns of a reward call: every dataset column (None where a row lacks it),
    plus ``completion_lengths`` and ``finish_reasons`` (``TRAINER_COLUMNS``)."""
    keys = {k for e in examples for k in e.columns}
    columns = {key: [e.columns.get(key) for e in examples] for key in keys}
    columns["completion_lengths"] = list(lengths)
    columns["finish_reasons"] = list(finish_reasons)
    return columns


def score_all(
    reward_functions: Sequence[RewardFunction],
    prompts: Sequence[str],
    completions: Sequence[str],
    references: Sequence[Any],
    columns: Mapping[str, Sequence] | None = None,
) -> dict[str, RewardResult]:
    """Every reward function's result on one batch, keyed by its log name."""
    _check_unique_names(reward_functions)
    return {fn.name: fn(prompts, completions, references, columns) for fn in reward_functions}


def channel_totals(
    reward_functions: Sequence[RewardFunction], results: Mapping[str, RewardResult]
) -> dict[str, torch.Tensor]:
    """Weighted sum of scores per channel: ``{"verifier": (B,), "exploration": (B,)}``.

    A not-applicable sample contributes 0 to its channel; a channel with no functions is 0.
    """
    if not results:
        raise RewardError(
            "no reward function results to combine; the recipe needs at least one reward"
        )
    batch = len(next(iter(results.values())).scores)
    totals = {channel: torch.zeros(batch, dtype=torch.float32) for channel in CHANNELS}
    for fn in reward_functions:
        result = results[fn.name]
        totals[fn.channel] += fn.weight * torch.where(result.applicable, result.scores, 0.0)
    return totals
