"""Built-in long-CoT traces for the arithmetic task: correct, checked, some corrected, train split only."""

from __future__ import annotations

import re

import pytest
from rlsp_verifiers.answer_extraction import last_boxed

from rlsp.data.arithmetic import _is_heldout
from rlsp.sft.arith_traces import arith_traces, trace

OPS = {"+": lambda a, b: a + b, "-": lambda a, b: a - b, "*": lambda a, b: a * b}


def true_answer(question: str) -> str:
    a, op, b = re.fullmatch(r"What is (\d+) (.) (\d+)\?", question).groups()
    return str(OPS[op](int(a), int(b)))


@pytest.mark.parametrize("levels, size", [([1], 60), ([2, 3], 200), ([4], 200), ([5, 6], 200)])
def test_every_trace_is_right_checked_and_boxed(levels, size):
    traces = arith_traces(size, levels, seed=3, error_share=0.5)
    for t in traces:
        assert last_boxed(t.response) == true_answer(t.prompt), t.response
        assert "Let me check:" in t.response
        assert t.response.rstrip().endswith(f"\\boxed{{{true_answer(t.prompt)}}}.")


def test_error_share_is_respected_and_every_error_is_caught_then_corrected():
    traces = arith_traces(200, [2, 3, 4, 5], seed=0, error_share=0.3)
    with_error = [t for t in traces if "Wait, that's not right" in t.response]
    assert len(with_error) == 60
    for t in with_error:
        lines = t.response.splitlines()
        caught = lines.index(
            next(line for line in lines if line.startswith("Wait, that's not right"))
        )
        assert (
            lines[caught - 1].startswith("Let me check:") and ", not " in lines[caught - 1]
        )  # the check catches it
        checked = r", not (\d+)\." if " * " in t.prompt else r"Let me check: (\d+) "
        assert re.search(checked, lines[caught - 1])[1] != true_answer(
            t.prompt
        )  # the slip changed the result
        assert lines[-2].startswith("Let me check:") and lines[-2].endswith(
            "Correct."
        )  # the fix passes the check
        assert lines[-3] == f"So {t.prompt[8:-1]} = {true_answer(t.prompt)}."
    assert all("Wait" not in t.response for t in traces if t not in with_error)
    assert not [t for t in arith_traces(50, [2], seed=0, error_share=0.0) if "Wait" in t.response]


def test_only_train_split_problems_and_seeded():
    traces = arith_traces(300, [2, 3], seed=7, error_share=0.25)
    assert not [t.prompt for t in traces if _is_heldout(t.prompt)]
    assert traces == arith_traces(300, [2, 3], seed=7, error_share=0.25)
    assert traces != arith_traces(300, [2, 3], seed=8, error_share=0.25)


def test_column_addition_with_carry_by_hand():
    assert trace("What is 47 + 38?") == (
        "Units: 7 + 8 = 15, carry 1.\n"
        "Tens: 4 + 3 + 1 = 8.\n"
        "So 47 + 38 = 85.\n"
        "Let me check: 85 - 38 = 47. Correct.\n"
        "The answer is \\boxed{85}."
    )
    assert trace("What is 47 + 38?", with_error=True) == (
        "Units: 7 + 8 = 15, carry 1.\n"
        "Tens: 4 + 3 = 7.\n"
        "Let me check: 75 - 38 = 37, not 47.\n"
        "Wait, that's not right: I forgot the carry.\n"
        "Tens: 4 + 3 + 1 = 8.\n"
        "So 47 + 38 = 85.\n"
        "Let me check: 85 - 38 = 47. Correct.\n"
        "The answer is \\boxed{85}."
    )
