"""Advantage estimators against values worked out by hand."""

import math

import pytest
import torch

from rlsp.algorithms.advantages import (
    ADVANTAGE_ESTIMATORS,
    AdvantageInputs,
    compute_gae,
    compute_grpo_advantages,
    compute_reinforce_plus_plus,
    compute_rloo_advantages,
    get_advantage_estimator,
    register_advantage_estimator,
)
from rlsp.errors import ConfigError

MASK = torch.tensor([[1.0, 1.0, 1.0], [1.0, 1.0, 0.0]])


def gae_batch(pad: float) -> tuple[torch.Tensor, torch.Tensor]:
    rewards = torch.tensor([[0.0, 0.0, 1.0], [0.0, 2.0, pad]])
    values = torch.tensor([[0.5, 0.6, 0.7], [1.0, 0.5, pad]])
    return rewards, values


def test_gae_by_hand_gamma_1_lambda_095():
    rewards, values = gae_batch(pad=0.0)
    adv, ret = compute_gae(rewards, values, MASK, gamma=1.0, lam=0.95)
    # row 0: t=2: delta = 1 + 0 - 0.7 = 0.3 (no bootstrap after the last token); A2 = 0.3
    #        t=1: delta = 0 + 0.7 - 0.6 = 0.1; A1 = 0.1 + 0.95 * 0.3 = 0.385
    #        t=0: delta = 0 + 0.6 - 0.5 = 0.1; A0 = 0.1 + 0.95 * 0.385 = 0.46575
    # row 1 (length 2): t=1: delta = 2 + 0 - 0.5 = 1.5; t=0: delta = 0.5 - 1 = -0.5,
    #        A0 = -0.5 + 0.95 * 1.5 = 0.925; padding -> 0
    expected_adv = torch.tensor([[0.46575, 0.385, 0.3], [0.925, 1.5, 0.0]])
    torch.testing.assert_close(adv, expected_adv)
    # returns = advantages + values: [0.96575, 0.985, 1.0], [1.925, 2.0, 0]
    torch.testing.assert_close(ret, torch.tensor([[0.96575, 0.985, 1.0], [1.925, 2.0, 0.0]]))


def test_gae_discount():
    # gamma = 0.5, lam = 1, V = 0: A_t = discounted return = [0.25, 0.5, 1]
    rewards = torch.tensor([[0.0, 0.0, 1.0]])
    adv, ret = compute_gae(rewards, torch.zeros(1, 3), torch.ones(1, 3), gamma=0.5, lam=1.0)
    torch.testing.assert_close(adv, torch.tensor([[0.25, 0.5, 1.0]]))
    torch.testing.assert_close(ret, adv)


def test_gae_ignores_padding_values():
    a = compute_gae(*gae_batch(pad=0.0), MASK, gamma=1.0, lam=0.95)
    b = compute_gae(*gae_batch(pad=123.0), MASK, gamma=1.0, lam=0.95)
    torch.testing.assert_close(a, b)


def test_grpo_group_of_two():
    scores = torch.tensor([1.0, 0.0, 0.5, 0.5])
    group_ids = torch.tensor([0, 0, 1, 1])
    mask = torch.tensor([[1.0, 1.0], [1.0, 0.0], [1.0, 1.0], [1.0, 1.0]])
    adv = compute_grpo_advantages(scores, group_ids, mask)
    # group 0: mean 0.5, unbiased std sqrt((0.25 + 0.25) / 1) = 0.70711; 0.5 / 0.70711 = 0.70711
    # group 1: equal scores -> 0
    s = 0.5 / math.sqrt(0.5)
    expected = torch.tensor([[s, s], [-s, 0.0], [0.0, 0.0], [0.0, 0.0]])
    torch.testing.assert_close(adv, expected, atol=1e-5, rtol=0)
    unscaled = compute_grpo_advantages(scores, group_ids, mask, scale_by_std=False)
    expected_unscaled = torch.tensor([[0.5, 0.5], [-0.5, 0.0], [0.0, 0.0], [0.0, 0.0]])
    torch.testing.assert_close(unscaled, expected_unscaled)


def test_grpo_singleton_group_is_zero():
    adv = compute_grpo_advantages(torch.tensor([3.0]), torch.tensor([0]), torch.ones(1, 2))
    torch.testing.assert_close(adv, torch.zeros(1, 2))


def test_rloo_group_of_three_interleaved_with_singleton():
    # group 7 = samples 0, 2, 3 with scores 1, 0, 0.2; group 3 = sample 1 alone
    scores = torch.tensor([1.0, 5.0, 0.0, 0.2])
    group_ids = torch.tensor([7, 3, 7, 7])
    mask = torch.tensor([[1.0, 1.0], [1.0, 1.0], [1.0, 1.0], [1.0, 0.0]])
    adv = compute_rloo_advantages(scores, group_ids, mask)
    # A = s - mean(others): 1 - (0 + 0.2)/2 = 0.9; 0 - (1 + 0.2)/2 = -0.6; 0.2 - (1 + 0)/2 = -0.3
    # the singleton has no baseline -> 0
    expected = torch.tensor([[0.9, 0.9], [0.0, 0.0], [-0.6, -0.6], [-0.3, 0.0]])
    torch.testing.assert_close(adv, expected)


def test_reinforce_plus_plus_by_hand():
    rewards = torch.tensor([[0.0, 0.0, 1.0], [0.0, -1.0, 50.0]])  # 50.0 is padding
    adv, ret = compute_reinforce_plus_plus(rewards, MASK, gamma=1.0)
    # returns: [1, 1, 1] and [-1, -1, pad -> 0]
    torch.testing.assert_close(ret, torch.tensor([[1.0, 1.0, 1.0], [-1.0, -1.0, 0.0]]))
    # whiten over the 5 real tokens: mean 0.2, unbiased var (3*0.64 + 2*1.44)/4 = 1.2
    std = math.sqrt(1.2)
    hi, lo = 0.8 / std, -1.2 / std
    torch.testing.assert_close(adv, torch.tensor([[hi, hi, hi], [lo, lo, 0.0]]))
    _, ret_discounted = compute_reinforce_plus_plus(rewards, MASK, gamma=0.5)
    # row 0: [0.25, 0.5, 1]; row 1: [-0.5, -1, 0]
    torch.testing.assert_close(ret_discounted, torch.tensor([[0.25, 0.5, 1.0], [-0.5, -1.0, 0.0]]))


def test_registry_uniform_call_matches_functions():
    rewards, values = gae_batch(pad=0.0)
    inputs = AdvantageInputs(
        mask=MASK, rewards=rewards, values=values,
        scores=torch.tensor([1.0, 0.0]), group_ids=torch.tensor([0, 0]),
    )
    adv, _ = get_advantage_estimator("gae")(inputs, gamma=1.0, lam=0.95)
    torch.testing.assert_close(adv, compute_gae(rewards, values, MASK, 1.0, 0.95)[0])
    adv, ret = get_advantage_estimator("rloo")(inputs)
    # 1 - 0 = 1 and 0 - 1 = -1 on real tokens
    torch.testing.assert_close(adv, torch.tensor([[1.0, 1.0, 1.0], [-1.0, -1.0, 0.0]]))
    torch.testing.assert_close(ret, adv)
    adv, _ = get_advantage_estimator("dr_grpo")(inputs)
    torch.testing.assert_close(adv, torch.tensor([[0.5, 0.5, 0.5], [-0.5, -0.5, 0.0]]))
    adv, _ = get_advantage_estimator("reinforce++")(inputs, gamma=1.0)
    torch.testing.assert_close(adv, compute_reinforce_plus_plus(rewards, MASK)[0])


def test_registry_errors():
    with pytest.raises(ConfigError, match="gae, grpo, reinforce\\+\\+, rloo"):
        get_advantage_estimator("ppo")
    with pytest.raises(ConfigError, match="values"):
        get_advantage_estimator("gae")(AdvantageInputs(mask=MASK, rewards=torch.zeros(2, 3)))
    with pytest.raises(ConfigError, match="scores, group_ids"):
        get_advantage_estimator("grpo")(AdvantageInputs(mask=MASK))
    with pytest.raises(ValueError, match="already registered"):
        register_advantage_estimator("gae")(lambda inputs: (inputs.mask, inputs.mask))


def test_register_custom_estimator():
    @register_advantage_estimator("test-ones")
    def ones(inputs: AdvantageInputs):
        return inputs.mask, inputs.mask

    try:
        assert get_advantage_estimator("test-ones") is ones
    finally:
        del ADVANTAGE_ESTIMATORS["test-ones"]
