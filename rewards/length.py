"""Length exploration rewards: the paper's ``-C / |o|`` and a linear, capped alternative.

Both are hackable by padding (repeat a sentence, score higher); pair them with ``repetition``
and a verifier. The maximum gain from padding a completion of ``L`` tokens is ``C / L``.
"""

from __future__ import annotations

from collections.abc import Sequence

from rlsp.errors import ConfigError


def _token_counts(
    completions: Sequence[str], completion_lengths: Sequence[int] | None
) -> list[int]:
    if completion_lengths is not None:
        return [max(1, int(n)) for n in completion_lengths]
    # The paper's code estimates tokens as the characters before "\boxed" divided by 4.
    return [max(1, len(c.split("\\boxed", 1)[0]) // 4) for c in completions]


def length(
    prompts: Sequence[str],
    completions: Sequence[str],
    references: Sequence[str],
    *,
    C: float = 1000.0,
    completion_lengths: Sequence[int] | None = None,
    **columns,
) -> list[float]:
    """RLSP's length reward ``-C / |o|``: negative, rising towards 0 as completions lengthen.

    ``|o|`` is the completion's length in tokens (``completion_lengths``, from the trainer) or,
    without it, the paper's estimate: characters before the first ``\\boxed`` divided by 4.
    """
    return [-C / n for n in _token_counts(completions, completion_lengths)]


def length_linear(
    prompts: Sequence[str],
    completions: Sequence[str],
    references: Sequence[str],
    *,
    cap: int = 4096,
    completion_lengths: Sequence[int] | None = None,
    **columns,
) -> list[float]:
    """``min(|o|, cap) / cap`` in [0, 1]: linear in length up to ``cap`` tokens, then flat."""
    return [min(n, cap) / cap for n in _token_counts(completions, completion_lengths)]


def overlong(
    prompts: Sequence[str],
    completions: Sequence[str],
    references: Sequence[str],
    *,
    max_tokens: int = 4096,
    cache_tokens: int = 512,
    completion_lengths: Sequence[int] | None = None,
    **columns,
) -> list[float]:
    """DAPO's soft overlong punishment (arXiv 2503.14476): 0 up to ``max_tokens - cache_tokens``
    tokens, then falling linearly to -1 at ``max_tokens``, and -1 beyond. Set ``max_tokens`` to
    ``generation.max_new_tokens``; a completion cut there gets -1."""
    if cache_tokens < 1 or cache_tokens >= max_tokens:
        raise ConfigError(f"overlong: cache_tokens must be between 1 and max_tokens - 1 ({max_tokens - 1}); "
                          f"got {cache_tokens}.")
    free = max_tokens - cache_tokens
    return [0.0 if n <= free else max(-1.0, (free - n) / cache_tokens)
            for n in _token_counts(completions, completion_lengths)]
