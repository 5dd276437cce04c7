"""``rlsp eval --compare A B``: two evaluation summaries side by side, with deltas and a plot.

A and B are eval output directories (holding ``eval_summary.json``) or summary files.
"""

from __future__ import annotations

import json
from pathlib import Path

from rlsp.errors import RlspError

SUMMARY_FILE = "eval_summary.json"
# Per-group rows show the correctness metrics only (pass@1 is the same as accuracy).
_GROUP_METRIC_PREFIXES = ("accuracy", "pass@", "maj@")


def load_summary(path: str | Path) -> dict:
    path = Path(path)
    file = path / SUMMARY_FILE if path.is_dir() else path
    if not file.is_file():
        raise RlspError(
            f"--compare: {str(path)!r} is neither an eval output directory (with {SUMMARY_FILE}) nor a "
            f"summary file. Pass what `rlsp eval` wrote, e.g. runs/eval_math500."
        )
    try:
        summary = json.loads(file.read_text())
    except json.JSONDecodeError as e:
        raise RlspError(f"--compare: {file} is not valid JSON ({e.msg} at line {e.lineno}).") from None
    if not isinstance(summary, dict) or not isinstance(summary.get("metrics"), dict):
        raise RlspError(f"--compare: {file} has no 'metrics'; it was not written by this version of `rlsp eval`.")
    return summary


def comparison_rows(a: dict, b: dict) -> list[tuple[str, str, float | None, float | None]]:
    """(section, metric, value in A, value in B): overall first, then each breakdown group.

    A metric or group present in only one summary appears with None on the other side.
    """
    rows = [("overall", m, a["metrics"].get(m), b["metrics"].get(m)) for m in _union(a["metrics"], b["metrics"])]
    groups_a, groups_b = a.get("groups", {}), b.get("groups", {})
    for column in _union(groups_a, groups_b):
        values_a, values_b = groups_a.get(column, {}), groups_b.get(column, {})
        for value in _union(values_a, values_b):
            ma, mb = values_a.get(value, {}), values_b.get(value, {})
            for metric in _union(ma, mb):
                if metric.startswith(_GROUP_METRIC_PREFIXES) and metric != "pass@1":
                    rows.append((f"{column}={value}", metric, ma.get(metric), mb.get(metric)))
    return rows


def format_comparison(a: dict, b: dict, label_a: str = "A", label_b: str = "B") -> str:
    rows = comparison_rows(a, b)
    width = max(len(f"  {metric}") for _, metric, _, _ in rows) + 2
    col = max(10, len(label_a), len(label_b)) + 2
    lines = [f"{'metric':<{width}}{label_a:>{col}}{label_b:>{col}}{'delta':>{col}}"]
    section = None
    for name, metric, va, vb in rows:
        if name != section:
            section = name
            lines.append(name + _problem_counts(a, b, name))
        delta = f"{vb - va:+.3f}" if va is not None and vb is not None else "-"
        lines.append(f"{'  ' + metric:<{width}}{_fmt(va):>{col}}{_fmt(vb):>{col}}{delta:>{col}}")
    lines.extend(_differences(a, b))
    return "\n".join(lines)


def plot_comparison(a: dict, b: dict, path: str | Path, label_a: str = "A", label_b: str = "B") -> None:
    """Bar chart (PNG): the overall rates, and accuracy per breakdown group, A next to B."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    rows = comparison_rows(a, b)
    panels = [("overall", [(m, va, vb) for s, m, va, vb in rows if s == "overall" and m != "mean_length"])]
    grouped = [(s, va, vb) for s, m, va, vb in rows if s != "overall" and m == "accuracy"]
    if grouped:
        panels.append(("accuracy by group", grouped))
    fig = Figure(figsize=(max(6.0, 0.6 * sum(len(p[1]) for p in panels) + 2), 4.5), layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(1, len(panels), squeeze=False)[0]
    for ax, (title, bars) in zip(axes, panels, strict=True):
        xs = range(len(bars))
        ax.bar([x - 0.2 for x in xs], [va or 0.0 for _, va, _ in bars], width=0.4, label=label_a)
        ax.bar([x + 0.2 for x in xs], [vb or 0.0 for _, _, vb in bars], width=0.4, label=label_b)
        ax.set_xticks(list(xs), [name for name, _, _ in bars], rotation=45, ha="right")
        ax.set_ylim(0, 1)
        ax.set_title(title)
    axes[0].legend()
    fig.savefig(path, dpi=120)


def label_for(path: str | Path) -> str:
    path = Path(path)
    return path.name if path.is_dir() else path.parent.name or path.name


def _problem_counts(a: dict, b: dict, section: str) -> str:
    if section == "overall":
        pa, pb = a.get("problems"), b.get("problems")
    else:
        column, _, value = section.partition("=")
        pa = a.get("groups", {}).get(column, {}).get(value, {}).get("problems")
        pb = b.get("groups", {}).get(column, {}).get(value, {}).get("problems")
    return f"  ({_count(pa)} / {_count(pb)} problems)"


def _differences(a: dict, b: dict) -> list[str]:
    """Notes on settings that differ, so an unfair comparison is visible."""
    notes = []
    for key in ("benchmark", "problems", "samples_per_prompt", "skipped_rows"):
        if a.get(key) != b.get(key):
            notes.append(f"note: {key} differs: {a.get(key)} vs {b.get(key)}")
    settings_a, settings_b = a.get("settings", {}), b.get("settings", {})
    for key in _union(settings_a, settings_b):
        if key != "model" and settings_a.get(key) != settings_b.get(key):
            notes.append(f"note: {key} differs: {settings_a.get(key)} vs {settings_b.get(key)}")
    return notes


def _union(a: dict, b: dict) -> list[str]:
    return list(dict.fromkeys([*a, *b]))


def _fmt(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}"


def _count(value) -> str:
    return "?" if value is None else str(value)
