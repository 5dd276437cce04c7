"""Evaluation metrics: unbiased pass@k and majority vote (maj@k) per problem, and the scalar
metrics of a set of evaluation records (overall and per group, e.g. per level).

``pass_at_k`` and ``maj_at_k`` are pure functions on one problem's results: ``n`` samples of which
``c`` were correct, and the answers the verifier parsed from each sample (in sample order).
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


def sample_metrics(records: Sequence[dict], k: Sequence[int] = (1,)) -> dict[str, float]:
    """Metrics of ``evaluate_model`` records (all samples of each problem must be present).

    Returns ``accuracy`` (fraction of samples correct), ``pass@k`` for each k (unbiased, averaged
    over problems), ``maj@k`` for each k > 1 (majority vote over each problem's first k samples),
    ``boxed_rate``, ``truncation_rate`` and ``mean_length`` (tokens).
    """
    problems: dict[int, list[dict]] = {}
    for r in records:
        problems.setdefault(r["problem_index"], []).append(r)
    ordered = [sorted(rs, key=lambda r: r["sample_index"]) for rs in problems.values()]
    correct = [[r["correct"] for r in rs] for rs in ordered]
    answers = [[r["parsed"] for r in rs] for rs in ordered]
    total = len(records)
    metrics = {"accuracy": sum(r["correct"] for r in records) / total}
    for kk in k:
        metrics[f"pass@{kk}"] = sum(pass_at_k(len(c), sum(c), kk) for c in correct) / len(correct)
    for kk in k:
        if kk > 1:
            metrics[f"maj@{kk}"] = sum(maj_at_k(a, c, kk) for a, c in zip(answers, correct, strict=True)) / len(correct)
    metrics["boxed_rate"] = sum(r["boxed"] for r in records) / total
    metrics["truncation_rate"] = sum(r["finish_reason"] == "length" for r in records) / total
    metrics["mean_length"] = sum(r["length"] for r in records) / total
    return metrics


def group_metrics(
    records: Sequence[dict], group_by: Sequence[str], k: Sequence[int] = (1,)
) -> dict[str, dict[str, dict[str, float]]]:
    """``sample_metrics`` per value of each column in ``group_by``, plus the problem count.

    Values are keyed as strings (JSON keys), numbers in numeric order; a record without the
    column goes to the group "(none)".
    """
    groups: dict[str, dict[str, dict[str, float]]] = {}
    for column in group_by:
        by_value: dict[object, list[dict]] = {}
        for r in records:
            by_value.setdefault(r["columns"].get(column, "(none)"), []).append(r)
        groups[column] = {
            str(v): {"problems": len({r["problem_index"] for r in by_value[v]}), **sample_metrics(by_value[v], k)}
            for v in sorted(by_value, key=_natural_order)
        }
    return groups


def _natural_order(value) -> tuple:
    """Numbers first, in numeric order, then everything else as text."""
    is_number = isinstance(value, (int, float))
    return (not is_number, value if is_number else str(value))


def eval_metrics(
    records: Sequence[dict], k: Sequence[int] = (1,), group_by: Sequence[str] = (), prefix: str = "eval/"
) -> dict[str, float]:
    """Flat scalar metrics of ``evaluate_model`` records, ready for TensorBoard or any logger.

    Keys, with the default prefix:

    - ``eval/accuracy``: fraction of samples the verifier passes (equals ``eval/pass@1``).
    - ``eval/pass@{k}``: unbiased pass@k for each k in ``k`` (each k <= samples per problem).
    - ``eval/maj@{k}``: majority-vote accuracy over the first k samples, for each k > 1.
    - ``eval/boxed_rate``: fraction of samples with a non-empty ``\\boxed{}``.
    - ``eval/truncation_rate``: fraction of samples that hit ``max_new_tokens``.
    - ``eval/mean_length``: mean completion length in tokens.
    - ``eval/{column}={value}/{metric}``: each of the above per group of ``group_by``, e.g.
      ``eval/level=3/accuracy``, plus ``eval/{column}={value}/problems``.

    Typical use in a training loop::

        records = evaluate_model(model, tokenizer, recipe, heldout, verifier, "heldout",
                                 samples_per_prompt=1, data_cfg=heldout_cfg)
        logger.log(eval_metrics(records, k=[1], group_by=["level"]), step)
    """
    flat = {f"{prefix}{name}": value for name, value in sample_metrics(records, k).items()}
    for column, values in group_metrics(records, group_by, k).items():
        for value, metrics in values.items():
            flat.update({f"{prefix}{column}={value}/{name}": float(m) for name, m in metrics.items()})
    return flat
