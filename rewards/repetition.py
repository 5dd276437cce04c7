"""Repetition penalty: the guard against length rewards hacked by repeating text."""

from __future__ import annotations

import re
from collections.abc import Sequence

from rlsp.errors import ConfigError

_WORD_RE = re.compile(r"\w+")


def repeated_ngram_fraction(text: str, n: int = 4) -> float:
    """Fraction of the word ``n``-grams in ``text`` that repeat an earlier one, in [0, 1).

    Words are ``\\w+`` runs, lower-cased. Text with fewer than ``n`` words gives 0.0.
    """
    words = _WORD_RE.findall(text.lower())
    total = len(words) - n + 1
    if total <= 0:
        return 0.0
    unique = len(set(zip(*(words[i:] for i in range(n)))))
    return 1.0 - unique / total


def repetition(
    prompts: Sequence[str],
    completions: Sequence[str],
    references: Sequence[str],
    *,
    n: int = 4,
    scale: float = 1.0,
    **columns,
) -> list[float]:
    """``-scale * repeated_ngram_fraction(completion, n)``: 0 for text that never repeats.

    To cancel what padding earns under ``length`` (up to ``C / L`` for an ``L``-token answer),
    ``scale`` times its weight must exceed that gain; see tests/test_rewards_exploration.py.
    """
    if n < 1:
        raise ConfigError(f"repetition: n must be at least 1, got {n!r}")
    return [-scale * repeated_ngram_fraction(c, n) for c in completions]
