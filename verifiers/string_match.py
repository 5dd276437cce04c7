"""String-match verifier: the extracted answer against the reference, exactly or normalised."""

from __future__ import annotations

import re
import string
from collections.abc import Sequence

from .answer_extraction import check_answer_format, extract_answer
from .verdict import Verdict

_TEXT_CMD_RE = re.compile(
    r"\\(?:text|textbf|textit|textrm|mathrm|mathbf|mbox|operatorname)\s*\{([^{}]*)\}"
)
_PUNCT = str.maketrans("", "", string.punctuation)


def normalize(text: str) -> str:
    """Lower case, LaTeX ``\\text{}``-like wrappers unwrapped, punctuation and ``$`` dropped,
    whitespace collapsed: ``"\\text{New York.}"`` -> ``"new york"``."""
    previous = None
    while previous != text:  # unwrap nested wrappers from the inside out
        previous, text = text, _TEXT_CMD_RE.sub(r"\1", text)
    text = text.replace("\\ ", " ").replace("~", " ").translate(_PUNCT)
    return " ".join(text.lower().split())


def string_match(
    prompts: Sequence[str],
    completions: Sequence[str],
    references: Sequence[str | None],
    *,
    answer_format: str = "boxed",
    answer_pattern: str | None = None,
    exact: bool = False,
    missing_answer_score: float = 0.0,
    **columns,
) -> list[Verdict | None]:
    """1.0 if the extracted answer equals the reference (after ``normalize`` unless ``exact``).

    ``answer_format="full"`` compares the whole completion. None where the reference is missing.
    """
    check_answer_format(answer_format, answer_pattern)
    verdicts: list[Verdict | None] = []
    for completion, reference in zip(completions, references, strict=True):
        if reference is None or not str(reference).strip():
            verdicts.append(None)
            continue
        answer = extract_answer(completion, answer_format, answer_pattern)
        if answer is None:
            verdicts.append(
                Verdict(missing_answer_score, None, f"no answer found ({answer_format})")
            )
            continue
        if exact:
            correct = answer.strip() == str(reference).strip()
        else:
            correct = normalize(answer) == normalize(str(reference))
        verdicts.append(Verdict(1.0 if correct else 0.0, answer))
    return verdicts
