"""An ablation's runs as numbers: per step (from the inspection tools) and held out.

Per run, ``rlsp.analysis`` turns ``rollouts.jsonl`` into one row per step; ``summary.json`` gives
held-out accuracy before and after RL. Per arm, every metric is the mean over seeds with its min
and max. A run still going (no ``summary.json``) counts with the steps it has logged and without
a held-out result after RL.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

from rlsp.ablation.arms import AblationPlan
from rlsp.analysis.step_table import StepRow

# Per-step metrics: column name -> how to read it from an inspection step row.
METRICS = {
    "length_mean": lambda r: r.length_mean,
    "sampled_accuracy": lambda r: r.accuracy,
    "backtracking_share": lambda r: r.share.get("backtracking"),
    "backtracking_per_1k": lambda r: r.per_1k.get("backtracking"),
    "verification_share": lambda r: r.share.get("verification"),
    "verification_per_1k": lambda r: r.per_1k.get("verification"),
    "reward_verifier": lambda r: r.rewards.get("verifier"),
    "reward_exploration": lambda r: r.rewards.get("exploration"),
}
# The summary compares each of these at the start of RL with the end: means over this many steps.
SUMMARY_METRICS = ("length_mean", "backtracking_share", "backtracking_per_1k", "verification_share",
                   "verification_per_1k", "reward_exploration")
WINDOW = 3


@dataclass
class RunResult:
    arm: str
    seed: int
    run_dir: Path
    steps: dict[int, dict[str, float | None]]  # step -> metric -> value
    heldout_before: float | None
    heldout_after: float | None  # None while the run has not finished

    def window(self, metric: str, last: bool) -> float | None:
        """Mean of ``metric`` over the first (or last) ``WINDOW`` logged steps."""
        steps = sorted(self.steps)
        size = min(WINDOW, max(1, len(steps) // 2))
        chosen = steps[-size:] if last else steps[:size]
        known = spread([self.steps[s][metric] for s in chosen])
        return known[0] if known else None


def load_results(plan: AblationPlan) -> list[RunResult]:
    """Every planned run that has logged at least one step."""
    from rlsp.analysis.behaviours import MarkerDetector
    from rlsp.analysis.rollout_loader import load_rollouts
    from rlsp.analysis.step_table import step_table

    detector, results = MarkerDetector(), []
    for run in plan.runs:
        if not (run.run_dir / "rollouts.jsonl").exists():
            continue
        samples = load_rollouts(run.run_dir).samples
        rows = step_table(samples, detector.detect_all([s.completion for s in samples], [s.length for s in samples]),
                          detector.behaviours)
        summary = _read_json(run.run_dir / "summary.json")
        before = summary.get("heldout_accuracy_before", _eval_before(run.run_dir))
        results.append(RunResult(run.arm.name, run.seed, run.run_dir, {r.step: _metrics(r) for r in rows},
                                 before, summary.get("heldout_accuracy_after")))
    return results


def per_step(results: list[RunResult], arm: str) -> dict[str, dict[int, tuple[float, float, float, int]]]:
    """metric -> step -> (mean, min, max, seeds) over the arm's seeds."""
    runs = [r for r in results if r.arm == arm]
    table: dict[str, dict[int, tuple[float, float, float, int]]] = {}
    for metric in METRICS:
        for step in sorted({s for r in runs for s in r.steps}):
            values = [r.steps[step][metric] for r in runs if step in r.steps and _finite(r.steps[step][metric])]
            if values:
                table.setdefault(metric, {})[step] = (sum(values) / len(values), min(values), max(values), len(values))
    return table


def spread(values: list[float | None]) -> tuple[float, float, float, int] | None:
    """(mean, min, max, n) of the known values; None if there are none."""
    known = [v for v in values if _finite(v)]
    return (sum(known) / len(known), min(known), max(known), len(known)) if known else None


def _metrics(row: StepRow) -> dict[str, float | None]:
    return {name: read(row) for name, read in METRICS.items()}


def _eval_before(run_dir: Path) -> float | None:
    """A running run's held-out accuracy before RL, from its first checkpoint's state, if saved."""
    from rlsp.training.checkpoint import latest_checkpoint

    latest = latest_checkpoint(run_dir)
    state = _read_json(latest / "trainer_state.json") if latest else {}
    return (state.get("eval_before") or {}).get("eval/accuracy")


def _read_json(path: Path) -> dict:
    return json.loads(path.read_text()) if path.exists() else {}


def _finite(v) -> bool:
    return isinstance(v, (int, float)) and math.isfinite(v)
