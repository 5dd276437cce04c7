"""The PPO trainer on a tiny model: updates, accumulation, resume, reward errors, modes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from step_gradients import capture_step_gradients

from rlsp.config import load_recipe
from rlsp.errors import ConfigError, RewardError
from rlsp.generation import sampling_params
from rlsp.training.ppo_trainer import Trainer

USER_REWARD = '''
def chars(prompts, completions, references, **columns):
    """Exploration reward from a user file: a tenth of the completion's characters."""
    return [len(c) / 10 for c in completions]


def wrong_length(prompts, completions, references, **columns):
    return [1.0] * (len(completions) - 1)


def nan_at_two(prompts, completions, references, **columns):
    return [float("nan") if i == 2 else 0.0 for i in range(len(completions))]
'''


def make_recipe(tmp_path: Path, model_dir: Path, *overrides: str, name: str = "run"):
    """A tiny-model RL recipe. It pins ``model.precision: fp32``: the tests that use it compare two
    computations of the same thing, with tolerances derived from fp32's rounding. ``auto`` would
    pick bf16 autocast on a CPU with native bf16 and fp32 elsewhere, so the same test would check
    different arithmetic on different machines; the tests of bf16 ask for it by name."""
    (tmp_path / "my_rewards.py").write_text(USER_REWARD)
    path = tmp_path / f"{name}.yaml"
    path.write_text(
        f"""
run: {{output_dir: {tmp_path / name}, seed: 3}}
model: {{name_or_path: {model_dir}, device: cpu, precision: fp32}}
data:
  source: builtin:arith
  split: train
  prompt_template: "{{prompt}} Answer in \\\\boxed{{}}."
  arith: {{levels: [2], train_size: 16, heldout_size: 4}}
generation: {{temperature: 1.0, max_new_tokens: 6, batch_size: 8}}
rewards:
  - {{function: math, channel: verifier, kwargs: {{answer_format: boxed_or_last_number}}}}
  - {{function: my_rewards.py:chars, channel: exploration, name: chars}}
train:
  steps: 2
  prompts_per_step: 4
  minibatch_size: 4
  micro_batch_size: 2
  actor_lr: 0.01
  critic_lr: 0.01
"""
    )
    return path, load_recipe(path, list(overrides))


def params(model) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in model.named_parameters()}


def test_one_step_changes_policy_and_critic(tmp_path, tiny_model_dir):
    path, recipe = make_recipe(tmp_path, tiny_model_dir)
    trainer = Trainer(recipe, path)
    policy_before, critic_before = params(trainer.models.policy), params(trainer.models.critic)
    reference_before = params(trainer.models.reference.frozen)
    trainer.step = 1
    scalars = trainer.train_step()
    changed = [k for k, v in trainer.models.policy.named_parameters() if not torch.equal(v, policy_before[k])]
    assert len(changed) == len(policy_before)  # every policy tensor moved
    assert any(not torch.equal(v, critic_before[k]) for k, v in trainer.models.critic.named_parameters())
    assert all(torch.equal(v, reference_before[k]) for k, v in trainer.models.reference.frozen.named_parameters())
    for key in ("reward/verifier/mean", "reward/exploration/mean", "reward_fn/chars/mean", "policy/clipfrac",
                "policy/approx_kl", "policy/entropy", "value/loss", "kl/mean", "alpha", "time/1_generate",
                "response/truncation_rate", "verifier/accuracy", "throughput/tokens_per_s",
                "value/explained_variance"):
        assert key in scalars and scalars[key] == scalars[key], key  # present and not NaN
    # generator and trainer score the same tokens alike in fp32 (see the next test): no mismatch
    assert scalars["mismatch/kl"] < 1e-8 and scalars["mismatch/max_abs_logprob_diff"] < 1e-4


@pytest.mark.parametrize(
    "overrides",
    [
        ["train.reward.mode=decoupled"],
        ["train.reward.mode=decoupled", "train.reward.gate_exploration=true", "train.reward.alpha.schedule=linear",
         "train.reward.alpha.end=0.5", "rewards.0.function=my_rewards.py:chars", "rewards.0.name=chars_ver",
         "rewards.0.kwargs={}"],
        ["train.advantage_estimator=grpo", "train.samples_per_prompt=2", "train.kl.placement=loss",
         "train.minibatch_size=8", "train.kl.estimator=k3"],
        ["train.advantage_estimator=rloo", "train.samples_per_prompt=2", "train.kl.placement=loss",
         "train.reward.mode=decoupled", "train.minibatch_size=8"],
        ["train.advantage_estimator=reinforce++", "train.kl.adaptive=true", "train.entropy_coef=0.01",
         "train.dual_clip=3"],
        ["model.lora.enabled=true", "model.lora.r=1", "train.loss_aggregation=seq-mean-token-sum"],
        ["model.precision=bf16", "train.kl.placement=loss"],
    ],
    ids=["decoupled", "decoupled-gated-linear", "grpo", "rloo-decoupled", "reinforce++", "lora-r1", "bf16"],
)
def test_modes_and_estimators_train(tmp_path, tiny_model_dir, overrides):
    path, recipe = make_recipe(tmp_path, tiny_model_dir, *overrides)
    trainer = Trainer(recipe, path)
    trainable = {k for k, v in trainer.models.policy.named_parameters() if v.requires_grad}
    before = params(trainer.models.policy)
    trainer.step = 1
    scalars = trainer.train_step()
    after = dict(trainer.models.policy.named_parameters())
    # LoRA's A matrices get no gradient on the first step: B starts at zero.
    expected_to_move = [k for k in trainable if "lora_A" not in k]
    assert expected_to_move and all(not torch.equal(after[k], before[k]) for k in expected_to_move)
    assert all(torch.equal(after[k], before[k]) for k in before if k not in trainable)
    assert torch.isfinite(torch.tensor(scalars["policy/loss"]))
    assert (trainer.models.critic is None) == (recipe.train.advantage_estimator != "gae")
    assert ("policy/dual_clipfrac" in scalars) == (recipe.train.dual_clip is not None)


def test_lora_reference_is_the_base_without_a_copy(tmp_path, tiny_model_dir):
    path, recipe = make_recipe(tmp_path, tiny_model_dir, "model.lora.enabled=true", "model.lora.r=2")
    trainer = Trainer(recipe, path)
    assert trainer.models.reference.frozen is None
    seqs = _some_sequences(trainer)
    from rlsp.training.forward import completion_logprobs

    trainer.step = 1
    trainer.train_step()
    with torch.no_grad(), trainer.models.reference.model() as reference:
        ref = completion_logprobs(reference, seqs, 1.0)[0]
    with torch.no_grad():
        pol = completion_logprobs(trainer.models.policy, seqs, 1.0)[0]
    from rlsp.modeling.causal_lm import load_causal_lm

    base, _ = load_causal_lm(str(tiny_model_dir), device="cpu")
    with torch.no_grad():
        base_lp = completion_logprobs(base, seqs, 1.0)[0]
    assert torch.allclose(ref, base_lp, atol=1e-5)  # adapters off = the untouched base
    assert not torch.allclose(pol, base_lp, atol=1e-5)  # adapters on = the trained policy


def _some_sequences(trainer):
    from rlsp.training.rollout import generate_step

    examples = trainer.train_data[:2]
    from rlsp.data.prompts import chat_messages

    conv = [chat_messages(e, trainer.recipe.data) for e in examples]
    return generate_step(trainer.backend, examples, conv, 1, sampling_params(trainer.recipe.generation), 8).seqs


def test_accumulation_equals_one_big_batch(tmp_path, tiny_model_dir):
    """minibatch 4 in one micro-batch == 4 micro-batches of 1: same gradient at the optimizer step.

    Gradients are compared rather than weights after AdamW, which turns float noise in
    near-zero gradients into full-size steps of either sign.
    """
    captured = []
    for micro in (4, 1):
        path, recipe = make_recipe(tmp_path, tiny_model_dir, f"train.micro_batch_size={micro}", name=f"acc{micro}")
        trainer = Trainer(recipe, path)
        grads = capture_step_gradients(trainer)
        trainer.step = 1
        torch.manual_seed(11)
        trainer.train_step()
        captured.append(grads)
    for role in ("actor", "critic"):
        big, small = captured[0][role], captured[1][role]
        assert len(big) == len(small) > 0
        for a, b in zip(big, small, strict=True):
            assert torch.allclose(a, b, atol=1e-6, rtol=1e-4)


def test_one_optimizer_step_reuses_its_own_logprobs_exactly(tmp_path, tiny_model_dir):
    """Skipping the separate old-policy pass (one optimizer step per batch) changes nothing: the
    same actor gradient, and the same pre-update KL in the logs."""
    overrides = ["train.advantage_estimator=rloo", "train.samples_per_prompt=2", "train.kl.placement=loss",
                 "train.kl.estimator=k3", "train.minibatch_size=8", "train.kl.coef=0.1"]
    results = []
    for reuse in (False, True):
        path, recipe = make_recipe(tmp_path, tiny_model_dir, *overrides, name=f"reuse{reuse}")
        trainer = Trainer(recipe, path)
        assert trainer.reuse_update_logprobs  # one epoch, minibatch = the whole batch of 8
        trainer.reuse_update_logprobs = reuse
        grads, original = [], trainer.models.actor.optimizer.step

        def step(*args, _model=trainer.models.policy, _original=original, _grads=grads, **kwargs):
            _grads.extend(p.grad.clone() for p in _model.parameters() if p.grad is not None)
            return _original(*args, **kwargs)

        trainer.models.actor.optimizer.step = step
        trainer.step = 1
        torch.manual_seed(5)
        scalars = trainer.train_step()
        results.append((grads, scalars))
    (explicit, explicit_scalars), (reused, reused_scalars) = results
    assert len(explicit) == len(reused) > 0
    for a, b in zip(explicit, reused, strict=True):
        assert torch.allclose(a, b, atol=1e-6, rtol=1e-4)
    assert explicit_scalars["kl/mean"] == pytest.approx(reused_scalars["kl/mean"], abs=1e-6)
    assert reused_scalars["policy/approx_kl"] == 0.0 and reused_scalars["policy/clipfrac"] == 0.0


def test_update_logprobs_match_the_generators(tmp_path, tiny_model_dir):
    """The training forward scores exactly the distribution generate() sampled from (fp32)."""
    from rlsp.data.prompts import chat_messages
    from rlsp.training.forward import completion_logprobs
    from rlsp.training.rollout import generate_step

    path, recipe = make_recipe(tmp_path, tiny_model_dir, "generation.temperature=0.7")
    trainer = Trainer(recipe, path)
    examples = trainer.train_data[:3]
    conv = [chat_messages(e, trainer.recipe.data) for e in examples]
    generated = generate_step(trainer.backend, examples, conv, 2, sampling_params(trainer.recipe.generation), 4)
    with torch.no_grad():
        logp = completion_logprobs(trainer.models.policy, generated.seqs, 0.7)[0]
    mask = generated.seqs.completion_mask.bool()
    assert torch.allclose(logp[mask], generated.sampling_logprobs[mask], atol=1e-4)


def test_resume_equals_straight_run(tmp_path, tiny_model_dir):
    common = ["train.steps=4", "train.checkpoint_every=2"]
    path, recipe = make_recipe(tmp_path, tiny_model_dir, *common, name="straight")
    straight = Trainer(recipe, path)
    straight.fit()

    path, recipe = make_recipe(tmp_path, tiny_model_dir, *common, name="resumed")
    first = Trainer(recipe, path)
    first.eval_before = first.evaluate("eval before")
    for _ in range(2):  # the first half of fit(); step 2 writes a checkpoint
        first.step += 1
        first.train_step()
    del first
    with pytest.raises(ConfigError, match="already holds checkpoints"):
        Trainer(recipe, path)  # never silently overwrite a run
    second = Trainer(recipe, path, resume=True)
    assert second.step == 2
    second.fit()

    a, b = params(straight.models.policy), params(second.models.policy)
    assert all(torch.allclose(a[k], b[k], atol=1e-6) for k in a)
    a, b = params(straight.models.critic), params(second.models.critic)
    assert all(torch.allclose(a[k], b[k], atol=1e-6) for k in a)
    lines = [json.loads(x) for x in (tmp_path / "resumed" / "rollouts.jsonl").read_text().splitlines()]
    assert [r["step"] for r in lines] == [1] * 4 + [2] * 4 + [3] * 4 + [4] * 4
    straight_lines = [json.loads(x) for x in (tmp_path / "straight" / "rollouts.jsonl").read_text().splitlines()]
    assert [r["completion"] for r in lines] == [r["completion"] for r in straight_lines]


@pytest.mark.parametrize(
    "function, message",
    [
        ("my_rewards.py:wrong_length", r"wrong_length.*returned 3 values for 4 samples"),
        ("my_rewards.py:nan_at_two", r"nan_at_two.*sample 2.*nan"),
    ],
)
def test_bad_reward_stops_before_the_optimizer_step(tmp_path, tiny_model_dir, function, message):
    path, recipe = make_recipe(tmp_path, tiny_model_dir, f"rewards.1.function={function}", "rewards.1.name=null")
    trainer = Trainer(recipe, path)
    before = params(trainer.models.policy)
    trainer.step = 1
    with pytest.raises(RewardError, match=message):
        trainer.train_step()
    assert all(torch.equal(v, before[k]) for k, v in trainer.models.policy.named_parameters())


@pytest.mark.parametrize(
    "overrides, message",
    [
        (["train.minibatch_size=3"], "must be a multiple of train.micro_batch_size"),
        (["train.advantage_estimator=grpo"], "samples_per_prompt"),
        (["train.advantage_estimator=rloo", "train.samples_per_prompt=2", "train.minibatch_size=8",
          "train.critic_warmup_steps=1"], "'rloo' has no critic to warm up"),
        (["data.split=heldout"], "trains on split 'train'"),
        (["rewards=[]"], "no reward functions"),
        (["rewards.1.function=my_rewards.py:missing"], "missing"),
        # the same LoRA target check as rlsp sft, on the model's skeleton
        (["model.lora.enabled=true", "model.lora.target_modules=[q_prj]"],
         r"'q_prj' match no module.*Did you mean 'q_prj' -> 'q_proj'"),
        (["model.lora.enabled=true", "model.lora.target_modules=[q_proj, lm_head]"], "'lm_head' is the output head"),
        (["model.lora.enabled=true", "model.lora.target_modules=[all-linear, q_proj]"],
         "'all-linear' must stand alone"),
        (["hooks=[{hook: my_rewards.py:chars}]"],
         r"hooks.0 \(my_rewards.py:chars\): .* not a subclass of rlsp.hooks.Hook"),
    ],
)
def test_bad_training_recipes_fail_before_loading_the_model(tmp_path, tiny_model_dir, overrides, message, monkeypatch):
    import rlsp.training.ppo_trainer as trainer_module

    def no_model(*args, **kwargs):
        raise AssertionError("the model was loaded before the recipe was checked")

    monkeypatch.setattr(trainer_module, "build_models", no_model)
    path, recipe = make_recipe(tmp_path, tiny_model_dir, *overrides)
    with pytest.raises((ConfigError, RewardError), match=message):
        Trainer(recipe, path)


def test_user_reward_file_reaches_tensorboard_and_rollouts(tmp_path, tiny_model_dir):
    """A reward in a file outside the package, wired by path in the recipe, logged both ways."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    path, recipe = make_recipe(tmp_path, tiny_model_dir, "train.steps=1")
    Trainer(recipe, path).fit()
    rows = [json.loads(x) for x in (tmp_path / "run" / "rollouts.jsonl").read_text().splitlines()]
    assert len(rows) == 4
    for row in rows:
        assert row["reward_functions"]["chars"] == pytest.approx(len(row["completion"]) / 10, abs=1e-5)
        assert row["rewards"]["exploration"] == pytest.approx(row["reward_functions"]["chars"], abs=1e-5)
        assert set(row) >= {"prompt", "completion", "reference", "trained_reward", "length", "finish_reason", "step"}
    events = EventAccumulator(str(tmp_path / "run" / "tensorboard"))
    events.Reload()
    logged = events.Scalars("reward_fn/chars/mean")
    assert logged[0].step == 1
    expected = sum(r["reward_functions"]["chars"] for r in rows) / len(rows)
    assert logged[0].value == pytest.approx(expected, rel=1e-4)
    # the rollout schema, and the behaviour rates rlsp inspect's detector finds in the same rows
    from rlsp.analysis.behaviours import MarkerDetector
    from rlsp.analysis.rollout_schema import ROLLOUT_FIELDS

    assert all(list(row) == list(ROLLOUT_FIELDS) and row["correct"] == (row["rewards"]["verifier"] >= 1.0)
               for row in rows)
    profiles = MarkerDetector().detect_all([r["completion"] for r in rows], [r["length"] for r in rows])
    for behaviour in ("backtracking", "verification", "exploration", "uncertainty"):
        share = events.Scalars(f"behaviour/{behaviour}/share")[0].value
        assert share == pytest.approx(sum(p.has(behaviour) for p in profiles) / 4)
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert summary["heldout_size"] == 4
    # the summary reports the held-out evaluations TensorBoard logged at steps 0 and 1
    accuracy = {e.step: e.value for e in events.Scalars("eval/accuracy")}
    reported = [summary["heldout_accuracy_before"], summary["heldout_accuracy_after"]]
    assert reported == pytest.approx([accuracy[0], accuracy[1]])
    assert (tmp_path / "run" / "final" / "config.json").exists()


@pytest.mark.parametrize("estimator", ["rloo", "gae", "rloo+dapo", "rloo+gspo", "grpo+cispo", "grpo+dr"])
def test_update_moves_log_probabilities_with_the_advantage(tmp_path, tiny_model_dir, estimator, monkeypatch):
    """After one update, samples with positive advantage became likelier, negative ones less likely."""
    import rlsp.training.ppo_trainer as trainer_module
    from rlsp.training.forward import completion_logprobs

    seen = {}
    original = trainer_module.ppo_update

    def spy(batch, actor, critic, cfg, temperature, kl_coef, dist, hooks):
        stats, old_logprobs = original(batch, actor, critic, cfg, temperature, kl_coef, dist, hooks)
        with torch.no_grad():
            seen["after"] = completion_logprobs(actor.model, batch.seqs, temperature)[0]
        seen["batch"], seen["old"] = batch, old_logprobs
        return stats, old_logprobs

    monkeypatch.setattr(trainer_module, "ppo_update", spy)
    variant = {"dapo": ["train.clip_eps_high=0.28", "train.mask_truncated=false", "train.tis=token"],
               "gspo": ["train.policy_loss=gspo", "train.clip_eps=0.0003", "train.clip_eps_high=0.0004"],
               "cispo": ["train.policy_loss=cispo", "train.clip_eps_high=0.28"],
               "dr": ["train.advantage_estimator=dr_grpo"]}
    name, _, loss = estimator.partition("+")
    path, recipe = make_recipe(tmp_path, tiny_model_dir, f"train.advantage_estimator={name}",
                               "train.samples_per_prompt=4", "train.minibatch_size=16", "train.micro_batch_size=16",
                               "train.kl.coef=0", "train.actor_lr=0.003", *variant.get(loss, []))
    trainer = Trainer(recipe, path)
    trainer.step = 1
    trainer.train_step()
    batch, mask = seen["batch"], seen["batch"].seqs.completion_mask.float()
    advantage = (batch.advantages * mask).sum(1) / mask.sum(1)
    change = ((seen["after"] - seen["old"]) * mask).sum(1)
    assert advantage.abs().sum() > 0
    assert torch.corrcoef(torch.stack([advantage, change]))[0, 1] > 0.5


def test_an_earlier_run_is_never_overwritten_by_accident(tmp_path, tiny_model_dir, monkeypatch):
    import rlsp.training.ppo_trainer as trainer_module

    class Loaded(Exception):
        pass

    def stop(*args, **kwargs):
        raise Loaded

    monkeypatch.setattr(trainer_module, "build_models", stop)
    path, recipe = make_recipe(tmp_path, tiny_model_dir)
    run = tmp_path / "run"
    run.mkdir()
    (run / "rollouts.jsonl").write_text('{"step": 1}\n')
    (run / "summary.json").write_text("{}\n")
    (run / "sft").mkdir()  # another command's folder inside run.output_dir is not this run's output
    with pytest.raises(ConfigError,
                       match=r"already holds the output of an earlier rlsp train \(summary.json, rollouts.jsonl\)"):
        Trainer(recipe, path)
    assert (run / "rollouts.jsonl").read_text() == '{"step": 1}\n'
    with pytest.raises(ConfigError, match="--resume continues a run and --overwrite replaces it"):
        Trainer(recipe, path, resume=True, overwrite=True)
    with pytest.raises(Loaded):  # the checks pass and the model would load
        Trainer(recipe, path, overwrite=True)
    assert not (run / "rollouts.jsonl").exists() and not (run / "summary.json").exists() and (run / "sft").is_dir()
