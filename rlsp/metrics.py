"""Sampling metrics for evaluation: unbiased pass@k and majority vote (maj@k).

Pure functions on per-problem results: ``n`` samples of one problem, of which ``c`` were correct,
and the answers the verifier parsed from each sample (in sample order).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from fractions import Fraction


def pass_at_k(n: int, c: int, k: int) -> float:
    """Unbiased estimate of pass@k from ``n`` samples with ``c`` correct (Chen et al. 2021).

    pass@k = 1 - C(n - c, k) / C(n, k): the chance that k samples drawn without replacement from
    the n contain at least one correct one. Computed as the product
    1 - prod_{i = n - c + 1}^{n} (1 - k / i), which never forms the huge binomials.
    Example: n = 5, c = 2, k = 2 gives 1 - C(3, 2) / C(5, 2) = 1 - 3/10 = 0.7.
    """
    if not 0 <= c <= n:
        raise ValueError(f"need 0 <= c <= n, got n={n}, c={c}")
    if not 1 <= k <= n:
        raise ValueError(f"need 1 <= k <= n, got n={n}, k={k}")
    if n - c < k:  # every k-subset holds a correct sample
        return 1.0
    product = 1.0
    for i in range(n - c + 1, n + 1):
        product *= 1.0 - k / i
    return 1.0 - product


_NUMBER = re.compile(r"[-+]?(?:\d+(?:\.\d*)?|\.\d+)")


def answer_key(answer: str | None) -> str | None:
    """The form under which two parsed answers count as the same vote; None for no answer.

    Whitespace, surrounding ``$``, a trailing period, ``\\left``/``\\right`` and ``\\!`` are
    dropped; numbers are compared by value, so "025", "25" and "25.0" are one vote, as are
    "1,000" and "1000" (AIME answers are zero-padded in some files). Anything else is compared
    as text.
    """
    if answer is None:
        return None
    text = answer.strip().strip("$").strip().rstrip(".")
    text = re.sub(r"\\left|\\right|\\!|\s+", "", text)
    if not text:
        return None
    plain = text.replace(",", "") if re.fullmatch(r"[-+]?\d{1,3}(?:,\d{3})+(?:\.\d+)?", text) else text
    if _NUMBER.fullmatch(plain):
        value = Fraction(plain)
        return str(value.numerator) if value.denominator == 1 else str(float(value))
    return text


def majority_vote(answers: Sequence[str | None]) -> int | None:
    """Index of the sample whose answer wins the vote; None if no sample has an answer.

    Answers are grouped by ``answer_key``; samples without an answer do not vote. Ties go to the
    answer that appears first (lowest sample index), so the result is deterministic; the
    returned index is that answer's first sample.
    """
    counts: dict[str, int] = {}
    first: dict[str, int] = {}
    for i, answer in enumerate(answers):
        key = answer_key(answer)
        if key is None:
            continue
        counts[key] = counts.get(key, 0) + 1
        first.setdefault(key, i)
    if not counts:
        return None
    # max() keeps the first maximum it meets; dicts iterate in first-appearance order.
    winner = max(counts, key=lambda key: counts[key])
    return first[winner]


def maj_at_k(answers: Sequence[str | None], correct: Sequence[bool], k: int) -> bool:
    """Whether the majority answer among the first ``k`` samples is correct.

    ``answers[i]`` is sample i's parsed answer and ``correct[i]`` its verdict; the winning
    answer's correctness is the verdict of its first sample. No answer at all counts as wrong.
    """
    if not 1 <= k <= len(answers):
        raise ValueError(f"need 1 <= k <= {len(answers)} samples, got k={k}")
    winner = majority_vote(answers[:k])
    return winner is not None and bool(correct[winner])
