"""Torch thread settings on a machine that another busy process shares, in the same run.

    python benchmarks/threads.py [--model smollm2-135m-instruct] [--repeats 3]

Times one fixed piece of rlsp work (a training forward+backward over 4 x 136 tokens and a
greedy decode of 8 prompts x 24 tokens, fp32) in fresh processes, under each thread setting,
first on a quiet machine and then beside a competitor that keeps one core busy (a pure-Python
loop, as a second job or a notebook would). It prints seconds (median of --repeats) and the
slowdown against the quiet machine.

Settings: torch's default (one OpenMP thread per core; libgomp spins a while before a waiting
thread sleeps); 'one thread'; and rlsp's default, set in rlsp/__init__.py: all cores with
OMP_WAIT_POLICY=PASSIVE, so a waiting thread sleeps at once instead of spinning on a core the
other process needs.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time

SETTINGS = {
    "all cores (torch default)": {},
    "one thread": {"OMP_NUM_THREADS": "1"},
    "all cores, passive wait (rlsp default)": {"OMP_WAIT_POLICY": "PASSIVE"},
}


def worker(model_name: str) -> None:
    import torch  # before rlsp, whose import would otherwise set its own OMP_WAIT_POLICY default

    from rlsp.generation.backend import SamplingParams
    from rlsp.generation.decode import decode
    from rlsp.modeling.causal_lm import load_causal_lm

    model, tokenizer = load_causal_lm(model_name, dtype=torch.float32, device="cpu")
    ids = torch.randint(100, len(tokenizer) - 100, (8, 136), generator=torch.Generator().manual_seed(0))
    start = time.perf_counter()
    model.train()
    logits = model(input_ids=ids[:4], use_cache=False).logits[:, 40:].float()
    torch.log_softmax(logits, -1).gather(-1, ids[:4, 40:].unsqueeze(-1)).mean().backward()
    model.eval()
    decode(model, ids[:, :30], torch.ones_like(ids[:, :30]), SamplingParams(temperature=0.0, max_new_tokens=24),
           stop_ids=[-1], pad_id=tokenizer.pad_token_id)
    print(json.dumps({"seconds": time.perf_counter() - start, "threads": torch.get_num_threads()}))


def timed(model: str, env: dict[str, str]) -> float:
    out = subprocess.run([sys.executable, __file__, "--worker", "--model", model], env={**os.environ, **env},
                         capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])["seconds"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="smollm2-135m-instruct")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        return worker(args.model)
    from rlsp.precision import cpu_description

    print(f"CPU: {cpu_description()}; {os.cpu_count()} cores\n")
    base_env = {k: v for k, v in os.environ.items() if k not in ("OMP_NUM_THREADS", "OMP_WAIT_POLICY")}
    os.environ.clear()
    os.environ.update(base_env)
    results = {}
    for competitor in (False, True):
        spinner = subprocess.Popen([sys.executable, "-c", "while True: pass"]) if competitor else None
        try:
            for name, env in SETTINGS.items():
                results[name, competitor] = statistics.median(timed(args.model, env) for _ in range(args.repeats))
        finally:
            if spinner is not None:
                spinner.kill()
    quiet_default = results["all cores (torch default)", False]
    print(f"{'setting':<42}{'quiet s':>9}{'shared s':>10}{'shared/quiet':>14}{'vs torch quiet':>16}")
    for name in SETTINGS:
        quiet, shared = results[name, False], results[name, True]
        print(f"{name:<42}{quiet:>9.2f}{shared:>10.2f}{shared / quiet:>14.2f}{shared / quiet_default:>16.2f}")


if __name__ == "__main__":
    main()
