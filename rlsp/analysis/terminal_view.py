"""The terminal side of ``rlsp inspect``: the per-step table and the top examples, highlighted."""

from __future__ import annotations

import math

from rich.console import Console
from rich.table import Table
from rich.text import Text

from rlsp.analysis.behaviours import BehaviourProfile
from rlsp.analysis.rollout_schema import Sample
from rlsp.analysis.step_table import StepRow

STYLES = ("bold yellow", "bold cyan", "bold green", "bold magenta", "bold red", "bold blue")


def step_rich_table(rows_by_run: dict[str, list[StepRow]], behaviours: tuple[str, ...], max_rows: int = 40,
                    wide: bool = True) -> Table:
    """The table; long runs are thinned to ``max_rows`` evenly spaced steps (the files keep them all).
    Narrow (``wide=False``): shares only, no reward columns; steps.csv and the report have all."""
    compare = len(rows_by_run) > 1
    title = "sentences per 1k tokens" if wide else "per 1k tokens and rewards: steps.csv, report.html"
    table = Table(title=f"Behaviour per step (share of samples; {title})")
    for name in (["run"] if compare else []) + ["step", "n", "len", "acc"]:
        table.add_column(name, justify="right", no_wrap=name != "run")
    for b in behaviours:
        table.add_column(f"{b[:7]}\nshare /1k" if wide else b[:6], justify="right", no_wrap=True)
    if "backtracking" in behaviours:
        table.add_column("acc with/\nwithout bt", justify="right", no_wrap=True)
    channels = sorted({c for rows in rows_by_run.values() for r in rows for c in r.rewards}) if wide else []
    for c in channels:
        table.add_column(f"reward\n{c[:7]}", justify="right")
    for run, rows in rows_by_run.items():
        for r in _thin(rows, max_rows):
            cells = ([run] if compare else []) + ["-" if r.step is None else str(r.step), str(r.samples),
                                                   f"{r.length_mean:.0f}", _fmt(r.accuracy)]
            cells += [f"{r.share[b]:.2f} {r.per_1k[b]:4.1f}" if wide else f"{r.share[b]:.2f}" for b in behaviours]
            if "backtracking" in behaviours:
                cells.append(f"{_fmt(r.accuracy_with['backtracking'])}/{_fmt(r.accuracy_without['backtracking'])}")
            cells += [_fmt(r.rewards.get(c)) for c in channels]
            table.add_row(*cells)
    return table


def top_examples(samples: list[Sample], profiles: list[BehaviourProfile], behaviour: str, n: int = 3,
                 context_chars: int = 900) -> list[Text]:
    """The ``n`` samples with the most ``behaviour`` sentences, each cut around its first labelled span."""
    ranked = sorted(range(len(samples)), key=lambda i: (-profiles[i].counts.get(behaviour, 0), i))
    style = {b: STYLES[i % len(STYLES)] for i, b in enumerate(profiles[0].counts)} if profiles else {}
    out = []
    for i in ranked[:n]:
        p, s = profiles[i], samples[i]
        if not p.counts.get(behaviour):
            break
        first = min(span.start for span in p.spans if span.behaviour == behaviour)
        lo = max(0, first - context_chars // 3)
        hi = min(len(s.completion), lo + context_chars)
        text = Text(("... " if lo else "") + s.completion[lo:hi] + (" ..." if hi < len(s.completion) else ""))
        shift = 4 if lo else 0
        for span in p.spans:
            if span.end > lo and span.start < hi:
                text.stylize(style.get(span.behaviour, "bold"), max(span.start, lo) - lo + shift,
                             min(span.end, hi) - lo + shift)
        where = f"step {s.step}, " if s.step is not None else ""
        counts = ", ".join(f"{b} {c}" for b, c in p.counts.items() if c)
        out.append(Text.assemble((f"{where}sample {i}: {counts}\n", "dim"), text))
    return out


def print_summary(console: Console, rows_by_run, behaviours, examples: dict[str, list[Text]], notes: list[str]) -> None:
    for note in notes:
        console.print(f"[yellow]note:[/] {note}")
    console.print(step_rich_table(rows_by_run, behaviours, wide=console.width >= 120))
    legend = Text("highlights: ")
    for i, b in enumerate(behaviours):
        legend.append(f" {b} ", style=STYLES[i % len(STYLES)])
    console.print(legend)
    for run, texts in examples.items():
        console.rule(f"top backtracking examples: {run}")
        for text in texts or [Text("(no sample backtracks)")]:
            console.print(text)
            console.print()


def _thin(rows: list[StepRow], max_rows: int) -> list[StepRow]:
    if len(rows) <= max_rows:
        return rows
    keep = {round(i * (len(rows) - 1) / (max_rows - 1)) for i in range(max_rows)}
    return [r for i, r in enumerate(rows) if i in keep]


def _fmt(value) -> str:
    return "-" if value is None or math.isnan(value) else f"{value:.2f}"
