"""A researcher's mistakes with hooks, steering, inspect, sft, ablate and plan, against the real CLI:
each gives exit status 2 and one line naming the field, flag or file and the fix, before any model
loads or run starts, and no traceback. Cases found by the bad-input battery (see the branch's
report); tests/test_bad_inputs.py has the recipe and eval mistakes."""

from __future__ import annotations

import json

import pytest
import torch

from rlsp.cli import main
from rlsp.steering.vectors import SteeringVectors, architecture_of


@pytest.fixture(scope="module")
def folder(tmp_path_factory, tiny_model_dir):
    """Recipes for each command on the tiny model, steering vector files and broken inputs."""
    from transformers import AutoConfig

    d = tmp_path_factory.mktemp("bad-inputs")
    model = f"model: {{name_or_path: {tiny_model_dir}, device: cpu, precision: fp32}}\n"
    arith = "data: {source: builtin:arith, split: %s, arith: {levels: [2], train_size: 8, heldout_size: 2}}\n"
    (d / "eval.yaml").write_text(f"run: {{output_dir: {d / 'out'}}}\n{model}" + arith % "heldout")
    (d / "train.yaml").write_text(
        f"run: {{output_dir: {d / 'rl'}}}\n{model}" + arith % "train"
        + "generation: {temperature: 1.0, max_new_tokens: 4}\nrewards: [{function: math, channel: verifier}]\n"
        "train: {prompts_per_step: 2, samples_per_prompt: 2, minibatch_size: 4, micro_batch_size: 2, "
        "advantage_estimator: rloo, kl: {placement: loss}}\n")
    (d / "sft.yaml").write_text(f"run: {{output_dir: {d / 'sft'}}}\n{model}sft: {{max_steps: 1}}\n")
    (d / "steer.yaml").write_text(f"run: {{output_dir: {d / 'steer'}}}\n{model}" + arith % "heldout"
                                  + "steer: {positive_system_prompt: Answer in capitals.}\n")
    (d / "binary.yaml").write_bytes(bytes(range(128, 256)))
    (d / "binary.jsonl").write_bytes(bytes(range(128, 256)))
    (d / "syntax.yaml").write_text("backtracking: [wait\n")
    (d / "a_file").write_text("")
    (d / "qa.jsonl").write_text("".join(json.dumps({"question": f"{i} + 1?", "answer": str(i + 1)}) + "\n"
                                        for i in range(3)))
    (d / "responses.jsonl").write_text('{"question": "1 + 1?", "positive": "TWO"}\n')
    (d / "my_hooks.py").write_text("from rlsp.hooks import Hook\n\nclass Scaled(Hook):\n"
                                   "    def __init__(self, scale: float = 1.0):\n        self.scale = scale\n")
    config = AutoConfig.from_pretrained(tiny_model_dir)
    good = torch.randn(config.num_hidden_layers, config.hidden_size, generator=torch.Generator().manual_seed(0))
    for name, tensor in [("vec", good), ("nan", good.clone().index_fill_(1, torch.tensor([3]), float("nan"))),
                         ("zero", torch.zeros_like(good)),
                         ("zero_row", good.clone().index_fill_(0, torch.tensor([1]), 0))]:
        SteeringVectors(tensor, str(tiny_model_dir), architecture_of(config)).save(d / f"{name}.safetensors")
    wide = dict(architecture_of(config), hidden_size=config.hidden_size + 16)
    SteeringVectors(torch.randn(config.num_hidden_layers, config.hidden_size + 16), str(tiny_model_dir), wide) \
        .save(d / "wide.safetensors")
    row = {"schema_version": 1, "step": 1, "prompt": "1 + 1?", "completion": "Two. Wait, that's not right.",
           "rewards": {"verifier": 1.0}, "correct": True, "length": 8}
    (d / "rollouts.jsonl").write_text(json.dumps(row) + "\n")
    for field, value in [("step", "two"), ("length", -8), ("correct", "yes"), ("rewards", [1.0])]:
        (d / f"bad_{field}.jsonl").write_text(json.dumps({**row, field: value}) + "\n")
    return d


V = "vectors: {d}/vec.safetensors"
ABLATE = ["ablate", "{d}/train.yaml", "--out", "{d}/abl"]
CASES = [
    # (command line after "rlsp", what the one line must say); {d}: the folder above
    # recipe values that load but break a run: negative or 65-bit seed, inf, betas >= 1, no {prompt}
    (["validate", "{d}/eval.yaml", "run.seed=-1"], "run.seed: Input should be greater than or equal to 0; got -1"),
    (["validate", "{d}/eval.yaml", "run.seed=4294967296"],
     "run.seed: Input should be less than or equal to 4294967295"),
    (["validate", "{d}/train.yaml", "train.actor_lr=.inf"], "train.actor_lr: Input should be a finite number; got inf"),
    (["validate", "{d}/eval.yaml", "generation.temperature=.nan"], "generation.temperature: Input should be a finite"),
    (["validate", "{d}/train.yaml", "train.adam_betas=[1.5,0.9]"], "train.adam_betas.0: Input should be less than 1"),
    (["validate", "{d}/eval.yaml", "data.prompt_template=Solve it."], "the template has no '{prompt}'"),
    (["validate", "{d}/steer.yaml", "steer.output=vectors/"], "steer.output: Value error, name a .safetensors file"),
    # unreadable files: a binary recipe, data file, log, markers file
    (["validate", "{d}/binary.yaml"], "binary.yaml: not a text file (byte 0 is not UTF-8)"),
    (["validate", "{d}/eval.yaml", "data.source={d}/binary.jsonl"], "binary.jsonl: line 1 is not UTF-8 text"),
    (["inspect", "{d}/binary.jsonl"], "binary.jsonl: line 1 is not UTF-8 text"),
    (["steer", "project", "{d}/vec.safetensors", "{d}/binary.jsonl"], "binary.jsonl: line 1 is not UTF-8 text"),
    (["inspect", "{d}/rollouts.jsonl", "--markers", "{d}/binary.yaml"],
     "--markers: {d}/binary.yaml is not a text file"),
    (["inspect", "{d}/rollouts.jsonl", "--markers", "{d}/syntax.yaml"], "is not valid YAML or JSON at line 2"),
    # hook kwargs: the constructor's types, finite numbers, the hook's own ranges; for train and sft
    (["validate", "{d}/train.yaml", f"hooks=[{{hook: pps, kwargs: {{{V}, layer: '1'}}}}]"],
     "hooks.0 (pps): kwargs.layer: Input should be a valid integer; got '1' (PreventativeSteering takes layer: int)"),
    (["validate", "{d}/train.yaml", f"hooks=[{{hook: pps, kwargs: {{{V}, layer: 0, coef: .nan}}}}]"],
     "hooks.0 (pps): kwargs.coef: nan is not a finite number"),
    (["validate", "{d}/train.yaml", "hooks=[{hook: pps, kwargs: {vectors: 5, layer: 0}}]"],
     "kwargs.vectors: Input should be a valid string; got 5"),
    (["validate", "{d}/train.yaml", f"hooks=[{{hook: gradient_diagnostics, kwargs: {{{V}, layer: 0, every: 0}}}}]"],
     "hooks.0 (gradient_diagnostics): kwargs.every: measure every N optimizer steps, N at least 1; got 0"),
    (["validate", "{d}/sft.yaml", f"hooks=[{{hook: gradient_diagnostics, kwargs: {{{V}, layer: 0, every: .inf}}}}]"],
     "kwargs.every: inf is not a finite number"),
    (["validate", "{d}/sft.yaml", "hooks=[{hook: inoculation_prompt, kwargs: {system_prompt: 5}}]"],
     "kwargs.system_prompt: Input should be a valid string; got 5"),
    (["validate", "{d}/train.yaml", "hooks=[{hook: inoculation_prompt, kwargs: {system_prompt: '  '}}]"],
     "kwargs.system_prompt: '  ' is blank"),
    (["validate", "{d}/train.yaml", "hooks=[{hook: {d}/my_hooks.py:Scaled, kwargs: {scale: big}}]"],
     "kwargs.scale: Input should be a valid number; got 'big' (Scaled takes scale: float)"),
    # steering vector files: NaN, all zeros, a zero layer; vectors of another model before weights load
    (["validate", "{d}/train.yaml", "hooks=[{hook: pps, kwargs: {vectors: {d}/nan.safetensors, layer: 0}}]"],
     "nan.safetensors holds NaN or infinite values (in the vectors of layers [0, 1])"),
    (["validate", "{d}/train.yaml", "hooks=[{hook: pps, kwargs: {vectors: {d}/zero.safetensors, layer: 0}}]"],
     "zero.safetensors holds only zeros"),
    (["validate", "{d}/train.yaml", "hooks=[{hook: pps, kwargs: {vectors: {d}/zero_row.safetensors, layer: 1}}]"],
     "kwargs.layer: the vector of layer 1 is all zeros"),
    (["steer", "project", "{d}/nan.safetensors", "{d}/rollouts.jsonl"], "vectors: {d}/nan.safetensors holds NaN"),
    (["steer", "project", "{d}/wide.safetensors", "{d}/rollouts.jsonl"], "vectors: the vectors have size 48"),
    # steer: a zero vector by construction, responses checked before loading, outputs checked before work
    (["validate", "{d}/steer.yaml", "steer.negative_system_prompt=Answer in capitals."],
     "steer.negative_system_prompt: the same as steer.positive_system_prompt"),
    (["steer", "extract", "{d}/steer.yaml", "steer.negative_system_prompt=Answer in capitals."],
     "steer.negative_system_prompt: the same as steer.positive_system_prompt"),
    (["validate", "{d}/steer.yaml", "steer.responses_file={d}/responses.jsonl"],
     "steer.responses_file: {d}/responses.jsonl: lines [1] lack a question, positive or negative text"),
    (["steer", "extract", "{d}/steer.yaml", "run.output_dir={d}/a_file"], "run.output_dir: {d}/a_file is a file"),
    (["steer", "project", "{d}/vec.safetensors", "{d}/rollouts.jsonl", "--limit", "0"], "--limit: at least 1; got 0"),
    (["steer", "project", "{d}/vec.safetensors", "{d}/rollouts.jsonl", "--batch-size", "0"],
     "--batch-size: at least 1"),
    (["steer", "project", "{d}/vec.safetensors", "{d}/rollouts.jsonl", "--output", "{d}"], "--output: {d} is a folder"),
    (["steer", "backtracking", "{d}/rollouts.jsonl", "--model", "{m}", "--window", "0", "4"],
     "--window: LAST (4) must be negative"),
    (["steer", "backtracking", "{d}/rollouts.jsonl", "--model", "{m}", "--output", "{d}/a_file/b.safetensors"],
     "--output: {d}/a_file is a file"),
    # inspect: fields of the wrong type, --out a file
    (["inspect", "{d}/bad_step.jsonl"], "bad_step.jsonl: line 1: field 'step' should be a whole number"),
    (["inspect", "{d}/bad_length.jsonl"], "field 'length' should be a token count, 0 or more; got -8"),
    (["inspect", "{d}/bad_correct.jsonl"], "field 'correct' should be true or false; got 'yes'"),
    (["inspect", "{d}/bad_rewards.jsonl"], "field 'rewards' should map each name to a number (or null); got [1.0]"),
    (["inspect", "{d}/rollouts.jsonl", "--out", "{d}/a_file"], "--out: {d}/a_file is a file"),
    # sft: a recipe written for another command; validate reads the rows rlsp sft will
    (["sft", "{d}/train.yaml"], "train.yaml: rewards: this recipe is for rlsp train"),
    (["sft", "{d}/steer.yaml"], "steer.yaml: steer: this recipe is for rlsp steer extract"),
    (["validate", "{d}/sft.yaml", "sft.source={d}/qa.jsonl", "sft.response_field=solutions"],
     "qa.jsonl: row 1 has no value for field 'solutions' (sft.response_field)"),
    (["validate", "{d}/sft.yaml", "sft.source={d}/qa.jsonl", "sft.response_field=answer", "sft.select=ids",
      "sft.ids=[9]"], "sft.ids: 1 ids not found among the 3 usable examples: 9"),
    # ablate: arms that would repeat runs, settings it replaces, flags without their partner (before any run)
    ([*ABLATE, "--set", "train.kl.coef=0.1,0.2", "--set", "train.kl.coef=0.3,0.4"],
     "--set train.kl.coef: given twice"),
    ([*ABLATE, "--set", "train.kl.coef=0.1,0.10"], "a value is repeated (0.1 and 0.10 are the same)"),
    ([*ABLATE, "--set", "run.seed=1,2"], "--set run.seed: rlsp ablate sets run.seed of every run"),
    ([*ABLATE, "--set", "model.name_or_path={m},{d}", "--sft", "{d}/sft.yaml"],
     "--set model.name_or_path: rlsp ablate sets model.name_or_path of every run itself (with --sft"),
    ([*ABLATE, "--set", "train.kl.coef=0.1,0.2", "--sft-set", "sft.epochs=2"],
     "--sft-set: there is no --sft recipe for it to change"),
    ([*ABLATE, "--set", "train.kl.coef=0.1,0.2", "--sft", "{d}/train.yaml"],
     "train.yaml: rewards: this recipe is for rlsp train"),
    # plan: plans rlsp train, so a recipe train refuses gets no plan
    (["plan", "{d}/sft.yaml", "--gpus", "1"], "rewards: rlsp plan sizes rlsp train runs"),
    (["plan", "{d}/train.yaml", "--gpus", "1", "train.minibatch_size=8"], "train.minibatch_size (8) must divide the"),
    (["plan", "{d}/train.yaml", "--gpus", "1", "--gpu-mem", "inf"], "--gpu-mem: GiB per GPU, a finite number"),
]


@pytest.mark.parametrize(("argv", "expected"), CASES, ids=[" ".join(c[0][:2] + c[0][-1:]) for c in CASES])
def test_mistakes_give_one_line_naming_the_fix(folder, tiny_model_dir, capsys, argv, expected):
    def place(text: str) -> str:
        return text.replace("{d}", str(folder)).replace("{m}", str(tiny_model_dir))

    code = main([place(a) for a in argv])  # an exception here (a traceback for the user) fails the test
    err = capsys.readouterr().err
    assert code == 2, err
    assert place(expected) in err, err
    assert "Traceback" not in err and len(err.strip().splitlines()) <= 2, err


def test_ablate_refusals_leave_no_runs(folder, capsys):
    # the refusals above come before the first run: nothing under the ablation's folder
    out = folder / "ablation"
    assert main(["ablate", str(folder / "train.yaml"), "--set", "run.output_dir=a,b", "--out", str(out)]) == 2
    assert "sets run.output_dir of every run itself" in capsys.readouterr().err
    assert not out.exists()
