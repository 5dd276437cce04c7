"""User-facing errors.

An ``RlspError`` is a problem with the user's input (recipe, data file, model name, reward
function). The CLI prints its message alone, without a traceback, and exits with status 2.
Messages say what is wrong, where (file, field, sample) and how to fix it.
"""

from __future__ import annotations

import difflib
from collections.abc import Sequence


class RlspError(Exception):
    """A problem the user can fix; printed without a traceback."""


class ConfigError(RlspError):
    """A recipe file or override is missing, malformed or has a bad value."""


class DataError(RlspError):
    """A dataset file or its rows do not match what the recipe asks for."""


class ModelError(RlspError):
    """A model name or path cannot be resolved or loaded."""


class RewardError(RlspError):
    """A reward function or verifier failed, or returned something unusable."""


def close_matches(name: str, options: Sequence[str], n: int = 3) -> list[str]:
    """The options closest to ``name`` (ignoring case), best first; a typo's likely intent."""
    by_lower = {str(o).lower(): str(o) for o in options}
    return [by_lower[c] for c in difflib.get_close_matches(str(name).lower(), list(by_lower), n=n, cutoff=0.6)]


def did_you_mean(name: str, options: Sequence[str]) -> str:
    """`` Did you mean 'x'?`` (or ``'x' or 'y'``) for options close to ``name``, else ``""``.

    Meant to follow a full stop: ``f"unknown key {key!r}.{did_you_mean(key, keys)} Valid keys: ..."``.
    """
    close = close_matches(name, options)
    return f" Did you mean {' or '.join(repr(c) for c in close)}?" if close else ""
