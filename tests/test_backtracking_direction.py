"""rlsp steer backtracking: window positions before backtracking sentences, the difference of
means, Cohen's d, and the command end to end on a tiny model."""

from __future__ import annotations

import json

import pytest
import torch

from rlsp.analysis.behaviours import MarkerDetector
from rlsp.analysis.rollout_schema import Sample
from rlsp.cli import main
from rlsp.modeling.causal_lm import load_causal_lm
from rlsp.steering.backtracking_direction import (
    Activations,
    cohens_d,
    difference_of_means,
    encode_with_positions,
)
from rlsp.steering.vectors import SteeringVectors


def test_window_is_the_tokens_before_each_backtracking_sentence(tiny_model_dir):
    _, tokenizer = load_causal_lm(str(tiny_model_dir), device="cpu")
    completion = "The answer is 19. " * 4 + "Wait, I made a mistake."
    ids, positions = encode_with_positions(tokenizer, Sample(completion, prompt="What is 12 + 7?"), MarkerDetector(),
                                           (-3, -1), max_tokens=500)
    prompt_len = len(ids) - len(tokenizer(completion, add_special_tokens=False)["input_ids"])
    offsets = tokenizer(completion, add_special_tokens=False, return_offsets_mapping=True)["offset_mapping"]
    wait = next(t for t, (_, end) in enumerate(offsets) if end > completion.index("Wait"))
    assert positions.window == [prompt_len + wait - 3, prompt_len + wait - 2, prompt_len + wait - 1]
    assert sorted(positions.window + positions.other) == list(range(prompt_len, len(ids)))  # completion only
    # the control: the same window before each plain sentence ("The answer is 19." at chars 18, 36, 54)
    plain = [next(t for t, (_, end) in enumerate(offsets) if end > c) for c in (18, 36, 54)]
    expected = {prompt_len + t + o for t in plain for o in (-3, -2, -1)} - set(positions.window)
    assert positions.control == sorted(expected) and expected
    cut = encode_with_positions(tokenizer, Sample(completion), MarkerDetector(), (-3, -1), max_tokens=wait)[1]
    assert cut.window == []  # the sentence lies beyond max_tokens


def test_difference_of_means_and_cohens_d_by_hand():
    # one layer, hidden size 2; window positions at x = 2 and 4, other positions at x = 0, 0, 0, 2
    acts = Activations(window=[torch.tensor([[[2.0, 1.0]]]), torch.tensor([[[4.0, 1.0]]])],
                       other=[torch.tensor([[[0.0, 1.0]], [[0.0, 1.0]]]), torch.tensor([[[0.0, 1.0]], [[2.0, 1.0]]])])
    vectors = difference_of_means(acts)
    assert vectors.tolist() == [[2.5, 0.0]]  # means (3, 1) - (0.5, 1)
    # projections on (1, 0): window 2, 4 (var 2); other 0, 0, 0, 2 (var 1); pooled sqrt((2*1 + 1*3)/4)
    assert cohens_d(acts, vectors).item() == pytest.approx(2.5 / (5 / 4) ** 0.5)


def test_steer_backtracking_end_to_end(tmp_path, tiny_model_dir, capsys):
    rows = []
    for step in (1, 2, 3):
        for i in range(3):
            rows.append({"schema_version": 1, "step": step, "prompt": f"What is {i} + 7?", "trained_reward": 0.0,
                         "completion": f"So {i} + 7 = {i + 7}. " * 3 + "Wait, that's not right. Let me verify.",
                         "rewards": {"verifier": 1.0}, "length": 30})
    texts = tmp_path / "rollouts.jsonl"
    texts.write_text("".join(json.dumps(r) + "\n" for r in rows))
    out = tmp_path / "bt" / "vectors.safetensors"
    code = main(["steer", "backtracking", str(texts), "--model", str(tiny_model_dir), "--output", str(out),
                 "--window", "-4", "-2", "--heldout", "0.34"])
    assert code == 0
    vectors = SteeringVectors.load(out)
    assert vectors.vectors.shape == (2, 32) and vectors.info["trait"] == "backtracking"
    report = json.loads(out.with_suffix(".json").read_text())
    assert report["fit"]["texts"] == 6 and report["heldout"]["texts"] == 3
    assert report["fit"]["window_positions"] == 6 * 3 and report["layer"] in (0, 1)
    assert len(report["d_heldout_by_layer"]) == 2
    assert report["heldout_d"] == report["d_heldout_by_layer"][report["layer"]]
    assert list(report["projection_by_step_texts"]) == ["1", "2", "3"]
    assert report["heldout"]["control_positions"] > 0 and "heldout_d_window_vs_control" in report
    assert "Cohen's d on 3 held-out texts" in capsys.readouterr().out


@pytest.mark.parametrize(("args", "message"), [
    (["--window", "-8", "-12"], "--window: FIRST (-8) must not be after LAST (-12)"),
    (["--heldout", "1.5"], "--heldout: a share between 0 and 1"),
    (["--output", "v.pt"], "--output: name a .safetensors file"),
    (["--layer", "9"], "--layer: 9 is out of range; the model has decoder layers 0..1"),
])
def test_steer_backtracking_errors(tmp_path, tiny_model_dir, capsys, args, message):
    texts = tmp_path / "t.jsonl"
    texts.write_text("".join(json.dumps({"q": "x", "a": f"Wait {i}."}) + "\n" for i in range(4)))
    code = main(["steer", "backtracking", str(texts), "--model", str(tiny_model_dir), "--text-field", "a", *args])
    assert code == 2 and message in capsys.readouterr().err


def test_steer_backtracking_needs_texts_that_backtrack(tmp_path, tiny_model_dir, capsys):
    texts = tmp_path / "t.jsonl"
    texts.write_text("".join(json.dumps({"a": "So 2 + 2 = 4."}) + "\n" for _ in range(5)))
    assert main(["steer", "backtracking", str(texts), "--model", str(tiny_model_dir), "--text-field", "a"]) == 2
    assert "0 of 5 texts have a backtracking sentence" in capsys.readouterr().err
