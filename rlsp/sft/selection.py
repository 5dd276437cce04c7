"""Picking the N examples a warm-start trains on, and summarising their token lengths."""

from __future__ import annotations

import math
import random
import statistics
from collections import Counter
from collections.abc import Sequence

from rlsp.errors import DataError
from rlsp.sft.example import SftExample


def select_examples(
    examples: Sequence[SftExample],
    strategy: str,
    n: int | None,
    ids: Sequence[object] = (),
    seed: int = 0,
) -> list[SftExample]:
    """The examples ``strategy`` picks: 'random' (seeded), 'longest' (most tokens), 'hardest'
    (largest difficulty) or 'ids' (in the order given). ``n=None`` keeps every example.

    Ties in 'longest' and 'hardest' keep the examples' order, so the choice is deterministic.
    """
    if strategy == "ids":
        return _by_ids(examples, [str(i) for i in ids], n)
    if n is not None and n > len(examples):
        raise DataError(
            f"sft.n is {n} but only {len(examples)} examples are available; lower sft.n."
        )
    count = len(examples) if n is None else n
    if strategy == "random":
        return list(examples) if n is None else random.Random(seed).sample(list(examples), count)
    if strategy == "longest":
        return sorted(examples, key=lambda e: -e.tokens)[:count]
    if strategy == "hardest":
        unranked = [e.id for e in examples if e.difficulty is None]
        if unranked:
            raise DataError(
                f"select 'hardest' needs a difficulty for every example; {len(unranked)} have none "
                f"(ids {', '.join(unranked[:5])}). Check sft.difficulty_field."
            )
        return sorted(examples, key=lambda e: -e.difficulty)[:count]
    raise ValueError(f"unknown selection strategy {strategy!r}")


def _by_ids(examples: Sequence[SftExample], ids: list[str], n: int | None) -> list[SftExample]:
    if n is not None and n != len(ids):
        raise DataError(
            f"sft.n is {n} but sft.ids lists {len(ids)} ids; remove sft.n or make them agree."
        )
    counts = Counter(e.id for e in examples)
    repeated = [i for i in ids if counts[i] > 1]
    if repeated:
        raise DataError(
            f"ids {', '.join(repeated[:5])} occur more than once in the data; set sft.id_field to a column "
            f"with unique values."
        )
    by_id = {e.id: e for e in examples}
    missing = [i for i in ids if i not in by_id]
    if missing:
        raise DataError(
            f"sft.ids: {len(missing)} ids not found among the {len(examples)} usable examples: "
            f"{', '.join(missing[:10])}. Ids are compared as text with the sft.id_field column "
            f"(or the row number when it is unset)."
        )
    return [by_id[i] for i in ids]


def length_stats(lengths: Sequence[int]) -> dict[str, float]:
    """count, min, median, p90 (nearest rank), max and mean of token lengths; {} when empty."""
    if not lengths:
        return {}
    ordered = sorted(lengths)
    return {
        "count": len(ordered),
        "min": ordered[0],
        "median": statistics.median(ordered),
        "p90": ordered[math.ceil(0.9 * len(ordered)) - 1],
        "max": ordered[-1],
        "mean": round(statistics.fmean(ordered), 1),
    }
