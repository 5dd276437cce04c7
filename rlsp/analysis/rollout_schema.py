"""The rollout schema: what one sample of a run carries, whichever framework wrote it.

``rollouts.jsonl`` lines written by ``rlsp train`` carry ``schema_version`` (``SCHEMA_VERSION``);
lines from before the field existed are read as version 0 (the same fields less ``correct`` and
``hooks``). The loaders of ``rollout_loader`` turn every format they read into ``Sample``s, so
the detectors, tables and plots never look at a file format.
"""

from __future__ import annotations

from dataclasses import dataclass, field

SCHEMA_VERSION = 1

# Fields of a schema-1 line, in the order the trainer writes them (the README documents each).
ROLLOUT_FIELDS = (
    "schema_version", "step", "prompt", "completion", "reference", "rewards", "reward_functions", "parsed",
    "trained_reward", "correct", "length", "finish_reason", "group", "system_prompt", "hooks",
)


@dataclass
class Sample:
    """One prompt and completion of a run, with what scored and shaped it."""

    completion: str
    prompt: str = ""
    step: int | None = None  # None: not from a training run (an evaluation, a dataset of traces)
    reference: str | None = None
    rewards: dict[str, float] = field(default_factory=dict)  # channel (or reward column) -> value
    reward_functions: dict[str, float | None] = field(default_factory=dict)
    trained_reward: float | None = None
    correct: bool | None = None  # None where the log says nothing about correctness
    length: int | None = None  # completion tokens as the model counted them; None where not logged
    finish_reason: str | None = None
    group: int | None = None
    system_prompt: str | None = None
    hooks: list[str] = field(default_factory=list)


@dataclass
class LoadedRun:
    """The samples of one run or file, and what a reader should know about how they were read."""

    samples: list[Sample]
    source: str  # the path the user gave
    format: str  # rlsp-rollouts, rlsp-eval, trl-parquet, verl-jsonl, jsonl
    notes: list[str] = field(default_factory=list)  # e.g. a truncated last line that was skipped

    @property
    def steps(self) -> list[int]:
        return sorted({s.step for s in self.samples if s.step is not None})
