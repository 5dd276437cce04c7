"""The value a verifier returns for one sample."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Verdict:
    """A verifier's judgement of one completion.

    ``score`` is what trains (1.0 correct, 0.0 wrong, or the configured missing-answer score).
    ``parsed`` is the answer extracted from the completion (None if none was found, or if
    checking it failed); ``reason`` says why a sample failed for a reason other than a wrong
    answer (no answer, time-out, error). ``parsed`` and ``reason`` go to the rollout log only.
    """

    score: float
    parsed: str | None = None
    reason: str | None = None
