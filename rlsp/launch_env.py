"""What ``accelerate launch`` passed to this process, read in one place: ranks, world sizes and
the DeepSpeed settings it puts in environment variables (``RANK``, ``WORLD_SIZE``,
``ACCELERATE_USE_DEEPSPEED``, ...). Plain readers with no rlsp imports, so any module may use
them; what is checked against them lives in ``launch_setup``."""

from __future__ import annotations

import os


def launched_rank() -> int:
    """This process's global rank under a launcher (``RANK``), 0 when run directly; known before
    accelerate is set up, which is when output folders are claimed and errors printed."""
    return int(os.environ.get("RANK", "0"))


def launched_local_rank() -> int:
    """This process's rank on its machine (``LOCAL_RANK``): the GPU it runs on."""
    return int(os.environ.get("LOCAL_RANK", "0"))


def launched_world_size() -> int:
    """How many processes the launcher started (``WORLD_SIZE``), 1 when run directly."""
    return int(os.environ.get("WORLD_SIZE", "1"))


def launched_local_world_size() -> int:
    """How many of those processes run on this machine (``LOCAL_WORLD_SIZE``)."""
    return int(os.environ.get("LOCAL_WORLD_SIZE", "1"))


def launched_with_deepspeed() -> bool:
    """Whether ``accelerate launch`` asked for DeepSpeed (a config with ``distributed_type: DEEPSPEED``)."""
    return os.environ.get("ACCELERATE_USE_DEEPSPEED", "").lower() == "true"


def launched_deepspeed_config_file() -> str | None:
    """The DeepSpeed JSON file the accelerate config names (``deepspeed_config_file``), or None
    where the config holds its DeepSpeed section inline or there is none."""
    name = os.environ.get("ACCELERATE_DEEPSPEED_CONFIG_FILE", "none")
    return name if name and name != "none" else None


def launched_zero3_init() -> bool:
    """Whether the launch asks ZeRO-3 to shard the weights while they load (``zero3_init_flag``)."""
    return os.environ.get("ACCELERATE_DEEPSPEED_ZERO3_INIT", "true").lower() == "true"


def launched_mixed_precision() -> str:
    """The mixed precision the launch asks accelerate for (``--mixed_precision``), "no" if none."""
    return os.environ.get("ACCELERATE_MIXED_PRECISION", "no")
