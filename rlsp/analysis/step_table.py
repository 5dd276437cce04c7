"""Per-step behaviour statistics: how often each behaviour occurs, and whether it pays.

One row per training step (one row in all for logs without steps): the share of samples showing
each behaviour, its mean rate per 1k tokens, mean length, accuracy overall and split by whether
the behaviour occurs, and the mean of each reward channel (rlsp: verifier and exploration; TRL:
one column per reward function; verl: score).
"""

from __future__ import annotations

import csv
import math
from dataclasses import dataclass, field
from pathlib import Path

from rlsp.analysis.behaviours import BehaviourProfile
from rlsp.analysis.rollout_schema import Sample


@dataclass
class StepRow:
    step: int | None
    samples: int
    length_mean: float
    accuracy: float | None  # None where the log says nothing about correctness
    share: dict[str, float]  # fraction of samples with the behaviour
    per_1k: dict[str, float]  # mean sentences with the behaviour per 1k tokens
    accuracy_with: dict[str, float | None]
    accuracy_without: dict[str, float | None]
    rewards: dict[str, float] = field(default_factory=dict)
    truncated: float | None = None  # share stopped by the length limit, where logged

    def as_dict(self, run: str | None = None) -> dict:
        row = {"run": run} if run is not None else {}
        row.update({"step": "" if self.step is None else self.step, "samples": self.samples,
                    "length_mean": self.length_mean, "accuracy": self.accuracy, "truncated": self.truncated})
        for b in self.share:
            row[f"{b}_share"] = self.share[b]
            row[f"{b}_per_1k"] = self.per_1k[b]
            row[f"accuracy_with_{b}"] = self.accuracy_with[b]
            row[f"accuracy_without_{b}"] = self.accuracy_without[b]
        row.update({f"reward_{k}": v for k, v in self.rewards.items()})
        return row


def step_table(samples: list[Sample], profiles: list[BehaviourProfile], behaviours: tuple[str, ...]) -> list[StepRow]:
    by_step: dict[int | None, list[int]] = {}
    for i, sample in enumerate(samples):
        by_step.setdefault(sample.step, []).append(i)
    return [_row(step, [samples[i] for i in idx], [profiles[i] for i in idx], behaviours)
            for step, idx in sorted(by_step.items(), key=lambda kv: -1 if kv[0] is None else kv[0])]


def _row(step, samples: list[Sample], profiles: list[BehaviourProfile], behaviours) -> StepRow:
    n = len(samples)
    share, per_1k, acc_with, acc_without = {}, {}, {}, {}
    for b in behaviours:
        has = [p.has(b) for p in profiles]
        share[b] = sum(has) / n
        per_1k[b] = sum(p.rate_per_1k(b) for p in profiles) / n
        acc_with[b] = _accuracy([s for s, h in zip(samples, has, strict=True) if h])
        acc_without[b] = _accuracy([s for s, h in zip(samples, has, strict=True) if not h])
    channels = sorted({k for s in samples for k, v in s.rewards.items() if _is_number(v)})
    rewards = {c: _mean([s.rewards[c] for s in samples if _is_number(s.rewards.get(c))]) for c in channels}
    reasons = [s.finish_reason for s in samples if s.finish_reason is not None]
    return StepRow(step, n, _mean([p.tokens for p in profiles]), _accuracy(samples), share, per_1k, acc_with,
                   acc_without, rewards, sum(r == "length" for r in reasons) / len(reasons) if reasons else None)


def write_csv(rows_by_run: dict[str, list[StepRow]], path: Path) -> None:
    records = [row.as_dict(run if len(rows_by_run) > 1 else None) for run, rows in rows_by_run.items() for row in rows]
    columns = list(dict.fromkeys(k for r in records for k in r))
    with path.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=columns)
        writer.writeheader()
        for record in records:
            writer.writerow({k: _cell(record.get(k)) for k in columns})


def _accuracy(samples: list[Sample]) -> float | None:
    known = [s.correct for s in samples if s.correct is not None]
    return sum(known) / len(known) if known else None


def _mean(values) -> float:
    values = list(values)
    return sum(values) / len(values) if values else math.nan


def _is_number(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def _cell(value):
    if isinstance(value, float):
        return "" if math.isnan(value) else round(value, 4)
    return "" if value is None else value
