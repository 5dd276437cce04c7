"""transformers' own generate on benchmarks/generation.py's workload, as a transformers user runs it:
its own process, nothing of rlsp imported or set in its environment (generation.py starts it with
rlsp's variables removed).

    python benchmarks/transformers_side.py WORKLOAD.json WAY CALLS OUT.json   # WAY: hf or hf-static-compile
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path


def sampler(workload: dict, way: str):
    """A function sampling the workload once, returning (generated tokens, decoding steps)."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(workload["model"])
    model = AutoModelForCausalLM.from_pretrained(workload["model"], dtype=torch.float32).eval()
    tokenizer.padding_side = "left"
    texts = [tokenizer.apply_chat_template([{"role": "user", "content": p}], add_generation_prompt=True, tokenize=False)
             for p in workload["prompts"]]
    encoded = tokenizer(texts, return_tensors="pt", padding=True, add_special_tokens=False)
    samples = workload["samples"]
    ids, mask = (encoded[k].repeat_interleave(samples, 0) for k in ("input_ids", "attention_mask"))
    stops = workload["stop_ids"]
    settings = {"max_new_tokens": workload["max_tokens"], "do_sample": True, "temperature": 1.0, "top_p": 1.0,
                "top_k": 0, "eos_token_id": stops, "pad_token_id": tokenizer.pad_token_id}
    if way == "hf-static-compile":
        # transformers' documented recipe: a static cache, and the forward compiled
        settings["cache_implementation"] = "static"
        model.forward = torch.compile(model.forward)

    def sample() -> tuple[int, int]:
        completions = model.generate(input_ids=ids, attention_mask=mask, **settings)[:, ids.shape[1]:]
        is_stop = torch.isin(completions, torch.tensor(stops))
        before_stop = (torch.cumsum(is_stop.long(), dim=1) - is_stop.long()) == 0  # up to the first stop
        return int(before_stop.sum()), completions.shape[1]

    return sample


def main() -> int:
    workload_path, way, calls, out = sys.argv[1:5]
    import torch

    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from trl_side import environment

    sample = sampler(json.loads(Path(workload_path).read_text()), way)
    rows = []
    for call in range(int(calls)):
        torch.manual_seed(call)
        start = time.perf_counter()
        tokens, steps = sample()
        rows.append({"seconds": time.perf_counter() - start, "tokens": tokens, "steps": steps})
    Path(out).write_text(json.dumps({"calls": rows, "environment": environment()}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
