"""The event mechanism both trainers share: ``Hook`` (what a user overrides), ``HookRunner``
(what a trainer fires), ``build_hooks`` (a recipe's ``hooks:`` list, resolved before any model
loads).

Every event handler gets an ``EventContext`` whose ``model`` is the *unwrapped* policy (the
PEFT model for LoRA; never DDP's wrapper, the frozen reference or the critic). Forward events say
which network is running (``role`` "policy" or "reference"; for a LoRA policy the reference is
the same module with its adapters off, so a hook that changes the forward pass must step aside
when ``role`` is "reference") and whether gradients flow (``grad``). ``on_train_end`` runs
whatever happens, errors included: detach there.
"""

from __future__ import annotations

import contextlib
import inspect
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rlsp.errors import ConfigError, RlspError
from rlsp.plugins import load_attribute

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
    scalars: dict[str, float] = field(default_factory=dict)  # logged at the step's end


class Hook:
    """Base class of trainer hooks: override the events you need (each a no-op here).

    Scalars a hook puts in ``ctx.scalars`` at any event are logged with the step's own
    (TensorBoard for ``rlsp train``, ``sft_log.json`` for ``rlsp sft``), under the names given.
    """

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

    def __init__(self, hooks: Sequence[Hook], trainer: str, model: Callable[[], Any]):
        self.hooks, self.trainer, self._model = list(hooks), trainer, model
        self.step = 0
        self.pending: dict[str, float] = {}  # scalars hooks set, until the trainer logs them
        self._started = False

    def fire(self, event: str, **fields) -> None:
        if not self.hooks:
            return
        if event not in EVENTS:
            raise ValueError(f"unknown event {event!r}; events: {', '.join(EVENTS)}")
        ctx = EventContext(event, self.trainer, self.step, self._model(), **fields)
        for hook in self.hooks:
            getattr(hook, f"on_{event}")(ctx)
        self.pending.update(ctx.scalars)
        if event == "train_start":
            self._started = True

    @contextlib.contextmanager
    def around(self, name: str, **fields) -> Iterator[None]:
        """``<name>_start`` before the block, ``<name>_end`` after it (not after an error)."""
        self.fire(f"{name}_start", **fields)
        yield
        self.fire(f"{name}_end", **fields)

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
        try:
            cls = load_attribute(spec.hook, base_dir, "hook", "class", ConfigError)
        except RlspError as e:
            raise ConfigError(f"{where}: {e}") from None
        if not (inspect.isclass(cls) and issubclass(cls, Hook)):
            raise ConfigError(f"{where}: {cls!r} is not a subclass of rlsp.hooks.Hook; derive your hook from it.")
        try:
            inspect.signature(cls).bind(**spec.kwargs)
        except TypeError as e:
            raise ConfigError(f"{where}: kwargs {sorted(spec.kwargs)} do not fit {cls.__name__}{inspect.signature(cls)}: {e}.") from None
        hooks.append(cls(**spec.kwargs))
    return hooks
