"""Named implementations of one part of the algorithm, chosen in a recipe by name.

Each part (advantage estimators, policy losses, KL estimators, loss aggregations, alpha
schedules) keeps one ``Registry``. rlsp's own entries are registered where they are defined; a
user's are registered the same way in a module the recipe names under ``train.plugins``, which
is imported before the recipe's names are checked::

    from rlsp.algorithms.policy_losses import POLICY_LOSSES, PolicyLossTraits

    @POLICY_LOSSES.register("my_loss", PolicyLossTraits(clip_eps=0.2, source="my paper"))
    def my_loss(logp, old_logp, advantages, mask, clip): ...

Each registry's module documents the signature its entries must have.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Generic, TypeVar

from rlsp.errors import ConfigError

Entry = TypeVar("Entry", bound=Callable)


class Registry(dict[str, Entry], Generic[Entry]):
    """``name -> implementation`` for one part of the algorithm, with each entry's traits (what
    its paper does around it, read by ``rlsp.config.algorithm_defaults``). Looking up a name that
    is not registered raises ``ConfigError`` naming the recipe setting and the choices."""

    def __init__(self, part: str, setting: str, default_traits: Any = None):
        super().__init__()
        self.part, self.setting, self.default_traits = part, setting, default_traits
        self._traits: dict[str, Any] = {}

    def register(self, name: str, traits: Any = None) -> Callable[[Entry], Entry]:
        """Decorator: add the function under ``name`` (unique) with its ``traits``."""

        def decorator(fn: Entry) -> Entry:
            if name in self:
                raise ValueError(f"{self.part} {name!r} is already registered")
            self[name] = fn
            self._traits[name] = traits if traits is not None else self.default_traits
            return fn

        return decorator

    def unregister(self, name: str) -> None:
        """Remove ``name`` (a notebook re-running its registration cell, a test cleaning up)."""
        del self[name]
        del self._traits[name]

    def __missing__(self, name: str) -> Entry:
        raise ConfigError(f"{self.setting}: unknown {self.part} {name!r}; choose one of: {', '.join(sorted(self))} (or "
                          f"register one in a module listed under train.plugins)")

    def traits(self, name: str) -> Any:
        """The traits ``name`` was registered with (``ConfigError`` for an unknown name)."""
        self[name]
        return self._traits[name]
