"""One reward function resolved from a recipe entry, and the safe caller around it.

Built-ins and user code share one shape::

    fn(prompts: list[str], completions: list[str], references: list[str], **columns)
        -> list[float | None | Verdict]          # one entry per sample

``None`` means "not applicable" (no contribution, left out of the function's mean and std);
a ``Verdict`` carries a score plus what the verifier parsed, for the rollout log. ``columns``
holds the dataset's other columns plus ``completion_lengths`` (tokens) and ``finish_reasons``
("stop" | "length") from the trainer, one list entry per sample; a function must accept and
ignore keyword arguments it does not use.

Functions are found by ``rlsp.scoring.registry`` (names, ``package.module:function``,
``path/to/file.py:function``); ``rlsp.scoring.channels`` sums their scores into the two channels.
"""

from __future__ import annotations

import inspect
import logging
import math
import numbers
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from rlsp_verifiers.verdict import Verdict

from rlsp.config.train_schema import RewardSpec
from rlsp.errors import ConfigError, RewardError, did_you_mean
from rlsp.scoring.deadline import RewardAborted, call_with_deadline
from rlsp.scoring.registry import BUILTINS, TRAINER_COLUMNS, load_reward_function, qualified_name

logger = logging.getLogger(__name__)


@dataclass
class RewardResult:
    """One reward function's output on a batch of B samples."""

    scores: torch.Tensor  # (B,) float32; NaN where not applicable
    applicable: torch.Tensor  # (B,) bool; False where the function returned None
    parsed: list[str | None] | None  # what a verifier extracted per sample; None if no Verdicts
    reasons: list[str | None] | None  # why a Verdict failed (time-out, no answer); as parsed
    n_errors: int  # samples that got fallback_value (on_error: fallback)


class RewardFunction:
    """A recipe's reward entry (``RewardSpec``), resolved at load time and safe to call on a batch.

    The recipe schema already checked the channel and on_error names; what is checked here
    needs the function itself (it exists, its signature, its options).
    """

    def __init__(self, spec: RewardSpec, base_dir: Path | None = None):
        self.ref: str = spec.function
        self.name: str = spec.name or self.ref.rpartition(":")[2]
        self.channel: str = spec.channel
        self.weight = float(spec.weight)
        self.kwargs: dict = dict(spec.kwargs)
        self.on_error: str = spec.on_error
        self.fallback_value = float(spec.fallback_value)
        self.timeout_s = float(spec.timeout_s)
        where = f"reward function '{self.name}'"  # weight and fallback_value are finite: the schema allows no other
        self.fn = load_reward_function(self.ref, base_dir)
        builtin = self.ref.strip() in BUILTINS
        _check_signature(self.fn, self.kwargs, where, strict=builtin)
        if builtin and self.ref.strip() not in LOADS_A_MODEL:
            _check_option_values(self.fn, self.kwargs, where)

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
            out = self._call(list(prompts), list(completions), list(references), {**(columns or {}), **self.kwargs})
        except (ConfigError, RewardAborted):
            raise  # a misconfiguration fails every batch, a hang or an exit ends the run: no fallback
        except Exception:  # noqa: BLE001 -- user code: any exception is reported or falls back
            # Find the sample(s) it fails on by scoring each alone, so the message can name one
            # and a fallback hits only those.
            out = self._one_by_one(prompts, completions, references, columns)
        values = _as_list(out)
        if values is None or len(values) != batch:
            got = f"{len(values)} values" if values is not None else f"a {type(out).__name__}"
            return self._fail_batch(
                batch,
                f"returned {got} for {batch} samples; return a list with one float, "
                "None (not applicable) or Verdict per sample",
            )
        return self._checked(values, completions)

    def _checked(self, values: list, completions: Sequence[str]) -> RewardResult:
        """One returned value per sample checked: a float, None (not applicable), a ``Verdict`` or
        a failure; a value that is not a finite number raises or falls back per ``on_error``."""
        batch = len(values)
        scores = torch.full((batch,), math.nan, dtype=torch.float32)
        applicable = torch.zeros(batch, dtype=torch.bool)
        parsed: list[str | None] = [None] * batch
        reasons: list[str | None] = [None] * batch
        has_verdicts, n_errors = False, 0
        for i, value in enumerate(values):
            if isinstance(value, _Failed):
                if self.on_error == "raise":
                    raise RewardError(
                        f"reward function '{self.name}' ({self.ref}) raised {type(value.error).__name__}: "
                        f"{value.error} on sample {i} of {batch} (completion {_short_repr(completions[i])})"
                    ) from value.error
                scores[i], applicable[i], n_errors = self.fallback_value, True, n_errors + 1
                continue
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

    def _call(self, prompts: list, completions: list, references: list, kwargs: dict) -> Any:
        """The user's function on one batch, within ``timeout_s`` (``deadline.py``)."""
        return call_with_deadline(self.fn, (prompts, completions, references), kwargs, self.timeout_s,
                                  f"reward function '{self.name}' ({self.ref})")

    def _one_by_one(self, prompts, completions, references, columns) -> list:
        """Each sample scored alone: its value, or ``_Failed`` holding what it raised."""
        values = []
        for i in range(len(completions)):
            one = {k: [v[i]] for k, v in (columns or {}).items()}
            try:
                value = _as_list(self._call([prompts[i]], [completions[i]], [references[i]], {**one, **self.kwargs}))
            except (ConfigError, RewardAborted):
                raise
            except Exception as e:  # noqa: BLE001 -- user code
                values.append(_Failed(e))
                continue
            values.append(value[0] if value is not None and len(value) == 1 else _Failed(
                TypeError(f"returned {value!r} for one sample")))
        return values

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
            f"{where}: {qualified_name(fn)} must take (prompts, completions, references, **columns); "
            f"its signature is {inspect.signature(fn)}"
        )
    if inspect.Parameter.VAR_KEYWORD not in kinds:
        raise ConfigError(
            f"{where}: {qualified_name(fn)} must accept extra keyword arguments (the trainer "
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
                f"{where}: unknown option '{key}'.{did_you_mean(key, options)} "
                f"Its options: {', '.join(options) or 'none'}."
            )
    missing = [
        p.name
        for p in params
        if p.kind is p.KEYWORD_ONLY and p.default is p.empty and p.name not in kwargs
    ]
    if missing:
        raise ConfigError(f"{where}: set {', '.join(missing)} in its kwargs (required)")


# Built-ins whose first call, even on an empty batch, loads a model: not dry-run at load time.
LOADS_A_MODEL = ("judge",)


def _check_option_values(fn: Callable, kwargs: dict, where: str) -> None:
    """Call a built-in on an empty batch: each checks its options' values first (an unknown
    answer_format, a cap below 1) and raises ``ConfigError``, so a typo fails at load time, not
    after a whole generation phase."""
    try:
        fn([], [], [], **{**kwargs, "completion_lengths": [], "finish_reasons": []})
    except ConfigError as e:
        raise ConfigError(f"{where}: {e}") from None


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


class _Failed:
    """What a reward function raised on one sample."""

    def __init__(self, error: Exception):
        self.error = error


def _short_repr(value: Any, limit: int = 80) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."
