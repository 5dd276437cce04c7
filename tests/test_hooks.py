"""Trainer hooks: the events both trainers fire, what hooks see, and clean detaching."""

from __future__ import annotations

import json

import pytest
from test_sft_train import tiny_recipe
from test_training import make_recipe

from rlsp.config import load_recipe
from rlsp.errors import ConfigError
from rlsp.hooks import HookRunner, build_hooks
from rlsp.sft.warm_start import run_sft
from rlsp.training.ppo_trainer import Trainer

RECORDER = '''
from rlsp.hooks import Hook

EVENTS = []  # (trainer, step, event, role, grad, model id, policy grads present)


class Recorder(Hook):
    def __init__(self, fail_at=None, scalar="hook/events"):
        self.fail_at, self.scalar, self.count = fail_at, scalar, 0

    def record(self, ctx):
        self.count += 1
        has_grads = any(p.grad is not None for p in ctx.model.parameters() if p.requires_grad)
        EVENTS.append((ctx.trainer, ctx.step, ctx.event, ctx.role, ctx.grad, id(ctx.model), has_grads))
        if ctx.event == self.fail_at:
            raise RuntimeError("hook failed on purpose")

    on_train_start = on_generation_start = on_generation_end = on_forward_start = on_forward_end = record
    on_backward_end = on_optimizer_step_start = on_optimizer_step_end = on_train_end = record

    def on_step_end(self, ctx):
        self.record(ctx)
        ctx.scalars[self.scalar] = float(self.count)
'''


@pytest.fixture
def recorder(tmp_path):
    (tmp_path / "recorder.py").write_text(RECORDER)
    import importlib

    from rlsp.plugins import load_attribute

    recorder_class = load_attribute("recorder.py:Recorder", tmp_path, "hook", "class", ConfigError)
    module = importlib.import_module(recorder_class.__module__)
    module.EVENTS.clear()
    return module.EVENTS


def events_of(log, step):
    return [(event, role, grad) for _, s, event, role, grad, _, _ in log if s == step]


def test_rl_trainer_fires_every_event_with_the_unwrapped_policy(tmp_path, tiny_model_dir, recorder):
    path, recipe = make_recipe(tmp_path, tiny_model_dir, "hooks=[{hook: recorder.py:Recorder}]",
                               "train.steps=1", "train.minibatch_size=2")
    trainer = Trainer(recipe, path)
    trainer.fit()
    policy = trainer.models.dist.unwrap(trainer.models.policy)
    assert recorder[0][2] == "train_start" and recorder[-1][2] == "train_end"
    step = events_of(recorder, 1)
    assert step[:2] == [("generation_start", None, None), ("generation_end", None, None)]
    # phase 3: the old policy's and the reference's no-grad passes (two minibatches: old log-probs needed)
    assert step[2:6] == [("forward_start", "policy", False), ("forward_end", "policy", False),
                         ("forward_start", "reference", False), ("forward_end", "reference", False)]
    # phase 5: 4 samples in minibatches of 2, micro-batches of 2: per optimizer step one forward with
    # gradients, its backward, then the step
    update = [("forward_start", "policy", True), ("forward_end", "policy", True), ("backward_end", None, None),
              ("optimizer_step_start", None, None), ("optimizer_step_end", None, None)]
    assert step[6:] == update * 2 + [("step_end", None, None), ("train_end", None, None)]
    # every event saw the policy itself: not DDP's wrapper, the frozen reference or the critic
    assert {model for *_, model, _ in recorder} == {id(policy)}
    assert id(trainer.models.reference.frozen) != id(policy)
    # gradients exist when the optimizer step starts
    assert all(grads for _, _, event, *_, grads in recorder if event == "optimizer_step_start")


def test_rl_hook_scalars_are_logged_with_the_step(tmp_path, tiny_model_dir, recorder):
    path, recipe = make_recipe(tmp_path, tiny_model_dir,
                               "hooks=[{hook: recorder.py:Recorder, kwargs: {scalar: mine/n}}]")
    trainer = Trainer(recipe, path)
    trainer.hooks.fire("train_start")
    trainer.step = 1
    scalars = trainer.train_step()
    assert scalars["mine/n"] == len(recorder)  # the count at step_end, all events so far included


def test_train_end_fires_after_an_error_and_the_error_propagates(tmp_path, tiny_model_dir, recorder):
    path, recipe = make_recipe(tmp_path, tiny_model_dir,
                               "hooks=[{hook: recorder.py:Recorder, kwargs: {fail_at: generation_end}}]")
    trainer = Trainer(recipe, path)
    with pytest.raises(RuntimeError, match="on purpose"):
        trainer.fit()
    assert [e[2] for e in recorder] == ["train_start", "generation_start", "generation_end", "train_end"]


def test_lora_reference_pass_is_announced_on_the_same_module(tmp_path, tiny_model_dir, recorder):
    path, recipe = make_recipe(tmp_path, tiny_model_dir, "hooks=[{hook: recorder.py:Recorder}]",
                               "model.lora.enabled=true", "train.minibatch_size=2")
    trainer = Trainer(recipe, path)
    trainer.hooks.fire("train_start")
    trainer.step = 1
    trainer.train_step()
    roles = {(role, model) for _, _, event, role, _, model, _ in recorder if event == "forward_start"}
    # the reference is the PEFT policy with its adapters off: hooks learn so from the role
    assert roles == {("policy", id(trainer.models.policy)), ("reference", id(trainer.models.policy))}


def test_sft_trainer_fires_the_same_events(tmp_path, tiny_model_dir, recorder):
    recipe, out, _ = tiny_recipe(tmp_path, tiny_model_dir, "sft.max_steps=2", "sft.gradient_accumulation_steps=2",
                                 "hooks=[{hook: " + str(tmp_path / "recorder.py") + ":Recorder}]")
    run_sft(recipe, None, out)
    events = [e[2:5] for e in recorder]
    assert events[0][0] == "train_start" and events[-1][0] == "train_end"
    micro = [("forward_start", "policy", True), ("forward_end", "policy", True), ("backward_end", None, None)]
    step = micro * 2 + [("optimizer_step_start", None, None), ("optimizer_step_end", None, None),
                        ("step_end", None, None)]
    assert events[1:-1] == step * 2
    assert all(grads for _, _, event, *_, grads in recorder if event == "optimizer_step_start")
    assert {s for _, s, event, *_ in recorder if event == "step_end"} == {1, 2}
    log = json.loads((out / "sft_log.json").read_text())
    # train_start + 9 events per step, counted at each step_end and logged with that step
    assert [entry["hook/events"] for entry in log if "hook/events" in entry] == [10.0, 19.0]


def test_bad_hook_entries_fail_before_any_model_loads(tmp_path):
    (tmp_path / "hooks.py").write_text("class NotAHook:\n    pass\n\nfrom rlsp.hooks import Hook\n\n"
                                       "class Scaled(Hook):\n    def __init__(self, coef):\n        self.coef = coef\n")
    path = tmp_path / "r.yaml"
    path.write_text("run: {seed: 0}\n")

    def build(entry):
        return build_hooks(load_recipe(path, [f"hooks=[{entry}]"]).hooks, tmp_path)

    with pytest.raises(ConfigError, match=r"hooks.0 \(hooks.py:NotAHook\): .* not a subclass of rlsp.hooks.Hook"):
        build("{hook: hooks.py:NotAHook}")
    with pytest.raises(ConfigError, match=r"hooks.0 \(hooks.py:Scaled\): kwargs \[\] do not fit Scaled\(coef\)"):
        build("{hook: hooks.py:Scaled}")
    with pytest.raises(ConfigError, match=r"has no class 'Scaeld'\. Did you mean 'Scaled'\?"):
        build("{hook: hooks.py:Scaeld, kwargs: {coef: 1}}")
    with pytest.raises(ConfigError, match="hook file 'missing.py' not found"):
        build("{hook: missing.py:Scaled}")
    assert build("{hook: hooks.py:Scaled, kwargs: {coef: 2}}")[0].coef == 2


def test_runner_without_hooks_never_builds_a_context():
    def no_model():
        raise AssertionError("the model is looked up only when a hook will receive it")

    runner = HookRunner([], "rl", no_model)
    runner.fire("train_start")
    with runner.around("forward", role="policy", grad=True):
        pass
    runner.end()
    assert runner.pop_scalars() == {}
