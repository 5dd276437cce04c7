"""The decorator and field helper every recipe section uses.

Sections are frozen pydantic dataclasses: typed, immutable, strict (``true`` is not an int and
``"3"`` is not a number), unknown keys rejected, and no number NaN or infinite (YAML's ``.inf``
would pass ``gt=0`` and train on an infinite learning rate). Every field carries help text, which
``rlsp validate --explain`` prints and error messages quote.
"""

from __future__ import annotations

from typing import Any

from pydantic import ConfigDict, Field
from pydantic.dataclasses import dataclass

SECTION_CONFIG = ConfigDict(extra="forbid", strict=True, allow_inf_nan=False)


def section(cls):
    """Make ``cls`` a recipe section: a frozen, strict pydantic dataclass."""
    return dataclass(frozen=True, config=SECTION_CONFIG)(cls)


def option(default: Any = ..., help: str = "", **constraints: Any) -> Any:
    """A field with a default, help text and optional constraints (``ge``, ``le``, ``gt``...).

    Mutable defaults (lists, dicts, sections) are given as zero-argument callables.
    """
    if callable(default):
        return Field(default_factory=default, description=help, **constraints)
    return Field(default, description=help, **constraints)
