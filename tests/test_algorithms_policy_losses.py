"""Policy-loss variants against hand-computed values: DAPO clip-higher, GSPO, CISPO, Dr. GRPO's
token-sum-norm aggregation; and the recipe combinations that are refused."""

from __future__ import annotations

import math

import pytest
import torch

from rlsp.algorithms.losses import aggregate_loss, clipped_policy_loss
from rlsp.algorithms.policy_losses import cispo_loss, gspo_loss, policy_loss, truncated_is_weights
from rlsp.training.step_records import sampling_mismatch


def test_clip_higher_raises_only_the_upper_bound():
    logp = torch.log(torch.tensor([[1.5, 0.5]]))
    old = torch.zeros(1, 2)
    adv, mask = torch.tensor([[1.0, -1.0]]), torch.ones(1, 2)
    # token 1: ratio 1.5, A=1 -> -min(1.5, 1 + eps_high); token 2: ratio 0.5, A=-1 -> max(0.5, 1 - 0.2) = 0.8
    symmetric, _ = clipped_policy_loss(logp, old, adv, mask, 0.2)
    higher, stats = clipped_policy_loss(logp, old, adv, mask, 0.2, clip_high=0.28)
    assert symmetric.item() == pytest.approx((-1.2 + 0.8) / 2)
    assert higher.item() == pytest.approx((-1.28 + 0.8) / 2)
    assert stats["clipfrac"].item() == pytest.approx(1.0)


def test_gspo_clips_one_sequence_ratio():
    old = torch.zeros(2, 2)
    logp = torch.tensor([[0.1, 0.3], [0.05, 9.0]], requires_grad=True)  # row 2's second token is padding
    mask = torch.tensor([[1.0, 1.0], [1.0, 0.0]])
    adv = torch.tensor([[1.0, 1.0], [-2.0, -2.0]])
    loss, stats = gspo_loss(logp, old, adv, mask, clip_low=0.1, clip_high=0.1)
    # row 1: s = e^0.2 = 1.2214 > 1.1, A = 1 -> -1.1 (clipped, no gradient)
    # row 2: s = e^0.05 = 1.0513 inside, A = -2 -> 2.1025 (gradient -A * s / 1 token / 2 rows)
    assert loss.item() == pytest.approx((-1.1 + 2 * math.exp(0.05)) / 2, rel=1e-5)
    assert stats["clipfrac"].item() == pytest.approx(0.5)
    loss.backward()
    assert logp.grad[0].tolist() == [0.0, 0.0] and logp.grad[1, 1].item() == 0.0
    assert logp.grad[1, 0].item() == pytest.approx(2 * math.exp(0.05) / 2, rel=1e-5)


def test_cispo_keeps_a_gradient_on_clipped_tokens():
    old = torch.zeros(1, 2)
    logp = torch.log(torch.tensor([[1.5, 0.9]])).requires_grad_()
    adv, mask = torch.ones(1, 2), torch.ones(1, 2)
    loss, stats = cispo_loss(logp, old, adv, mask, clip_low=0.2, clip_high=0.28)
    # weights: clip(1.5) = 1.28 (clipped), 0.9 (inside); loss = mean(-w * A * logp)
    expected = -(1.28 * math.log(1.5) + 0.9 * math.log(0.9)) / 2
    assert loss.item() == pytest.approx(expected, rel=1e-5)
    loss.backward()
    assert logp.grad.tolist()[0] == pytest.approx([-1.28 / 2, -0.9 / 2], rel=1e-5)  # PPO would give 0 to token 1
    assert stats["clipfrac"].item() == pytest.approx(0.5)
    ppo_logp = torch.log(torch.tensor([[1.5, 0.9]])).requires_grad_()
    policy_loss("ppo", ppo_logp, old, adv, mask, 0.2, 0.28)[0].backward()
    assert ppo_logp.grad[0, 0].item() == 0.0


def test_token_sum_norm_divides_by_rows_times_the_generation_limit():
    loss = torch.tensor([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]])
    mask = torch.tensor([[1.0, 1.0, 0.0], [1.0, 0.0, 0.0]])
    assert aggregate_loss(loss, mask, "token-sum-norm", max_tokens=4).item() == pytest.approx((1 + 2 + 4) / (2 * 4))
    with pytest.raises(ValueError, match="needs max_tokens"):
        aggregate_loss(loss, mask, "token-sum-norm")


def test_sampling_mismatch_by_hand():
    sampling = torch.tensor([[-1.0, -2.0, 0.0]])
    trainer = torch.tensor([[-1.0, -1.5, -7.0]])
    mask = torch.tensor([[1.0, 1.0, 0.0]])
    stats = sampling_mismatch(sampling, trainer, mask)
    # diffs 0 and 0.5 on real tokens: k3 = e^0.5 - 1 - 0.5 on one of two tokens
    assert stats["mismatch/kl"] == pytest.approx((math.exp(0.5) - 1.5) / 2)
    assert stats["mismatch/max_abs_logprob_diff"] == pytest.approx(0.5)


def test_truncated_importance_weights_by_hand():
    trainer = torch.tensor([[-1.0, -1.5, 0.0]])
    sampling = torch.tensor([[-1.0, -2.0, -5.0]])
    mask = torch.tensor([[1.0, 1.0, 0.0]])
    # ratios 1 and e^0.5 = 1.65, capped at 1.5; the padding position gets 0
    assert truncated_is_weights(trainer, sampling, mask, "token", 1.5).tolist() == [[1.0, 1.5, 0.0]]
    # the sequence's ratio e^(0 + 0.5), capped, on each real token
    assert truncated_is_weights(trainer, sampling, mask, "sequence", 1.5).tolist() == [[1.5, 1.5, 0.0]]
    assert truncated_is_weights(trainer, sampling, mask, "sequence", 9.0)[0, 0].item() == pytest.approx(math.exp(0.5))


def test_a_step_with_truncated_importance_sampling_logs_its_weights(tmp_path, tiny_model_dir):
    from test_training import make_recipe

    from rlsp.training.ppo_trainer import Trainer

    path, recipe = make_recipe(tmp_path, tiny_model_dir, "train.tis=token", "train.tis_cap=2")
    trainer = Trainer(recipe, path)
    trainer.step = 1
    scalars = trainer.train_step()
    # the built-in generator samples from the trainer's own distribution in fp32: weights ~1, none capped
    assert scalars["tis/weight_mean"] == pytest.approx(1.0, abs=1e-3) and scalars["tis/capped_share"] == 0.0


@pytest.mark.parametrize(("overrides", "message"), [
    (["train.policy_loss=gspo"], "train.policy_loss: 'gspo' weighs whole sequences by one advantage, but 'gae'"),
    (["train.policy_loss=cispo", "train.dual_clip=3"], "train.dual_clip applies to the 'ppo' loss only"),
    (["train.grpo_scale_by_std=false"], "train.grpo_scale_by_std: replaced by train.advantage_estimator: dr_grpo"),
    (["train.clip_eps_high=0"], "train.clip_eps_high: Input should be greater than 0"),
    (["train.dynamic_sampling=true"], "train.dynamic_sampling keeps groups whose samples scored differently"),
])
def test_incompatible_loss_settings_fail_before_loading(tmp_path, tiny_model_dir, overrides, message):
    from test_training import make_recipe

    from rlsp.errors import ConfigError
    from rlsp.training.preflight import check_training_recipe

    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace(")", r"\)")):
        check_training_recipe(make_recipe(tmp_path, tiny_model_dir, *overrides)[1])
