"""Length exploration rewards: the paper's ``-C / |o|`` and a linear, capped alternative.

Both are hackable by padding (repeat a sentence, score higher); pair them with ``repetition``
and a verifier. The maximum gain from padding a completion of ``L`` tokens is ``C / L``.
"""

from __future__ import annotations

from collections.abc import Sequence


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
