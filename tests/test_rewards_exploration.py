"""Exploration rewards: length, steps, backtracking, repetition; and length hacking caught."""

from __future__ import annotations

import json

import pytest
from rlsp_rewards import (
    BACKTRACKING_PHRASES,
    backtracking,
    count_backtracking,
    count_steps,
    length,
    length_linear,
    overlong,
    repeated_ngram_fraction,
    repetition,
    steps,
)
from rlsp_verifiers import math

from rlsp.errors import ConfigError


def call(fn, completions, **kwargs):
    return fn([""] * len(completions), completions, [""] * len(completions), **kwargs)


# --- length ------------------------------------------------------------------------------------


def test_length_uses_token_counts_when_given():
    assert call(length, ["a", "b", "c"], completion_lengths=[100, 1000, 0]) == [
        -10.0,
        -1.0,
        -1000.0,
    ]
    assert call(length, ["a"], C=50, completion_lengths=[100]) == [-0.5]
    assert call(length_linear, ["a", "b"], cap=1000, completion_lengths=[250, 4000]) == [0.25, 1.0]


def test_overlong_is_dapos_soft_punishment():
    # free up to 100 - 20 = 80 tokens, then -(L - 80) / 20, and -1 from 100 on
    lengths = [50, 80, 90, 100, 130]
    assert call(overlong, ["x"] * 5, max_tokens=100, cache_tokens=20, completion_lengths=lengths) == [
        0.0, 0.0, -0.5, -1.0, -1.0]
    with pytest.raises(ConfigError, match="overlong: cache_tokens must be between 1 and max_tokens - 1"):
        call(overlong, ["x"], max_tokens=100, cache_tokens=100, completion_lengths=[1])


def test_length_estimates_tokens_from_characters_before_boxed():
    # The paper's estimate: characters before \boxed, divided by 4.
    text = "x" * 399 + r" \boxed{5}" + "y" * 4000
    assert call(length, [text]) == [-1000 / 100]
    assert call(length, ["z" * 800]) == [-1000 / 200]
    assert call(length, [""]) == [-1000.0]  # empty: one token, no division by zero
    assert call(
        length, ["unused"], completion_lengths=[10], finish_reasons=["stop"], difficulty=["hard"]
    ) == [-100.0]


# --- steps -------------------------------------------------------------------------------------


def test_steps_counts_paragraphs_or_sentences():
    text = "First, set up.\n\nSecond: solve it. Then check it!\n\n  \n\nDone?"
    assert count_steps(text) == 3
    assert count_steps(text, unit="sentence") == 4
    assert call(steps, [text], max_steps=2) == [1.0]
    assert call(steps, [text, ""], max_steps=6) == [0.5, 0.0]
    with pytest.raises(ConfigError, match="unit"):
        count_steps(text, unit="line")


# --- backtracking ------------------------------------------------------------------------------


def test_backtracking_phrases():
    text = (
        "Wait, that is off. But wait, maybe not. Hmm. Let me double-check the sum. "
        "Alternatively, we could verify it directly. On second thought, I made a mistake."
    )
    # "But wait" counts once, not also as "wait".
    assert count_backtracking(text) == 8
    assert count_backtracking("They awaited the waiter; unverified hmmmm.") == 0  # word boundaries
    assert count_backtracking("WAIT. wait") == 2  # case-insensitive
    assert call(backtracking, [text, "Plain text."], cap=4) == [1.0, 0.0]
    assert call(backtracking, ["Wait."], cap=4) == [0.25]
    assert "alternatively" in BACKTRACKING_PHRASES


# --- repetition --------------------------------------------------------------------------------


def test_repetition_penalty():
    assert repeated_ngram_fraction("one two three four five six") == 0.0
    assert repeated_ngram_fraction("too short") == 0.0
    # 4 words x 3: 9 four-grams, of which the 4 distinct ones appear first -> 5/9 repeated.
    assert repeated_ngram_fraction("a b c d a b c d a b c d") == pytest.approx(5 / 9)
    assert repeated_ngram_fraction("A b, c d. a B c D") == pytest.approx(
        1 / 5
    )  # word-level, case-folded
    assert call(repetition, ["a b c d a b c d a b c d"], scale=2.0) == [pytest.approx(-10 / 9)]
    assert call(repetition, ["a b a b a b"], n=2) == [pytest.approx(-3 / 5)]


# --- length hacking and its guard --------------------------------------------------------------

SHORT = "\n\n".join(  # noqa: FLY002 -- one sentence a line reads better than one long literal
    [
        "We want the number of positive divisors of 360.",
        "First factor it: 360 = 8 * 45 = 2^3 * 3^2 * 5.",
        "A divisor picks an exponent for each prime independently.",
        "The exponent of 2 ranges over 0..3, giving 4 choices; for 3 over 0..2, giving 3 choices.",
        "The exponent of 5 is either 0 or 1, so 2 choices.",
        "Multiplying the independent choices gives 4 * 3 * 2 = 24 divisors.",
        (
            "As a sanity check, 1, 2, 3, 4, 5, 6, 8, 9, 10 and 12 all divide 360, and each pairs "
            "with a cofactor such as 360, 180, 120, 90, 72, 60, 45, 40, 36 and 30."
        ),
        (
            "Those are 20 divisors, and 15, 18, 20 and 24 with their cofactors 24, 20, 18 and 15 "
            "give the remaining four, for 24 in total."
        ),
        "Therefore the number of divisors is \\boxed{24}.",
    ]
)
PADDING = "Let me double check this result once more to be completely sure. "
HACKED = SHORT.replace("Therefore", PADDING * 150 + "\n\nTherefore")


def test_length_reward_is_hackable_by_repetition_and_the_guard_removes_the_gain():
    completions = [SHORT, HACKED]
    # Both are correct, so the verifier cannot tell them apart.
    assert [v.score for v in math(["q", "q"], completions, ["24", "24"])] == [1.0, 1.0]

    short_len, hacked_len = call(length, completions)  # paper's reward, C = 1000
    assert hacked_len > short_len  # padding pays under -C/|o| ...

    # ... by up to C/|o_short| (here about 5.9: the short text is about 170 estimated tokens).
    # The guard: repetition with n = 4 and scale = 10, weight 1 in the exploration channel beside
    # length (weight 1). Padding makes about 92% of the hacked text's 4-grams repeats, costing
    # about 9.2 > 5.9; the short text repeats none. In general the guard holds when
    # scale * repeated_fraction(hacked) > C / |o_short|.
    short_rep, hacked_rep = call(repetition, completions, n=4, scale=10.0)
    assert hacked_rep < -9.0 < -0.5 < short_rep

    # RLSP's sequence reward, alpha = 0.8: 0.8 * verifier + 0.2 * exploration.
    def total(verifier, exploration):
        return 0.8 * verifier + 0.2 * exploration

    assert total(1.0, hacked_len) > total(1.0, short_len)  # without the guard, the hack wins
    assert total(1.0, hacked_len + hacked_rep) <= total(
        1.0, short_len + short_rep
    )  # with it, it does not


# --- real R1-style traces ----------------------------------------------------------------------


def test_r1_trace_scores_high_on_exploration(shared_data):
    folder = shared_data / "limo_solution_traces"
    r1 = [json.loads(line) for line in (folder / "deepseek-r1-distill-qwen-32b.jsonl").open()][:5]
    instruct = {
        row["id"]: row for row in map(json.loads, (folder / "qwen2.5-32b-instruct.jsonl").open())
    }
    for row in r1:
        long_cot, plain = row["solution"], instruct[row["id"]]["solution"]
        assert count_backtracking(long_cot) > 0
        assert count_backtracking(long_cot) > count_backtracking(plain)
        assert call(steps, [long_cot]) >= [0.8]  # 50+ paragraphs of the default 50
        assert call(steps, [long_cot]) > call(steps, [plain])
        assert call(length, [long_cot]) > call(length, [plain])
        # Natural long reasoning is not mistaken for padding.
        assert call(repetition, [long_cot])[0] > -0.15
