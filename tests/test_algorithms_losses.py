"""PPO losses, aggregation and diagnostics against hand-computed values."""

import math

import pytest
import torch

from rlsp.algorithms.losses import (
    aggregate_loss,
    clipped_policy_loss,
    clipped_value_loss,
    entropy_from_logits,
    explained_variance,
    kl_loss,
)
from rlsp.errors import ConfigError


def test_aggregations_by_hand():
    loss = torch.tensor([[1.0, 2.0, 3.0], [4.0, 99.0, 99.0]])
    mask = torch.tensor([[1.0, 1.0, 1.0], [1.0, 0.0, 0.0]])
    assert aggregate_loss(loss, mask, "token-mean").item() == pytest.approx(10 / 4)  # (1+2+3+4)/4
    assert aggregate_loss(loss, mask, "seq-mean-token-mean").item() == pytest.approx(3.0)  # (2+4)/2
    assert aggregate_loss(loss, mask, "seq-mean-token-sum").item() == pytest.approx(5.0)  # (6+4)/2
    with pytest.raises(ConfigError, match="token-mean"):
        aggregate_loss(loss, mask, "sum")


def policy_batch(pad: float):
    # ratios 1.5, 0.5, 1.1, 0.5 on real tokens; one padded token
    ratios = [1.5, 0.5, 1.1, 0.5]
    logp = torch.tensor([[math.log(r) for r in ratios] + [pad]])
    old_logp = torch.zeros(1, 5)
    advantages = torch.tensor([[1.0, -1.0, 2.0, 1.0, pad]])
    mask = torch.tensor([[1.0, 1.0, 1.0, 1.0, 0.0]])
    return logp, old_logp, advantages, mask


def test_clipped_policy_loss_by_hand():
    loss, stats = clipped_policy_loss(*policy_batch(pad=0.0), clip_eps=0.2)
    # r=1.5, A=+1: max(-1.5, -1.2) = -1.2   (clipped above 1 + eps)
    # r=0.5, A=-1: max(0.5, 0.8) = 0.8      (clipped below 1 - eps)
    # r=1.1, A=+2: max(-2.2, -2.2) = -2.2   (inside the range)
    # r=0.5, A=+1: max(-0.5, -0.8) = -0.5   (outside, but the unclipped term is more pessimistic)
    assert loss.item() == pytest.approx((-1.2 + 0.8 - 2.2 - 0.5) / 4)
    assert stats["clipfrac"].item() == pytest.approx(0.5)
    approx_kl = sum((r - 1) - math.log(r) for r in [1.5, 0.5, 1.1, 0.5]) / 4
    assert stats["approx_kl"].item() == pytest.approx(approx_kl, rel=1e-5)


def test_clipped_policy_loss_ignores_padding_and_has_gradient():
    logp, old_logp, advantages, mask = policy_batch(pad=0.0)
    logp.requires_grad_(True)
    loss, _ = clipped_policy_loss(logp, old_logp, advantages, mask)
    loss.backward()
    # tokens where the unclipped term wins get d/dlogp (-A * r) / 4: index 2: -2 * 1.1 / 4 = -0.55,
    # index 3: -1 * 0.5 / 4 = -0.125; clipped tokens (0, 1) and padding (4) get none
    expected = torch.tensor([[0.0, 0.0, -0.55, -0.125, 0.0]])
    torch.testing.assert_close(logp.grad, expected)
    other, _ = clipped_policy_loss(*policy_batch(pad=7.0))
    assert other.item() == pytest.approx(loss.item())


def test_dual_clip_caps_negative_advantage():
    logp = torch.tensor([[math.log(5.0), math.log(5.0)]])
    advantages = torch.tensor([[-1.0, 1.0]])
    mask = torch.ones(1, 2)
    loss, stats = clipped_policy_loss(logp, torch.zeros(1, 2), advantages, mask, dual_clip=3.0)
    # A=-1, r=5: max(5, 1.2) = 5, capped at -A * 3 = 3; A=+1, r=5: max(-5, -1.2) = -1.2 (no cap)
    assert loss.item() == pytest.approx((3.0 - 1.2) / 2)
    assert stats["dual_clipfrac"].item() == pytest.approx(0.5)
    plain, _ = clipped_policy_loss(logp, torch.zeros(1, 2), advantages, mask)
    assert plain.item() == pytest.approx((5.0 - 1.2) / 2)


def test_clipped_value_loss_by_hand():
    values = torch.tensor([[1.0, 2.0, 0.0, 50.0]])
    old_values = torch.tensor([[0.5, 2.1, 1.0, 0.0]])
    returns = torch.tensor([[1.0, 0.0, 3.0, -50.0]])
    mask = torch.tensor([[1.0, 1.0, 1.0, 0.0]])
    loss, stats = clipped_value_loss(values, old_values, returns, mask, clip_eps=0.2)
    # token 0: clipped V = 0.5 + 0.2 = 0.7: max(0, 0.09) = 0.09 (clipped wins)
    # token 1: V - V_old = -0.1 inside: max(4, 4) = 4
    # token 2: clipped V = 1.0 - 0.2 = 0.8: max(9, 4.84) = 9
    # 0.5 * (0.09 + 4 + 9) / 3
    assert loss.item() == pytest.approx(0.5 * 13.09 / 3)
    assert stats["value_clipfrac"].item() == pytest.approx(1 / 3)
    unclipped, _ = clipped_value_loss(values, old_values, returns, mask, clip_eps=None)
    assert unclipped.item() == pytest.approx(0.5 * 13.0 / 3)  # 0.5 * (0 + 4 + 9) / 3


def test_entropy_from_logits():
    logits = torch.tensor([[[0.0, 0.0, 0.0, 0.0], [0.0, math.log(3.0), -1e9, -1e9]]])
    # uniform over 4: log 4; p = [0.25, 0.75]: -(0.25 ln 0.25 + 0.75 ln 0.75) = 0.5623351
    expected = torch.tensor([[math.log(4.0), -(0.25 * math.log(0.25) + 0.75 * math.log(0.75))]])
    torch.testing.assert_close(entropy_from_logits(logits), expected)


def test_kl_loss():
    logp = torch.tensor([[0.5, -1.0, 9.0]])
    mask = torch.tensor([[1.0, 1.0, 0.0]])
    # k1 token-mean of [0.5, -1.0] = -0.25; k2 = (0.125 + 0.5) / 2
    assert kl_loss(logp, torch.zeros(1, 3), mask, kind="k1").item() == pytest.approx(-0.25)
    assert kl_loss(logp, torch.zeros(1, 3), mask, kind="k2").item() == pytest.approx(0.3125)


def test_explained_variance():
    returns = torch.tensor([[1.0, 2.0, 3.0, 4.0, 100.0]])
    mask = torch.tensor([[1.0, 1.0, 1.0, 1.0, 0.0]])
    assert explained_variance(returns, returns, mask).item() == pytest.approx(1.0)
    assert explained_variance(torch.zeros(1, 5), returns, mask).item() == pytest.approx(0.0)
    # residual [0, 0, 0, -1]: var 0.25 - 0.0625 = 0.1875; var(returns) = 1.25; 1 - 0.15 = 0.85
    values = torch.tensor([[1.0, 2.0, 3.0, 5.0, -7.0]])
    assert explained_variance(values, returns, mask).item() == pytest.approx(0.85)
    assert math.isnan(explained_variance(values, torch.ones(1, 5), mask).item())
