"""Where reward functions come from: the registry of names and the plug-in loader.

A recipe names a function as a registered name (``math``, or one a user registered with
``@register_reward_function``), ``package.module:function`` or ``path/to/file.py:function``.
Each lookup failure says what was looked for and how to fix it.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from rlsp.errors import ConfigError, RewardError, did_you_mean
from rlsp.paths import describe_candidates, find_file

# Built-ins are imported on first use, so a recipe without 'judge' never imports transformers.
BUILTINS = {
    "math": "rlsp_verifiers.math_verifier:math",
    "numeric": "rlsp_verifiers.numeric:numeric",
    "string_match": "rlsp_verifiers.string_match:string_match",
    "multiple_choice": "rlsp_verifiers.multiple_choice:multiple_choice",
    "length": "rlsp_rewards.length:length",
    "length_linear": "rlsp_rewards.length:length_linear",
    "steps": "rlsp_rewards.steps:steps",
    "backtracking": "rlsp_rewards.backtracking:backtracking",
    "repetition": "rlsp_rewards.repetition:repetition",
    "judge": "rlsp_rewards.judge:judge",
}
_registered: dict[str, Callable] = {}

# Passed by the trainer on every call; a recipe's kwargs may not override them.
TRAINER_COLUMNS = ("completion_lengths", "finish_reasons")
CHANNELS = ("verifier", "exploration")
ON_ERROR = ("raise", "fallback")
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
    target, _, attr = ref.rpartition(":")
    if not target or not attr:
        raise RewardError(f"reward function '{ref}' is malformed; use {_REF_FORMS}")
    if target.endswith(".py") or "/" in target or "\\" in target:
        module, where = _load_file(target, base_dir)
    else:
        module, where = _import_module(target), f"module '{target}'"
    if not hasattr(module, attr):
        defined = sorted(
            n
            for n, v in vars(module).items()
            if callable(v)
            and not n.startswith("_")
            and getattr(v, "__module__", None) == module.__name__
        )
        raise RewardError(
            f"{where} has no function '{attr}'.{did_you_mean(attr, defined)} "
            f"Functions it defines: {', '.join(defined) or 'none'}."
        )
    fn = getattr(module, attr)
    if not callable(fn):
        raise RewardError(f"'{attr}' in {where} is a {type(fn).__name__}, not a function")
    return fn


def _load_file(path_text: str, base_dir: Path | None) -> tuple[Any, str]:
    found = find_file(path_text, base_dir)
    if found is None:
        raise RewardError(
            f"reward function file '{path_text}' not found; looked for "
            f"{describe_candidates(path_text, base_dir)}. Relative paths are resolved against "
            "the recipe's folder, then the working directory."
        )
    found = found.resolve()
    # One module per file, loaded once: a second reward entry naming the same file reuses it.
    digest = hashlib.sha1(str(found).encode()).hexdigest()[:10]
    module_name = f"_rlsp_user_{found.stem}_{digest}"
    if module_name in sys.modules:
        return sys.modules[module_name], f"file {found}"
    spec = importlib.util.spec_from_file_location(module_name, found)
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module  # before exec, so dataclasses and pickling can find it
    try:
        spec.loader.exec_module(module)
    except Exception as e:
        del sys.modules[module_name]
        raise RewardError(
            f"importing reward function file {found} failed: {type(e).__name__}: {e}"
        ) from e
    return module, f"file {found}"


def _import_module(name: str) -> Any:
    try:
        return importlib.import_module(name)
    except ModuleNotFoundError as e:
        if e.name and (name == e.name or name.startswith(e.name + ".")):
            raise RewardError(
                f"no module named '{e.name}' (looking for reward function module '{name}'): "
                "install its package in this environment, or refer to a file as "
                "'path/to/file.py:function'"
            ) from e
        raise RewardError(f"importing module '{name}' failed: {e}") from e
    except Exception as e:
        raise RewardError(f"importing module '{name}' failed: {type(e).__name__}: {e}") from e
