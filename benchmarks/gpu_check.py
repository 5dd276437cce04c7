"""The prepared GPU check: what only a CUDA machine can show, in one command of under 8 minutes.

    python benchmarks/gpu_check.py [--json out.json]   # on one H100/H200 (wheels: benchmarks/gpu_wheels.txt)
    python benchmarks/gpu_check.py --dry-run           # the same checks on the CPU, tiny sizes (make test)

No hub access: models are random-initialised from configs (a ~0.5B Qwen2-shaped policy, the
tests' tiny Llama, a 128k-vocabulary head) with the tests' offline tokenizer. Each check records
what it measured, or why it could not run; the script prints one JSON and a table, and exits 1 if
a check failed (not if one could not run). The checks:

- cuda_tests: the suite's CUDA-only tests (tests/test_precision.py, skipped on a CPU);
- precision: ``model.precision: auto`` picks bf16 where the GPU has it natively; after one RL step
  the weights and Adam's states are fp32 (bf16 autocast over fp32 master weights);
- rl_step_grpo / rl_step_gae: two RL steps of the 0.5B policy in bf16 on the hf backend;
  generation tokens/s and the update's model FLOP utilisation against a bf16 matmul peak measured
  in the same run (6 x parameters x tokens; the critic's passes are not counted);
- zero2 / zero3: ``rlsp train`` under launch/zero{2,3}.yaml, one process, three steps with a
  checkpoint each, then the last step again from the step-2 checkpoint: the resumed run's samples
  and final weights against the straight run's;
- packing: padding-free (block-mask) log-probs against the plain pass under this device's SDPA;
- chunked_head: log-probs and their gradient over a 128,256-token vocabulary, in chunks against
  one chunk.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import traceback
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))  # the offline tokenizer and tiny model the tests build


class CannotRun(Exception):
    """A check that this machine cannot run (no GPU, a package missing): reported, not failed."""


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dry-run", action="store_true", help="Run every check on the CPU with tiny sizes.")
    parser.add_argument("--json", type=Path, help="Also write the results here.")
    args = parser.parse_args()
    import torch

    if not args.dry_run and not torch.cuda.is_available():
        print("gpu_check: no CUDA device; run with --dry-run on a CPU.", file=sys.stderr)
        return 2
    work = Path(tempfile.mkdtemp(prefix="rlsp-gpu-check-"))
    context = Context(args.dry_run, work)
    results = {"environment": environment(context)}
    for name, check in CHECKS.items():
        start = time.perf_counter()
        try:
            outcome = {"status": "ok", **check(context)}
        except CannotRun as e:
            outcome = {"status": "could not run", "why": str(e)}
        except Exception as e:  # noqa: BLE001 -- a failed check is reported with its cause, the rest go on
            outcome = {"status": "failed", "why": f"{type(e).__name__}: {e}", "trace": traceback.format_exc()[-2000:]}
        outcome["seconds"] = round(time.perf_counter() - start, 1)
        results[name] = outcome
        print(f"{name}: {outcome['status']} ({outcome['seconds']} s)", flush=True)
    shutil.rmtree(work, ignore_errors=True)
    print(json.dumps(results, indent=2, default=str))
    print(table(results))
    if args.json:
        args.json.write_text(json.dumps(results, indent=2, default=str) + "\n")
    return 1 if any(r.get("status") == "failed" for r in results.values()) else 0


class Context:
    """The sizes and the device of a run: a GPU with real sizes, or the CPU with tiny ones."""

    def __init__(self, dry_run: bool, work: Path):
        self.dry_run, self.work = dry_run, work
        self.device = "cpu" if dry_run else "cuda"
        self.env = {**os.environ, "OMP_NUM_THREADS": "1"} if dry_run else dict(os.environ)
        self.env["PYTHONPATH"] = os.pathsep.join([str(REPO), self.env.get("PYTHONPATH", "")])

    def model(self, name: str, **config) -> Path:
        """A random model saved with the offline tokenizer: 'tiny' (the tests' Llama), 'policy'
        (~0.5B Qwen2 shape; tiny on a dry run) or 'big-vocab' (a 128k head on a small body)."""
        folder = self.work / name
        if folder.exists():
            return folder
        from tiny_models import build_tokenizer
        from transformers import LlamaConfig, LlamaForCausalLM, Qwen2Config, Qwen2ForCausalLM

        tokenizer = build_tokenizer()
        if name == "policy" and not self.dry_run:  # Qwen2.5-0.5B's shape
            model = Qwen2ForCausalLM(Qwen2Config(vocab_size=151936, hidden_size=896, intermediate_size=4864,
                                                 num_hidden_layers=24, num_attention_heads=14, num_key_value_heads=2,
                                                 tie_word_embeddings=True, max_position_embeddings=4096))
        else:
            vocab = 128256 if name == "big-vocab" else len(tokenizer)
            hidden = 64 if name == "big-vocab" else 32
            model = LlamaForCausalLM(LlamaConfig(vocab_size=vocab, hidden_size=hidden, intermediate_size=2 * hidden,
                                                 num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
                                                 max_position_embeddings=1024, tie_word_embeddings=True))
        model.save_pretrained(folder)
        tokenizer.save_pretrained(folder)
        return folder

    def recipe(self, model: Path, name: str, *lines: str) -> Path:
        path = self.work / f"{name}.yaml"
        path.write_text("\n".join([
            f"run: {{output_dir: {self.work / name}, seed: 0}}",
            f"model: {{name_or_path: {model}, device: {self.device}, precision: auto}}",
            "data: {source: 'builtin:arith', split: train, prompt_template: '{prompt}',",
            "       arith: {levels: [2], train_size: 64, heldout_size: 4}}",
            f"generation: {{temperature: 1.0, max_new_tokens: {16 if self.dry_run else 128}, batch_size: 16}}",
            "rewards: [{function: math, channel: verifier, kwargs: {answer_format: boxed_or_last_number}}]",
            *lines]) + "\n")
        return path


def environment(ctx: Context) -> dict:
    import importlib.metadata

    import torch

    from rlsp.precision import cpu_description, cuda_bf16_is_native

    def version(name):
        try:
            return importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            return None

    env = {"torch": torch.__version__, "python": sys.version.split()[0],
           "packages": {n: version(n) for n in ("transformers", "accelerate", "peft", "trl", "deepspeed",
                                                 "math-verify", "pebble", "vllm")}}
    if ctx.dry_run:
        return {**env, "device": cpu_description()}
    native, why = cuda_bf16_is_native(torch.device("cuda", 0))
    return {**env, "device": torch.cuda.get_device_name(0), "capability": torch.cuda.get_device_capability(0),
            "bf16_native": native, "bf16_reason": why,
            "memory_gib": torch.cuda.get_device_properties(0).total_memory / 2**30}


def cuda_tests(ctx: Context) -> dict:
    done = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests/test_precision.py",
                           "-k", "cuda"],
                          check=False, cwd=REPO, env=ctx.env, capture_output=True, text=True, timeout=300)
    summary = done.stdout.strip().splitlines()[-1] if done.stdout.strip() else done.stderr[-500:]
    if done.returncode not in (0, 5):
        raise AssertionError(f"pytest: {summary}")
    return {"pytest": summary}


def precision(ctx: Context) -> dict:
    import torch

    from rlsp.config import load_recipe
    from rlsp.training.ppo_trainer import Trainer

    path = ctx.recipe(ctx.model("tiny"), "precision",
                      "train: {steps: 1, advantage_estimator: rloo, samples_per_prompt: 2,",
                      "        prompts_per_step: 2, minibatch_size: 4, micro_batch_size: 4}")
    trainer = Trainer(load_recipe(path), path)
    trainer.step = 1
    trainer.train_step()
    weights = {str(p.dtype) for p in trainer.models.policy.parameters()}
    states = {str(s["exp_avg"].dtype) for s in trainer.models.actor.optimizer.state.values()}
    compute = trainer.precision.summary()["compute"]
    if weights != {"torch.float32"} or states != {"torch.float32"}:
        raise AssertionError(f"weights {weights}, Adam states {states}: expected fp32 master weights")
    if not ctx.dry_run and compute != ("bf16" if environment(ctx)["bf16_native"] else "fp32"):
        raise AssertionError(f"auto computed in {compute} on {torch.cuda.get_device_name(0)}")
    return {"compute": compute, "weights": sorted(weights), "adam_states": sorted(states),
            "reason": trainer.precision.reason}


def matmul_peak(ctx: Context) -> float:
    """FLOP/s of a large matmul in the run's compute dtype on this device (the MFU denominator)."""
    import torch

    size, dtype = (1024, torch.float32) if ctx.dry_run else (8192, torch.bfloat16)
    a = torch.randn(size, size, device=ctx.device, dtype=dtype)
    for _ in range(3):
        a @ a
    sync = torch.cuda.synchronize if ctx.device == "cuda" else (lambda: None)
    sync()
    start, runs = time.perf_counter(), 10
    for _ in range(runs):
        a @ a
    sync()
    return 2 * size**3 * runs / (time.perf_counter() - start)


def rl_step(ctx: Context, estimator: str) -> dict:
    from rlsp.config import load_recipe
    from rlsp.training.ppo_trainer import Trainer

    path = ctx.recipe(ctx.model("policy"), f"rl_{estimator}",
                      f"train: {{steps: 2, advantage_estimator: {estimator}, samples_per_prompt: 4,",
                      "        prompts_per_step: 4, minibatch_size: 16, micro_batch_size: 4, actor_lr: 1.0e-6}")
    trainer = Trainer(load_recipe(path), path)
    params = sum(p.numel() for p in trainer.models.policy.parameters())
    steps = []
    for step in (1, 2):
        trainer.step = step
        scalars = trainer.train_step()
        steps.append(scalars)
    last = steps[-1]  # the first step pays for kernel selection and the allocator's growth
    tokens = last["response/length_mean"] * 16 + 16 * 40  # completions and (about) their prompts
    peak = matmul_peak(ctx)
    achieved = 6 * params * tokens / last["time/5_update"]
    return {"parameters": params, "generation_tokens_per_s": round(last["throughput/tokens_per_s"], 1),
            "update_seconds": round(last["time/5_update"], 3), "update_flops": achieved, "matmul_peak_flops": peak,
            "update_mfu": round(achieved / peak, 3), "compute": trainer.precision.summary()["compute"]}


def zero(ctx: Context, stage: int) -> dict:
    import torch
    from safetensors.torch import load_file

    overrides = ["train.steps=3", "train.checkpoint_every=1", "train.keep_checkpoints=5", "train.prompts_per_step=2",
                 "train.samples_per_prompt=2", "train.minibatch_size=4", "train.micro_batch_size=4",
                 "train.advantage_estimator=rloo"]
    path = ctx.recipe(ctx.model("tiny"), f"zero{stage}")
    run = ctx.work / f"zero{stage}"
    accelerate = Path(sys.executable).with_name("accelerate")
    launch = [str(accelerate), "launch", "--config_file", f"launch/zero{stage}.yaml", "--num_processes", "1", "-m",
              "rlsp", "train", str(path), *overrides]
    first = subprocess.run(launch, check=False, cwd=REPO, env=ctx.env, capture_output=True, text=True, timeout=300)
    if first.returncode:
        raise AssertionError((first.stdout + first.stderr)[-1500:])
    straight = ctx.work / f"zero{stage}-straight"
    shutil.copytree(run, straight)
    shutil.rmtree(run / "checkpoints" / "step-000003")
    shutil.rmtree(run / "final")
    again = subprocess.run([*launch, "--resume"], check=False, cwd=REPO, env=ctx.env, capture_output=True, text=True,
                           timeout=300)
    if again.returncode:
        raise AssertionError((again.stdout + again.stderr)[-1500:])
    completions = [[json.loads(line)["completion"] for line in (d / "rollouts.jsonl").read_text().splitlines()]
                   for d in (straight, run)]
    a, b = (load_file(d / "final" / "model.safetensors") for d in (straight, run))
    diff = max((a[k].float() - b[k].float()).abs().max().item() for k in a)
    if completions[0] != completions[1]:
        raise AssertionError("the resumed run sampled other completions than the straight one")
    engines = next((line for line in first.stdout.splitlines() if line.startswith("training engines")), "")
    return {"engines": engines, "resumed_samples_equal": True, "final_weights_max_abs_diff": diff,
            "bitwise_equal": diff == 0.0, "cuda": torch.cuda.is_available()}


def packing(ctx: Context) -> dict:
    import torch

    from rlsp.modeling.causal_lm import load_causal_lm
    from rlsp.training.forward import Sequences, completion_logprobs
    from rlsp.training.packing import supports_packing

    model, _ = load_causal_lm(str(ctx.model("tiny")), torch.float32, ctx.device)
    g = torch.Generator().manual_seed(0)
    ids = lambda rows, width: torch.randint(3, model.config.vocab_size, (rows, width), generator=g)
    prompts = ids(2, 7).repeat_interleave(4, dim=0)  # 2 prompts x 4 samples: what packing shares
    mask = (torch.arange(12)[None, :] < torch.tensor([12, 5, 9, 3, 12, 8, 1, 11])[:, None]).long()
    seqs = Sequences(prompts, torch.ones_like(prompts), ids(8, 12) * mask, mask)
    seqs = Sequences(*(t.to(ctx.device) for t in (seqs.prompt_ids, seqs.prompt_mask, seqs.completion_ids,
                                                   seqs.completion_mask)))
    if not supports_packing(model):
        raise AssertionError(f"{model.config._attn_implementation} attention: rlsp would not pack here")
    with torch.no_grad():
        plain = completion_logprobs(model, seqs, 1.0)[0]
        model._rlsp_packing_agrees = True  # take the packed pass, not the trainer's own first-batch check
        packed = completion_logprobs(model, seqs, 1.0, padding_free=True)[0]
    diff = ((plain - packed) * seqs.completion_mask).abs().max().item()
    if diff > 1e-4:  # fp32 through attention over at most 19 positions
        raise AssertionError(f"packed log-probs differ from the plain pass by {diff:.2e}")
    return {"max_abs_logprob_diff": diff, "attention": model.config._attn_implementation}


def chunked_head(ctx: Context) -> dict:
    import torch

    from rlsp.modeling.causal_lm import load_causal_lm
    from rlsp.training import forward
    from rlsp.training.forward import Sequences, completion_logprobs

    model, _ = load_causal_lm(str(ctx.model("big-vocab")), torch.float32, ctx.device)
    rows, width = (2, 64) if ctx.dry_run else (4, 1024)
    g = torch.Generator().manual_seed(0)
    ids = torch.randint(3, model.config.vocab_size, (rows, width), generator=g).to(ctx.device)
    ones = torch.ones_like(ids)
    seqs = Sequences(ids[:, :8], ones[:, :8], ids[:, 8:], ones[:, 8:])
    logits_bytes = rows * (width - 8) * model.config.vocab_size * 4
    results = {}
    for name, budget in (("chunks", max(logits_bytes // 4, 1)), ("one", 2 * logits_bytes)):
        forward.LOGITS_BUDGET_BYTES = budget
        model.zero_grad()
        logp = completion_logprobs(model, seqs, 1.0)[0]
        logp.sum().backward()
        results[name] = (logp.detach(), model.lm_head.weight.grad.clone())
    diff = (results["chunks"][0] - results["one"][0]).abs().max().item()
    grad = ((results["chunks"][1] - results["one"][1]).norm() / results["one"][1].norm()).item()
    if diff > 1e-4 or grad > 1e-4:
        raise AssertionError(f"chunked head differs: log-probs {diff:.2e}, gradient {grad:.2e} relative")
    return {"vocab": model.config.vocab_size, "chunks": 4, "max_abs_logprob_diff": diff, "grad_relative_diff": grad}


CHECKS = {
    "cuda_tests": cuda_tests,
    "precision": precision,
    "rl_step_grpo": lambda ctx: rl_step(ctx, "grpo"),
    "rl_step_gae": lambda ctx: rl_step(ctx, "gae"),
    "zero2": lambda ctx: zero(ctx, 2),
    "zero3": lambda ctx: zero(ctx, 3),
    "packing": packing,
    "chunked_head": chunked_head,
}


def table(results: dict) -> str:
    lines = ["| check | status | s | figures |", "|---|---|---|---|"]
    for name, r in results.items():
        if name == "environment":
            continue
        figures = ", ".join(f"{k} {v:.3g}" if isinstance(v, float) else f"{k} {v}" for k, v in r.items()
                            if k not in ("status", "seconds", "trace", "why"))
        lines.append(f"| {name} | {r['status']}{': ' + r['why'] if 'why' in r else ''} | {r['seconds']} | {figures} |")
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
