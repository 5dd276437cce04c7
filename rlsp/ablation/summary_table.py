"""The ablation's summary: one row per arm, mean over seeds with the min-max range.

Held-out accuracy before and after RL (greedy, from each run's ``summary.json``), and for each
per-step metric its mean over the first and the last steps of RL (``run_results.WINDOW``). One row
per measure, one column per arm.
"""

from __future__ import annotations

from pathlib import Path

from rlsp.ablation.run_results import SUMMARY_METRICS, WINDOW, RunResult, spread

LABELS = {
    "heldout_accuracy_before": "held-out acc. before RL",
    "heldout_accuracy_after": "held-out acc. after RL",
    "length_mean": "length (tokens)",
    "backtracking_share": "samples with backtracking",
    "backtracking_per_1k": "backtracking / 1k tok",
    "verification_share": "samples with verification",
    "verification_per_1k": "verification / 1k tok",
    "reward_exploration": "exploration reward",
}


def summary_rows(results: list[RunResult], arms: list[str]) -> list[dict]:
    """Per arm: ``{"arm", "seeds", "<field>": [mean, min, max, n] or None}``; per-step metrics as
    ``<metric>_first`` and ``<metric>_last``."""
    rows = []
    for arm in arms:
        runs = [r for r in results if r.arm == arm]
        row = {"arm": arm, "seeds": [r.seed for r in runs],
               "heldout_accuracy_before": spread([r.heldout_before for r in runs]),
               "heldout_accuracy_after": spread([r.heldout_after for r in runs])}
        for metric in SUMMARY_METRICS:
            row[f"{metric}_first"] = spread([r.window(metric, last=False) for r in runs])
            row[f"{metric}_last"] = spread([r.window(metric, last=True) for r in runs])
        rows.append(row)
    return rows


def cell(value: list | None, digits: int = 3) -> str:
    """``mean`` for one seed, ``mean [min, max]`` for several; a dash where nothing is known."""
    if value is None:
        return "-"
    mean, low, high, n = value
    text = f"{mean:.{digits}f}"
    return text if n == 1 else f"{text} [{low:.{digits}f}, {high:.{digits}f}]"


def measure_rows(rows: list[dict]) -> list[tuple[str, list[str]]]:
    """(measure, one cell per arm): held-out accuracy, then each metric at the start and end of RL."""
    out = [(LABELS[k], [cell(r[k]) for r in rows]) for k in ("heldout_accuracy_before", "heldout_accuracy_after")]
    for metric in SUMMARY_METRICS:
        digits = 1 if metric == "length_mean" else 3
        for when in ("first", "last"):
            out.append((f"{LABELS[metric]}, {when} steps", [cell(r[f"{metric}_{when}"], digits) for r in rows]))
    return out


def write_markdown(rows: list[dict], results: list[RunResult], path: Path) -> Path:
    lines = ["| measure | " + " | ".join(f"{r['arm']} (seeds {', '.join(map(str, r['seeds']))})" for r in rows) + " |",
             "|---|" + "---|" * len(rows)]
    lines += [f"| {measure} | " + " | ".join(cells) + " |" for measure, cells in measure_rows(rows)]
    unfinished = [f"{r.arm} seed {r.seed} ({len(r.steps)} steps so far)" for r in results if r.heldout_after is None]
    note = ""
    if unfinished:
        note = f"\nStill running or stopped, counted with the steps logged so far: {'; '.join(unfinished)}.\n"
    path.write_text(f"Mean over seeds, [min, max] where there are several. First and last steps: the first and last "
                    f"{WINDOW} logged steps of RL (half of them in runs shorter than {2 * WINDOW}).\n\n"
                    + "\n".join(lines) + "\n" + note)
    return path


def print_summary(console, rows: list[dict], results: list[RunResult]) -> None:
    from rich.table import Table

    table = Table(title="Ablation: mean over seeds [min, max]", show_lines=False)
    table.add_column("measure", no_wrap=True)
    for row in rows:
        table.add_column(f"{row['arm']}\n(seeds {', '.join(str(s) for s in row['seeds'])})", justify="right")
    for measure, cells in measure_rows(rows):
        table.add_row(measure, *cells)
    console.print(table)
    for r in results:
        if r.heldout_after is None:
            console.print(f"[yellow]{r.arm} seed {r.seed} has not finished: {len(r.steps)} steps so far[/yellow]")
