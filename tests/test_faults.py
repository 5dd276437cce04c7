"""Faults end cleanly: one run per output folder, NaN kept out of weights and checkpoints, rewards
that hang or exit, damaged checkpoints and logs on --resume, SIGTERM, folders that take no writes."""

from __future__ import annotations

import errno
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from test_training import make_recipe, params

from rlsp.cli import main
from rlsp.config.train_schema import RewardSpec
from rlsp.errors import ConfigError
from rlsp.output_folder import LOCK_FILE, own_output_dir, release_output_dir
from rlsp.scoring.deadline import RewardAborted
from rlsp.scoring.reward_function import RewardFunction
from rlsp.training import checkpoint as ckpt
from rlsp.training.nonfinite import NonFiniteError
from rlsp.training.ppo_trainer import Trainer

ENV = {**os.environ, "OMP_NUM_THREADS": "1"}


def wait_for(path: Path, process: subprocess.Popen, seconds: float = 120) -> None:
    deadline = time.time() + seconds
    while not path.exists():
        assert process.poll() is None, process.communicate()
        assert time.time() < deadline, f"{path} did not appear"
        time.sleep(0.02)


# -- one run per output folder -------------------------------------------------------------------
HOLD = "import sys, time; from rlsp.output_folder import own_output_dir; own_output_dir(sys.argv[1], 'train'); " \
       "print('held', flush=True); time.sleep(600)"


def test_a_second_run_on_a_folder_in_use_is_refused_and_a_killed_owner_leaves_no_lock(tmp_path, tiny_model_dir,
                                                                                      capsys):
    path, recipe = make_recipe(tmp_path, tiny_model_dir)
    run_dir = Path(recipe.run.output_dir)
    (run_dir / "checkpoints" / "step-000001").mkdir(parents=True)  # the owner's work so far
    owner = subprocess.Popen([sys.executable, "-c", HOLD, str(run_dir)], stdout=subprocess.PIPE, text=True, env=ENV)
    try:
        assert owner.stdout.readline().strip() == "held"
        code = main(["train", str(path), "--overwrite"])  # --overwrite would delete the owner's checkpoints
        err = capsys.readouterr().err
        assert code == 2, err
        assert f"is in use by another rlsp train (pid {owner.pid} on " in err and "Nothing was changed" in err
        assert (run_dir / "checkpoints" / "step-000001").is_dir()
    finally:
        owner.send_signal(signal.SIGKILL)  # no cleanup: the kernel drops the lock with the process
        owner.wait()
    own_output_dir(run_dir, "train")
    release_output_dir(run_dir)
    assert (run_dir / LOCK_FILE).is_file()  # left behind, and it holds nothing


def test_two_real_training_runs_on_one_folder(tmp_path, tiny_model_dir):
    path, recipe = make_recipe(tmp_path, tiny_model_dir)
    run_dir = Path(recipe.run.output_dir)
    first = subprocess.Popen([sys.executable, "-m", "rlsp", "train", str(path), "train.steps=50",
                              "train.checkpoint_every=1"], env=ENV, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                             text=True)
    try:
        wait_for(run_dir / "checkpoints" / "step-000001", first)
        second = subprocess.run([sys.executable, "-m", "rlsp", "train", str(path), "--overwrite"], check=False, env=ENV,
                                capture_output=True, text=True, timeout=120)
        assert second.returncode == 2 and "is in use by another rlsp train" in second.stderr, second.stderr
        assert first.poll() is None  # the first run goes on, its folder untouched
        assert (run_dir / "checkpoints").is_dir() and (run_dir / "rollouts.jsonl").is_file()
    finally:
        first.kill()
        first.wait()


# -- NaN and inf never reach a step or a checkpoint --------------------------------------------------
def test_a_non_finite_loss_stops_the_run_before_the_step_and_keeps_the_last_checkpoint(tmp_path, tiny_model_dir,
                                                                                        monkeypatch):
    from rlsp.training import update

    path, recipe = make_recipe(tmp_path, tiny_model_dir, "train.steps=3", "train.checkpoint_every=1")
    trainer = Trainer(recipe, path)
    real_loss = update._actor_loss

    def nan_on_step_two(*args, **kwargs):
        loss, stats, logp = real_loss(*args, **kwargs)
        return (loss * float("nan") if trainer.step == 2 else loss), stats, logp

    monkeypatch.setattr(update, "_actor_loss", nan_on_step_two)
    monkeypatch.setattr(Trainer, "evaluate", lambda self, desc: {"eval/accuracy": 0.0, "eval/boxed_rate": 0.0})
    after_step_one = {}
    real_step = Trainer.train_step

    def train_step_remembering_the_weights(self):
        scalars = real_step(self)
        after_step_one.update(params(self.models.policy))
        return scalars

    monkeypatch.setattr(Trainer, "train_step", train_step_remembering_the_weights)
    with pytest.raises(NonFiniteError) as raised:
        trainer.fit()
    message = str(raised.value)
    assert message.startswith("step 2: the policy loss is nan in the update, before the optimizer step")
    assert "Nothing of step 2 was saved; the latest checkpoint is step-000001" in message and "--resume" in message
    assert [p.name for p in ckpt.list_checkpoints(Path(recipe.run.output_dir))] == ["step-000001"]
    now = params(trainer.models.policy)
    assert all(torch.equal(now[k], after_step_one[k]) for k in now)  # the step was not applied


def test_a_non_finite_gradient_is_not_applied(tmp_path, tiny_model_dir):
    path, recipe = make_recipe(tmp_path, tiny_model_dir, "train.advantage_estimator=rloo", "train.samples_per_prompt=2",
                               "train.kl.placement=loss", "train.minibatch_size=8")
    trainer = Trainer(recipe, path)
    before = params(trainer.models.policy)
    weight = next(p for p in trainer.models.policy.parameters() if p.requires_grad)
    weight.register_hook(lambda grad: grad * float("inf"))  # the loss stays finite, one gradient does not
    trainer.step = 1
    with pytest.raises(NonFiniteError, match=r"the actor's gradient norm is (nan|inf) \(the optimizer step was not"):
        trainer.train_step()
    after = params(trainer.models.policy)
    assert all(torch.equal(after[k], before[k]) for k in before)


def test_a_checkpoint_is_not_written_over_non_finite_weights(tmp_path, tiny_model_dir):
    from rlsp.training.run_state import save_run

    path, recipe = make_recipe(tmp_path, tiny_model_dir)
    trainer = Trainer(recipe, path)
    trainer.step = 1
    with torch.no_grad():
        next(trainer.models.critic.parameters()).view(-1)[3] = float("nan")
    with pytest.raises(NonFiniteError, match="is not finite; the checkpoint was not written"):
        save_run(trainer)
    assert ckpt.list_checkpoints(Path(recipe.run.output_dir)) == []


def test_rlsp_sft_stops_before_a_step_with_non_finite_gradients(tmp_path, tiny_model_dir):
    from test_sft_train import tiny_recipe

    from rlsp.sft.warm_start import build_trainer

    recipe, out, _ = tiny_recipe(tmp_path, tiny_model_dir, "sft.max_steps=3", "sft.save_steps=1")
    trainer, _ = build_trainer(recipe, None, out)
    weight = next(p for p in trainer.model.parameters() if p.requires_grad)
    before = weight.detach().clone()
    weight.register_hook(lambda grad: grad * float("nan"))
    with pytest.raises(NonFiniteError, match="optimizer step 1: a gradient is not finite; the step was not applied"):
        trainer.train()
    assert torch.equal(weight.detach(), before) and not list(out.glob("checkpoint-*"))


# -- rewards that hang or end the process --------------------------------------------------------------
REWARDS = '''
import sys, time

def sleeps(prompts, completions, references, **columns):
    time.sleep(30)  # far past timeout_s; a regression fails on the elapsed time instead of hanging

def exits(prompts, completions, references, **columns):
    sys.exit(3)

def fails(prompts, completions, references, **columns):
    raise ValueError("no")
'''


@pytest.mark.parametrize(("name", "on_error", "message"), [
    ("sleeps", "fallback", r"reward function 'sleeps' \(r.py:sleeps\) did not return within 0.5 s \(its timeout_s\)"),
    ("exits", "fallback", r"reward function 'exits' \(r.py:exits\) tried to end the process \(sys.exit\(3\)\)"),
])
def test_a_reward_that_hangs_or_exits_stops_the_run_naming_it_whatever_on_error_says(tmp_path, name, on_error,
                                                                                    message):
    (tmp_path / "r.py").write_text(REWARDS)
    spec = RewardSpec(function=f"r.py:{name}", channel="verifier", on_error=on_error, timeout_s=0.5)
    fn = RewardFunction(spec, tmp_path)
    start = time.perf_counter()
    with pytest.raises(RewardAborted, match=message):
        fn(["p"] * 2, ["c"] * 2, ["r"] * 2)
    assert time.perf_counter() - start < 5


def test_an_exception_still_falls_back_under_the_time_limit(tmp_path):
    (tmp_path / "r.py").write_text(REWARDS)
    spec = RewardSpec(function="r.py:fails", channel="verifier", on_error="fallback", fallback_value=0.25,
                      timeout_s=5)
    result = RewardFunction(spec, tmp_path)(["p"] * 2, ["c"] * 2, ["r"] * 2)
    assert result.scores.tolist() == [0.25, 0.25] and result.n_errors == 2


def test_a_hanging_reward_ends_rlsp_train_with_its_name(tmp_path, tiny_model_dir):
    (tmp_path / "r.py").write_text(REWARDS)
    path, _ = make_recipe(tmp_path, tiny_model_dir)
    done = subprocess.run([sys.executable, "-m", "rlsp", "train", str(path), "rewards.1.function=r.py:sleeps",
                           "rewards.1.name=null", "rewards.1.timeout_s=2"],
                          check=False, env=ENV, capture_output=True, text=True, timeout=120)
    assert done.returncode == 2, done.stderr[-2000:]
    assert "rlsp train: error: reward function 'sleeps' (r.py:sleeps) did not return within 2 s" in done.stderr
    assert "Traceback" not in done.stderr


# -- damaged checkpoints and logs on --resume ----------------------------------------------------------
def cut(path: Path) -> None:
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


DAMAGE = {  # what is done to the latest checkpoint -> how --resume describes it
    "truncated state.pt": (lambda step: cut(step / "state.pt"), "state.pt has"),
    "cut trainer_state.json": (lambda step: cut(step / "trainer_state.json"), "trainer_state.json has"),
    "missing state.pt": (lambda step: (step / "state.pt").unlink(), "state.pt is missing"),
}


@pytest.fixture(scope="module")
def three_steps(tmp_path_factory, tiny_model_dir):
    """A finished run of 3 steps with a checkpoint after each, to damage copies of."""
    tmp = tmp_path_factory.mktemp("three")
    path, recipe = make_recipe(tmp, tiny_model_dir, "train.steps=3", "train.checkpoint_every=1",
                               "train.keep_checkpoints=3")
    Trainer(recipe, path).fit()
    return tmp, path


def copy_run(three_steps, tmp_path: Path, tiny_model_dir: Path, *overrides: str):
    """The finished 3-step run copied into ``tmp_path``, with a recipe whose output_dir is the copy."""
    shutil.copytree(three_steps[0] / "run", tmp_path / "run")
    return make_recipe(tmp_path, tiny_model_dir, "train.checkpoint_every=1", "train.keep_checkpoints=3", *overrides)


@pytest.mark.parametrize("damage", list(DAMAGE))
def test_a_damaged_latest_checkpoint_is_passed_over_for_the_newest_intact_one(three_steps, damage, tmp_path,
                                                                              tiny_model_dir):
    copy_run(three_steps, tmp_path, tiny_model_dir)
    spoil, reason = DAMAGE[damage]
    spoil(tmp_path / "run" / "checkpoints" / "step-000003")
    intact, skipped = ckpt.resumable_checkpoint(tmp_path / "run")
    assert intact.name == "step-000002" and [p.name for p, _ in skipped] == ["step-000003"]
    assert skipped[0][1].startswith(reason)


def test_resume_from_a_damaged_checkpoint_equals_the_straight_run(three_steps, tiny_model_dir, tmp_path):
    path, recipe = copy_run(three_steps, tmp_path, tiny_model_dir, "train.steps=3")
    run = tmp_path / "run"
    straight = torch.load(run / "checkpoints" / "step-000003" / "state.pt", weights_only=False)["policy"]
    cut(run / "checkpoints" / "step-000003" / "state.pt")
    lines = (run / "rollouts.jsonl").read_text().splitlines()
    (run / "rollouts.jsonl").write_text("\n".join(lines) + "\n" + lines[-1][:20])  # a line cut by the crash
    shutil.rmtree(run / "final")
    (run / "summary.json").unlink()
    with pytest.warns(UserWarning) as warned:
        trainer = Trainer(recipe, path, resume=True)
    text = " ".join(str(w.message) for w in warned)
    assert "checkpoint step-000003 is damaged (state.pt has" in text
    assert "rollouts.jsonl: dropped 1 unreadable line(s)" in text
    assert trainer.step == 2
    trainer.fit()
    resumed = torch.load(run / "checkpoints" / "step-000003" / "state.pt", weights_only=False)["policy"]
    assert all(torch.allclose(resumed[k], straight[k], atol=1e-6) for k in straight)
    steps = [json.loads(line)["step"] for line in (run / "rollouts.jsonl").read_text().splitlines()]
    assert steps == [1] * 4 + [2] * 4 + [3] * 4


def test_resume_without_an_intact_checkpoint_or_past_train_steps_is_refused(three_steps, tiny_model_dir, tmp_path):
    path, recipe = copy_run(three_steps, tmp_path, tiny_model_dir, "train.steps=2")
    with pytest.raises(ConfigError, match=r"step-000003 is past train.steps \(2\).*Set train.steps to 3 or more"):
        Trainer(recipe, path, resume=True)
    for step in ckpt.list_checkpoints(tmp_path / "run"):
        (step / "trainer_state.json").unlink()
    with pytest.warns(UserWarning), pytest.raises(ConfigError, match="no intact checkpoint .*start again with --overw"):
        Trainer(recipe, path, resume=True)


def test_a_missing_rollout_log_is_reported_on_resume(three_steps, tiny_model_dir, tmp_path):
    path, recipe = copy_run(three_steps, tmp_path, tiny_model_dir, "train.steps=4")
    (tmp_path / "run" / "rollouts.jsonl").unlink()
    with pytest.warns(UserWarning, match=r"rollouts.jsonl is missing, so the samples of steps 1-3 are not there"):
        Trainer(recipe, path, resume=True)


# -- SIGTERM -------------------------------------------------------------------------------------------
def test_sigterm_says_where_the_run_stopped_and_how_to_resume(tmp_path, tiny_model_dir):
    path, _ = make_recipe(tmp_path, tiny_model_dir)
    overrides = ["train.steps=50", "train.checkpoint_every=1"]
    run = subprocess.Popen([sys.executable, "-m", "rlsp", "train", str(path), *overrides], env=ENV,
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    wait_for(tmp_path / "run" / "checkpoints" / "step-000001", run)
    run.send_signal(signal.SIGTERM)
    _, err = run.communicate(timeout=60)
    assert run.returncode == 143, err
    assert "rlsp train: terminated (SIGTERM). The latest checkpoint is" in err and "Traceback" not in err
    assert f"Continue with: rlsp train {path} train.steps=50 train.checkpoint_every=1 --resume" in err


# -- output folders that take no writes ----------------------------------------------------------------
@pytest.mark.parametrize("command", ["train", "eval", "validate"])
def test_an_output_folder_under_a_file_is_refused_before_loading(tmp_path, tiny_model_dir, capsys, command):
    path, _ = make_recipe(tmp_path, tiny_model_dir)
    (tmp_path / "a_file").write_text("")
    argv = [command, str(path), f"run.output_dir={tmp_path / 'a_file' / 'run'}"]
    if command == "eval":
        argv += ["data.split=heldout"]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert f"run.output_dir: {tmp_path / 'a_file' / 'run'} lies under {tmp_path / 'a_file'}, which is a file" in err


def test_a_read_only_output_folder_is_refused_before_loading(tmp_path, tiny_model_dir, capsys, monkeypatch):
    path, _ = make_recipe(tmp_path, tiny_model_dir)
    real_access = os.access
    monkeypatch.setattr(os, "access", lambda p, mode: False if Path(p) == tmp_path else real_access(p, mode))
    assert main(["validate", str(path)]) == 2
    assert f"run.output_dir: cannot write to {tmp_path} (read-only or no permission)" in capsys.readouterr().err

    def read_only(self, *args, **kwargs):
        raise OSError(errno.EROFS, "Read-only file system")

    monkeypatch.setattr(os, "access", real_access)
    monkeypatch.setattr(Path, "mkdir", read_only)
    assert main(["train", str(path)]) == 2
    err = capsys.readouterr().err
    assert f"run.output_dir: cannot write to {tmp_path / 'run'} (Read-only file system)" in err


def test_the_lock_file_names_its_holder(tmp_path):
    own_output_dir(tmp_path / "out", "eval")
    holder = json.loads((tmp_path / "out" / LOCK_FILE).read_text())
    release_output_dir(tmp_path / "out")
    assert holder["command"] == "rlsp eval" and holder["pid"] == os.getpid()


def test_the_weight_check_reads_a_zero3_shard_without_its_padding():
    """ZeRO-3 pads the last shards to equal sizes and leaves the padding uninitialised: NaN there
    is not a weight. A parameter of 5 elements over 2 processes: shards of 3, the last holds 2."""
    from types import SimpleNamespace

    from rlsp.training.nonfinite import own_elements

    last = SimpleNamespace(ds_numel=5, ds_tensor=torch.tensor([1.0, 2.0, float("nan")]))
    assert torch.equal(own_elements(last, rank=1), torch.tensor([1.0, 2.0]))
    first = SimpleNamespace(ds_numel=5, ds_tensor=torch.tensor([1.0, float("nan"), 3.0]))
    assert not torch.isfinite(own_elements(first, rank=0)).all()  # a real element: still caught
    plain = torch.tensor([float("inf")])
    assert own_elements(plain, rank=0) is plain
