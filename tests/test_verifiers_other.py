"""Numeric, string-match and multiple-choice verifiers."""

from __future__ import annotations

import json

import pytest
from rlsp_verifiers import (
    Verdict,
    extract_choice,
    multiple_choice,
    normalize,
    numeric,
    string_match,
    to_number,
)

from rlsp.errors import ConfigError


def scores(verdicts):
    return [None if v is None else v.score for v in verdicts]


# --- numeric -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("$1,234", 1234.0),
        (r"\$18.00", 18.0),
        ("3/4", 0.75),
        (r"\frac{3}{4}", 0.75),
        ("18 dollars", 18.0),
        ("x = -5", -5.0),
        ("-.5", -0.5),
        ("1,000,000", 1e6),
        ("abc", None),
        ("1/0", None),
    ],
)
def test_to_number(text, value):
    assert to_number(text) == value


def test_numeric_gsm8k_style():
    completions = [
        "She sells 16 - 3 - 4 = 9 eggs and makes 9 * 2 = $18 every day.",
        r"So she makes \boxed{\$18}.",
        "She earns $1,800 a month... no: per day it is 17.9999999",
        "I am not sure.",
        "The answer is 19.",
        r"\boxed{18} (and 20 more words with 7 numbers)",
    ]
    verdicts = numeric(
        [""] * 6, completions, ["18", "18", "18", "18", "#### 18", "Janet ... #### 18"]
    )
    assert scores(verdicts) == [1.0, 1.0, 1.0, 0.0, 0.0, 1.0]
    assert verdicts[0].parsed == "18" and verdicts[1].parsed == r"\$18"
    assert verdicts[3] == Verdict(0.0, None, "no number found")
    assert numeric([""], ["about 18.5"], ["18"], abs_tol=0.5)[0].score == 1.0
    assert numeric([""], ["nothing"], ["no number"])[0] is None  # reference without a number
    assert numeric([""], ["nothing"], ["18"], missing_answer_score=-0.5)[0].score == -0.5


def test_numeric_on_gsm8k_solutions(shared_data):
    rows = [json.loads(line) for line in (shared_data / "gsm8k" / "test.jsonl").open()][:20]
    verdicts = numeric(
        [r["question"] for r in rows], [r["answer"] for r in rows], [r["answer"] for r in rows]
    )
    assert scores(verdicts) == [1.0] * len(rows)


# --- string match ------------------------------------------------------------------------------


def test_normalize():
    assert normalize(r"\text{New York.}") == "new york"
    assert normalize(r"\textbf{\text{Evelyn}}") == "evelyn"
    assert normalize("  Hello,\n  World! ") == "hello world"


def test_string_match():
    completions = [
        r"\boxed{\text{Evelyn}}",
        r"\boxed{evelyn.}",
        r"\boxed{Bob}",
        "no box",
        r"\boxed{Evelyn}",
    ]
    verdicts = string_match([""] * 5, completions, [r"\text{Evelyn}"] * 4 + [None])
    assert scores(verdicts) == [1.0, 1.0, 0.0, 0.0, None]
    assert verdicts[1].parsed == "evelyn."
    exact = string_match(
        [""] * 2, [r"\boxed{Evelyn}", r"\boxed{evelyn}"], ["Evelyn"] * 2, exact=True
    )
    assert scores(exact) == [1.0, 0.0]
    full = string_match([""], ["  Paris \n"], ["paris"], answer_format="full")
    assert scores(full) == [1.0]
    with pytest.raises(ConfigError):
        string_match([""], ["x"], ["x"], answer_format="whole")


# --- multiple choice ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "letter"),
    [
        ("So the answer is (C).", "C"),
        (r"Therefore \boxed{C}", "C"),
        (r"\boxed{\text{(B)}}", "B"),
        ("C) 42", "C"),
        ("A) foo\nB) bar\nThe answer is B because it is larger.", "B"),
        ("**Answer:** E", "E"),
        ("The final answer is option D", "D"),
        ("Answer: A", "A"),
        ("The answer is a prime number.", None),
        ("The answer is A bit unclear.", None),
        ("I have no idea.", None),
    ],
)
def test_extract_choice(text, letter):
    assert extract_choice(text) == letter


def test_multiple_choice():
    verdicts = multiple_choice(
        [""] * 4,
        ["The answer is (C)", "Answer: B", "hmm", "The answer is (C)"],
        ["C", "(c)", "C", "42"],
    )
    assert scores(verdicts) == [1.0, 0.0, 0.0, None]
    assert verdicts[1].parsed == "B"
    assert multiple_choice([""], ["The answer is (F)"], ["F"], choices="ABCDEF")[0].score == 1.0
    with pytest.raises(ConfigError, match="upper-case letters"):
        multiple_choice([""], ["x"], ["A"], choices="abc")
