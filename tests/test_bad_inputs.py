"""A new user's mistakes against the real CLI: each gives exit status 2, one line naming the
file or field and the fix, and no traceback; validate finds what the command would. Also the
top-level handler (--debug, Ctrl-C) and what accelerate launches rlsp refuses."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from test_training import make_recipe
from tiny_models import save_tiny_lm

import rlsp
from rlsp.cli import main
from rlsp.errors import ConfigError

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture
def folder(tmp_path, tiny_model_dir):
    """Recipes and broken files of the cases below."""
    (tmp_path / "eval.yaml").write_text(
        f"run: {{output_dir: {tmp_path / 'out'}}}\nmodel: {{name_or_path: {tiny_model_dir}, device: cpu}}\n"
        "data: {split: heldout, arith: {levels: [2], heldout_size: 2, train_size: 8}}\n"
        "generation: {max_new_tokens: 2}\n")
    (tmp_path / "not_a_model").mkdir()
    (tmp_path / "not_a_model" / "notes.txt").write_text("weights are elsewhere")
    (tmp_path / "fake.parquet").write_text("not parquet")
    (tmp_path / "broken.jsonl").write_text('{"question": "1 + 1?", "answer": "2"}\n{"question": \n')
    (tmp_path / "a_file").write_text("")
    (tmp_path / "empty.yaml").write_text("")
    return tmp_path


CASES = [
    # (command line after "rlsp", what the one line must say)
    (["validate", "{d}/missing.yaml"], "recipe file '{d}/missing.yaml' not found"),
    (["validate", "{d}"], "is a folder; give a recipe's YAML file (it holds empty.yaml, eval.yaml)"),
    (["train"], "give a recipe file, e.g. rlsp train recipes/demo_rlsp.yaml"),
    (["validate", "{d}/empty.yaml"], ("data.split: the arithmetic task has splits 'train' and 'heldout', not "
                                      "'test' (the default, meant for files and hub datasets)")),
    (["validate", "{d}/eval.yaml", "model.name_or_path={d}/not_a_model"],
     "model.name_or_path: '{d}/not_a_model' is not a model folder: it has no config.json (it holds notes.txt)"),
    (["eval", "{d}/eval.yaml", "model.name_or_path={d}/not_a_model"], "is not a model folder"),
    (["validate", "{d}/eval.yaml", "model.device=gpu"], "eval.yaml: model.device: String should match pattern"),
    (["validate", "{d}/eval.yaml", "data.source={d}/fake.parquet"], "fake.parquet: not a readable parquet file"),
    (["validate", "{d}/eval.yaml", "data.source={d}/broken.jsonl"],
     ("broken.jsonl: line 2 is not a JSON object (Expecting value: line 1 column 14 (char 13)). Fix the line, "
      "or set data.on_bad_row=skip")),
    (["validate", "{d}/eval.yaml", "run.output_dir={d}/a_file"], "run.output_dir: {d}/a_file is a file, not a folder"),
    (["eval", "{d}/eval.yaml", "run.output_dir={d}/a_file"], "run.output_dir: {d}/a_file is a file, not a folder"),
    (["validate", "{d}/eval.yaml", "verifier.kwargs.answer_format=boxd"], "answer_format 'boxd' is unknown"),
    (["validate", "{d}/eval.yaml", "--for", "train", "rewards=[{function: math, channel: verifier}]",
      "data.split=train", "heldout.source={d}/gone.jsonl"], "heldout.source: dataset file '{d}/gone.jsonl' not found"),
    # a flag between the recipe and the overrides; the check after loading names the recipe file
    (["validate", "{d}/eval.yaml", "--for", "train", "rewards=[{function: math, channel: verifier}]",
      "data.split=train", "train.minibatch_size=3"],
     "{d}/eval.yaml: train.minibatch_size (3) must be a multiple of train.micro_batch_size (4)"),
    (["validate", "{d}/eval.yaml", "model.lora.enabled=true", "model.lora.target_modules=[qkv]", "--for", "sft"],
     "model.lora.target_modules"),
    # settings that would run and train nothing
    (["validate", "{d}/eval.yaml", "--for", "train", "rewards=[{function: math, channel: verifier}]",
      "data.split=train", "train.minibatch_size=16", "train.steps=2", "train.critic_warmup_steps=2"],
     "train.critic_warmup_steps (2) covers all 2 train.steps: the policy would never be updated"),
    (["validate", "{d}/eval.yaml", "--for", "train", "rewards=[{function: math, channel: verifier}]",
      "data.split=train", "train.advantage_estimator=grpo", "train.samples_per_prompt=4", "train.kl.placement=loss",
      "train.minibatch_size=16", "generation.temperature=0"],
     "generation.temperature: 0 makes the 4 samples of a prompt identical (greedy), so 'grpo' advantages are all zero"),
    (["validate", "{d}/eval.yaml", "--for", "train", "rewards=[{function: length, channel: exploration}]",
      "data.split=train", "train.minibatch_size=16", "train.reward.alpha.start=1"],
     "train.reward.alpha: 1 trains on the verifier channel alone, but no reward function feeds it"),
    (["inspect", "{d}/not_a_model"], "found no logged completions (it holds notes.txt)"),
    (["steer", "backtracking", "{d}/broken.jsonl", "--model", "{d}/not_a_model", "--text-field", "a"],
     "broken.jsonl: line 1: no field 'a' (--text-field); its fields are answer, question"),
]


@pytest.mark.parametrize(("argv", "expected"), CASES, ids=[" ".join(c[0][:3]) for c in CASES])
def test_mistakes_give_one_line_naming_the_fix(folder, capsys, argv, expected):
    argv = [a.replace("{d}", str(folder)) for a in argv]
    code = main(argv)  # an exception here (a traceback for the user) fails the test
    err = capsys.readouterr().err
    assert code == 2, err
    assert expected.replace("{d}", str(folder)) in err, err
    assert "Traceback" not in err and len(err.strip().splitlines()) <= 2, err


def test_debug_shows_the_traceback(folder, monkeypatch):
    with pytest.raises(ConfigError, match="model.device"):
        main(["validate", str(folder / "eval.yaml"), "--debug", "model.device=gpu"])
    monkeypatch.setenv("RLSP_DEBUG", "1")
    with pytest.raises(ConfigError):
        main(["validate", str(folder / "eval.yaml"), "model.device=gpu"])


def test_resume_with_another_model_names_the_mismatch(tmp_path, tiny_model_dir, capsys):
    from rlsp.training.ppo_trainer import Trainer

    path, recipe = make_recipe(tmp_path, tiny_model_dir, "train.steps=1")
    Trainer(recipe, path).fit()
    other = tmp_path / "wider"
    from tiny_models import build_model, build_tokenizer

    tokenizer = build_tokenizer()
    build_model(len(tokenizer), hidden_size=48).save_pretrained(other)
    tokenizer.save_pretrained(other)
    code = main(["train", str(path), "--resume", f"model.name_or_path={other}", "train.steps=2"])
    err = capsys.readouterr().err
    assert code == 2 and "--resume:" in err and "does not fit this recipe's model" in err, err
    assert "step-000001" in err and "Traceback" not in err


def test_ctrl_c_says_where_the_run_stopped_and_how_to_resume(tmp_path, tiny_model_dir):
    path, _ = make_recipe(tmp_path, tiny_model_dir)
    overrides = ["train.steps=50", "train.checkpoint_every=1"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    run = subprocess.Popen([sys.executable, "-m", "rlsp", "train", str(path), *overrides], env=env,
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 120
    while not (tmp_path / "run" / "checkpoints" / "step-000001").exists():
        assert run.poll() is None and time.time() < deadline, run.communicate()
        time.sleep(0.05)
    run.send_signal(signal.SIGINT)
    _, err = run.communicate(timeout=60)
    assert run.returncode == 130, err
    assert "rlsp train: interrupted (Ctrl-C). The latest checkpoint is" in err and "Traceback" not in err, err
    assert f"Continue with: rlsp train {path} train.steps=50 train.checkpoint_every=1 --resume" in err, err


def test_a_deepspeed_launch_zero3_cannot_honour_is_refused_once_before_loading(tmp_path, tiny_model_dir):
    overrides = ["train.samples_per_prompt=2", "train.dynamic_sampling=true"]
    path, _ = make_recipe(tmp_path, tiny_model_dir, *overrides)
    accelerate = Path(sys.executable).with_name("accelerate")
    result = subprocess.run([str(accelerate), "launch", "--config_file", "launch/zero3.yaml", "--num_processes", "2",
                             "-m", "rlsp", "train", str(path), *overrides], cwd=REPO, capture_output=True, text=True,
                            timeout=300, check=False, env={**os.environ, "OMP_NUM_THREADS": "1"})
    output = result.stdout + result.stderr
    assert result.returncode != 0
    assert output.count("run.yaml: train.dynamic_sampling: under ZeRO-3 every process") == 1, output[-3000:]
    assert "Loading weights" not in output
    assert not rlsp_frames(output)  # a traceback, if any, is the launcher's own


def rlsp_frames(output: str) -> list[str]:
    """Traceback lines that point into rlsp's own package, wherever the repository was cloned
    (a clone named ``rlsp`` has ``rlsp/`` in every path, the launcher's frames included)."""
    package = Path(rlsp.__file__).resolve().parent
    files = re.findall(r'File "([^"]+)"', output)
    return [f for f in files if Path(f).resolve().is_relative_to(package)]


def test_launch_checks_read_what_accelerate_passed(monkeypatch, tmp_path):
    from rlsp.launch_setup import check_launch, check_world
    from rlsp.training.deepspeed_launch import launch_config

    monkeypatch.setenv("ACCELERATE_USE_DEEPSPEED", "true")
    check_launch("train")  # rlsp train runs under DeepSpeed
    monkeypatch.setenv("ACCELERATE_DEEPSPEED_CONFIG_FILE", "launch/ds_zero2.json")
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ConfigError, match="deepspeed_config_file 'launch/ds_zero2.json', which is not there"):
        check_launch("eval")
    with pytest.raises(ConfigError, match="deepspeed_config_file 'launch/ds_zero2.json', which is not there"):
        launch_config()
    (tmp_path / "launch").mkdir()
    (tmp_path / "launch" / "ds_zero2.json").write_text('{"zero_optimization": {"stage": 2,}}')
    with pytest.raises(ConfigError, match=r"launch/ds_zero2.json: not valid JSON .*line 1"):
        launch_config()
    monkeypatch.setenv("ACCELERATE_MIXED_PRECISION", "bf16")  # accelerate launch --mixed_precision bf16
    with pytest.raises(ConfigError, match="mixed_precision=bf16 .*rlsp eval takes its precision from model.precision"):
        check_launch("eval")
    monkeypatch.setenv("ACCELERATE_MIXED_PRECISION", "no")
    monkeypatch.setenv("WORLD_SIZE", "2")
    with pytest.raises(ConfigError, match="started 2 processes .* but accelerate set up 1 .*DeepSpeed without a GPU"):
        check_world(1, True, "eval")
    check_world(2, True, "eval")


def test_tiny_model_fixture_is_a_model(tiny_model_dir, tmp_path):
    # guards the cases above: a real model folder passes the model check that not_a_model fails
    from rlsp.modeling.causal_lm import model_config

    assert model_config(str(tiny_model_dir), local_only=True).model_type == "llama"
    assert model_config(str(save_tiny_lm(tmp_path / "again")), local_only=True).hidden_size == 32


def test_a_failed_checkpoint_write_says_what_is_left_and_keeps_the_earlier_one(tmp_path, monkeypatch):
    import torch

    from rlsp.training import checkpoint as ckpt

    first = ckpt.save_checkpoint(tmp_path, 1, {"w": torch.ones(2)}, {"step": 1}, keep=3)

    def disk_full(*args, **kwargs):
        raise RuntimeError("[enforce fail at inline_container.cc:672] . unexpected pos 1185977536 vs 1185977488")

    monkeypatch.setattr(ckpt.torch, "save", disk_full)
    with pytest.raises(ckpt.CheckpointError, match=r"checkpoint of step 2 .* failed .*GiB free there.*"
                                                   r"latest complete checkpoint is step-000001.*--resume"):
        ckpt.save_checkpoint(tmp_path, 2, {"w": torch.ones(2)}, {"step": 2}, keep=3)
    assert ckpt.latest_checkpoint(tmp_path) == first
    assert not list((tmp_path / "checkpoints").glob(".tmp-*"))  # the half-written one is gone


@pytest.mark.parametrize(("command", "preflight"), [("train", "rlsp.training.preflight.prepare_training"),
                                                   ("eval", "rlsp.eval.checks.prepare_eval"),
                                                   ("sft", "rlsp.sft.warm_start.prepare_sft"),
                                                   ("steer", "rlsp.steering.extract.check_steer_recipe")])
def test_validate_runs_the_commands_own_preflight(folder, capsys, monkeypatch, command, preflight):
    """One function per command, called by the command and by ``rlsp validate``: they cannot drift."""
    calls = []

    def refuse(recipe, base_dir, *, fetch=True):  # steer's takes no fetch
        calls.append(fetch)
        raise ConfigError("refused by the preflight")

    monkeypatch.setattr(preflight, refuse)
    argv = [str(folder / "eval.yaml")]
    argv += {"train": ["rewards=[{function: math, channel: verifier}]", "data.split=train"],
             "sft": ["sft.max_steps=1"], "steer": ["steer.positive_system_prompt=Shout."]}.get(command, [])
    assert main(["validate", *argv, "--for", command]) == 2
    assert main(["steer", "extract", *argv] if command == "steer" else [command, *argv]) == 2
    assert capsys.readouterr().err.count("refused by the preflight") == 2
    if command != "steer":  # steer extract's checks read nothing from a hub
        assert calls == [False, True]  # validate downloads nothing; the command fetches what it needs


@pytest.mark.parametrize("argv", [["validate", "r.yaml", "--for", "deploy"], ["plan", "r.yaml"],
                                  ["eval", "--benchmark", "arith", "--k", "1,x"], ["ablate", "r.yaml", "--seeds", "x"]])
def test_argument_errors_are_one_line_with_the_way_to_help(argv, capsys):
    with pytest.raises(SystemExit) as exited:
        main(argv)
    err = capsys.readouterr().err
    assert exited.value.code == 2 and len(err.strip().splitlines()) == 1, err
    assert err.startswith(f"rlsp {argv[0]}: error: ") and err.rstrip().endswith(f"see rlsp {argv[0]} --help"), err
