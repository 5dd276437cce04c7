"""Multiple-choice verifier: the chosen letter against the reference letter."""

from __future__ import annotations

import re
from collections.abc import Sequence
from functools import lru_cache

from rlsp.errors import ConfigError

from .answer_extraction import last_boxed
from .verdict import Verdict


@lru_cache(maxsize=16)
def _patterns(choices: str) -> tuple[re.Pattern, re.Pattern, re.Pattern]:
    if not choices or not choices.isalpha() or not choices.isupper():
        raise ConfigError(f"choices must be upper-case letters such as 'ABCDE', got {choices!r}")
    letter = f"[{choices}]"
    # A whole answer: "C", "(C)", "C)", "C.", "C: 42", "\text{C}".
    alone = re.compile(rf"^\s*(?:\\text\{{)?\(?({letter})\)?\}}?(?:[.):]|\s|$)", re.IGNORECASE)
    # "The answer is (C)", "Answer: C", "final answer is option C", "**Answer:** C". The letter
    # is upper case and not the article in "the answer is a prime" / "is A bit".
    stated = re.compile(
        rf"(?i:answer)\W{{0,4}}(?:(?i:is)\W{{0,3}})?(?:(?i:option|choice)\s+)?\(?"
        rf"(?!A\s+[a-z])({letter})\b(?!')"
    )
    # Fallback, case-sensitive: "(C)" anywhere, or "C)" / "C." at the start of a line.
    listed = re.compile(rf"\(({letter})\)|^\s*({letter})[.)]", re.MULTILINE)
    return alone, stated, listed


def extract_choice(text: str, choices: str = "ABCDE") -> str | None:
    """The chosen letter (upper case): from ``\\boxed{}``, else the last "answer is X", else the
    last "(X)" or line-leading "X)"; None if none is found."""
    alone, stated, listed = _patterns(choices)
    boxed = last_boxed(text)
    if boxed is not None:
        m = alone.match(boxed)
        if m:
            return m.group(1).upper()
    for pattern in (stated, listed):
        last = None
        for last in pattern.finditer(text):
            pass
        if last is not None:
            return (last.group(1) or last.group(2)).upper()
    return None


def multiple_choice(
    prompts: Sequence[str],
    completions: Sequence[str],
    references: Sequence[str | None],
    *,
    choices: str = "ABCDE",
    missing_answer_score: float = 0.0,
    **columns,
) -> list[Verdict | None]:
    """1.0 if the completion's letter equals the reference's ("C", "(C)" or "c").

    None where the reference names no letter among ``choices``.
    """
    alone, _, _ = _patterns(choices)
    verdicts: list[Verdict | None] = []
    for completion, reference in zip(completions, references, strict=True):
        m = alone.match(str(reference)) if reference is not None else None
        if m is None:
            verdicts.append(None)
            continue
        answer = extract_choice(completion, choices)
        if answer is None:
            verdicts.append(Verdict(missing_answer_score, None, "no choice letter found"))
            continue
        verdicts.append(Verdict(1.0 if answer == m.group(1).upper() else 0.0, answer))
    return verdicts
