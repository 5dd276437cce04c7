"""Reward functions: the registry, the plug-in loader and the safe caller.

Built-ins and user code share one shape::

    fn(prompts: list[str], completions: list[str], references: list[str], **columns)
        -> list[float | None | Verdict]          # one entry per sample

``None`` means "not applicable" (no contribution, left out of the function's mean and std);
a ``Verdict`` carries a score plus what the verifier parsed, for the rollout log. ``columns``
holds the dataset's other columns plus ``completion_lengths`` (tokens) and ``finish_reasons``
("stop" | "length") from the trainer, one list entry per sample; a function must accept and
ignore keyword arguments it does not use.

A recipe names a function as a registered name (``math``, or one a user registered with
``@register_reward_function``), ``package.module:function`` or ``path/to/file.py:function``.
"""

from __future__ import annotations

import difflib
import hashlib
import importlib
import importlib.util
import inspect
import logging
import math
import numbers
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from rlsp_verifiers.verdict import Verdict

from .errors import RlspError, ConfigError, RewardError

logger = logging.getLogger(__name__)

# Built-ins are imported on first use, so a recipe without 'judge' never imports transformers.
_BUILTINS = {
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
        if name in _BUILTINS:
            raise ConfigError(
                f"'{name}' is a built-in reward function; register yours under another name"
            )
        existing = _registered.get(name)
        if existing is not None and _qualified(existing) != _qualified(fn):
            raise ConfigError(
                f"reward function name '{name}' is already registered to {_qualified(existing)}; "
                f"choose another name for {_qualified(fn)}"
            )
        _registered[name] = fn
        return fn

    return decorator


def registered_names() -> list[str]:
    """Every name a recipe can use without a module or file: built-ins and registered ones."""
    return sorted(set(_BUILTINS) | set(_registered))


def _qualified(fn: Callable) -> str:
    return f"{getattr(fn, '__module__', '?')}.{getattr(fn, '__qualname__', repr(fn))}"


def _did_you_mean(name: str, options: Sequence[str]) -> str:
    """ "; did you mean 'x'?" for close options (ignoring case), else "."."""
    by_lower = {o.lower(): o for o in options}
    close = difflib.get_close_matches(name.lower(), list(by_lower), n=3)
    return f"; did you mean {' or '.join(repr(by_lower[c]) for c in close)}?" if close else "."


def load_reward_function(ref: str, base_dir: Path | None = None) -> Callable:
    """Resolve ``ref`` to a callable.

    ``ref`` is a registered name, ``package.module:function`` or ``path/to/file.py:function``;
    a relative file path is looked up in ``base_dir`` (the recipe's folder), then the working
    directory. Raises ``RewardError`` saying what was looked for and how to fix it.
    """
    ref = ref.strip()
    if ref in _registered:
        return _registered[ref]
    if ref in _BUILTINS:
        module_name, attr = _BUILTINS[ref].split(":")
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
            f"unknown reward function '{ref}'{_did_you_mean(ref, registered_names())} "
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
            f"{where} has no function '{attr}'{_did_you_mean(attr, defined)} "
            f"Functions it defines: {', '.join(defined) or 'none'}."
        )
    fn = getattr(module, attr)
    if not callable(fn):
        raise RewardError(f"'{attr}' in {where} is a {type(fn).__name__}, not a function")
    return fn


def _load_file(path_text: str, base_dir: Path | None) -> tuple[Any, str]:
    path = Path(path_text).expanduser()
    if path.is_absolute():
        candidates = [path]
    else:
        candidates = ([Path(base_dir) / path] if base_dir is not None else []) + [Path.cwd() / path]
    found = next((c.resolve() for c in candidates if c.is_file()), None)
    if found is None:
        raise RewardError(
            f"reward function file '{path_text}' not found; looked for "
            f"{' and '.join(str(c) for c in candidates)}. Relative paths are resolved against "
            "the recipe's folder, then the working directory."
        )
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


@dataclass
class RewardResult:
    """One reward function's output on a batch of B samples."""

    scores: torch.Tensor  # (B,) float32; NaN where not applicable
    applicable: torch.Tensor  # (B,) bool; False where the function returned None
    parsed: list[str | None] | None  # what a verifier extracted per sample; None if no Verdicts
    reasons: list[str | None] | None  # why a Verdict failed (time-out, no answer); as parsed
    n_errors: int  # samples that got fallback_value (on_error: fallback)


class RewardFunction:
    """A recipe's reward entry, resolved at load time and safe to call on a batch.

    ``spec`` is any object with the recipe fields ``function``, ``channel``, ``weight``,
    ``kwargs``, ``on_error``, ``fallback_value`` and ``name``.
    """

    def __init__(self, spec: Any, base_dir: Path | None = None):
        self.ref: str = spec.function
        self.name: str = getattr(spec, "name", None) or self.ref.rpartition(":")[2]
        self.channel: str = getattr(spec, "channel", "verifier")
        self.weight = float(getattr(spec, "weight", 1.0))
        self.kwargs: dict = dict(getattr(spec, "kwargs", None) or {})
        self.on_error: str = getattr(spec, "on_error", "raise")
        self.fallback_value = float(getattr(spec, "fallback_value", 0.0))
        where = f"reward function '{self.name}'"
        if self.channel not in CHANNELS:
            raise ConfigError(
                f"{where}: channel must be 'verifier' or 'exploration', got {self.channel!r}"
            )
        if self.on_error not in ON_ERROR:
            raise ConfigError(
                f"{where}: on_error must be 'raise' or 'fallback', got {self.on_error!r}"
            )
        for field in ("weight", "fallback_value"):
            if not math.isfinite(getattr(self, field)):
                raise ConfigError(
                    f"{where}: {field} must be a finite number, got {getattr(self, field)!r}"
                )
        self.fn = load_reward_function(self.ref, base_dir)
        _check_signature(self.fn, self.kwargs, where, strict=self.ref.strip() in _BUILTINS)

    def __repr__(self) -> str:
        return (
            f"RewardFunction({self.name!r}, function={self.ref!r}, channel={self.channel!r}, "
            f"weight={self.weight:g})"
        )

    def __call__(
        self,
        prompts: Sequence[str],
        completions: Sequence[str],
        references: Sequence[Any],
        columns: Mapping[str, Sequence] | None = None,
    ) -> RewardResult:
        """Score a batch, validating every value. Errors raise ``RewardError`` naming this
        function, or, with ``on_error: fallback``, give the sample(s) ``fallback_value``."""
        batch = len(completions)
        try:
            out = self.fn(
                list(prompts),
                list(completions),
                list(references),
                **{**(columns or {}), **self.kwargs},
            )
        except ConfigError:
            raise  # a misconfiguration fails every batch: never hide it behind a fallback
        except Exception as e:  # noqa: BLE001 -- user code: any exception is reported or falls back
            return self._fail_batch(
                batch, f"raised {type(e).__name__}: {e} on a batch of {batch} samples", e
            )
        values = _as_list(out)
        if values is None or len(values) != batch:
            got = f"{len(values)} values" if values is not None else f"a {type(out).__name__}"
            return self._fail_batch(
                batch,
                f"returned {got} for {batch} samples; return a list with one float, "
                "None (not applicable) or Verdict per sample",
            )
        scores = torch.full((batch,), math.nan, dtype=torch.float32)
        applicable = torch.zeros(batch, dtype=torch.bool)
        parsed: list[str | None] = [None] * batch
        reasons: list[str | None] = [None] * batch
        has_verdicts, n_errors = False, 0
        for i, value in enumerate(values):
            if isinstance(value, Verdict):
                has_verdicts = True
                parsed[i], reasons[i], value = value.parsed, value.reason, value.score
            if value is None:
                continue
            score = _as_float(value)
            if score is None or not math.isfinite(score):
                if self.on_error == "raise":
                    raise RewardError(
                        f"reward function '{self.name}' ({self.ref}): sample {i} of {batch} got "
                        f"{_short_repr(value)}; expected a finite number, None (not applicable) "
                        "or a Verdict"
                    )
                score, parsed[i], n_errors = self.fallback_value, None, n_errors + 1
            scores[i], applicable[i] = score, True
        if n_errors:
            logger.warning(
                "reward function '%s': %d of %d samples got fallback_value",
                self.name,
                n_errors,
                batch,
            )
        return RewardResult(
            scores,
            applicable,
            parsed if has_verdicts else None,
            reasons if has_verdicts else None,
            n_errors,
        )

    def _fail_batch(self, batch: int, problem: str, cause: Exception | None = None) -> RewardResult:
        message = f"reward function '{self.name}' ({self.ref}) {problem}"
        if self.on_error == "raise":
            raise RewardError(message) from cause
        logger.warning("%s; the whole batch gets fallback_value %g", message, self.fallback_value)
        return RewardResult(
            torch.full((batch,), self.fallback_value, dtype=torch.float32),
            torch.ones(batch, dtype=torch.bool),
            None,
            None,
            batch,
        )


def _check_signature(fn: Callable, kwargs: dict, where: str, strict: bool) -> None:
    """Fail at load time, with a fix, on a signature the safe caller cannot call.

    ``strict`` (built-ins) also rejects unknown and missing kwargs: a built-in takes all its
    options as named parameters, so an unknown key is a typo. User functions may read options
    from ``**columns`` and are not checked for that.
    """
    clash = sorted(set(kwargs) & set(TRAINER_COLUMNS))
    if clash:
        raise ConfigError(
            f"{where}: kwargs may not set {', '.join(clash)}; the trainer passes them on every call"
        )
    try:
        params = list(inspect.signature(fn).parameters.values())
    except (TypeError, ValueError):
        return  # no introspectable signature (some C callables): trust it
    kinds = [p.kind for p in params]
    n_positional = sum(k in (k.POSITIONAL_ONLY, k.POSITIONAL_OR_KEYWORD) for k in kinds)
    if n_positional < 3 and inspect.Parameter.VAR_POSITIONAL not in kinds:
        raise ConfigError(
            f"{where}: {_qualified(fn)} must take (prompts, completions, references, **columns); "
            f"its signature is {inspect.signature(fn)}"
        )
    if inspect.Parameter.VAR_KEYWORD not in kinds:
        raise ConfigError(
            f"{where}: {_qualified(fn)} must accept extra keyword arguments (the trainer "
            "passes dataset columns, completion_lengths and finish_reasons): add **columns to "
            "its signature"
        )
    if not strict:
        return
    options = [p.name for p in params[3:] if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)]
    options = [o for o in options if o not in TRAINER_COLUMNS]
    for key in kwargs:
        if key not in options:
            raise ConfigError(
                f"{where}: unknown option '{key}'{_did_you_mean(key, options)} "
                f"Its options: {', '.join(options) or 'none'}."
            )
    missing = [
        p.name
        for p in params
        if p.kind is p.KEYWORD_ONLY and p.default is p.empty and p.name not in kwargs
    ]
    if missing:
        raise ConfigError(f"{where}: set {', '.join(missing)} in its kwargs (required)")


def _as_list(out: Any) -> list | None:
    if hasattr(out, "tolist") and hasattr(out, "ndim"):  # a torch tensor or numpy array
        return out.tolist() if out.ndim == 1 else None
    if isinstance(out, (list, tuple)):
        return list(out)
    return None


def _as_float(value: Any) -> float | None:
    if isinstance(value, numbers.Real):  # int, float, bool, numpy scalars
        return float(value)
    if isinstance(value, torch.Tensor) and value.numel() == 1 and not value.is_complex():
        return float(value.item())
    return None


def _short_repr(value: Any, limit: int = 80) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def build_reward_functions(
    specs: Sequence[Any], base_dir: Path | None = None
) -> list[RewardFunction]:
    """``RewardFunction`` for each recipe entry; fails at load time on duplicate log names.

    Errors name the recipe entry (``rewards.1: ...``) so the user knows which one to fix.
    """
    functions = []
    for i, spec in enumerate(specs):
        try:
            functions.append(RewardFunction(spec, base_dir))
        except RlspError as e:
            raise type(e)(f"rewards.{i} ({spec.function}): {e}") from None
    _check_unique_names(functions)
    return functions


def _check_unique_names(reward_functions: Sequence[RewardFunction]) -> None:
    seen: set[str] = set()
    for fn in reward_functions:
        if fn.name in seen:
            raise ConfigError(
                f"two reward functions are named '{fn.name}'; give one of them a distinct `name:`"
            )
        seen.add(fn.name)


def score_all(
    reward_functions: Sequence[RewardFunction],
    prompts: Sequence[str],
    completions: Sequence[str],
    references: Sequence[Any],
    columns: Mapping[str, Sequence] | None = None,
) -> dict[str, RewardResult]:
    """Every reward function's result on one batch, keyed by its log name."""
    _check_unique_names(reward_functions)
    return {fn.name: fn(prompts, completions, references, columns) for fn in reward_functions}


def channel_totals(
    reward_functions: Sequence[RewardFunction], results: Mapping[str, RewardResult]
) -> dict[str, torch.Tensor]:
    """Weighted sum of scores per channel: ``{"verifier": (B,), "exploration": (B,)}``.

    A not-applicable sample contributes 0 to its channel; a channel with no functions is 0.
    """
    if not results:
        raise RewardError(
            "no reward function results to combine; the recipe needs at least one reward"
        )
    batch = len(next(iter(results.values())).scores)
    totals = {channel: torch.zeros(batch, dtype=torch.float32) for channel in CHANNELS}
    for fn in reward_functions:
        result = results[fn.name]
        totals[fn.channel] += fn.weight * torch.where(result.applicable, result.scores, 0.0)
    return totals
