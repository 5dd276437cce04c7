"""What the RL loop's ZeRO engines cannot honour, refused before any model loads: a stage or
offload they do not run, fp16 loss scaling, DeepSpeed's own scheduler, hooks that read whole
gradients, and more processes than GPUs."""

from __future__ import annotations

import torch

from rlsp.config import Recipe
from rlsp.errors import ConfigError
from rlsp.launch_env import launched_local_world_size
from rlsp.training.deepspeed_launch import config_name, offloads, zero_stage

SUPPORTED_STAGES = (1, 2, 3)


def check_deepspeed_recipe(recipe: Recipe, config: dict) -> None:
    """Refuse, before any model loads, what the ZeRO engines of the RL loop cannot honour."""
    stage, where, problems = zero_stage(config), config_name(), []
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
    if problems:
        raise ConfigError("\n".join(problems))


def check_devices() -> None:
    """More processes on this machine than GPUs: two ranks would share one device."""
    local = launched_local_world_size()
    if torch.cuda.is_available() and local > torch.cuda.device_count():
        raise ConfigError(f"the launcher started {local} processes on this machine but it has "
                          f"{torch.cuda.device_count()} GPU(s); pass --num_processes {torch.cuda.device_count()} "
                          f"(or set num_processes in the accelerate config).")
