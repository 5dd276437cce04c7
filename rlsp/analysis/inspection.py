"""``rlsp inspect``: load one or two runs, label behaviours, write the table, plots and report.

Writes into ``out_dir``:
- ``steps.csv``: the per-step table (a ``run`` column when comparing),
- ``samples.jsonl``: per sample its step, counts, rates per 1k tokens and labelled spans,
- ``behaviours.png`` and ``length_accuracy.png``,
- ``report.html`` (self-contained).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from rlsp.analysis.behaviour_plots import plot_behaviours, plot_length_accuracy
from rlsp.analysis.behaviours import BehaviourProfile, MarkerDetector
from rlsp.analysis.html_report import RunView, write_report
from rlsp.analysis.rollout_loader import load_rollouts
from rlsp.analysis.step_table import step_table, write_csv

OUTPUTS = ("steps.csv", "samples.jsonl", "behaviours.png", "length_accuracy.png", "report.html")


@dataclass
class Inspection:
    views: list[RunView]
    behaviours: tuple[str, ...]
    out_dir: Path
    files: list[Path]


def default_out_dir(path: Path, compare: Path | None) -> Path:
    base = path / "inspect" if path.is_dir() else path.parent / f"inspect-{path.stem}"
    return base.with_name(f"{base.name}-vs-{compare.resolve().name}") if compare else base


def view_names(paths: list[Path]) -> list[str]:
    names = [p.resolve().name if p.is_dir() else f"{p.resolve().parent.name}/{p.name}" for p in paths]
    return names if len(set(names)) == len(names) else [f"{chr(65 + i)}: {n}" for i, n in enumerate(names)]


def inspect_runs(paths: list[Path], out_dir: Path, detector: MarkerDetector | None = None, labeller=None,
                 fields: dict | None = None, max_html_samples: int = 400, names: list[str] | None = None) -> Inspection:
    """``labeller``: an object with ``label(texts, tokens) -> list[BehaviourProfile]`` (the LLM
    labeller); without one the marker ``detector`` labels every sample. ``names``: the runs'
    labels in tables and plots (default: their folder names)."""
    detector = detector or MarkerDetector()
    behaviours = labeller.behaviours if labeller else detector.behaviours
    runs = [load_rollouts(p, **(fields or {})) for p in paths]  # all read before any file is written
    views = []
    for name, run in zip(names or view_names(paths), runs, strict=True):
        texts, tokens = [s.completion for s in run.samples], [s.length for s in run.samples]
        profiles = labeller.label(texts, tokens) if labeller else detector.detect_all(texts, tokens)
        views.append(RunView(name, run, profiles, step_table(run.samples, profiles, behaviours)))
    out_dir.mkdir(parents=True, exist_ok=True)
    rows_by_run = {v.name: v.rows for v in views}
    write_csv(rows_by_run, out_dir / "steps.csv")
    _write_samples(views, out_dir / "samples.jsonl")
    plots = [plot_behaviours(rows_by_run, behaviours, out_dir / "behaviours.png"),
             plot_length_accuracy(rows_by_run, out_dir / "length_accuracy.png")]
    report = write_report(views, behaviours, plots, out_dir / "report.html", max_html_samples)
    return Inspection(views, behaviours, out_dir,
                      [out_dir / "steps.csv", out_dir / "samples.jsonl", *plots, report])


def _write_samples(views: list[RunView], path: Path) -> None:
    with path.open("w", encoding="utf-8") as f:
        for view in views:
            for i, (sample, profile) in enumerate(zip(view.run.samples, view.profiles, strict=True)):
                f.write(json.dumps(_sample_record(view.name, i, sample, profile), ensure_ascii=False) + "\n")


def _sample_record(run: str, index: int, sample, profile: BehaviourProfile) -> dict:
    return {
        "run": run, "index": index, "step": sample.step, "group": sample.group, "correct": sample.correct,
        "tokens": profile.tokens, "tokens_estimated": profile.tokens_estimated, "labeller": profile.labeller,
        "counts": profile.counts,
        "per_1k": {b: round(profile.rate_per_1k(b), 4) for b in profile.counts},
        "spans": [{"start": s.start, "end": s.end, "behaviour": s.behaviour, "marker": s.marker}
                  for s in profile.spans],
    }
