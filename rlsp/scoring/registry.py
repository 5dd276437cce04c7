"""Where reward functions come from: the registry of names and the plug-in loader.

A recipe names a function as a registered name (``math``, or one a user registered with
``@register_reward_function``), ``package.module:function`` or ``path/to/file.py:function``.
Each lookup failure says what was looked for and how to fix it.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from pathlib import Path

from rlsp.errors import ConfigError, RewardError, did_you_mean
from rlsp.plugins import load_attribute

# Built-ins are imported on first use, so a recipe without 'judge' never imports transformers.
BUILTINS = {
    "math": "rlsp_verifiers.math_verifier:math",
    "numeric": "rlsp_verifiers.numeric:numeric",
    "string_match": "rlsp_verifiers.string_match:string_match",
    "multiple_choice": "rlsp_verifiers.multiple_choice:multiple_choice",
    "length": "rlsp_rewards.length:length",
    "length_linear": "rlsp_rewards.length:length_linear",
    "overlong": "rlsp_rewards.length:overlong",
    "steps": "rlsp_rewards.steps:steps",
    "backtracking": "rlsp_rewards.backtracking:backtracking",
    "repetition": "rlsp_rewards.repetition:repetition",
    "judge": "rlsp_rewards.judge:judge",
}
_registered: dict[str, Callable] = {}

# Passed by the trainer on every call; a recipe's kwargs may not override them.
TRAINER_COLUMNS = ("completion_lengths", "finish_reasons")
_REF_FORMS = "a registered name, 'package.module:function' or 'path/to/file.py:function'"


def register_reward_function(name: str) -> Callable[[Callable], Callable]:
    """Decorator: make ``fn`` available to recipes as ``function: <name>``.

    The module holding it must be imported before the recipe is loaded (or be loaded itself
    as ``path/to/file.py:function`` by an earlier reward entry).
    """

    def decorator(fn: Callable) -> Callable:
        if name in BUILTINS:
            raise ConfigError(
                f"'{name}' is a built-in reward function; register yours under another name"
            )
        existing = _registered.get(name)
        if existing is not None and qualified_name(existing) != qualified_name(fn):
            raise ConfigError(
                f"reward function name '{name}' is already registered to {qualified_name(existing)}; "
                f"choose another name for {qualified_name(fn)}"
            )
        _registered[name] = fn
        return fn

    return decorator


def registered_names() -> list[str]:
    """Every name a recipe can use without a module or file: built-ins and registered ones."""
    return sorted(set(BUILTINS) | set(_registered))


def qualified_name(fn: Callable) -> str:
    return f"{getattr(fn, '__module__', '?')}.{getattr(fn, '__qualname__', repr(fn))}"


def load_reward_function(ref: str, base_dir: Path | None = None) -> Callable:
    """Resolve ``ref`` to a callable.

    ``ref`` is a registered name, ``package.module:function`` or ``path/to/file.py:function``;
    a relative file path is looked up in ``base_dir`` (the recipe's folder), then the working
    directory. Raises ``RewardError`` saying what was looked for and how to fix it.
    """
    ref = ref.strip()
    if ref in _registered:
        return _registered[ref]
    if ref in BUILTINS:
        module_name, attr = BUILTINS[ref].split(":")
        return getattr(importlib.import_module(module_name), attr)
    if ":" not in ref:
        if ref.endswith(".py"):
            raise RewardError(
                f"reward function '{ref}' names a file but no function: write '{ref}:function_name'"
            )
        hint = ""
        if "." in ref:
            module_name, _, attr = ref.rpartition(".")
            hint = f" To import from a module, write '{module_name}:{attr}'."
        raise RewardError(
            f"unknown reward function '{ref}'.{did_you_mean(ref, registered_names())} "
            f"Registered names: {', '.join(registered_names())}. Use {_REF_FORMS}.{hint}"
        )
    fn = load_attribute(ref, base_dir, "reward function", "function", RewardError)
    if not callable(fn):
        raise RewardError(f"'{ref}' is a {type(fn).__name__}, not a function")
    return fn
