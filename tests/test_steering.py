"""rlsp steer extract and project on a tiny model: vectors equal the difference of mean
activations computed directly, projections equal a . v / |v|, files carry their metadata."""

from __future__ import annotations

import json

import pytest
import torch

from rlsp.cli import main
from rlsp.modeling.causal_lm import load_causal_lm
from rlsp.steering.activations import response_activations
from rlsp.steering.vectors import SteeringVectors

RESPONSES = [
    {"question": "What is 2 + 2?", "positive": "THE ANSWER IS 4.", "negative": "The answer is 4."},
    {"question": "What is 3 + 5?", "positive": "IT IS 8!", "negative": "It is 8."},
    {"question": "Name a colour.", "positive": "BLUE.", "negative": "Blue, I think."},
]


def steer_recipe(tmp_path, model_dir, *lines):
    path = tmp_path / "steer.yaml"
    path.write_text("\n".join([
        f"run: {{output_dir: {tmp_path / 'vectors'}}}",
        f"model: {{name_or_path: {model_dir}, device: cpu}}",
        "data: {source: builtin:arith, split: heldout, arith: {heldout_size: 3}}",
        "generation: {max_new_tokens: 6}",
        "steer:",
        "  trait: caps",
        "  positive_system_prompt: Always answer in capital letters.",
        "  negative_system_prompt: Answer in lower case.",
        *lines,
    ]) + "\n")
    return path


def test_extract_from_a_responses_file_is_the_difference_of_mean_activations(tmp_path, tiny_model_dir, capsys):
    (tmp_path / "responses.jsonl").write_text("".join(json.dumps(r) + "\n" for r in RESPONSES))
    path = steer_recipe(tmp_path, tiny_model_dir, "  responses_file: responses.jsonl")
    assert main(["steer", "extract", str(path)]) == 0
    assert "steering vectors for 'caps': 2 layers x 32, 3 questions" in capsys.readouterr().out
    vectors = SteeringVectors.load(tmp_path / "vectors" / "steering_vectors.safetensors")
    model, tokenizer = load_causal_lm(str(tiny_model_dir), device="cpu")

    def conversations(system):
        return [[{"role": "system", "content": system}, {"role": "user", "content": r["question"]}] for r in RESPONSES]

    positive = response_activations(model, tokenizer, conversations("Always answer in capital letters."),
                                    [r["positive"] for r in RESPONSES], batch_size=2)
    negative = response_activations(model, tokenizer, conversations("Answer in lower case."),
                                    [r["negative"] for r in RESPONSES], batch_size=3)
    torch.testing.assert_close(vectors.vectors, positive.mean(0) - negative.mean(0))
    assert vectors.architecture == {"model_type": "llama", "hidden_size": 32, "num_hidden_layers": 2,
                                    "vocab_size": model.config.vocab_size}
    assert vectors.info["trait"] == "caps" and vectors.info["questions"] == 3 and len(vectors.info["separation_d"]) == 2


def test_extract_generates_answers_under_each_prompt(tmp_path, tiny_model_dir):
    path = steer_recipe(tmp_path, tiny_model_dir)
    assert main(["steer", "extract", str(path)]) == 0
    rows = [json.loads(x) for x in (tmp_path / "vectors" / "steering_responses.jsonl").read_text().splitlines()]
    assert len(rows) == 3 and all(set(r) == {"question", "positive", "negative"} for r in rows)
    assert SteeringVectors.load(tmp_path / "vectors" / "steering_vectors.safetensors").vectors.shape == (2, 32)


def test_project_reports_a_dot_unit_v_per_layer_and_step(tmp_path, tiny_model_dir, capsys):
    (tmp_path / "responses.jsonl").write_text("".join(json.dumps(r) + "\n" for r in RESPONSES))
    steer_file = steer_recipe(tmp_path, tiny_model_dir, "  responses_file: responses.jsonl")
    assert main(["steer", "extract", str(steer_file)]) == 0
    rollouts = tmp_path / "rollouts.jsonl"
    rollouts.write_text("".join(json.dumps({"step": s, "prompt": r["question"], "completion": r[k]}) + "\n"
                                for s, k in ((1, "negative"), (2, "positive")) for r in RESPONSES))
    out = tmp_path / "proj.json"
    vectors_file = tmp_path / "vectors" / "steering_vectors.safetensors"
    assert main(["steer", "project", str(vectors_file), str(rollouts), "--model", str(tiny_model_dir),
                 "--output", str(out)]) == 0
    summary = json.loads(out.read_text())
    vectors = SteeringVectors.load(vectors_file)
    model, tokenizer = load_causal_lm(str(tiny_model_dir), device="cpu")
    conversations = [[{"role": "user", "content": r["question"]}] for r in RESPONSES]
    activations = response_activations(model, tokenizer, conversations, [r["positive"] for r in RESPONSES])
    expected = (activations[:, 1] @ vectors.unit(1)).mean()  # layer 1, step 2 (the positive answers)
    assert summary["texts"] == 6
    assert summary["mean_by_step_and_layer"]["2"][1] == pytest.approx(float(expected), abs=1e-3)
    assert "layer  1:" in capsys.readouterr().out


@pytest.mark.parametrize(
    "lines, message",
    [
        (["  positive_system_prompt: null"], "steer.positive_system_prompt: set the system prompt"),
        (["  responses_file: nowhere.jsonl"], "steer.responses_file: dataset file 'nowhere.jsonl' not found"),
    ],
)
def test_extract_errors(tmp_path, tiny_model_dir, capsys, lines, message):
    path = steer_recipe(tmp_path, tiny_model_dir)
    text = path.read_text()
    if lines[0].startswith("  positive"):
        text = text.replace("  positive_system_prompt: Always answer in capital letters.\n", "")
    path.write_text(text + "\n".join(lines) + "\n")
    assert main(["steer", "extract", str(path)]) == 2
    assert message in capsys.readouterr().err
