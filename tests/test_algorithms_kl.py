"""KL estimators and controllers against hand-computed values."""

import math

import pytest
import torch

from rlsp.algorithms.kl import AdaptiveKLController, FixedKLController, kl_estimate
from rlsp.errors import ConfigError

LOGP = torch.tensor([[-1.0, -2.0]])
LOGP_REF = torch.tensor([[-1.5, -1.0]])


def test_k1_k2_k3_by_hand():
    # log_ratio = logp - logp_ref = [0.5, -1.0]
    torch.testing.assert_close(kl_estimate(LOGP, LOGP_REF, "k1"), torch.tensor([[0.5, -1.0]]))
    # k2 = 0.5 * [0.25, 1.0]
    torch.testing.assert_close(kl_estimate(LOGP, LOGP_REF, "k2"), torch.tensor([[0.125, 0.5]]))
    # k3 with d = logp_ref - logp = [-0.5, 1.0]: exp(d) - d - 1
    #   exp(-0.5) + 0.5 - 1 = 0.1065307; exp(1) - 1 - 1 = 0.7182818
    expected = torch.tensor([[math.exp(-0.5) - 0.5, math.e - 2.0]])
    torch.testing.assert_close(kl_estimate(LOGP, LOGP_REF, "k3"), expected)


def test_k3_is_zero_when_equal_and_unknown_kind_errors():
    torch.testing.assert_close(kl_estimate(LOGP, LOGP, "k3"), torch.zeros(1, 2))
    with pytest.raises(ConfigError, match="k1, k2, k3"):
        kl_estimate(LOGP, LOGP_REF, "k4")


def test_fixed_controller():
    ctl = FixedKLController(0.05)
    ctl.update(current_kl=100.0, n_steps=512)
    assert ctl.value == 0.05
    other = FixedKLController(0.0)
    other.load_state_dict(ctl.state_dict())
    assert other.value == 0.05


@pytest.mark.parametrize(
    "current_kl, expected",
    [
        # 9 / 6 - 1 = 0.5 -> clipped to 0.2; 0.1 * (1 + 0.2 * 256 / 10000) = 0.1 * 1.00512
        (9.0, 0.100512),
        # 3 / 6 - 1 = -0.5 -> clipped to -0.2; 0.1 * (1 - 0.00512)
        (3.0, 0.099488),
        # 6.6 / 6 - 1 = 0.1, inside the clip; 0.1 * (1 + 0.1 * 256 / 10000) = 0.1 * 1.00256
        (6.6, 0.100256),
    ],
)
def test_adaptive_controller_one_update(current_kl, expected):
    ctl = AdaptiveKLController(init_kl_coef=0.1, target=6.0, horizon=10000)
    ctl.update(current_kl, n_steps=256)
    assert ctl.value == pytest.approx(expected, rel=1e-12)


def test_adaptive_controller_state_round_trip():
    ctl = AdaptiveKLController(0.1, target=6.0, horizon=10000)
    ctl.update(9.0, n_steps=256)
    restored = AdaptiveKLController(0.1, target=6.0, horizon=10000)
    restored.load_state_dict(ctl.state_dict())
    assert restored.value == ctl.value
    ctl.update(1.0, n_steps=64)
    restored.update(1.0, n_steps=64)
    assert restored.value == ctl.value != pytest.approx(0.1)
