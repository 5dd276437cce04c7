"""Recipe choices and the algorithm registries name the same things, so every registered
estimator, KL estimator and loss aggregation is selectable and every choice has an implementation."""

from __future__ import annotations

import typing

import pytest

from rlsp.algorithms import ADVANTAGE_ESTIMATORS
from rlsp.algorithms.combine import MODES
from rlsp.algorithms.kl import KL_ESTIMATORS
from rlsp.algorithms.losses import AGGREGATIONS
from rlsp.config.train_schema import KLConfig, RewardMixConfig, RewardSpec, TrainConfig
from rlsp.scoring.channels import CHANNELS


def choices(section, field: str) -> set[str]:
    """The names a Literal field allows (a field that may be null: null means "the algorithm's own")."""
    annotation = section.__pydantic_fields__[field].annotation
    literal = next((a for a in typing.get_args(annotation) if typing.get_origin(a) is typing.Literal), annotation)
    return set(typing.get_args(literal))


@pytest.mark.parametrize(
    "section, field, registry",
    [
        (TrainConfig, "advantage_estimator", ADVANTAGE_ESTIMATORS),
        (TrainConfig, "loss_aggregation", AGGREGATIONS),
        (KLConfig, "estimator", KL_ESTIMATORS),
        (RewardSpec, "channel", CHANNELS),
        (RewardMixConfig, "mode", MODES),
    ],
    ids=["advantage_estimator", "loss_aggregation", "kl.estimator", "rewards.channel", "reward.mode"],
)
def test_recipe_choices_equal_the_registry(section, field, registry):
    assert choices(section, field) == set(registry)
