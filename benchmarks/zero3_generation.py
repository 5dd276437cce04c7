"""The generation phase of a two-process ZeRO-3 `rlsp train` run: rlsp's loop gathering the policy
layer by layer or whole, against a vLLM engine in each process (weights streamed in a module at
a time).

    .venv-vllm/bin/python benchmarks/zero3_generation.py [--steps 3] [--ways hf-layer,hf-whole,vllm] [--json F]

The workload is vs_trl.py's (SmolLM2-135M-Instruct, fp32, temperature 1, at most 128 tokens, the
`\\boxed{}` reward) with 2 prompts x 4 samples per process per step, launched with
`accelerate launch --config_file launch/zero3.yaml --num_processes 2`, each process on one thread
(a 2-core machine). Per way: generated tokens per second per process and the generation phase's
seconds (`throughput/tokens_per_s` / 2 and `time/1_generate`, medians of the steps after the
first), and the peak resident memory of the largest process of the run (the whole run's, the
update included: it is what the machine must hold).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from vs_trl import HERE, matmul_peak_gflops, measurement, rlsp_recipe

WRAPPER = ("import resource, subprocess, sys; code = subprocess.run(sys.argv[2:]).returncode; "
           "open(sys.argv[1], 'w').write(str(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)); "
           "sys.exit(code)")
WAYS = {
    "hf-layer": ["generation.backend=hf", "generation.zero3_gather=layer"],
    "hf-whole": ["generation.backend=hf", "generation.zero3_gather=whole"],
    "vllm": ["generation.backend=vllm", "generation.vllm.kv_cache_gb=0.5", "generation.vllm.max_model_len=1024"],
}


def run_way(way: str, steps: int, tmp: Path) -> dict:
    out = tmp / way
    out.mkdir()
    recipe = rlsp_recipe(out, "grpo", steps)
    accelerate = Path(sys.executable).with_name("accelerate")
    command = [str(accelerate), "launch", "--config_file", "launch/zero3.yaml", "--num_processes", "2", "-m", "rlsp",
               "train", str(recipe), "train.prompts_per_step=2", "train.minibatch_size=8", *WAYS[way]]
    # A process of its own around the launch, so that its children's peak is this way's alone.
    wrapped = [sys.executable, "-c", WRAPPER, str(out / "maxrss"), *command]
    done = subprocess.run(wrapped, cwd=HERE.parent, capture_output=True, text=True, check=False,
                          env={**os.environ, "OMP_NUM_THREADS": "1"})
    if done.returncode:
        raise SystemExit(f"{way} failed:\n{(done.stdout + done.stderr)[-3000:]}")
    peak_kb = int((out / "maxrss").read_text())
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(out / "run" / "tensorboard"))
    events.Reload()
    measured = lambda tag: statistics.median(e.value for e in events.Scalars(tag)[1:])
    return {"way": way, "tok_per_s_per_process": measured("throughput/tokens_per_s") / 2,
            "generate_s": measured("time/1_generate"), "step_s": statistics.median(
                sum(events.Scalars(t)[i].value for t in events.Tags()["scalars"] if t.startswith("time/"))
                for i in range(1, steps)),
            "peak_rss_mb": peak_kb / 1024}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=3, help="Steps per way; the first is warm-up.")
    parser.add_argument("--ways", default=",".join(WAYS))
    parser.add_argument("--json")
    args = parser.parse_args()
    if args.steps < 2:
        parser.error("--steps: at least 2 (the first step is a warm-up)")
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        for way in args.ways.split(","):
            print(f"running {way} ...", flush=True)
            results.append(run_way(way, args.steps, Path(tmp)))
            print(f"  {results[-1]}", flush=True)
    if args.json:
        measured = measurement(f"benchmarks/zero3_generation.py --steps {args.steps} --ways {args.ways}",
                               matmul_peak_gflops())
        Path(args.json).write_text(json.dumps({"measured": measured, "ways": results}, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
