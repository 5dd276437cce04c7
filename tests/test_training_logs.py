"""What the trainer logs and reports: critic fit, the reward it trained on, the held-out
breakdown, and the generation backend it samples through."""

from __future__ import annotations

import pytest
import torch
from test_training import make_recipe

from rlsp.errors import ConfigError
from rlsp.training.ppo_trainer import Trainer


def test_critic_fit_logs_explained_variance_per_head():
    from rlsp.training.step_records import critic_fit

    returns = torch.tensor([[1.0, 2.0, 3.0, 4.0, 9.0]])
    mask = torch.tensor([[1, 1, 1, 1, 0]])  # the 9 is padding and must not count
    # Residual [0, 0, 0, -1] on real tokens: variance 0.1875 against Var(returns) = 1.25.
    one_head = critic_fit(torch.tensor([[1.0, 2.0, 3.0, 5.0, -7.0]])[..., None], returns[..., None], mask)
    assert one_head == {"value/explained_variance": pytest.approx(1 - 0.1875 / 1.25)}
    two_heads = critic_fit(torch.stack([returns, torch.zeros(1, 5)], -1), torch.stack([returns, returns], -1), mask)
    # Head 2 predicts 0: Var(returns - 0) = Var(returns), so it explains nothing: 1 - 1.25 / 1.25 = 0.
    assert two_heads == {"value/explained_variance/verifier": pytest.approx(1.0),
                         "value/explained_variance/exploration": pytest.approx(0.0)}
    assert critic_fit(None, None, mask) == {}


@pytest.mark.parametrize("mode", ["paper", "decoupled"])
def test_trained_reward_is_the_gated_mix_the_advantages_saw(tmp_path, tiny_model_dir, mode):
    from rlsp.training.advantage_step import ChannelNormalizers, compute_advantages

    _, recipe = make_recipe(tmp_path, tiny_model_dir, f"train.reward.mode={mode}", "train.reward.gate_exploration=true",
                            "train.reward.normalize=false", "train.advantage_estimator=rloo",
                            "train.samples_per_prompt=2", "train.reward.alpha.start=0.8")
    verifier = torch.tensor([1.0, 0.0, 1.0, 0.0])
    exploration = torch.tensor([0.5, 0.9, 0.2, 0.4])
    result = compute_advantages(recipe.train, alpha=0.8, verifier=verifier, exploration=exploration, kl=None,
                                kl_coef=0.0, values=None, mask=torch.ones(4, 3), group_ids=torch.tensor([0, 0, 1, 1]),
                                normalizers=ChannelNormalizers.create(10.0))
    # Failed samples keep the batch's lowest exploration score (0.2), not their own 0.9 and 0.4:
    # 0.8 * [1, 0, 1, 0] + 0.2 * [0.5, 0.2, 0.2, 0.2].
    assert result.trained_rewards.tolist() == pytest.approx([0.9, 0.04, 0.84, 0.04])


def test_heldout_breakdown_follows_eval_group_by(tmp_path, tiny_model_dir, monkeypatch):
    path, recipe = make_recipe(tmp_path, tiny_model_dir, "eval.group_by=[level]")
    trainer = Trainer(recipe, path)
    metrics = trainer.evaluate("held-out")
    assert metrics["eval/level=2/problems"] == 4.0  # the 4 held-out problems are all level 2

    monkeypatch.setattr("rlsp.training.components.load_causal_lm", lambda *a, **k: pytest.fail("model loaded"))
    path, recipe = make_recipe(tmp_path, tiny_model_dir, "eval.group_by=[subject]", name="bad")
    with pytest.raises(ConfigError, match="eval.group_by: the data has no column 'subject'"):
        Trainer(recipe, path)


def test_trainer_generates_through_the_backend_factory_and_syncs_before_each_generation(tmp_path, tiny_model_dir,
                                                                                        monkeypatch):
    from rlsp.generation import HFBackend

    calls = []

    class RecordingBackend(HFBackend):
        def generate(self, conversations, params, samples_per_prompt=1):
            calls.append(("generate", len(conversations), samples_per_prompt))
            return super().generate(conversations, params, samples_per_prompt)

        def sync_weights(self, policy):
            calls.append(("sync", policy is self.model))
            super().sync_weights(policy)

    monkeypatch.setattr("rlsp.training.ppo_trainer.make_backend",
                        lambda model, tok, cfg, seed, backend: RecordingBackend(model, tok))
    path, recipe = make_recipe(tmp_path, tiny_model_dir, "train.advantage_estimator=rloo", "train.samples_per_prompt=2",
                               "train.kl.placement=loss", "train.minibatch_size=8")
    trainer = Trainer(recipe, path)
    for step in (1, 2):
        trainer.step = step
        trainer.train_step()
    # The policy's weights reach the backend before every step's generation (so after every
    # update); generation.batch_size 8 holds all 4 prompts x 2 samples: one call per step.
    assert calls == [("sync", True), ("generate", 4, 2)] * 2
    calls.clear()
    trainer.evaluate("eval after")  # the held-out evaluation samples with the same, synced backend
    assert calls[0] == ("sync", True) and calls[1][0] == "generate"
