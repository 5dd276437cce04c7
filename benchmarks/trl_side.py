"""TRL's side of benchmarks/vs_trl.py, as a TRL user runs it: its own process, nothing of rlsp
imported or set in its environment (vs_trl.py starts it with rlsp's variables removed), TRL's
GRPOTrainer with its own defaults but for the workload's settings.

    python benchmarks/trl_side.py WORKLOAD.json OUT_DIR     # WORKLOAD: model folder, prompts, settings
    python benchmarks/trl_side.py --probe                   # print what this process sees (a test reads it)
"""

from __future__ import annotations

import json
import os
import resource
import sys
import time
from pathlib import Path


def cpu() -> str:
    """The CPU's model name and the matmul-relevant flags it has (from /proc/cpuinfo, where there is one)."""
    try:
        info = Path("/proc/cpuinfo").read_text()
    except OSError:
        import platform

        return platform.processor() or "unknown"
    model = next((line.split(":", 1)[1].strip() for line in info.splitlines() if line.startswith("model name")), "?")
    flags = next((line.split(":", 1)[1].split() for line in info.splitlines() if line.startswith("flags")), [])
    wanted = ("avx2", "fma", "avx512f", "avx512_bf16", "amx_bf16")
    has = ", ".join(f for f in wanted if f in flags) or "none of " + "/".join(wanted)
    return f"{model} ({has}), {os.cpu_count()} cores"


def environment() -> dict:
    """What decides this process's speed: threads, OpenMP settings, versions, the CPU."""
    import importlib.metadata

    import torch

    return {"torch_threads": torch.get_num_threads(), "OMP_WAIT_POLICY": os.environ.get("OMP_WAIT_POLICY"),
            "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS"), "rlsp_imported": "rlsp" in sys.modules,
            **{name: importlib.metadata.version(name) for name in ("torch", "transformers", "trl")}, "cpu": cpu()}


def run(workload: dict, out: Path) -> dict:
    from datasets import Dataset
    from transformers import TrainerCallback
    from trl import GRPOConfig, GRPOTrainer
    from workload_reward import trl_reward

    w = workload
    dataset = Dataset.from_list([{"prompt": [{"role": "user", "content": p}], "answer": a} for p, a in w["prompts"]])
    rows, marks = [], {}

    class Clock(TrainerCallback):
        def on_step_begin(self, args, state, control, **kw):
            marks["start"] = time.perf_counter()

        def on_step_end(self, args, state, control, **kw):
            rows.append({"seconds": time.perf_counter() - marks["start"]})

        def on_log(self, args, state, control, logs=None, **kw):
            if logs and "completions/mean_length" in logs and rows:
                rows[-1]["generated_tokens"] = logs["completions/mean_length"] * w["prompts_per_step"] * w["samples"]

    config = GRPOConfig(output_dir=str(out / "trl"), per_device_train_batch_size=w["prompts_per_step"] * w["samples"],
                        num_generations=w["samples"], max_completion_length=w["max_tokens"], temperature=1.0,
                        beta=w["beta"], learning_rate=w["lr"], max_steps=w["steps"], logging_steps=1, report_to=[],
                        save_strategy="no", use_cpu=True, bf16=False, seed=0, shuffle_dataset=False)
    trainer = GRPOTrainer(model=w["model"], reward_funcs=[trl_reward], args=config, train_dataset=dataset,
                          callbacks=[Clock()])
    trainer.train()
    return {"steps": rows}


def main() -> int:
    sys.path.insert(0, str(Path(__file__).resolve().parent))  # workload_reward.py
    if sys.argv[1:] == ["--probe"]:
        print(json.dumps(environment()))
        return 0
    workload, out = json.loads(Path(sys.argv[1]).read_text()), Path(sys.argv[2])
    result = {"environment": environment(), **run(workload, out)}
    result["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    (out / "result.json").write_text(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
