"""The benchmark's reward, the same few lines for both sides of benchmarks/vs_trl.py: 1 when the
last ``\\boxed{...}`` of a completion holds the reference answer, else 0. Neither side pays for
the other's verifier machinery (no rlsp imports here: TRL's process loads this file too)."""

from __future__ import annotations

import re

BOXED = re.compile(r"\\boxed\{([^{}]*)\}")


def score(completion: str, reference: str) -> float:
    found = BOXED.findall(completion)
    return float(bool(found) and found[-1].strip() == str(reference).strip())


def rlsp_reward(prompts, completions, references, **columns) -> list[float]:
    """rlsp's reward-function shape: (prompts, completions, references, **columns)."""
    return [score(c, r) for c, r in zip(completions, references, strict=True)]


def trl_reward(prompts, completions, answer, **kwargs) -> list[float]:
    """TRL's shape: conversational completions, the dataset's ``answer`` column as a keyword."""
    return [score(c[0]["content"], a) for c, a in zip(completions, answer, strict=True)]
