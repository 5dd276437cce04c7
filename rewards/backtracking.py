"""Backtracking exploration reward: phrases of self-verification and changing course."""

from __future__ import annotations

import re
from collections.abc import Sequence

from rlsp.errors import ConfigError

# Matched case-insensitively on word boundaries; a longer phrase wins over one it contains
# ("But wait" counts once, not also as "wait"). Analysis code may reuse this list.
BACKTRACKING_PHRASES: tuple[str, ...] = (
    "wait",
    "but wait",
    "hmm",
    "hmmm",
    "alternatively",
    "let me check",
    "let me double-check",
    "let me double check",
    "double-check",
    "double check",
    "let me verify",
    "verify",
    "let me recheck",
    "recheck",
    "re-check",
    "let me re-examine",
    "let me reconsider",
    "on second thought",
    "i made a mistake",
    "that's not right",
    "that is not right",
    "that can't be right",
    "actually, no",
)


def phrase_regex(phrases: Sequence[str]) -> re.Pattern:
    """One case-insensitive, word-bounded alternation, longest phrase first."""
    ordered = sorted({p.lower() for p in phrases}, key=len, reverse=True)
    alternation = "|".join(r"\s+".join(map(re.escape, p.split())) for p in ordered)
    return re.compile(rf"\b(?:{alternation})\b", re.IGNORECASE)


BACKTRACKING_RE = phrase_regex(BACKTRACKING_PHRASES)


def count_backtracking(text: str) -> int:
    """Occurrences of ``BACKTRACKING_PHRASES`` in ``text``."""
    return sum(1 for _ in BACKTRACKING_RE.finditer(text))


def backtracking(
    prompts: Sequence[str],
    completions: Sequence[str],
    references: Sequence[str],
    *,
    cap: int = 10,
    **columns,
) -> list[float]:
    """``min(count, cap) / cap`` in [0, 1], where count is ``count_backtracking``.

    The cap bounds what repeating "Wait," can earn.
    """
    if cap < 1:
        raise ConfigError(f"backtracking: cap must be at least 1, got {cap!r}")
    return [min(count_backtracking(c), cap) / cap for c in completions]
