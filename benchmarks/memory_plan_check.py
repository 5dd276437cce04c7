"""`rlsp plan`'s memory figure against a real run on this machine.

    python benchmarks/memory_plan_check.py [--json PATH]

The demo recipe (SmolLM2-135M-Instruct, fp32 on a CPU without native bf16) switched to GAE so
that all three networks exist (policy, frozen reference, critic, AdamW for both trained ones),
at the demo's micro-batch (8) and generation batch (200 rows: the held-out set in one call).
One process: the plan's 'DDP' row with one device. Measured: the growth of resident memory from
just before the models load to the process's peak over the held-out evaluation (the largest
generation) and two training steps (the update). The planned figure uses the longest prompt
the run actually renders.
"""

from __future__ import annotations

import argparse
import json
import platform
import resource
import tempfile
from pathlib import Path

import psutil
import torch

from rlsp.config import load_recipe
from rlsp.data.prompts import chat_messages
from rlsp.generation.hf import render_prompts
from rlsp.planning.memory_plan import GIB, plan_memory
from rlsp.planning.model_size import model_size
from rlsp.training import ppo_trainer

REPO = Path(__file__).resolve().parents[1]
OVERRIDES = ["train.advantage_estimator=gae", "train.kl.placement=reward", "train.kl.estimator=k1",
             "train.steps=2", "train.checkpoint_every=0", "train.eval_every=0"]


def peak_rss() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # kB on Linux


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", help="Write the figures here too.")
    args = parser.parse_args()
    out = Path(tempfile.mkdtemp(prefix="rlsp-plan-check-"))
    recipe_path = REPO / "recipes" / "demo_rlsp.yaml"
    recipe = load_recipe(recipe_path, [*OVERRIDES, f"run.output_dir={out}"])
    before = {}
    real_build = ppo_trainer.build_models

    def measured_build(*a, **k):
        before["rss"], before["peak"] = psutil.Process().memory_info().rss, peak_rss()
        return real_build(*a, **k)

    ppo_trainer.build_models = measured_build
    trainer = ppo_trainer.Trainer(recipe, recipe_path)
    phases = {"models loaded": peak_rss()}
    trainer.evaluate("eval before")  # the largest generation: 200 rows
    phases["held-out generation"] = peak_rss()
    for step in (1, 2):
        trainer.step = step
        trainer.train_step()
        phases[f"train step {step}"] = peak_rss()
    grown = peak_rss() - before["rss"]

    tok = trainer.models.tokenizer
    prompts = render_prompts(tok, [chat_messages(e, recipe.data) for e in trainer.train_data + trainer.heldout])
    prompt_tokens = max(len(ids) for ids in tok(prompts, add_special_tokens=False)["input_ids"])
    plan = plan_memory(model_size(recipe.model.name_or_path), recipe, "DDP", 1, prompt_tokens,
                       compute_bytes=torch.finfo(trainer.precision.compute).bits // 8)
    parts = {"policy+critic states": plan.trained, "reference": plan.reference, "update": plan.update,
             "generation": plan.generation}
    result = {
        "cpu": trainer.precision.summary().get("cpu", platform.machine()), "precision": trainer.precision.summary(),
        "prompt_tokens": prompt_tokens, "planned_gib": plan.peak / GIB, "measured_growth_gib": grown / GIB,
        "rss_before_models_gib": before["rss"] / GIB, "peak_before_models_gib": before["peak"] / GIB,
        "parts_gib": {k: v / GIB for k, v in parts.items()}, "gap": grown / plan.peak - 1,
        "peak_growth_after_gib": {k: (v - before["rss"]) / GIB for k, v in phases.items()},
    }
    print(f"plan: {plan.peak / GIB:.2f} GiB (" + ", ".join(f"{k} {v / GIB:.2f}" for k, v in parts.items())
          + f"; peak = states + reference + max(update, generation)); prompt {prompt_tokens} tokens")
    print(f"measured: resident memory grew {grown / GIB:.2f} GiB over {before['rss'] / GIB:.2f} GiB before the "
          f"models loaded; measured / planned = {grown / plan.peak:.2f}")
    print("peak growth after each phase: " + ", ".join(
        f"{k} {v:.2f} GiB" for k, v in result["peak_growth_after_gib"].items()))
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
