"""PNG plots of behaviour against training step, one run or two side by side.

``behaviours.png``: the share of samples showing each behaviour, and sentences per 1k tokens.
``length_accuracy.png``: mean length, and accuracy of samples with and without backtracking.
In a comparison the first run is drawn solid, the second dashed (then dotted, dash-dotted), in the
same colours.
"""

from __future__ import annotations

import itertools
from pathlib import Path

from rlsp.analysis.step_table import StepRow

_STYLES = ("-", "--", ":", "-.")  # one per run, in order; repeats beyond four


def plot_behaviours(rows_by_run: dict[str, list[StepRow]], behaviours: tuple[str, ...], path: Path) -> Path:
    plt = pyplot()
    fig, (share_ax, rate_ax) = plt.subplots(1, 2, figsize=(12, 4.2))
    colours = _colours(plt, behaviours)
    for style, (run, rows) in zip(itertools.cycle(_STYLES), rows_by_run.items()):
        x = _steps(rows)
        for b in behaviours:
            label = f"{b} ({run})" if len(rows_by_run) > 1 else b
            share_ax.plot(x, [r.share[b] for r in rows], style, marker="o", ms=3, color=colours[b], label=label)
            rate_ax.plot(x, [r.per_1k[b] for r in rows], style, marker="o", ms=3, color=colours[b], label=label)
    share_ax.set(title="Samples showing the behaviour", xlabel=_xlabel(rows_by_run), ylabel="share of samples",
                 ylim=(-0.03, 1.03))
    rate_ax.set(title="Sentences with the behaviour per 1k tokens", xlabel=_xlabel(rows_by_run), ylabel="per 1k tokens")
    rate_ax.legend(fontsize=8, loc="best")
    return save_figure(fig, path)


def plot_length_accuracy(rows_by_run: dict[str, list[StepRow]], path: Path, behaviour: str = "backtracking") -> Path:
    plt = pyplot()
    fig, (len_ax, acc_ax) = plt.subplots(1, 2, figsize=(12, 4.2))
    for style, (run, rows) in zip(itertools.cycle(_STYLES), rows_by_run.items()):
        x = _steps(rows)
        suffix = f" ({run})" if len(rows_by_run) > 1 else ""
        len_ax.plot(x, [r.length_mean for r in rows], style, marker="o", ms=3, color="tab:blue",
                    label=f"length{suffix}")
        for key, colour, name in (("accuracy", "black", "all"), ("with", "tab:red", f"with {behaviour}"),
                                  ("without", "tab:gray", f"without {behaviour}")):
            y = [_accuracy(r, key, behaviour) for r in rows]
            if any(v is not None for v in y):
                acc_ax.plot(x, [float("nan") if v is None else v for v in y], style, marker="o", ms=3,
                            color=colour, label=name + suffix)
    len_ax.set(title="Mean response length", xlabel=_xlabel(rows_by_run), ylabel="tokens")
    acc_ax.set(title=f"Accuracy, split by {behaviour}", xlabel=_xlabel(rows_by_run), ylabel="accuracy",
               ylim=(-0.03, 1.03))
    len_ax.legend(fontsize=8)
    if acc_ax.lines:
        acc_ax.legend(fontsize=8)
    else:
        acc_ax.text(0.5, 0.5, "the log has no correctness", ha="center", va="center", transform=acc_ax.transAxes)
    return save_figure(fig, path)


def _accuracy(row: StepRow, key: str, behaviour: str) -> float | None:
    if key == "accuracy":
        return row.accuracy
    return (row.accuracy_with if key == "with" else row.accuracy_without).get(behaviour)


def _steps(rows: list[StepRow]) -> list[int]:
    return [0 if r.step is None else r.step for r in rows]


def _xlabel(rows_by_run) -> str:
    has_steps = any(r.step is not None for rows in rows_by_run.values() for r in rows)
    return "training step" if has_steps else "(no steps in the log)"


def _colours(plt, behaviours) -> dict[str, str]:
    cycle = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    return {b: cycle[i % len(cycle)] for i, b in enumerate(behaviours)}


def pyplot():
    import matplotlib

    matplotlib.use("Agg")  # files only; no display needed
    import matplotlib.pyplot as plt

    return plt


def save_figure(fig, path: Path) -> Path:
    for ax in fig.axes:
        ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    pyplot().close(fig)
    return path
