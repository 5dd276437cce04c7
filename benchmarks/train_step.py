"""Seconds per training phase on the real demo model, fp32 against bf16 autocast, same run.

    python benchmarks/train_step.py [--steps 2] [--prompts 8] [section.key=value ...]

Prints a table of mean seconds per phase for each precision and the bf16/fp32 ratio. Uses
recipes/demo_rlsp.yaml (SmolLM2-135M-Instruct) unless overridden; skips held-out evaluation.
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
from collections import defaultdict
from pathlib import Path

import torch

from rlsp.config import load_recipe
from rlsp.training.trainer import Trainer

RECIPE = Path(__file__).resolve().parents[1] / "recipes" / "demo_rlsp.yaml"


def time_phases(precision: str, steps: int, prompts: int, overrides: list[str]) -> dict[str, float]:
    out = tempfile.mkdtemp(prefix=f"bench-{precision}-")
    recipe = load_recipe(RECIPE, [f"run.output_dir={out}", f"train.mixed_precision={precision}",
                                  f"train.prompts_per_step={prompts}", f"train.minibatch_size={prompts}",
                                  "train.critic_warmup_steps=0", f"train.steps={steps}", *overrides])
    trainer = Trainer(recipe, RECIPE)
    totals: dict[str, float] = defaultdict(float)
    torch.manual_seed(0)
    for _ in range(steps):
        trainer.step += 1
        scalars = trainer.train_step()
        for key, value in scalars.items():
            if key.startswith("time/"):
                totals[key[5:]] += value / steps
    shutil.rmtree(out, ignore_errors=True)
    return dict(totals)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=2)
    parser.add_argument("--prompts", type=int, default=8)
    parser.add_argument("overrides", nargs="*")
    args = parser.parse_args()
    results = {}
    for precision in ("fp32", "bf16"):
        results[precision] = time_phases(precision, args.steps, args.prompts, args.overrides)
        print(precision, {k: round(v, 2) for k, v in results[precision].items()}, flush=True)
    print(f"\n{'phase':<16}{'fp32 s':>10}{'bf16 s':>10}{'bf16/fp32':>11}")
    for phase in sorted(results["fp32"]):
        a, b = results["fp32"][phase], results["bf16"][phase]
        print(f"{phase:<16}{a:>10.2f}{b:>10.2f}{(b / a if a > 1e-3 else float('nan')):>11.2f}")
    a, b = sum(results["fp32"].values()), sum(results["bf16"].values())
    print(f"{'total':<16}{a:>10.2f}{b:>10.2f}{b / a:>11.2f}")


if __name__ == "__main__":
    main()
