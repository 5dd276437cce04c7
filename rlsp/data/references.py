"""Final reference answers from dataset columns (GSM8K '#### n', MATH '\\boxed{}')."""

from __future__ import annotations


def reference_answer(text: str, fmt: str) -> str | None:
    """The final answer in ``text`` per ``fmt`` ('plain', 'gsm8k' or 'boxed'); None if absent."""
    if fmt == "plain":
        return text.strip()
    if fmt == "gsm8k":
        _, sep, answer = text.rpartition("####")
        return answer.strip().replace(",", "") or None if sep else None
    if fmt == "boxed":
        from rlsp_verifiers.answer_extraction import last_boxed

        return last_boxed(text)
    raise ValueError(f"unknown reference format {fmt!r}")
