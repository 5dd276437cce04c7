"""The LLM judge: score parsing, prompting, batching, and a tiny random model falling back."""

from __future__ import annotations

import importlib

import pytest
import torch
from rlsp_rewards.judge import judge, parse_score
from tiny_models import build_model, build_tokenizer

from rlsp.errors import ConfigError

# The package attribute `judge` is the function; the module is reached by its full name.
judge_module = importlib.import_module("rlsp_rewards.judge")



@pytest.mark.parametrize(
    ("reply", "scale", "expected"),
    [
        ("Score: 7/10", 10, 0.7),
        ("7 out of 10", 10, 0.7),
        ("0.7", 10, 0.7),
        ("**8**/10", 10, 0.8),
        ("**Score:** 6/10", 10, 0.6),
        ("Rating: 4/5", 5, 0.8),
        ("Rating: 4/5", 10, 0.8),  # an explicit denominator wins over the scale
        ("Score: 7", 10, 0.7),
        ("Final score = 4", 5, 0.8),
        ("Score: 8.5 / 10", 10, 0.85),
        ("score is 3 out of 5", 10, 0.6),
        ("Grade: 85%", 10, 0.85),
        ("70%", 10, 0.7),
        ("9", 10, 0.9),
        ("Score: 0.7", 10, 0.7),  # a decimal <= 1 is already a 0..1 score
        ("2/3 of the steps are sound, but overall... Score: 9/10", 10, 0.9),  # the keyword wins
        ("It tried 2 approaches. 6/10", 10, 0.6),
        ("Score: 10/10", 10, 1.0),
        ("Score: 0/10", 10, 0.0),
        ("Score: 12/10", 10, None),  # out of range
        ("Score: 5/0", 10, None),
        ("I cannot grade this.", 10, None),
        ("Score: N/10", 10, None),
        ("", 10, None),
        ("11", 10, None),
    ],
)
def test_parse_score(reply, scale, expected):
    score = parse_score(reply, scale)
    assert score == (pytest.approx(expected) if expected is not None else None)


class ScriptedLM:
    """Stands in for a causal LM: 'generates' a fixed reply per call and records its inputs."""

    device = torch.device("cpu")

    def __init__(self, tokenizer, replies):
        self.tokenizer, self.replies, self.inputs = tokenizer, list(replies), []

    def generate(self, input_ids, attention_mask, max_new_tokens, do_sample, pad_token_id):
        assert do_sample is False  # greedy
        self.inputs.append(self.tokenizer.batch_decode(input_ids, skip_special_tokens=False))
        batch = []
        for _ in range(len(input_ids)):
            reply = self.tokenizer(self.replies.pop(0), add_special_tokens=False)["input_ids"]
            batch.append(torch.tensor(reply))
        width = max(len(r) for r in batch)
        new = torch.full((len(batch), width), self.tokenizer.pad_token_id)
        for row, reply in zip(new, batch, strict=True):
            row[: len(reply)] = reply
        return torch.cat([input_ids, new], dim=1)


def test_judge_prompts_batches_and_parses():
    tokenizer = build_tokenizer()
    lm = ScriptedLM(tokenizer, ["Score: 8/10", "no grade here", "Score: 3/10"])
    scores = judge(
        ["What is 2+2?", "What is 3+3?", "What is 4+4?"],
        ["Wait, let me check: 2+2=4.", "6", "x" * 100],
        ["4", "6", "8"],
        model=(lm, tokenizer),
        batch_size=2,
        max_completion_chars=40,
    )
    assert scores == [0.8, 0.5, 0.3]
    assert [len(batch) for batch in lm.inputs] == [2, 1]
    first = lm.inputs[0][0]
    assert "<|im_start|>user" in first and first.replace("<|endoftext|>", "").endswith(
        "<|im_start|>assistant\n"
    )
    for rubric in (
        "Diversity of strategies",
        "Depth",
        "Creativity and novelty",
        "Persistence",
        "Do not judge whether",
    ):
        assert rubric in first
    assert "What is 2+2?" in first and "Wait, let me check: 2+2=4." in first
    assert (
        "[... 60 characters omitted ...]" in lm.inputs[1][0]
    )  # head and tail of a long completion


def test_judge_on_a_tiny_random_model_falls_back(tiny_model_dir):
    pytest.importorskip("rlsp.modeling.causal_lm")
    judge_module._loaded.clear()
    args = (["What is 2+2?"] * 3, ["Wait, 2+2=4. \\boxed{4}", "4", "Hmm. " * 50], ["4"] * 3)
    assert judge(*args, model=str(tiny_model_dir), max_new_tokens=8) == [0.5, 0.5, 0.5]
    assert (
        judge(*args[:2], args[2], model=str(tiny_model_dir), max_new_tokens=8, fallback=0.25)
        == [0.25] * 3
    )
    assert len(judge_module._loaded) == 1  # loaded once, reused


def test_judge_accepts_a_model_and_tokenizer_pair():
    tokenizer = build_tokenizer()
    model = build_model(len(tokenizer))
    assert judge(["q"] * 2, ["a", "b"], ["", ""], model=(model, tokenizer), max_new_tokens=8) == [
        0.5,
        0.5,
    ]


def test_judge_configuration_errors():
    tokenizer = build_tokenizer()
    with pytest.raises(ConfigError, match="template must contain"):
        judge(["q"], ["a"], [""], model=(None, tokenizer), template="Grade this.")
    with pytest.raises(ConfigError, match="model name or path"):
        judge(["q"], ["a"], [""], model=42)
