"""Alpha schedules at chosen steps."""

import math

import pytest

from rlsp.algorithms.schedules import AlphaSchedule
from rlsp.errors import ConfigError


def test_constant():
    schedule = AlphaSchedule("constant", alpha_start=0.8)
    assert [schedule.alpha_at(s) for s in (0, 10, 10_000)] == [0.8, 0.8, 0.8]


def test_linear_with_and_without_warmup():
    schedule = AlphaSchedule("linear", alpha_start=1.0, alpha_end=0.5, total_steps=10)
    # 1.0 - 0.5 * step / 10, then held at 0.5
    assert [schedule.alpha_at(s) for s in (0, 5, 10, 20)] == pytest.approx([1.0, 0.75, 0.5, 0.5])
    warm = AlphaSchedule("linear", alpha_start=1.0, alpha_end=0.5, total_steps=10, warmup_steps=2)
    # steps <= 2 hold 1.0; step 6 is (6 - 2) / (10 - 2) = 0.5 of the way: 0.75
    assert [warm.alpha_at(s) for s in (1, 2, 6, 10)] == pytest.approx([1.0, 1.0, 0.75, 0.5])


def test_cosine():
    schedule = AlphaSchedule("cosine", alpha_start=0.8, alpha_end=0.2, total_steps=4)
    # 0.2 + 0.6 * 0.5 * (1 + cos(pi * step / 4))
    expected = [0.8, 0.2 + 0.3 * (1 + math.cos(math.pi / 4)), 0.5, 0.2, 0.2]
    assert [schedule.alpha_at(s) for s in (0, 1, 2, 4, 8)] == pytest.approx(expected)


def test_increasing_schedule_and_bounds():
    schedule = AlphaSchedule("linear", alpha_start=0.0, alpha_end=1.0, total_steps=4)
    assert schedule.alpha_at(1) == pytest.approx(0.25)
    # past the last step it holds the end value
    assert [schedule.alpha_at(s) for s in range(7)] == pytest.approx([0.0, 0.25, 0.5, 0.75, 1.0, 1.0, 1.0])


def test_errors():
    with pytest.raises(ConfigError, match="constant, cosine, linear"):
        AlphaSchedule("exponential")
    with pytest.raises(ConfigError, match="alpha_end"):
        AlphaSchedule("linear", alpha_end=1.5, total_steps=10)
    with pytest.raises(ConfigError, match="total_steps > warmup_steps"):
        AlphaSchedule("cosine", alpha_end=0.5, total_steps=5, warmup_steps=5)
    with pytest.raises(ValueError, match="step must be >= 0, got -1"):
        AlphaSchedule().alpha_at(-1)
