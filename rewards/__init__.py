"""Reward functions shipped with rlsp, importable as ``rlsp_rewards``.

Exploration rewards in the reward-function shape ``fn(prompts, completions, references,
**columns) -> list[float]``; ``repetition`` is the guard against length hacking.
"""

from .backtracking import BACKTRACKING_PHRASES, backtracking, count_backtracking, phrase_regex
from .judge import JUDGE_TEMPLATE, judge, parse_score
from .length import length, length_linear, overlong
from .repetition import repeated_ngram_fraction, repetition
from .steps import count_steps, steps

__all__ = [
    "BACKTRACKING_PHRASES",
    "JUDGE_TEMPLATE",
    "backtracking",
    "count_backtracking",
    "count_steps",
    "judge",
    "length",
    "length_linear",
    "overlong",
    "parse_score",
    "phrase_regex",
    "repeated_ngram_fraction",
    "repetition",
    "steps",
]
