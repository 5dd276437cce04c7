"""Math answer verifier: the last ``\\boxed{}`` against the reference, by mathematical equivalence.

The paper's verifier: 1 if the last ``\\boxed{}`` equals the reference, 0 if wrong, -0.5 if there
is no ``\\boxed{}`` (here ``missing_answer_score``, default 0.0), 0 on any exception.

Equivalence is decided by math_verify (``\\frac{1}{2}`` = ``0.5``, ``3/4`` = ``0.75``,
``x=5`` = ``5``, sets, tuples, intervals). Two safety decisions:

- Time limit. math_verify's own time-outs use ``signal.alarm``, which fails outside the main
  thread, so they are switched off (``parsing_timeout=None``, ``timeout_seconds=None``) and each
  sample is checked in a worker process with a hard limit instead (``time_limit``). A sample that
  overruns (``\\boxed{9^{9^{9^{9}}}}`` makes sympy compute forever) scores 0.0 alone.
- No eval of model text. math_verify's ``ExprExtractionConfig`` hands matches to sympy's
  ``parse_expr``, which calls Python's ``eval``. Its regex admits only digits, ``.``, spaces
  and ``+-*/^()``, so no names reach ``eval`` -- but we do not rely on that: only
  ``LatexExtractionConfig`` is used, whose parser (latex2sympy2_extended, an ANTLR grammar)
  builds sympy objects without ``eval``/``sympify`` on strings. The answer is wrapped in
  ``\\boxed{}`` so the LaTeX extractor finds it; plain ``3/4`` and ``0.75`` parse as LaTeX too.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from functools import lru_cache

from math_verify import LatexExtractionConfig, parse, verify

from rlsp.errors import ConfigError

from .answer_extraction import check_answer_format, extract_answer
from .time_limit import call_with_time_limit
from .verdict import Verdict

# boxed_match_priority=0: the \boxed{} we wrap the answer in is matched before anything else.
_LATEX_ONLY = (LatexExtractionConfig(boxed_match_priority=0),)


def _as_boxed(text: str) -> str:
    text = text.strip()
    if "\\boxed" in text:
        return text
    return "\\boxed{" + text.strip("$").strip() + "}"


@lru_cache(maxsize=1024)
def _parse_reference(reference: str) -> list:
    return parse(_as_boxed(reference), extraction_config=_LATEX_ONLY, parsing_timeout=None)


def _equivalent(answer: str, reference: str) -> bool:
    """True if ``answer`` and ``reference`` are mathematically equal. Runs in a worker process."""
    # Timeouts are disabled on purpose (see module docstring); silence math_verify's warning.
    logging.getLogger("math_verify").setLevel(logging.ERROR)
    gold = _parse_reference(reference)
    pred = parse(_as_boxed(answer), extraction_config=_LATEX_ONLY, parsing_timeout=None)
    if not gold or not pred:
        return False
    return bool(verify(gold, pred, timeout_seconds=None))


def math(
    prompts: Sequence[str],
    completions: Sequence[str],
    references: Sequence[str | None],
    *,
    answer_format: str = "boxed",
    answer_pattern: str | None = None,
    missing_answer_score: float = 0.0,
    timeout_s: float = 5.0,
    **columns,
) -> list[Verdict | None]:
    """Verify each completion's final answer against its reference (reward-function shape).

    Args:
        answer_format: where the answer is; see ``answer_extraction.ANSWER_FORMATS``.
        answer_pattern: a regex, with ``answer_format="pattern"``.
        missing_answer_score: score when no answer can be extracted (the paper used -0.5).
        timeout_s: hard limit per sample, in seconds; a sample that overruns scores 0.0.

    Returns one ``Verdict`` per sample, or None where the reference is missing or empty.
    """
    check_answer_format(answer_format, answer_pattern)
    if not timeout_s > 0:
        raise ConfigError(f"timeout_s must be a positive number of seconds, got {timeout_s!r}")
    verdicts: list[Verdict | None] = [None] * len(completions)
    to_check: list[int] = []
    answers = [extract_answer(c, answer_format, answer_pattern) for c in completions]
    for i, (answer, reference) in enumerate(zip(answers, references, strict=True)):
        if reference is None or not str(reference).strip():
            continue
        if answer is None:
            verdicts[i] = Verdict(missing_answer_score, None, f"no answer found ({answer_format})")
        elif answer.strip("$ ") == str(reference).strip("$ "):
            verdicts[i] = Verdict(1.0, answer)  # identical text: skip the worker round-trip
        else:
            to_check.append(i)
    outcomes = call_with_time_limit(
        _equivalent, [(answers[i], str(references[i])) for i in to_check], timeout_s
    )
    for i, outcome in zip(to_check, outcomes):
        if outcome.ok:
            verdicts[i] = Verdict(1.0 if outcome.value else 0.0, answers[i])
        else:
            verdicts[i] = Verdict(0.0, None, f"verification failed: {outcome.error}")
    return verdicts


def verify_math(
    completion: str,
    reference: str,
    *,
    answer_format: str = "boxed",
    answer_pattern: str | None = None,
    missing_answer_score: float = 0.0,
    timeout_s: float = 5.0,
) -> Verdict:
    """``math`` for one completion (evaluation scripts). An empty reference scores 0.0."""
    verdict = math(
        [""],
        [completion],
        [reference],
        answer_format=answer_format,
        answer_pattern=answer_pattern,
        missing_answer_score=missing_answer_score,
        timeout_s=timeout_s,
    )[0]
    return verdict if verdict is not None else Verdict(0.0, None, "empty reference")
