"""Schedules for alpha, the weight of the verifier channel against the exploration channel.

The RLSP paper used a constant alpha = 0.8 but says alpha "needs to be tuned and decayed over
time"; ``linear`` and ``cosine`` move it from ``alpha_start`` to ``alpha_end``. The reward (or
advantage) is ``alpha * verifier + (1 - alpha) * exploration``.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

from rlsp.algorithms.part_registry import Registry
from rlsp.errors import ConfigError

# Each maps progress in [0, 1] to the fraction of the way from alpha_start to alpha_end.
SCHEDULES: Registry[Callable[[float], float]] = Registry("alpha schedule", "train.reward.alpha.schedule")


@SCHEDULES.register("constant")
def _constant(progress: float) -> float:
    return 0.0


@SCHEDULES.register("linear")
def _linear(progress: float) -> float:
    return progress


@SCHEDULES.register("cosine")
def _cosine(progress: float) -> float:
    return 0.5 * (1.0 - math.cos(math.pi * progress))


@dataclass(frozen=True)
class AlphaSchedule:
    """alpha as a function of the PPO step.

    Fields:
        kind: "constant" (always ``alpha_start``), "linear" or "cosine".
        alpha_start: alpha at step 0 and during warm-up, in [0, 1] (paper: 0.8).
        alpha_end: alpha from ``total_steps`` on, in [0, 1]; ignored by "constant".
        total_steps: step at which ``alpha_end`` is reached (counts the warm-up steps).
        warmup_steps: steps that hold ``alpha_start`` before the decay begins.
    """

    kind: str = "constant"
    alpha_start: float = 0.8
    alpha_end: float = 0.8
    total_steps: int = 0
    warmup_steps: int = 0

    def __post_init__(self) -> None:
        SCHEDULES[self.kind]  # an unknown name: ConfigError listing the choices
        for name in ("alpha_start", "alpha_end"):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise ConfigError(f"{name} must be in [0, 1], got {value}")
        if self.warmup_steps < 0:
            raise ConfigError(f"warmup_steps must be >= 0, got {self.warmup_steps}")
        if self.kind != "constant" and self.total_steps <= self.warmup_steps:
            raise ConfigError(
                f"a {self.kind!r} alpha schedule needs total_steps > warmup_steps, got "
                f"total_steps={self.total_steps}, warmup_steps={self.warmup_steps}; set "
                f"total_steps to the number of PPO steps, or use kind 'constant'"
            )

    def alpha_at(self, step: int) -> float:
        """alpha at PPO step ``step`` (>= 0), clamped to [0, 1]."""
        if step < 0:
            raise ValueError(f"step must be >= 0, got {step}")
        if self.kind == "constant" or step <= self.warmup_steps:
            return self.alpha_start
        progress = min(1.0, (step - self.warmup_steps) / (self.total_steps - self.warmup_steps))
        fraction = SCHEDULES[self.kind](progress)
        alpha = self.alpha_start + (self.alpha_end - self.alpha_start) * fraction
        return min(1.0, max(0.0, alpha))
