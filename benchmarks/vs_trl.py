"""rlsp against TRL's GRPOTrainer on one fixed RL workload, each side in its own process.

    python benchmarks/vs_trl.py [--steps 5] [--sides trl,rlsp-grpo,rlsp-gae] [--json out.json]
    .venv-vllm/bin/python benchmarks/vs_trl.py --sides trl,rlsp-grpo,rlsp-grpo-vllm   # vLLM generation

The workload: SmolLM2-135M-Instruct, 4 prompts x 4 samples per step from the built-in arithmetic
task (the demo's prompt), at most 128 new tokens, temperature 1.0, one reward (benchmarks/
workload_reward.py: the last \\boxed{} equals the answer, the same few lines on both sides), KL to
the reference with beta 0.04 (k3, in the loss), one optimizer step per batch, learning rate
1e-6, fp32 on both sides. rlsp runs ``grpo`` (like for like) and ``gae`` (the PPO critic, KL in
the loss as well); a ``-vllm`` suffix generates with ``generation.backend: vllm``.

Each side runs as its users run it. TRL's side is benchmarks/trl_side.py: a process that imports
nothing of rlsp, started with this process's environment minus what importing rlsp set
(``rlsp.ENVIRONMENT_SET``: rlsp's OpenMP default is rlsp's choice, not TRL's). TRL keeps its other
defaults (it turns gradient checkpointing on). Every side reports its environment (threads,
OpenMP settings, versions) beside its figures: seconds per step (median of the steps after the
first), generated tokens per second and seconds per 1,000 generated tokens (the sides sample
different lengths), peak RSS; for rlsp also the generation rate and the update phase's FLOP/s
(6 x parameters x tokens: every completion token and each distinct prompt once) against this
machine's fp32 matmul peak, measured in the same run.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
STEPS_DEFAULT = 5
PROMPTS, SAMPLES, MAX_TOKENS, BETA, LR = 4, 4, 128, 0.04, 1e-6
MICRO = 4  # rlsp's default micro-batch: length-sorted rows, four per forward/backward
TEMPLATE = "{prompt} Put the final answer in \\boxed{}."


def prompts_and_answers(n: int, seed: int = 0) -> list[tuple[str, str]]:
    from rlsp.config import load_recipe

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "r.yaml"
        path.write_text("data: {source: 'builtin:arith', split: train, arith: {levels: [2, 3], train_size: 1000}}\n")
        recipe = load_recipe(path, [])
    from rlsp.data import load_examples

    examples = load_examples(recipe.data, seed).examples[:n]
    return [(TEMPLATE.replace("{prompt}", e.prompt), e.reference) for e in examples]


# -- the sides, each in its own process --------------------------------------------------------

def rlsp_recipe(out: Path, estimator: str, steps: int, backend: str = "hf") -> Path:
    """The workload as an rlsp recipe, written to ``out``."""
    recipe_path = out / "recipe.yaml"
    recipe_path.write_text(f"""
run: {{output_dir: {out / 'run'}, seed: 0}}
model: {{name_or_path: smollm2-135m-instruct, device: cpu, precision: fp32}}
data:
  source: builtin:arith
  split: train
  prompt_template: "{{prompt}} Put the final answer in \\\\boxed{{}}."
  arith: {{levels: [2, 3], train_size: 1000, heldout_size: 8}}
generation: {{temperature: 1.0, max_new_tokens: {MAX_TOKENS}, batch_size: 16, backend: {backend}}}
rewards: [{{function: "{HERE / 'workload_reward.py'}:rlsp_reward", channel: verifier}}]
train:
  steps: {steps}
  prompts_per_step: {PROMPTS}
  samples_per_prompt: {SAMPLES}
  minibatch_size: {PROMPTS * SAMPLES}
  micro_batch_size: {MICRO}
  actor_lr: {LR}
  advantage_estimator: {estimator}
  kl: {{coef: {BETA}, estimator: k3, placement: loss}}
  reward: {{alpha: {{start: 1.0}}}}
  log_behaviours: false
""")
    return recipe_path


def run_rlsp(estimator: str, steps: int, out: Path, backend: str = "hf") -> dict:
    import rlsp.training.ppo_trainer as loop
    from rlsp.config import load_recipe
    from rlsp.training.ppo_trainer import Trainer

    recipe_path = rlsp_recipe(out, estimator, steps, backend)
    trainer = Trainer(load_recipe(recipe_path, []), recipe_path)
    params = sum(p.numel() for p in trainer.models.dist.unwrap(trainer.models.policy).parameters())
    updated, update = [], loop.ppo_update

    def watched_update(batch, *args, **kwargs):  # what the update phase had to compute
        updated.append(batch.seqs)
        return update(batch, *args, **kwargs)

    loop.ppo_update = watched_update
    rows = []
    for step in range(1, steps + 1):
        trainer.step = step
        start = time.perf_counter()
        scalars = trainer.train_step()
        seconds = time.perf_counter() - start
        tokens = scalars["response/length_mean"] * PROMPTS * SAMPLES
        rows.append({"seconds": seconds, "generated_tokens": tokens, "generate_s": scalars["time/1_generate"],
                     "update_s": scalars["time/5_update"], "update_tokens": useful_tokens(updated[-1])})
    sys.path.insert(0, str(HERE))
    from trl_side import environment

    return {"steps": rows, "parameters": params, "environment": environment()}


def useful_tokens(seqs) -> int:
    """The tokens an update must run through the policy: every completion token, and each
    distinct prompt once (padding excluded; the padding-free pass computes about this)."""
    from rlsp.training.packing import prompt_groups

    groups = prompt_groups(seqs.prompt_ids, seqs.prompt_mask)
    first_rows = [groups.index(g) for g in set(groups)]
    return int(seqs.completion_mask.sum()) + int(seqs.prompt_mask[first_rows].sum())


# -- the parent: run each side, summarise ------------------------------------------------------

def matmul_peak_gflops(size: int = 1024, repeats: int = 5) -> float:
    import torch

    a, b = torch.randn(size, size), torch.randn(size, size)
    a @ b
    best = min(_timed(lambda: a @ b) for _ in range(repeats))
    return 2 * size**3 / best / 1e9


def measurement(command: str, peak_gflops: float) -> dict:
    """Where and when figures were measured, stored beside them (benchmarks/tables.py prints it)."""
    import datetime

    import torch

    from rlsp.precision import cpu_description

    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=HERE, capture_output=True, text=True,
                            check=False)
    interpreter = Path(sys.executable)
    python = str(interpreter.relative_to(HERE.parent)) if interpreter.is_relative_to(HERE.parent) else "python"
    return {"command": f"{python} {command}", "date": datetime.date.today().isoformat(), "cpu": cpu_description(),
            "torch": torch.__version__, "torch_threads": torch.get_num_threads(),
            "fp32_matmul_peak_gflops": peak_gflops, "commit": commit.stdout.strip() or "unknown"}


def _timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def workload(steps: int, out: Path) -> Path:
    """TRL's side's inputs, written to a file: the model folder and the prompts it trains on."""
    from rlsp.modeling.causal_lm import resolve_model_path

    path = out / "workload.json"
    path.write_text(json.dumps({
        "model": resolve_model_path("smollm2-135m-instruct"), "prompts": prompts_and_answers(PROMPTS * steps),
        "prompts_per_step": PROMPTS, "samples": SAMPLES, "max_tokens": MAX_TOKENS, "beta": BETA, "lr": LR,
        "steps": steps}))
    return path


def peer_env() -> dict[str, str]:
    """This process's environment without what importing rlsp set: the peer's process gets it."""
    env = dict(os.environ)
    for key in getattr(sys.modules.get("rlsp"), "ENVIRONMENT_SET", ()):
        env.pop(key, None)
    return env


def summarise(side: str, result: dict) -> dict:
    measured = result["steps"][1:] or result["steps"]
    seconds = statistics.median(r["seconds"] for r in measured)
    tokens = statistics.median(r.get("generated_tokens", float("nan")) for r in measured)
    out = {"side": side, "s_per_step": seconds, "generated_tokens_per_step": tokens,
           "generated_tok_per_s": tokens / seconds, "s_per_1k_generated": 1000 * seconds / tokens,
           "peak_rss_mb": result["peak_rss_mb"], "steps_measured": len(measured),
           "environment": result.get("environment", {})}
    if "parameters" in result:
        gen = statistics.median(r["generated_tokens"] / r["generate_s"] for r in measured)
        flops = statistics.median(6 * result["parameters"] * r["update_tokens"] / r["update_s"] for r in measured)
        out.update({"generation_tok_per_s": gen, "update_gflops": flops / 1e9})
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=STEPS_DEFAULT, help="Steps per side; the first is warm-up.")
    parser.add_argument("--sides", default="trl,rlsp-grpo,rlsp-gae")
    parser.add_argument("--json", help="Write the figures here.")
    parser.add_argument("--side", help=argparse.SUPPRESS)  # the child process's job
    parser.add_argument("--out", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.steps < 2:
        parser.error("--steps: at least 2 (the first step is a warm-up)")
    if args.side:  # an rlsp side, in its own process
        out = Path(args.out)
        _, estimator, *backend = args.side.split("-")  # rlsp-grpo, rlsp-gae, rlsp-grpo-vllm
        result = run_rlsp(estimator, args.steps, out, *backend)
        result["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # this process's own
        (out / "result.json").write_text(json.dumps(result))
        return 0

    from rlsp.precision import cpu_description

    peak = matmul_peak_gflops()
    print(f"machine: {cpu_description()}; fp32 matmul peak {peak:.0f} GFLOP/s (1024^3, best of 5)")
    summaries = []
    for side in args.sides.split(","):
        with tempfile.TemporaryDirectory() as tmp:
            print(f"running {side} for {args.steps} steps ...", flush=True)
            if side == "trl":
                command = [sys.executable, str(HERE / "trl_side.py"), str(workload(args.steps, Path(tmp))), tmp]
                env = peer_env()
            else:
                command = [sys.executable, __file__, "--side", side, "--out", tmp, "--steps", str(args.steps)]
                env = None
            subprocess.run(command, check=True, stdout=subprocess.DEVNULL, env=env)
            summaries.append(summarise(side, json.loads((Path(tmp) / "result.json").read_text())))
            print(f"  {side} environment: {summaries[-1]['environment']}", flush=True)
    print_table(summaries)
    if args.json:
        measured = measurement(f"benchmarks/vs_trl.py --steps {args.steps} --sides {args.sides}", peak)
        Path(args.json).write_text(json.dumps({"measured": measured, **figures(summaries)}, indent=2) + "\n")
    return 0


def figures(summaries: list[dict]) -> dict:
    by = {s["side"]: s for s in summaries}
    out = {"sides": summaries}
    if "trl" in by and "rlsp-grpo" in by:
        out.update({"rlsp_s_per_step": by["rlsp-grpo"]["s_per_step"], "trl_s_per_step": by["trl"]["s_per_step"],
                    "speedup": by["trl"]["s_per_step"] / by["rlsp-grpo"]["s_per_step"],
                    "rlsp_peak_rss_mb": by["rlsp-grpo"]["peak_rss_mb"], "trl_peak_rss_mb": by["trl"]["peak_rss_mb"]})
    return out


def print_table(summaries: list[dict]) -> None:
    print(f"\n{'side':<15} {'s/step':>7} {'gen tok/step':>12} {'tok/s':>7} {'s/1k tok':>9} {'peak RSS MB':>11}")
    for s in summaries:
        print(f"{s['side']:<15} {s['s_per_step']:7.1f} {s['generated_tokens_per_step']:12.0f} "
              f"{s['generated_tok_per_s']:7.1f} {s['s_per_1k_generated']:9.1f} {s['peak_rss_mb']:11.0f}")
    by = {s["side"]: s for s in summaries}
    if "trl" in by:
        for side in (s for s in by if s != "trl"):
            print(f"{side} vs TRL: {by['trl']['s_per_step'] / by[side]['s_per_step']:.2f}x per step, "
                  f"{by['trl']['s_per_1k_generated'] / by[side]['s_per_1k_generated']:.2f}x per generated token, "
                  f"{by[side]['peak_rss_mb'] / by['trl']['peak_rss_mb']:.2f}x TRL's peak RSS")
    for s in summaries:
        if "update_gflops" in s:
            print(f"{s['side']}: generation {s['generation_tok_per_s']:.1f} tok/s; update {s['update_gflops']:.1f} "
                  f"GFLOP/s (6 x params x tokens)")


if __name__ == "__main__":
    sys.exit(main())
