"""What ``accelerate launch`` asked for, checked before any work, and what a run actually got.

``accelerate launch`` passes its configuration to each process in environment variables
(``ACCELERATE_USE_DEEPSPEED``, ``ACCELERATE_DEEPSPEED_CONFIG_FILE``, ``WORLD_SIZE``...). A
command that cannot honour them refuses here, with the fix, instead of silently running
something else (plain data parallelism in place of ZeRO, every rank acting as the main one).
"""

from __future__ import annotations

from rlsp.errors import ConfigError
from rlsp.launch_env import (
    launched_deepspeed_config_file,
    launched_local_world_size,
    launched_mixed_precision,
    launched_with_deepspeed,
    launched_world_size,
)


def check_launch(command: str) -> None:
    """Refuse, before loading anything, a launch configuration ``command`` would not honour."""
    launch_precision = launched_mixed_precision()
    if launch_precision != "no":
        raise ConfigError(f"the launch asks accelerate for mixed_precision={launch_precision} (--mixed_precision or "
                          f"the launch config); rlsp {command} takes its precision from model.precision alone. Set "
                          f"model.precision in the recipe (auto picks bf16 where the device runs it natively) and "
                          f"mixed_precision: 'no' in the launch.")
    if not launched_with_deepspeed():
        return
    from rlsp.build_locks import clear_stale_build_locks

    # DeepSpeed loads its compiled ops under a lock file a killed process may have left behind
    clear_stale_build_locks(spans_machines=launched_world_size() > launched_local_world_size())
    if launched_deepspeed_config_file() is not None:
        from rlsp.training.deepspeed_launch import launch_config

        launch_config()  # reads the named file: a missing or malformed one is reported here


def check_world(num_processes: int, uses_deepspeed: bool, command: str) -> None:
    """Refuse a process group smaller than the launcher started: every rank would believe it is
    the only one (each writing the outputs, nothing sharded), as seen with DeepSpeed on CPU."""
    world = launched_world_size()
    if world > 1 and num_processes != world:
        raise ConfigError(
            f"the launcher started {world} processes (WORLD_SIZE) but accelerate set up {num_processes}"
            + (" (DeepSpeed without a GPU: DeepSpeed's own process group spans every rank, but accelerate "
               "finds no device backend and counts one process)" if uses_deepspeed else "")
            + f"; every process would act as the only one. Launch rlsp {command} with launch/ddp.yaml on CPU, "
            f"or run it on GPUs."
        )


def announce_setup(state, command: str) -> None:
    """What every command does once accelerate is set up: refuse a short process group, then say
    on the main process what the run got."""
    check_world(state.num_processes, launched_with_deepspeed(), command)
    if state.is_main_process:
        print(describe_setup(state))


def describe_setup(state) -> str:
    """One line on what the run got: processes, backend, device, DeepSpeed stage or none."""
    from accelerate.utils import DistributedType

    deepspeed = "none"
    if state.distributed_type == DistributedType.DEEPSPEED:
        plugin = getattr(state, "deepspeed_plugin", None)
        deepspeed = f"ZeRO-{plugin.zero_stage}" if plugin is not None else "yes"
    elif launched_with_deepspeed():
        # On CPUs rlsp has accelerate set up a gloo group and builds any ZeRO engines itself.
        from rlsp.training.deepspeed_launch import launch_config, zero_stage

        deepspeed = f"ZeRO-{zero_stage(launch_config())} (from the launch config)"
    backend = getattr(state, "backend", None) or "none"
    return (f"distributed: {state.num_processes} process{'es' if state.num_processes > 1 else ''} "
            f"({state.distributed_type.value}, backend {backend}), device {state.device}, DeepSpeed {deepspeed}")
