"""The DeepSpeed config of each engine of an ``rlsp train`` run: the launch's config with its
``"auto"`` values filled from the recipe.

The loop builds one DeepSpeed engine per trained network (see zero_distributed.py), so the batch
values DeepSpeed asks for describe one engine's micro-step: rlsp scales and accumulates the
micro-batch losses itself and marks the accumulation boundary, so DeepSpeed's own accumulation
count is 1.
"""

from __future__ import annotations

import copy

from rlsp.config import Recipe


def training_config(config: dict, recipe: Recipe, world_size: int, bf16: bool, hidden_size: int | None) -> dict:
    """``config`` with every ``"auto"`` filled for one trained network of this recipe."""
    t = recipe.train
    filled = copy.deepcopy(config)
    filled["train_micro_batch_size_per_gpu"] = t.micro_batch_size
    filled["gradient_accumulation_steps"] = 1  # rlsp accumulates and marks the boundary itself
    filled["train_batch_size"] = t.micro_batch_size * world_size
    filled["gradient_clipping"] = t.max_grad_norm
    filled["bf16"] = {**filled.get("bf16", {}), "enabled": bf16}
    filled["fp16"] = {"enabled": False}
    filled.setdefault("steps_per_print", 10**9)
    zero = filled.setdefault("zero_optimization", {})
    if hidden_size:  # the sizes the Hugging Face integration picks for "auto"
        sizes = {"reduce_bucket_size": hidden_size * hidden_size,
                 "stage3_prefetch_bucket_size": int(0.9 * hidden_size * hidden_size),
                 "stage3_param_persistence_threshold": 10 * hidden_size}
        for key, value in sizes.items():
            if zero.get(key) == "auto":
                zero[key] = value
    for key in [k for k, v in zero.items() if v == "auto"]:
        del zero[key]  # DeepSpeed's own default
    return filled


def with_optimizer(config: dict, lr: float, betas, weight_decay: float) -> dict:
    """``config`` with its own 'optimizer' section (if it has one) set to this network's settings."""
    if "optimizer" not in config:
        return config
    filled = copy.deepcopy(config)
    params = filled["optimizer"].setdefault("params", {})
    params.update({"lr": lr, "betas": list(betas), "weight_decay": weight_decay})
    if params.get("eps") == "auto":
        params["eps"] = 1e-8  # torch's AdamW default, which rlsp uses without DeepSpeed
    return filled


def reference_config(config: dict) -> dict:
    """A frozen network's config: ZeRO-3 shards it like the trained ones; no optimizer."""
    ref = {k: config[k] for k in ("train_micro_batch_size_per_gpu", "train_batch_size", "bf16", "fp16",
                                  "steps_per_print") if k in config}
    zero = config.get("zero_optimization", {})
    ref["zero_optimization"] = {"stage": 3, **{k: v for k, v in zero.items()
                                               if k.startswith("stage3_") or k == "offload_param"}}
    ref["gradient_accumulation_steps"] = 1
    return ref
