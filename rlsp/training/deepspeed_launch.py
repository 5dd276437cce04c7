"""The DeepSpeed config an ``accelerate launch`` hands to every process, and what it asks for.

``accelerate launch --config_file launch/zero*.yaml`` passes the ZeRO settings in environment
variables: the path of a JSON file, or the stage and offload options written inline in the
accelerate YAML. Read here as they were written, ``"auto"`` values left in
(``deepspeed_auto_values.py`` fills them).
"""

from __future__ import annotations

import copy
import json
from pathlib import Path

from rlsp.errors import ConfigError
from rlsp.launch_env import launched_deepspeed_config_file


def launch_config() -> dict:
    """The DeepSpeed config accelerate was launched with, as a dict (``"auto"`` values left in)."""
    config_file = launched_deepspeed_config_file()
    if config_file is not None:
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


def config_name() -> str:
    """How an error message names the DeepSpeed config: its file, or the inline section."""
    return launched_deepspeed_config_file() or "the accelerate config's deepspeed_config"
