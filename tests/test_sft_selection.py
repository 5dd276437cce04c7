"""Selecting N warm-start examples: each strategy picks what it says; length statistics."""

from __future__ import annotations

import pytest

from rlsp.errors import DataError
from rlsp.sft.example import SftExample
from rlsp.sft.selection import length_stats, select_examples

ROWS = [
    SftExample("a", "p", "r", difficulty=3.0, tokens=50),
    SftExample("b", "p", "r", difficulty=5.0, tokens=10),
    SftExample("c", "p", "r", difficulty=1.0, tokens=90),
    SftExample("d", "p", "r", difficulty=5.0, tokens=70),
    SftExample("e", "p", "r", difficulty=2.0, tokens=30),
]


def ids(examples):
    return [e.id for e in examples]


def test_longest_takes_most_tokens_first():
    assert ids(select_examples(ROWS, "longest", 3)) == ["c", "d", "a"]


def test_hardest_takes_largest_difficulty_ties_in_file_order():
    assert ids(select_examples(ROWS, "hardest", 3)) == ["b", "d", "a"]


def test_ids_in_the_order_given_and_compared_as_text():
    numbered = [SftExample(str(i), "p", "r") for i in range(1, 6)]
    assert ids(select_examples(numbered, "ids", None, [4, "2"])) == ["4", "2"]


def test_random_is_seeded_distinct_and_a_subset():
    first = select_examples(ROWS, "random", 3, seed=1)
    assert ids(first) == ids(select_examples(ROWS, "random", 3, seed=1))
    assert len(set(ids(first))) == 3 and set(ids(first)) <= set(ids(ROWS))
    picks = {tuple(ids(select_examples(ROWS, "random", 3, seed=s))) for s in range(10)}
    assert len(picks) > 1  # the seed matters


def test_n_none_keeps_everything():
    for strategy in ("random", "longest", "hardest"):
        assert sorted(ids(select_examples(ROWS, strategy, None))) == sorted(ids(ROWS))


def test_n_larger_than_the_data_is_an_error():
    with pytest.raises(DataError, match="sft.n is 6 but only 5"):
        select_examples(ROWS, "random", 6)


def test_unknown_and_repeated_ids_are_errors():
    with pytest.raises(DataError, match="not found.*zz"):
        select_examples(ROWS, "ids", None, ["a", "zz"])
    with pytest.raises(DataError, match="more than once"):
        select_examples(ROWS + [SftExample("a", "p", "r")], "ids", None, ["a"])


def test_hardest_without_difficulty_is_an_error():
    with pytest.raises(DataError, match="difficulty_field"):
        select_examples([SftExample("x", "p", "r")], "hardest", 1)


def test_length_stats_by_hand():
    stats = length_stats([10, 30, 50, 70, 90, 20, 40, 60, 80, 100])
    assert stats == {"count": 10, "min": 10, "median": 55.0, "p90": 90, "max": 100, "mean": 55.0}
    assert length_stats([]) == {}
