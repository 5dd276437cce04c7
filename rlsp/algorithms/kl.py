"""Per-token KL estimators and KL coefficient controllers.

Estimators are Schulman's (http://joschu.net/blog/kl-approx.html) for KL(pi || pi_ref), with
samples drawn from pi and ``log_ratio = logp - logp_ref``:

- ``k1 = log_ratio`` (unbiased, high variance, can be negative; RLSP's choice),
- ``k2 = 0.5 * log_ratio ** 2`` (biased, low variance, >= 0),
- ``k3 = exp(-log_ratio) + log_ratio - 1`` (unbiased, low variance, >= 0).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor

from rlsp.algorithms.part_registry import Registry

# Each maps log_ratio = logp - logp_ref (B, T) to the per-token estimate (B, T).
KL_ESTIMATORS: Registry[Callable[[Tensor], Tensor]] = Registry("KL estimator", "train.kl.estimator")


@KL_ESTIMATORS.register("k1")
def k1(log_ratio: Tensor) -> Tensor:
    return log_ratio


@KL_ESTIMATORS.register("k2")
def k2(log_ratio: Tensor) -> Tensor:
    return 0.5 * log_ratio**2


@KL_ESTIMATORS.register("k3")
def k3(log_ratio: Tensor) -> Tensor:
    return torch.exp(-log_ratio) + log_ratio - 1.0


def kl_estimate(logp: Tensor, logp_ref: Tensor, kind: str = "k1") -> Tensor:
    """Per-token KL estimate.

    Args:
        logp: (B, T) log pi(o_t) of the sampled tokens under the policy.
        logp_ref: (B, T) the same under the reference (SFT) model.
        kind: a name in ``KL_ESTIMATORS``: "k1", "k2", "k3" or a registered one.

    Returns:
        (B, T) estimate at every position; padded positions are not masked here (the caller
        multiplies by the mask or aggregates with it).
    """
    return KL_ESTIMATORS[kind](logp - logp_ref)


class FixedKLController:
    """A constant KL coefficient (RLSP: 0.05). ``update`` does nothing."""

    def __init__(self, kl_coef: float) -> None:
        if kl_coef < 0:
            raise ValueError(f"kl_coef must be >= 0, got {kl_coef}")
        self.value = kl_coef

    def update(self, current_kl: float, n_steps: int) -> None:
        pass

    def state_dict(self) -> dict[str, Any]:
        return {"value": self.value}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.value = float(state["value"])


class AdaptiveKLController:
    """Adaptive KL coefficient of Ziegler et al. 2019 (as in TRL and OpenRLHF).

    After each rollout: ``e = clip(current_kl / target - 1, -0.2, 0.2)`` and
    ``value *= 1 + e * n_steps / horizon``, which moves the observed KL towards ``target``.
    """

    def __init__(self, init_kl_coef: float, target: float, horizon: int) -> None:
        if init_kl_coef < 0 or target <= 0 or horizon <= 0:
            raise ValueError(
                f"need init_kl_coef >= 0, target > 0 and horizon > 0; "
                f"got {init_kl_coef}, {target}, {horizon}"
            )
        self.value, self.target, self.horizon = init_kl_coef, target, horizon

    def update(self, current_kl: float, n_steps: int) -> None:
        """``current_kl``: mean per-sequence KL of the rollout; ``n_steps``: samples in it."""
        proportional_error = min(max(current_kl / self.target - 1.0, -0.2), 0.2)
        self.value *= 1.0 + proportional_error * n_steps / self.horizon

    def state_dict(self) -> dict[str, Any]:
        # target and horizon come from the recipe; only the coefficient evolves.
        return {"value": self.value}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.value = float(state["value"])
