"""The training settings whose default depends on the algorithm chosen, resolved once when a
recipe loads, so that every default computes the algorithm its name promises.

``train.advantage_estimator`` and ``train.policy_loss`` name algorithms from papers; the settings
a recipe leaves null (``whiten_advantages``, ``loss_aggregation``, ``kl.placement``,
``kl.estimator``, ``clip_eps``, ``clip_eps_high``, ``reward.normalize``) take that paper's values here, and everything
downstream reads the resolved values (``rlsp validate`` prints them). A setting that contradicts
the algorithm is refused with the reason instead of silently changing it.
"""

from __future__ import annotations

import dataclasses

from rlsp.algorithms.advantages import ADVANTAGE_ESTIMATORS, estimator_traits
from rlsp.algorithms.kl import KL_ESTIMATORS
from rlsp.algorithms.losses import AGGREGATIONS
from rlsp.algorithms.policy_losses import POLICY_LOSSES
from rlsp.algorithms.schedules import SCHEDULES
from rlsp.config.train_schema import TrainConfig
from rlsp.errors import ConfigError


def check_algorithm_names(train: TrainConfig, source: str) -> None:
    """Every algorithm part ``train`` names is registered (rlsp's own, or by a module under
    ``train.plugins``, imported before this); ``ConfigError`` naming the setting and the choices."""
    for registry, name in ((ADVANTAGE_ESTIMATORS, train.advantage_estimator), (POLICY_LOSSES, train.policy_loss),
                           (KL_ESTIMATORS, train.kl.estimator), (AGGREGATIONS, train.loss_aggregation),
                           (SCHEDULES, train.reward.alpha.schedule)):
        if name is None:  # left to the algorithm's default
            continue
        try:
            registry[name]
        except ConfigError as e:  # the registry's message names the setting and the choices
            raise ConfigError(f"{source}: {e}") from None


def resolve_algorithm_defaults(train: TrainConfig, source: str) -> TrainConfig:
    """``train`` with every null algorithm setting filled in; ``ConfigError`` (prefixed with
    ``source``) for an unregistered name or a setting that contradicts the chosen estimator or
    KL placement."""
    check_algorithm_names(train, source)
    name = train.advantage_estimator
    traits = estimator_traits(name)
    policy = POLICY_LOSSES.traits(train.policy_loss)
    problems = []
    if train.whiten_advantages and (traits.per_sequence or traits.whitens_itself):
        why = ("its advantages are relative to the other answers of a prompt; whitening over the batch shifts "
               "them, so a group whose answers all scored alike gets a non-zero advantage"
               if traits.per_sequence else "it already whitens its returns over the batch")
        problems.append(f"train.whiten_advantages: true does not go with '{name}': {why}. Leave it unset (off).")
    placement = train.kl.placement or traits.kl_placement
    estimator = train.kl.estimator or ("k1" if placement == "reward" else "k3")
    if placement == "loss" and estimator == "k1":
        problems.append("train.kl.estimator: k1 in the loss has no gradient in expectation (its mean under the "
                        "policy's own samples does not depend on the policy); use k3 (GRPO's) or k2 in the loss, "
                        "or k1 with train.kl.placement: reward.")
    if placement == "reward" and estimator != "k1" and train.kl.coef > 0:
        problems.append(f"train.kl.estimator: {estimator} as a reward biases the KL's gradient (only k1's score-"
                        f"function gradient is the KL's); use k1 in the reward, or {estimator} with "
                        f"train.kl.placement: loss.")
    if problems:
        more = f" (and {len(problems) - 1} more: fix this one and validate again)" if len(problems) > 1 else ""
        raise ConfigError(f"{source}: {problems[0]}{more}")
    if train.clip_eps is None and train.clip_eps_high is None:
        low, high = policy.clip_eps, policy.clip_eps_high or policy.clip_eps
    else:  # one of them set: the other is the paper's lower bound, or symmetric to the lower one set
        low = policy.clip_eps if train.clip_eps is None else train.clip_eps
        high = low if train.clip_eps_high is None else train.clip_eps_high
    normalize = train.reward.normalize
    if normalize is None:
        normalize = train.reward.mode == "decoupled" or traits.normalize_rewards
    resolved = dataclasses.replace(
        train,
        reward=dataclasses.replace(train.reward, normalize=normalize),
        whiten_advantages=traits.whiten if train.whiten_advantages is None else train.whiten_advantages,
        loss_aggregation=train.loss_aggregation or policy.aggregation or traits.aggregation,
        clip_eps=low,
        clip_eps_high=high,
        kl=dataclasses.replace(train.kl, placement=placement, estimator=estimator),
    )
    check_algorithm_names(resolved, source)  # a registered estimator's traits may name parts too
    return resolved
