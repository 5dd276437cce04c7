"""Run an ablation's warm-starts and RL runs, each as its own ``rlsp sft`` / ``rlsp train`` process.

A separate process per run is what a user would launch by hand: every run starts from a clean
interpreter (no memory or RNG state carried over) and its own logs stream to the terminal. The
ablation is resumable: a finished run (``sft_summary.json`` / ``summary.json``) is skipped, a
stopped RL run continues from its latest checkpoint, and a run stopped before its first
checkpoint starts again. Running the same ``rlsp ablate`` command again picks up where it stopped.
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

from rlsp.ablation.arms import AblationPlan, PlannedRun
from rlsp.errors import RlspError


class RunFailed(RlspError):
    """One of the ablation's runs exited with an error; the others are kept."""


def sft_done(sft_dir: Path) -> bool:
    return (sft_dir / "sft_summary.json").exists()


def train_done(run_dir: Path) -> bool:
    return (run_dir / "summary.json").exists()


def train_flags(run_dir: Path) -> list[str]:
    """--resume where a checkpoint was saved, --overwrite where a run stopped before its first."""
    from rlsp.training.checkpoint import latest_checkpoint

    if not run_dir.exists():
        return []
    return ["--resume"] if latest_checkpoint(run_dir) is not None else ["--overwrite"]


def run_all(plan: AblationPlan, say=print) -> dict[str, float]:
    """Run what is not finished yet; returns wall seconds per run folder (finished ones: absent)."""
    seconds: dict[str, float] = {}
    for seed in plan.seeds:
        sft_dir = plan.sft_dir(seed)
        if sft_dir is not None and not sft_done(sft_dir):
            flags = ["--overwrite"] if sft_dir.exists() else []
            seconds[str(sft_dir)] = _run(["sft", str(plan.sft_recipe), *plan.sft_command_overrides(seed), *flags],
                                         f"seed {seed}: SFT warm-start -> {sft_dir}", say)
        for run in (r for r in plan.runs if r.seed == seed):
            if train_done(run.run_dir):
                say(f"== seed {seed}, {run.arm.name}: finished earlier ({run.run_dir}/summary.json); skipped")
                continue
            title = f"seed {seed}, {run.arm.name}: RL -> {run.run_dir}"
            seconds[str(run.run_dir)] = _run(_train_argv(plan, run), title, say)
    return seconds


def _train_argv(plan: AblationPlan, run: PlannedRun) -> list[str]:
    return ["train", str(plan.recipe), *plan.train_overrides(run), *train_flags(run.run_dir)]


def _run(argv: list[str], title: str, say) -> float:
    say(f"== {title}\n   rlsp {' '.join(argv)}")
    start = time.perf_counter()
    code = subprocess.call([sys.executable, "-m", "rlsp", *argv])
    if code != 0:
        raise RunFailed(f"{title} failed (exit status {code}); its output is above. Finished runs are kept: "
                        "run the same rlsp ablate command again to continue from there.")
    return time.perf_counter() - start
