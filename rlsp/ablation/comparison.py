"""Compare an ablation's arms: per-step curves over seeds, a summary table, plots and the report.

Writes into ``OUT/comparison/``: ``per_step.csv`` (arm, step, mean/min/max of each metric),
``runs.csv`` (one line per run), ``summary.md``, ``comparison.json``, ``ablation.png`` and
``inspect/`` (the ``rlsp inspect`` report of the first seed of every arm, side by side).
"""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass
from pathlib import Path

from rlsp.ablation.arms import AblationPlan
from rlsp.ablation.run_results import METRICS, SUMMARY_METRICS, RunResult, load_results, per_step


@dataclass
class Comparison:
    results: list[RunResult]
    arms: list[str]
    out_dir: Path
    files: list[Path]


def compare(plan: AblationPlan, console=None) -> Comparison:
    from rich.console import Console

    from rlsp.ablation.ablation_plots import plot_ablation
    from rlsp.ablation.summary_table import print_summary, summary_rows, write_markdown
    from rlsp.analysis.inspection import inspect_runs
    from rlsp.errors import DataError

    console = console or Console()
    results = load_results(plan)
    if not results:
        raise DataError(f"{plan.out_dir}: no run of this ablation has logged a step yet (no rollouts.jsonl); "
                        "run rlsp ablate without --compare-only first.")
    arms = [a.name for a in plan.arms if any(r.arm == a.name for r in results)]
    out = plan.out_dir / "comparison"
    out.mkdir(parents=True, exist_ok=True)
    rows = summary_rows(results, arms)
    records = [_run_record(r) for r in results]
    files = [_write_per_step(results, arms, out / "per_step.csv"), _write_runs(records, out / "runs.csv"),
             write_markdown(rows, results, out / "summary.md")]
    (out / "comparison.json").write_text(json.dumps({"arms": rows, "runs": records},
                                                    indent=2) + "\n")
    files += [out / "comparison.json", plot_ablation(results, arms, out / "ablation.png")]
    first_seed = [next(r for r in results if r.arm == arm) for arm in arms]
    report = inspect_runs([r.run_dir for r in first_seed], out / "inspect",
                          names=[f"{r.arm} (seed {r.seed})" for r in first_seed])
    files.append(report.out_dir / "report.html")
    print_summary(console, rows, results)
    console.print(f"wrote {', '.join(str(f.relative_to(out)) for f in files)} to {out}")
    return Comparison(results, arms, out, files)


def _write_per_step(results: list[RunResult], arms: list[str], path: Path) -> Path:
    with path.open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["arm", "step", "seeds", *[f"{m}_{k}" for m in METRICS for k in ("mean", "min", "max")]])
        for arm in arms:
            table = per_step(results, arm)
            for step in sorted({s for r in results if r.arm == arm for s in r.steps}):
                cells = [table.get(m, {}).get(step) for m in METRICS]
                seeds = max((c[3] for c in cells if c), default=0)
                writer.writerow([arm, step, seeds, *[_cell(c[i]) if c else "" for c in cells for i in range(3)]])
    return path


def _write_runs(records: list[dict], path: Path) -> Path:
    with path.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(records[0]))
        writer.writeheader()
        writer.writerows({k: _cell(v) for k, v in rec.items()} for rec in records)
    return path


def _run_record(r: RunResult) -> dict:
    record = {"arm": r.arm, "seed": r.seed, "run_dir": str(r.run_dir), "steps": len(r.steps),
              "heldout_accuracy_before": r.heldout_before, "heldout_accuracy_after": r.heldout_after}
    for metric in SUMMARY_METRICS:
        record[f"{metric}_first"] = r.window(metric, last=False)
        record[f"{metric}_last"] = r.window(metric, last=True)
    return record


def _cell(v):
    return "" if v is None else round(v, 4) if isinstance(v, float) else v
