"""The built-in arithmetic task: seeded, procedural, with disjoint train and held-out splits.

Every problem of a level is enumerated once; a hash of its text (not the seed) puts it in the
held-out split or the train split, so no seed or size can ever make the two overlap. The seed
only chooses which problems of each split are drawn.
"""

from __future__ import annotations

import hashlib
import random
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import cache

from rlsp.errors import ConfigError

HELDOUT_SHARE = 5  # one problem in five (by hash) is held out


@dataclass(frozen=True)
class Level:
    description: str
    pairs: Callable[[], Iterator[tuple[int, int]]]
    symbol: str
    apply: Callable[[int, int], int]


def _grid(first: range, second: range) -> Callable[[], Iterator[tuple[int, int]]]:
    return lambda: ((a, b) for a in first for b in second)


ONE, TWO = range(10), range(10, 100)
LEVELS: dict[int, Level] = {
    1: Level("one-digit + one-digit", _grid(ONE, ONE), "+", lambda a, b: a + b),
    2: Level("two-digit + one-digit", _grid(TWO, ONE), "+", lambda a, b: a + b),
    3: Level("two-digit + two-digit", _grid(TWO, TWO), "+", lambda a, b: a + b),
    4: Level("two-digit - two-digit, non-negative", lambda: ((a, b) for a in TWO for b in TWO if a >= b), "-",
             lambda a, b: a - b),
    5: Level("one-digit x two-digit", _grid(range(2, 10), TWO), "*", lambda a, b: a * b),
    6: Level("two-digit x two-digit", _grid(TWO, TWO), "*", lambda a, b: a * b),
}


@dataclass(frozen=True)
class ArithProblem:
    question: str
    answer: str
    level: int


def _is_heldout(question: str) -> bool:
    digest = hashlib.sha256(question.encode()).digest()
    return digest[0] % HELDOUT_SHARE == 0


@cache
def _pool(level: int, heldout: bool) -> tuple[ArithProblem, ...]:
    spec = LEVELS[level]
    problems = []
    for a, b in spec.pairs():
        question = f"What is {a} {spec.symbol} {b}?"
        if _is_heldout(question) == heldout:
            problems.append(ArithProblem(question, str(spec.apply(a, b)), level))
    return tuple(problems)


def arithmetic_problems(split: str, size: int, levels: list[int], seed: int) -> list[ArithProblem]:
    """Draw ``size`` distinct problems of ``split`` ('train' or 'heldout'), levels mixed evenly."""
    if split not in ("train", "heldout"):
        raise ConfigError(f"data.split: the arithmetic task has splits 'train' and 'heldout', not {split!r}.")
    rng = random.Random(f"{seed}-{split}")
    per_level = [size // len(levels) + (i < size % len(levels)) for i in range(len(levels))]
    drawn: list[ArithProblem] = []
    for level, count in zip(levels, per_level, strict=True):
        pool = _pool(level, split == "heldout")
        if count > len(pool):
            raise ConfigError(
                f"data.arith: level {level} ({LEVELS[level].description}) has only {len(pool)} "
                f"{split} problems but {count} were asked for; add levels or lower the size."
            )
        drawn.extend(rng.sample(pool, count))
    rng.shuffle(drawn)
    return drawn
