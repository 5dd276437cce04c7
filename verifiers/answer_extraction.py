"""Pull the final answer out of a completion: last ``\\boxed{}``, last number, or a user regex.

Every extractor runs in time linear in the text, whatever the model wrote (200k ``{`` or 100k
nested ``\\boxed{`` included): completions are untrusted input.
"""

from __future__ import annotations

import re
from functools import lru_cache

from rlsp.errors import ConfigError

ANSWER_FORMATS = ("boxed", "last_number", "boxed_or_last_number", "pattern", "full")

_BOX_RE = re.compile(r"\\(?:boxed|fbox)\b")
_BRACE_RE = re.compile(r"[{}]")
# An integer with optional thousands separators, or a decimal. The look-behind keeps "x2" and
# "v1.5" from yielding numbers, and a minus right after an operand ("3-5") from being a sign.
_NUMBER_RE = re.compile(r"(?<![\w.])[-+]?(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?|(?<![\w.])[-+]?\.\d+")


def last_boxed(text: str) -> str | None:
    """Content of the last closed ``\\boxed{...}`` or ``\\fbox{...}``; None if absent or empty.

    Braces are matched with a stack, so ``\\boxed{\\frac{1}{2}}`` gives ``\\frac{1}{2}``. The
    form without braces, ``\\boxed 5``, gives ``5``.
    """
    starts = [m.end() for m in _BOX_RE.finditer(text)]
    if not starts:
        return None
    # Match every brace from the first \boxed on, once: O(n) even when no brace ever closes.
    offset = starts[0]
    close_of: dict[int, int] = {}
    stack: list[int] = []
    for m in _BRACE_RE.finditer(text, offset):
        if m.group() == "{":
            stack.append(m.start())
        elif stack:
            close_of[stack.pop()] = m.start()
    for end in reversed(starts):
        rest = end
        while rest < len(text) and text[rest] in " \t":
            rest += 1
        if rest < len(text) and text[rest] == "{":
            close = close_of.get(rest)
            if close is not None:
                content = text[rest + 1 : close].strip()
                return content or None
        elif rest > end:  # "\boxed 5": one token, ended by whitespace or "$"
            token = re.match(r"[^\s$]+", text[rest : rest + 200])
            if token:
                return token.group()
    return None


def last_number(text: str) -> str | None:
    """The last number in ``text`` with thousands separators removed ("1,234.5" -> "1234.5")."""
    last = None
    for last in _NUMBER_RE.finditer(text):
        pass
    if last is None:
        return None
    return last.group().replace(",", "")


@lru_cache(maxsize=64)
def _compile(pattern: str) -> re.Pattern:
    try:
        return re.compile(pattern)
    except re.error as e:
        raise ConfigError(f"answer_pattern {pattern!r} is not a valid regular expression: {e}")


def last_match(text: str, pattern: str) -> str | None:
    """First capture group (the whole match if the pattern has none) of the last match.

    The pattern comes from the recipe, not the model; keep it free of nested quantifiers, since
    Python's regex engine can backtrack exponentially on them.
    """
    regex = _compile(pattern)
    last = None
    for last in regex.finditer(text):
        pass
    if last is None:
        return None
    answer = last.group(1) if regex.groups else last.group()
    return answer.strip() if answer and answer.strip() else None


def check_answer_format(answer_format: str, answer_pattern: str | None) -> None:
    """Raise ConfigError for an unknown format or a pattern given without format 'pattern'."""
    if answer_format not in ANSWER_FORMATS:
        raise ConfigError(
            f"answer_format {answer_format!r} is unknown; use one of {', '.join(ANSWER_FORMATS)}"
        )
    if (answer_format == "pattern") != (answer_pattern is not None):
        raise ConfigError(
            "set answer_format: pattern together with answer_pattern: <regex> (the first "
            f"capture group of its last match is the answer); got answer_format={answer_format!r}"
            f" and answer_pattern={answer_pattern!r}"
        )
    if answer_pattern is not None:
        _compile(answer_pattern)


def extract_answer(
    text: str, answer_format: str = "boxed", answer_pattern: str | None = None
) -> str | None:
    """The answer in ``text`` according to ``answer_format`` (one of ``ANSWER_FORMATS``).

    ``boxed``: last ``\\boxed{}``; ``last_number``: last number; ``boxed_or_last_number``: the
    boxed answer if any, else the last number; ``pattern``: ``answer_pattern``'s last match;
    ``full``: the whole text, stripped. None when nothing is found.
    """
    check_answer_format(answer_format, answer_pattern)
    if answer_format == "boxed":
        return last_boxed(text)
    if answer_format == "last_number":
        return last_number(text)
    if answer_format == "boxed_or_last_number":
        boxed = last_boxed(text)
        return boxed if boxed is not None else last_number(text)
    if answer_format == "pattern":
        return last_match(text, answer_pattern)
    return text.strip() or None
