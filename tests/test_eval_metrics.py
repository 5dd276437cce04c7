"""pass@k and maj@k against values worked out by hand."""

from __future__ import annotations

from math import comb

import pytest

from rlsp.eval.metrics import answer_key, maj_at_k, majority_vote, pass_at_k


@pytest.mark.parametrize(
    "n, c, k, expected",
    [
        (5, 2, 2, 0.7),  # 1 - C(3,2)/C(5,2) = 1 - 3/10
        (5, 2, 1, 0.4),  # pass@1 = c/n
        (4, 1, 2, 0.5),  # 1 - C(3,2)/C(4,2) = 1 - 3/6
        (10, 3, 5, 1 - 21 / 252),  # 1 - C(7,5)/C(10,5)
        (5, 0, 3, 0.0),
        (5, 5, 1, 1.0),
        (5, 4, 2, 1.0),  # n - c < k: every pair holds a correct sample
        (3, 1, 3, 1.0),
    ],
)
def test_pass_at_k_by_hand(n, c, k, expected):
    assert pass_at_k(n, c, k) == pytest.approx(expected, abs=1e-12)


def test_pass_at_k_matches_binomials_and_stays_finite_for_large_n():
    for n in range(1, 12):
        for c in range(n + 1):
            for k in range(1, n + 1):
                assert pass_at_k(n, c, k) == pytest.approx(1 - comb(n - c, k) / comb(n, k), abs=1e-12)
    # C(2000, 1000) overflows a float; the product form does not form it.
    assert 0.0 < pass_at_k(2000, 1, 1000) == pytest.approx(0.5)


@pytest.mark.parametrize(
    "n, c, k, message",
    [(3, 4, 1, "0 <= c <= n, got n=3, c=4"), (3, -1, 1, "0 <= c <= n, got n=3, c=-1"),
     (3, 1, 0, "1 <= k <= n, got n=3, k=0"), (3, 1, 4, "1 <= k <= n, got n=3, k=4")],
)
def test_pass_at_k_rejects_impossible_counts(n, c, k, message):
    with pytest.raises(ValueError, match=message):
        pass_at_k(n, c, k)


@pytest.mark.parametrize(
    "answer, key",
    [
        ("025", "25"),
        ("25", "25"),
        (" $25$ ", "25"),
        ("25.0", "25"),
        ("25.", "25"),
        ("1,000", "1000"),
        ("-0.50", "-0.5"),
        ("\\frac{1}{2}", "\\frac{1}{2}"),
        ("\\left( 1, 2 \\right)", "(1,2)"),
        ("", None),
        (None, None),
    ],
)
def test_answer_key(answer, key):
    assert answer_key(answer) == key


def test_majority_vote_counts_equal_answers_and_breaks_ties_by_first_appearance():
    assert majority_vote(["3", "5", "5", "3", "7"]) == 0  # 3 and 5 tie with two votes: 3 came first
    assert majority_vote(["3", "5", "05", "3", "5"]) == 1  # "5" x3 beats "3" x2
    assert majority_vote([None, "4", None]) == 1  # samples without an answer do not vote
    assert majority_vote([None, None]) is None


def test_maj_at_k_uses_the_first_k_samples_and_the_winner_verdict():
    answers = ["7", "9", "9", "7", "7"]
    correct = [True, False, False, True, True]
    assert maj_at_k(answers, correct, 1) is True  # "7"
    assert maj_at_k(answers, correct, 3) is False  # "9" x2 beats "7"
    assert maj_at_k(answers, correct, 4) is True  # 2-2 tie: "7" appeared first
    assert maj_at_k(answers, correct, 5) is True  # "7" x3
    assert maj_at_k([None, None], [False, False], 2) is False
    with pytest.raises(ValueError, match="need 1 <= k <= 5 samples, got k=6"):
        maj_at_k(answers, correct, 6)


def record(problem: int, sample: int, correct: bool, parsed: str | None, level: int) -> dict:
    return {
        "problem_index": problem, "sample_index": sample, "correct": correct, "parsed": parsed,
        "boxed": parsed is not None, "finish_reason": "stop" if parsed else "length", "length": 10 + sample,
        "columns": {"level": level},
    }


def test_eval_metrics_is_flat_and_per_group():
    from rlsp.eval.metrics import eval_metrics

    records = [
        record(0, 0, True, "4", 1), record(0, 1, False, "5", 1), record(0, 2, True, "04", 1),
        record(1, 0, False, "7", 10), record(1, 1, False, None, 10), record(1, 2, False, "7", 10),
    ]
    flat = eval_metrics(records, k=[1, 2, 3], group_by=["level"])
    assert flat["eval/accuracy"] == pytest.approx(2 / 6)
    assert flat["eval/pass@1"] == pytest.approx((2 / 3 + 0) / 2)
    assert flat["eval/pass@2"] == pytest.approx((1.0 + 0) / 2)  # problem 0: C(1,2) = 0 wrong pairs
    assert flat["eval/maj@2"] == pytest.approx(0.5)  # "4" vs "5" tie: "4" came first, correct
    assert flat["eval/maj@3"] == pytest.approx(0.5)  # "4" and "04" are one answer
    assert flat["eval/boxed_rate"] == pytest.approx(5 / 6)
    assert flat["eval/truncation_rate"] == pytest.approx(1 / 6)
    assert flat["eval/mean_length"] == pytest.approx(11.0)
    assert flat["eval/level=1/pass@3"] == 1.0 and flat["eval/level=10/pass@3"] == 0.0
    assert flat["eval/level=10/problems"] == 1.0
    assert all(isinstance(v, float) for v in flat.values())
    assert list(flat).index("eval/level=1/accuracy") < list(flat).index("eval/level=10/accuracy")  # numeric order
