"""One SFT example: a problem and the long chain of thought the model learns to write."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class SftExample:
    id: str  # the id column, or the row number; selection by ids compares this text
    prompt: str  # the problem text, before data.prompt_template is applied
    response: (
        str  # the assistant's answer: the whole chain of thought, ending with the final answer
    )
    difficulty: float | None = None  # from sft.difficulty_field; higher is harder
    tokens: int = 0  # prompt + response in tokens, as trained (chat template applied)
