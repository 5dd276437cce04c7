"""One decoding step's matrix products on this CPU: ``F.linear`` (what transformers' generate and
TRL run) against the oneDNN-packed product rlsp's sampling loop runs (rlsp/generation/packed_linear.py).

    python benchmarks/linear_shapes.py [--rows 16] [--dtype fp32|bf16] [--json F]

For every linear layer shape of SmolLM2-135M (read from its config), the time of one product
with ``--rows`` rows (the batch a decoding step carries), best of several repeats, and the sum
over the layers a step runs through. Which library kernel serves a small-row product, and how
fast, differs from CPU to CPU (MKL is slow at the LM head's shape on the AMD EPYC this project
has met); this prints it for the CPU at hand.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections import Counter
from pathlib import Path


def best_us(fn, x, repeats: int = 5, inner: int = 20) -> float:
    fn(x)
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        for _ in range(inner):
            fn(x)
        best = min(best, (time.perf_counter() - start) / inner)
    return best * 1e6


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=16)
    parser.add_argument("--dtype", choices=("fp32", "bf16"), default="fp32")
    parser.add_argument("--json")
    args = parser.parse_args()
    import torch
    import torch.nn.functional as F
    from transformers import AutoModelForCausalLM

    from rlsp.modeling.causal_lm import resolve_model_path
    from rlsp.precision import cpu_description

    dtype = {"fp32": torch.float32, "bf16": torch.bfloat16}[args.dtype]
    model = AutoModelForCausalLM.from_pretrained(resolve_model_path("smollm2-135m-instruct"), dtype=dtype)
    shapes = Counter(tuple(m.weight.shape) for m in model.modules() if isinstance(m, torch.nn.Linear))
    print(f"machine: {cpu_description()}; {args.rows} rows, {args.dtype}")
    print(f"{'out x in':>14} {'per step':>8} {'F.linear us':>12} {'packed us':>10}")
    rows, totals = [], Counter()
    for (out_features, in_features), count in sorted(shapes.items()):
        weight = torch.randn(out_features, in_features).to(dtype)
        x = torch.randn(args.rows, in_features).to(dtype)
        packed = torch.ops.mkldnn._reorder_linear_weight(weight, args.rows)
        plain_us = best_us(lambda x, w=weight: F.linear(x, w), x)
        packed_us = best_us(lambda x, w=packed: torch.ops.mkldnn._linear_pointwise(x, w, None, "none", [], ""), x)
        rows.append({"shape": [out_features, in_features], "per_step": count, "linear_us": plain_us,
                     "packed_us": packed_us})
        totals.update({"linear_ms": count * plain_us / 1000, "packed_ms": count * packed_us / 1000})
        print(f"{out_features:>7}x{in_features:<6} {count:>8} {plain_us:12.1f} {packed_us:10.1f}")
    print(f"one decoding step: F.linear {totals['linear_ms']:.1f} ms, packed {totals['packed_ms']:.1f} ms")
    if args.json:
        from vs_trl import matmul_peak_gflops, measurement

        measured = measurement(f"benchmarks/linear_shapes.py --rows {args.rows} --dtype {args.dtype}",
                               matmul_peak_gflops())
        Path(args.json).write_text(json.dumps({"measured": measured, "rows": args.rows, "dtype": args.dtype,
                                               "shapes": rows, **totals}, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
