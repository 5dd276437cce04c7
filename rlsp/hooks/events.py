"""The event mechanism both trainers share: ``Hook`` (what a user overrides), ``HookRunner``
(what a trainer fires), ``build_hooks`` (a recipe's ``hooks:`` list, resolved before any model
loads).

Every event handler gets an ``EventContext`` whose ``model`` is the *unwrapped* policy (the
PEFT model for LoRA; never DDP's wrapper, the frozen reference or the critic). Forward events say
which network is running (``role`` "policy" or "reference"; for a LoRA policy the reference is
the same module with its adapters off, so a hook that changes the forward pass must step aside
when ``role`` is "reference") and whether gradients flow (``grad``). ``on_train_end`` runs
whatever happens, errors included: detach there.

Besides events, a hook may change the *training* prompts (``training_messages``: inoculation
prompting; evaluation prompts never pass through it), check the model's config before its
weights load (``check_model``), and step aside on request (``suspended``: gradient diagnostics
replay a batch without the defences).
"""

from __future__ import annotations

import contextlib
import inspect
import math
import typing
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import ConfigDict, TypeAdapter, ValidationError

from rlsp.errors import ConfigError, RlspError, did_you_mean
from rlsp.paths import describe_candidates, find_file
from rlsp.plugins import is_plugin_ref, load_attribute

# Built-in hooks a recipe names without a module (imported on first use).
BUILTIN_HOOKS = {
    "pps": "rlsp.hooks.steering:PreventativeSteering",
    "inoculation_prompt": "rlsp.hooks.inoculation:InoculationPrompt",
    "gradient_diagnostics": "rlsp.hooks.diagnostics:GradientDiagnostics",
}

EVENTS = (
    "train_start",
    "generation_start",  # rlsp train: sampling this step's rollouts
    "generation_end",
    "forward_start",  # role: "policy" | "reference"; grad: True in the update
    "forward_end",
    "backward_end",  # the policy's gradients of one micro-batch are accumulated
    "optimizer_step_start",  # the policy's accumulated gradients, clipped, just before the step
    "optimizer_step_end",
    "step_end",  # ctx.scalars: the step's logged scalars; add your own
    "train_end",  # always, also after an error
)


@dataclass
class EventContext:
    event: str
    trainer: str  # "rl" or "sft"
    step: int  # optimizer steps done (sft) or the RL step being run (from 1)
    model: Any  # the unwrapped policy
    role: str | None = None  # forward events: "policy" or "reference"
    grad: bool | None = None  # forward events: whether gradients flow
    # forward events with gradients: (B, L) 1 on the response tokens of the model's input
    token_mask: Any = None
    # optimizer_step_start: re-run this optimizer step's forward and backward passes and return
    # {parameter name: gradient}; the step's own gradients are put back afterwards
    replay: Callable[[], dict] | None = None
    run_dir: Path | None = None  # where hooks may write their own files
    scalars: dict[str, float] = field(default_factory=dict)  # logged at the step's end


class Hook:
    """Base class of trainer hooks: override the events you need (each a no-op here).

    Scalars a hook puts in ``ctx.scalars`` at any event are logged with the step's own
    (TensorBoard for ``rlsp train``, ``sft_log.json`` for ``rlsp sft``), under the names given.
    Keyword arguments named in ``path_kwargs`` are file paths, resolved against the recipe's
    folder, then the working directory, before the hook is built.
    """

    path_kwargs: tuple[str, ...] = ()

    def check_model(self, config) -> None:
        """Refuse a model this hook cannot work with (its transformers config), before any
        weights load; raise ``ConfigError`` naming the field."""

    def training_messages(self, messages: list[dict]) -> list[dict]:
        """The chat messages of a *training* prompt (SFT examples, RL rollouts); unchanged here."""
        return messages

    def suspended(self) -> contextlib.AbstractContextManager:
        """A context in which this hook has no effect on the model (defences override it)."""
        return contextlib.nullcontext()

    def on_train_start(self, ctx: EventContext) -> None: ...
    def on_generation_start(self, ctx: EventContext) -> None: ...
    def on_generation_end(self, ctx: EventContext) -> None: ...
    def on_forward_start(self, ctx: EventContext) -> None: ...
    def on_forward_end(self, ctx: EventContext) -> None: ...
    def on_backward_end(self, ctx: EventContext) -> None: ...
    def on_optimizer_step_start(self, ctx: EventContext) -> None: ...
    def on_optimizer_step_end(self, ctx: EventContext) -> None: ...
    def on_step_end(self, ctx: EventContext) -> None: ...
    def on_train_end(self, ctx: EventContext) -> None: ...


class HookRunner:
    """Fires events at a trainer's hooks; with no hooks every call is a cheap no-op."""

    def __init__(self, hooks: Sequence[Hook], trainer: str, model: Callable[[], Any], run_dir: Path | None = None):
        self.hooks, self.trainer, self.model_getter, self.run_dir = list(hooks), trainer, model, run_dir
        self.step = 0
        self.pending: dict[str, float] = {}  # scalars hooks set, until the trainer logs them
        self._started = False

    def fire(self, event: str, **fields) -> None:
        if not self.hooks:
            return
        if event not in EVENTS:
            raise ValueError(f"unknown event {event!r}; events: {', '.join(EVENTS)}")
        ctx = EventContext(event, self.trainer, self.step, self.model_getter(), run_dir=self.run_dir, **fields)
        if event == "train_start":
            self._started = True  # before the handlers: hooks that attached detach even if a later one fails
        for hook in self.hooks:
            getattr(hook, f"on_{event}")(ctx)
        self.pending.update(ctx.scalars)

    @contextlib.contextmanager
    def around(self, name: str, **fields) -> Iterator[None]:
        """``<name>_start`` before the block, ``<name>_end`` after it (not after an error)."""
        self.fire(f"{name}_start", **fields)
        yield
        self.fire(f"{name}_end", **fields)

    def training_messages(self, messages: list[dict]) -> list[dict]:
        for hook in self.hooks:
            messages = hook.training_messages(messages)
        return messages

    def check_model(self, config) -> None:
        for hook in self.hooks:
            hook.check_model(config)

    @contextlib.contextmanager
    def suspended(self) -> Iterator[None]:
        """Every hook's ``suspended`` context at once: the model as it is without the defences."""
        with contextlib.ExitStack() as stack:
            for hook in self.hooks:
                stack.enter_context(hook.suspended())
            yield

    @property
    def wants_replay(self) -> bool:
        """Whether a hook asks for ``ctx.replay`` (the trainers then keep what a replay needs)."""
        return any(getattr(hook, "wants_replay", False) for hook in self.hooks)

    def pop_scalars(self) -> dict[str, float]:
        scalars, self.pending = self.pending, {}
        return scalars

    def end(self) -> None:
        """``train_end``, once, if ``train_start`` fired: the trainers call it in ``finally``."""
        if self._started:
            self._started = False
            self.fire("train_end")


def build_hooks(specs: Sequence, base_dir: Path | None) -> list[Hook]:
    """A ``Hook`` per recipe entry (``HookSpec``), constructed with its kwargs now, so a wrong
    name, a missing method or a bad argument fails before any model loads."""
    hooks = []
    for i, spec in enumerate(specs):
        where = f"hooks.{i} ({spec.hook})"
        cls = _hook_class(spec.hook, base_dir, where)
        try:
            inspect.signature(cls).bind(**spec.kwargs)
        except TypeError as e:
            raise ConfigError(
                f"{where}: kwargs {sorted(spec.kwargs)} do not fit {cls.__name__}{inspect.signature(cls)}: {e}."
            ) from None
        check_kwargs(cls, spec.kwargs, where)
        kwargs = dict(spec.kwargs)
        for name in cls.path_kwargs:
            if isinstance(kwargs.get(name), str):
                found = find_file(kwargs[name], base_dir)
                if found is None:
                    raise ConfigError(f"{where}: kwargs.{name}: file {kwargs[name]!r} not found (looked at "
                                      f"{describe_candidates(kwargs[name], base_dir)}).")
                kwargs[name] = str(found)
        try:
            hooks.append(cls(**kwargs))
        except RlspError as e:
            raise type(e)(f"{where}: {e}") from None
    return hooks


# Strict, as recipe sections are: no text for a number, no 1.5 for an int, no true for either.
KWARGS_CONFIG = ConfigDict(strict=True, allow_inf_nan=False)


def check_kwargs(cls: type[Hook], kwargs: dict, where: str) -> None:
    """Every number in ``kwargs`` is finite (a NaN steering coefficient would train a whole run on
    NaN activations), and every kwarg fits the type the constructor annotates, built-in hooks and
    users' alike; ranges are the hook's own to check when it is constructed."""
    for name, value in kwargs.items():
        bad = _first_non_finite(value)
        if bad is not None:
            raise ConfigError(f"{where}: kwargs.{name}: {bad} is not a finite number; give a finite value.")
    try:
        hints = typing.get_type_hints(cls.__init__, include_extras=True)
    except Exception:  # noqa: BLE001 -- annotations that do not resolve: the hook checks its own arguments
        return
    for name, value in kwargs.items():
        adapter = _strict_adapter(hints[name]) if name in hints else None
        if adapter is None:
            continue
        try:
            adapter.validate_python(value)
        except ValidationError as e:
            expected = getattr(hints[name], "__name__", None) or str(hints[name])
            raise ConfigError(f"{where}: kwargs.{name}: {e.errors()[0]['msg']}; got {value!r} "
                              f"({cls.__name__} takes {name}: {expected}).") from None


def _strict_adapter(annotation) -> TypeAdapter | None:
    """A strict validator of ``annotation``; None for a type pydantic cannot check (the hook's own
    class), which the hook checks itself."""
    try:
        return TypeAdapter(annotation, config=KWARGS_CONFIG)
    except Exception:  # noqa: BLE001 -- pydantic raises several types for a type it cannot build a schema of
        return None


def _first_non_finite(value):
    """The first NaN or infinite float in ``value`` (lists and mappings searched), else None."""
    if isinstance(value, float):
        return None if math.isfinite(value) else value
    items = value.values() if isinstance(value, dict) else value if isinstance(value, (list, tuple)) else ()
    return next((bad for bad in map(_first_non_finite, items) if bad is not None), None)


def _hook_class(ref: str, base_dir: Path | None, where: str) -> type[Hook]:
    if not is_plugin_ref(ref):
        if ref not in BUILTIN_HOOKS:
            raise ConfigError(
                f"{where}: unknown hook {ref!r}.{did_you_mean(ref, list(BUILTIN_HOOKS))} Built-in hooks: "
                f"{', '.join(BUILTIN_HOOKS)}; your own: 'package.module:Class' or 'path/to/file.py:Class'."
            )
        ref = BUILTIN_HOOKS[ref]
    try:
        cls = load_attribute(ref, base_dir, "hook", "class", ConfigError)
    except RlspError as e:
        raise ConfigError(f"{where}: {e}") from None
    if not (inspect.isclass(cls) and issubclass(cls, Hook)):
        missing = [f"on_{e}" for e in EVENTS if not hasattr(cls, f"on_{e}")]
        raise ConfigError(
            f"{where}: {cls!r} is not a subclass of rlsp.hooks.Hook"
            + (f" (it lacks {', '.join(missing[:3])}, ...)" if missing else "")
            + "; derive your hook from rlsp.hooks.Hook, which provides every event method."
        )
    return cls
