"""Recipe choices and the algorithm registries name the same things: every registered advantage
estimator, policy loss, KL estimator, loss aggregation and alpha schedule is selectable by name,
a name nobody registered is refused with the choices, and a part a user registers in a module
under ``train.plugins`` is selectable and is what training runs."""

from __future__ import annotations

import typing

import pytest
from test_training import make_recipe

from rlsp.algorithms.advantages import ADVANTAGE_ESTIMATORS
from rlsp.algorithms.combine import MODES
from rlsp.algorithms.kl import KL_ESTIMATORS
from rlsp.algorithms.losses import AGGREGATIONS
from rlsp.algorithms.policy_losses import POLICY_LOSSES
from rlsp.algorithms.schedules import SCHEDULES
from rlsp.config import load_recipe
from rlsp.config.train_schema import RewardMixConfig, RewardSpec
from rlsp.errors import ConfigError
from rlsp.scoring.channels import CHANNELS

ALGORITHM_PARTS = [  # (recipe setting, registry, overrides that make every registered name valid)
    ("train.advantage_estimator", ADVANTAGE_ESTIMATORS, ["train.samples_per_prompt=2"]),
    ("train.policy_loss", POLICY_LOSSES, []),
    ("train.kl.estimator", KL_ESTIMATORS, ["train.kl.placement=reward", "train.kl.coef=0"]),
    ("train.loss_aggregation", AGGREGATIONS, []),
    ("train.reward.alpha.schedule", SCHEDULES, []),
]


@pytest.mark.parametrize("setting, registry, overrides", ALGORITHM_PARTS, ids=[p[0] for p in ALGORITHM_PARTS])
def test_every_registered_name_loads_and_others_are_refused_with_the_choices(setting, registry, overrides):
    for name in registry:
        recipe = load_recipe(None, [*overrides, f"{setting}={name}"])
        value = recipe
        for part in setting.split("."):
            value = getattr(value, part)
        assert value == name
    with pytest.raises(ConfigError) as refused:
        load_recipe(None, [*overrides, f"{setting}=no-such-thing"])
    assert f"{setting}: unknown" in str(refused.value) and ", ".join(sorted(registry)) in str(refused.value)


def literal_choices(section, field: str) -> set[str]:
    return set(typing.get_args(section.__pydantic_fields__[field].annotation))


def test_reward_channels_and_mix_modes_equal_their_lists():
    assert literal_choices(RewardSpec, "channel") == set(CHANNELS)
    assert literal_choices(RewardMixConfig, "mode") == set(MODES)


PLUGIN = '''
import torch
from rlsp.algorithms.advantages import EstimatorTraits, register_advantage_estimator
from rlsp.algorithms.kl import KL_ESTIMATORS
from rlsp.algorithms.losses import AGGREGATIONS
from rlsp.algorithms.policy_losses import POLICY_LOSSES, PolicyLossTraits, clipped_policy_loss
from rlsp.algorithms.schedules import SCHEDULES

CALLS = {"estimator": 0, "loss": 0, "kl": 0, "aggregation": 0, "schedule": 0}


@register_advantage_estimator("plugin_score", EstimatorTraits(per_sequence=True, aggregation="plugin_sum",
                                                              kl_placement="loss"))
def score_as_advantage(inputs, **hparams):
    CALLS["estimator"] += 1
    advantages = inputs.scores[:, None] * inputs.mask
    return advantages, advantages


@POLICY_LOSSES.register("plugin_ppo", PolicyLossTraits(clip_eps=0.1))
def plain_ppo(logp, old_logp, advantages, mask, clip):
    CALLS["loss"] += 1
    return clipped_policy_loss(logp, old_logp, advantages, mask, clip.low, clip.aggregation, clip_high=clip.high)


@KL_ESTIMATORS.register("plugin_k2")
def half_square(log_ratio):
    CALLS["kl"] += 1
    return 0.5 * log_ratio**2


@AGGREGATIONS.register("plugin_sum")
def token_sum(loss, mask, max_tokens):
    CALLS["aggregation"] += 1
    return (loss * mask).sum()


@SCHEDULES.register("plugin_step")
def halfway_jump(progress):
    CALLS["schedule"] += 1
    return float(progress >= 0.5)
'''
PLUGIN_NAMES = [(ADVANTAGE_ESTIMATORS, "plugin_score"), (POLICY_LOSSES, "plugin_ppo"), (KL_ESTIMATORS, "plugin_k2"),
                (AGGREGATIONS, "plugin_sum"), (SCHEDULES, "plugin_step")]


@pytest.fixture
def plugin_file(tmp_path):
    (tmp_path / "my_algorithms.py").write_text(PLUGIN)
    yield "my_algorithms.py"
    for registry, name in PLUGIN_NAMES:
        if name in registry:
            registry.unregister(name)


def test_parts_a_plugin_registers_are_chosen_by_name_and_run_in_training(tmp_path, tiny_model_dir, plugin_file):
    from rlsp.training.ppo_trainer import Trainer

    path, _ = make_recipe(tmp_path, tiny_model_dir)
    overrides = [f"train.plugins=[{plugin_file}]", "train.advantage_estimator=plugin_score",
                 "train.policy_loss=plugin_ppo", "train.kl.estimator=plugin_k2", "train.kl.coef=0.1",
                 "train.samples_per_prompt=2", "train.reward.alpha.schedule=plugin_step", "train.reward.alpha.end=1.0",
                 "train.reward.alpha.start=0.5"]
    recipe = load_recipe(path, overrides)
    # the estimator's traits supply the defaults left unset; the policy loss's its clip range
    assert recipe.train.loss_aggregation == "plugin_sum" and recipe.train.kl.placement == "loss"
    assert recipe.train.clip_eps == recipe.train.clip_eps_high == 0.1
    Trainer(recipe, path).fit()
    import sys

    calls = next(m.CALLS for name, m in sys.modules.items() if name.startswith("_rlsp_user_my_algorithms"))
    assert all(n > 0 for n in calls.values()), calls


def test_a_plugin_that_is_missing_or_registers_a_taken_name_is_refused_naming_it(tmp_path, plugin_file):
    recipe = tmp_path / "r.yaml"
    recipe.write_text("train: {plugins: [not_here.py]}\n")
    with pytest.raises(ConfigError, match="train.plugins file 'not_here.py' not found"):
        load_recipe(recipe)
    (tmp_path / "taken.py").write_text("from rlsp.algorithms.kl import KL_ESTIMATORS\n"
                                       "KL_ESTIMATORS.register('k3')(lambda log_ratio: log_ratio)\n")
    recipe.write_text("train: {plugins: [taken.py]}\n")
    with pytest.raises(ConfigError, match="KL estimator 'k3' is already registered"):
        load_recipe(recipe)
