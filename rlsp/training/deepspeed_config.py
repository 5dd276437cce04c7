"""The DeepSpeed configuration of an ``rlsp train`` run: read from the accelerate launch, the
``"auto"`` values filled from the recipe, and checked against what the RL loop can honour.

``accelerate launch --config_file launch/zero*.yaml`` hands the ZeRO settings to every process
in environment variables (a JSON file, or the stage and offload options written inline). The
loop builds one DeepSpeed engine per trained network from them (see zero_distributed.py), so the
batch values DeepSpeed asks for describe one engine's micro-step: rlsp scales and accumulates
the micro-batch losses itself and marks the accumulation boundary, so DeepSpeed's own
accumulation count is 1.
"""

from __future__ import annotations

import copy
import json
import os
from pathlib import Path

import torch

from rlsp.config import Recipe
from rlsp.errors import ConfigError
from rlsp.launch_setup import launched_local_world_size, launched_world_size

SUPPORTED_STAGES = (1, 2, 3)


def launch_config() -> dict:
    """The DeepSpeed config accelerate was launched with, as a dict (``"auto"`` values left in)."""
    config_file = os.environ.get("ACCELERATE_DEEPSPEED_CONFIG_FILE", "none")
    if config_file and config_file != "none":
        path = Path(config_file)
        if not path.is_file():
            raise ConfigError(f"accelerate's DeepSpeed config names deepspeed_config_file {config_file!r}, which "
                              f"is not there (seen from {Path.cwd()}); launch from the repository root or give an "
                              f"absolute path in the accelerate config.")
        try:
            config = json.loads(path.read_text())
        except json.JSONDecodeError as e:
            raise ConfigError(f"{path}: not valid JSON ({e}); it must be a DeepSpeed config such as "
                              f"launch/ds_zero3.json.") from None
        if not isinstance(config, dict) or not isinstance(config.get("zero_optimization", {}), dict):
            raise ConfigError(f"{path}: a DeepSpeed config is a JSON object with a 'zero_optimization' object; "
                              f"see launch/ds_zero3.json.")
        return config
    # The stage and offload options written inline in the accelerate YAML (no JSON file).
    from accelerate.utils import DeepSpeedPlugin

    return copy.deepcopy(DeepSpeedPlugin().deepspeed_config)


def zero_stage(config: dict) -> int:
    return int(config.get("zero_optimization", {}).get("stage", 0))


def offloads(config: dict) -> dict[str, str]:
    """{'optimizer': device, 'param': device} for what the config offloads (device 'cpu' or 'nvme')."""
    zero = config.get("zero_optimization", {})
    found = {}
    for what in ("optimizer", "param"):
        device = (zero.get(f"offload_{what}") or {}).get("device", "none")
        if device not in (None, "none"):
            found[what] = device
    return found


def check_deepspeed_recipe(recipe: Recipe, config: dict) -> None:
    """Refuse, before any model loads, what the ZeRO engines of the RL loop cannot honour."""
    stage, where, problems = zero_stage(config), _config_name(), []
    if stage not in SUPPORTED_STAGES:
        problems.append(f"{where}: zero_optimization.stage is {stage}; rlsp train runs ZeRO stage 1, 2 or 3 "
                        f"(for plain data parallelism launch with launch/ddp.yaml).")
    off = offloads(config)
    if "param" in off and stage != 3:
        problems.append(f"{where}: offload_param needs ZeRO stage 3 (the stage here is {stage}).")
    if off.get("param") == "nvme" or off.get("optimizer") == "nvme":
        problems.append(f"{where}: NVMe offload is not supported by rlsp train; offload to 'cpu'.")
    if config.get("fp16", {}).get("enabled") is True or recipe.model.precision == "fp16":
        problems.append("fp16 under DeepSpeed needs loss scaling, which rlsp train does not do; use "
                        "model.precision=bf16 (or auto) and leave fp16 'auto' in the DeepSpeed config.")
    if recipe.model.precision == "bf16-pure":
        problems.append("model.precision=bf16-pure: under DeepSpeed, 'bf16' already keeps bf16 weights with an "
                        "fp32 master copy inside the optimizer; use model.precision=bf16.")
    if "scheduler" in config:
        problems.append(f"{where}: remove the 'scheduler' section; rlsp schedules the learning rates from "
                        f"train.lr_schedule and train.warmup_steps.")
    if any(spec.hook == "gradient_diagnostics" for spec in recipe.hooks):
        problems.append("hooks: gradient_diagnostics reads every parameter's gradient, which ZeRO keeps "
                        "partitioned across processes; run it under launch/ddp.yaml or launch/single.yaml.")
    if stage == 3 and recipe.train.dynamic_sampling:
        problems.append("train.dynamic_sampling: under ZeRO-3 every process must run the same number of forward "
                        "passes, and dynamic sampling keeps a different number of samples on each; set it to "
                        "false or use ZeRO-2.")
    if recipe.generation.backend == "vllm" and launched_world_size() > 1:
        problems.append("generation.backend=vllm runs one engine per process, which is not supported with "
                        "several processes yet; use generation.backend=hf.")
    if problems:
        raise ConfigError("\n".join(problems))


def check_devices() -> None:
    """More processes on this machine than GPUs: two ranks would share one device."""
    local = launched_local_world_size()
    if torch.cuda.is_available() and local > torch.cuda.device_count():
        raise ConfigError(f"the launcher started {local} processes on this machine but it has "
                          f"{torch.cuda.device_count()} GPU(s); pass --num_processes {torch.cuda.device_count()} "
                          f"(or set num_processes in the accelerate config).")


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


def _config_name() -> str:
    name = os.environ.get("ACCELERATE_DEEPSPEED_CONFIG_FILE", "none")
    return name if name and name != "none" else "the accelerate config's deepspeed_config"
