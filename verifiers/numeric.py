"""Numeric verifier (GSM8K style): the final number against the reference, within a tolerance."""

from __future__ import annotations

import math
import re
from collections.abc import Sequence

from .answer_extraction import check_answer_format, extract_answer
from .verdict import Verdict

_FRAC_RE = re.compile(r"\\[dt]?frac\{\s*([-+]?[\d.]+)\s*\}\{\s*([-+]?[\d.]+)\s*\}")
# A number, optionally a fraction "a/b"; commas already removed.
_VALUE_RE = re.compile(r"[-+]?(?:\d+\.?\d*|\.\d+)(?:\s*/\s*(?:\d+\.?\d*|\.\d+))?")


def to_number(text: str) -> float | None:
    """The last number in an extracted answer, as a float: "$1,234" -> 1234.0, "3/4" -> 0.75.

    Strips ``$``, ``\\$``, thousands separators, ``%`` and LaTeX ``\\frac{a}{b}``; units and
    words around the number are ignored ("18 dollars" -> 18.0). None if there is no number.
    """
    text = _FRAC_RE.sub(r"\1/\2", text)
    text = re.sub(r"(?<=\d),(?=\d{3}\b)", "", text.replace("\\$", "").replace("$", ""))
    last = None
    for last in _VALUE_RE.finditer(text):
        pass
    if last is None:
        return None
    numerator, _, denominator = last.group().replace(" ", "").partition("/")
    try:
        value = float(numerator) / float(denominator) if denominator else float(numerator)
    except (ValueError, ZeroDivisionError):
        return None
    return value if math.isfinite(value) else None


def _reference_number(reference: str) -> float | None:
    # GSM8K's answer field ends with "#### 18": accept it whole.
    return to_number(reference.rpartition("####")[2])


def numeric(
    prompts: Sequence[str],
    completions: Sequence[str],
    references: Sequence[str | None],
    *,
    answer_format: str = "boxed_or_last_number",
    answer_pattern: str | None = None,
    rel_tol: float = 1e-6,
    abs_tol: float = 1e-6,
    missing_answer_score: float = 0.0,
    **columns,
) -> list[Verdict | None]:
    """1.0 if the completion's number equals the reference within ``rel_tol`` or ``abs_tol``.

    The answer is the last ``\\boxed{}`` or, failing that, the last number (``answer_format``);
    ``missing_answer_score`` when there is none. None where the reference has no number.
    """
    check_answer_format(answer_format, answer_pattern)
    verdicts: list[Verdict | None] = []
    for completion, reference in zip(completions, references, strict=True):
        expected = _reference_number(str(reference)) if reference is not None else None
        if expected is None:
            verdicts.append(None)
            continue
        answer = extract_answer(completion, answer_format, answer_pattern)
        value = to_number(answer) if answer is not None else None
        if value is None:
            verdicts.append(Verdict(missing_answer_score, answer, "no number found"))
            continue
        correct = math.isclose(value, expected, rel_tol=rel_tol, abs_tol=abs_tol)
        verdicts.append(Verdict(1.0 if correct else 0.0, answer))
    return verdicts
