"""Answer extraction and the math verifier: equivalences, time limits off the main thread,
no eval of model text."""

from __future__ import annotations

import json
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
from rlsp_verifiers import Verdict, extract_answer, last_boxed, last_number, math, verify_math

from rlsp.errors import ConfigError

# Makes sympy compute 9^(9^(9^9)) forever: only a hard time limit stops it.
HANGS = r"The answer is \boxed{9^{9^{9^{9}}}}"


# --- answer extraction -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (r"so \boxed{\frac{1}{2}}.", r"\frac{1}{2}"),
        (r"\boxed{1} then \boxed{\dfrac{\sqrt{3}}{2}}", r"\dfrac{\sqrt{3}}{2}"),
        (r"\fbox{42}", "42"),
        (r"\boxed{\boxed{5}}", "5"),
        (r"$\boxed 7$", "7"),
        (r"\boxed{ x = 5 }", "x = 5"),
        (r"first \boxed{3}, then an unclosed \boxed{4", "3"),
        (r"\boxed{}", None),
        (r"\boxed{  }", None),
        ("no box here, 12", None),
    ],
)
def test_last_boxed(text, expected):
    assert last_boxed(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "{" * 200_000,
        "\\boxed{" * 100_000,
        "\\boxed{" * 100_000 + "}" * 100_000,
        "}" * 200_000,
        "\\boxed " * 100_000,
    ],
)
def test_extraction_is_linear_on_pathological_input(text):
    start = time.perf_counter()
    for answer_format in ("boxed", "last_number", "boxed_or_last_number"):
        extract_answer(text, answer_format)
    assert time.perf_counter() - start < 2.0


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("She makes $1,234.50 a day.", "1234.50"),
        ("The answer is -5.", "-5"),
        ("3-5", "5"),
        ("x2 and v1.5 are names", None),
        ("total: 18\n\n", "18"),
    ],
)
def test_last_number(text, expected):
    assert last_number(text) == expected


def test_answer_formats():
    text = r"Answer: 7. Then 12. Final: \boxed{3}"
    assert extract_answer(text, "boxed") == "3"
    assert extract_answer(text, "last_number") == "3"
    assert extract_answer("Answer: 7 then 12", "boxed_or_last_number") == "12"
    assert extract_answer(text, "pattern", r"Answer:\s*(\d+)") == "7"
    assert (
        extract_answer("ANSWER 9", "pattern", r"ANSWER \d") == "ANSWER 9"
    )  # no group: whole match
    assert extract_answer("  the text  ", "full") == "the text"
    with pytest.raises(ConfigError, match="answer_format 'xml' is unknown"):
        extract_answer(text, "xml")
    with pytest.raises(ConfigError, match="answer_pattern"):
        extract_answer(text, "pattern")
    with pytest.raises(ConfigError, match="not a valid regular expression"):
        extract_answer(text, "pattern", "(unclosed")


# --- math verifier -----------------------------------------------------------------------------

EQUIVALENCES = [
    (r"Thus \boxed{\frac{1}{2}}.", "0.5", 1.0),
    (r"\boxed{0.5}", r"\frac{1}{2}", 1.0),
    (r"\boxed{3/4}", "0.75", 1.0),
    (r"\boxed{x=5}", "5", 1.0),
    (r"\boxed{\frac{\frac{1}{2}}{3}}", r"\frac{1}{6}", 1.0),
    (r"\boxed{\dfrac{\sqrt{2}}{2}}", r"\frac{1}{\sqrt{2}}", 1.0),
    (r"\boxed{\left( 3, \frac{\pi}{2} \right)}", r"(3, \frac{\pi}{2})", 1.0),
    (r"\boxed{1,-2}", "-2, 1", 1.0),
    (r"\boxed{841}", "841", 1.0),
    (r"\boxed{6}", "5", 0.0),
    (r"\boxed{\frac{1}{3}}", "0.5", 0.0),
    (r"\boxed{x}", "y", 0.0),
]


def test_math_equivalences_in_one_batch():
    completions = [c for c, _, _ in EQUIVALENCES]
    references = [r for _, r, _ in EQUIVALENCES]
    verdicts = math([""] * len(completions), completions, references)
    for (completion, reference, expected), verdict in zip(EQUIVALENCES, verdicts, strict=True):
        assert verdict.score == expected, (completion, reference, verdict)
        assert verdict.parsed == last_boxed(completion)


def test_missing_or_empty_box_scores_missing_answer_score():
    for completion in ["The answer is 5.", r"The answer is \boxed{}."]:
        assert verify_math(completion, "5") == Verdict(0.0, None, "no answer found (boxed)")
        assert verify_math(completion, "5", missing_answer_score=-0.5).score == -0.5  # the paper's


def test_other_answer_formats_and_missing_reference():
    verdicts = math(
        ["", "", ""],
        ["so it is 0.75", "#### 3/4", "no reference"],
        ["3/4", r"\frac{3}{4}", ""],
        answer_format="pattern",
        answer_pattern=r"(?:is|####)\s*(\S+)",
    )
    assert [v.score for v in verdicts[:2]] == [1.0, 1.0]
    assert verdicts[2] is None  # no reference: not applicable
    assert verify_math("we get 12 apples", "12", answer_format="last_number").score == 1.0
    with pytest.raises(ConfigError, match="timeout_s"):
        verify_math(r"\boxed{1}", "1", timeout_s=0)


def test_time_limit_works_outside_the_main_thread():
    limit = 1.0
    start = time.perf_counter()
    with ThreadPoolExecutor(max_workers=1) as pool:
        verdicts = pool.submit(
            math,
            ["", "", ""],
            [HANGS, r"\boxed{\frac{1}{2}}", r"\boxed{3}"],
            ["5", "0.5", "4"],
            timeout_s=limit,
        ).result()
    elapsed = time.perf_counter() - start
    # Worker start-up and the restart after the kill take a few seconds on a loaded CPU.
    assert elapsed < limit + 20
    assert verdicts[0].score == 0.0 and verdicts[0].parsed is None
    assert "timed out after 1 s" in verdicts[0].reason
    # Only the overrunning sample failed.
    assert verdicts[1] == Verdict(1.0, r"\frac{1}{2}")
    assert verdicts[2] == Verdict(0.0, "3")


def test_model_text_is_never_evaluated(tmp_path):
    marker = tmp_path / "pwned"
    payloads = [
        rf"\boxed{{__import__('os').system('touch {marker}')}}",
        rf"The answer is __import__('os').system('touch {marker}')",
        rf"\boxed{{exec(\"open('{marker}', 'w')\")}}",
    ]
    verdicts = math([""] * 3, payloads, ["5"] * 3, answer_format="boxed_or_last_number")
    assert all(v.score == 0.0 for v in verdicts)
    assert not marker.exists()


def test_limo_traces_verify_correct(shared_data):
    path = shared_data / "limo_solution_traces" / "deepseek-r1-distill-qwen-32b.jsonl"
    rows = [json.loads(line) for line in path.open()][:8]
    verdicts = math(
        [r["question"] for r in rows],
        [r["solution"] for r in rows],
        [r["gold_answer"] for r in rows],
    )
    assert [v.score for v in verdicts] == [1.0] * len(rows)
    assert [v.parsed for v in verdicts] == [r["gold_answer"] for r in rows]
    # A wrong reference makes the same traces fail.
    wrong = math(
        [""] * len(rows),
        [r["solution"] for r in rows],
        [str(int(r["gold_answer"]) + 1) for r in rows],
    )
    assert [v.score for v in wrong] == [0.0] * len(rows)
