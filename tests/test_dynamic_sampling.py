"""Dynamic sampling: groups with a verifier signal first, the batch keeps its size, the logs say
what was drawn and kept; and a training step with it on."""

from __future__ import annotations

import json

import torch
from test_training import make_recipe

from rlsp.data.prompts import chat_messages
from rlsp.generation import sampling_params
from rlsp.scoring.reward_function import RewardResult
from rlsp.training.dynamic_sampling import informative_groups, keep_groups
from rlsp.training.ppo_trainer import Trainer
from rlsp.training.rollout import Scores, generate_step


def test_informative_groups_are_kept_first_and_renumbered(tmp_path, tiny_model_dir):
    path, recipe = make_recipe(tmp_path, tiny_model_dir)
    trainer = Trainer(recipe, path)
    examples = trainer.train_data[:4]
    conversations = [chat_messages(e, recipe.data) for e in examples]
    generated = generate_step(trainer.backend, examples, conversations, 2, sampling_params(recipe.generation), 8)
    verifier = torch.tensor([0.0, 0.0, 1.0, 0.0, 1.0, 1.0, 0.0, 1.0])  # groups: same, differ, same, differ
    result = RewardResult(verifier.clone(), torch.ones(8, dtype=torch.bool), [str(i) for i in range(8)], None, 0)
    scores = Scores({"math": result}, verifier, torch.arange(8.0))
    assert informative_groups(verifier, generated.group_ids) == [False, True, False, True]

    kept, kept_scores, stats = keep_groups(generated, scores, 2)
    assert kept.group_ids.tolist() == [0, 0, 1, 1] and kept_scores.exploration.tolist() == [2.0, 3.0, 6.0, 7.0]
    assert kept.texts == [generated.texts[i] for i in (2, 3, 6, 7)]
    assert kept_scores.per_function["math"].parsed == ["2", "3", "6", "7"]
    assert torch.equal(kept.seqs.completion_ids, generated.seqs.completion_ids[[2, 3, 6, 7]])
    assert stats == {"dynamic/informative_groups_drawn": 2.0, "dynamic/groups_drawn": 4.0,
                     "dynamic/uninformative_groups_kept": 0.0}
    # too few informative groups: the first uninformative one fills the batch, in drawing order
    kept, _, stats = keep_groups(generated, scores, 3)
    assert kept.group_ids.tolist() == [0, 0, 1, 1, 2, 2] and kept.texts[:2] == generated.texts[:2]
    assert stats["dynamic/uninformative_groups_kept"] == 1.0


def test_a_step_with_dynamic_sampling_draws_more_and_trains_on_a_full_batch(tmp_path, tiny_model_dir):
    overrides = ["train.advantage_estimator=rloo", "train.samples_per_prompt=2", "train.kl.placement=loss",
                 "train.minibatch_size=8", "train.dynamic_sampling=true", "train.dynamic_sampling_oversample=2.5"]
    path, recipe = make_recipe(tmp_path, tiny_model_dir, *overrides)
    trainer = Trainer(recipe, path)
    trainer.step = 1
    scalars = trainer.train_step()
    assert scalars["dynamic/groups_drawn"] == 10.0  # ceil(4 prompts x 2.5)
    assert trainer.position == 10  # the prompt stream moves past every drawn prompt (resume stays exact)
    assert 0.0 <= scalars["verifier/informative_group_share"] <= 1.0
    rows = [json.loads(x) for x in (tmp_path / "run" / "rollouts.jsonl").read_text().splitlines()]
    assert len(rows) == 8 and sorted({r["group"] for r in rows}) == [0, 1, 2, 3]


def test_truncated_completions_can_be_left_out_of_the_losses(tmp_path, tiny_model_dir, monkeypatch):
    import rlsp.training.ppo_trainer as trainer_module

    seen = {}
    original = trainer_module.ppo_update

    def spy(batch, *args):
        seen["batch"] = batch
        return original(batch, *args)

    monkeypatch.setattr(trainer_module, "ppo_update", spy)
    path, recipe = make_recipe(tmp_path, tiny_model_dir, "train.mask_truncated=true", "train.advantage_estimator=rloo",
                               "train.samples_per_prompt=2", "train.kl.placement=loss", "train.minibatch_size=8",
                               "generation.max_new_tokens=3")
    trainer = Trainer(recipe, path)
    trainer.step = 1
    trainer.train_step()
    rows = [json.loads(x) for x in (tmp_path / "run" / "rollouts.jsonl").read_text().splitlines()]
    truncated = torch.tensor([r["finish_reason"] == "length" for r in rows])
    batch = seen["batch"]
    assert truncated.any()  # a 3-token limit cuts the tiny model's answers
    assert torch.equal(batch.keep.bool(), ~truncated)
    assert batch.loss_mask()[truncated].sum() == 0
    assert torch.equal(batch.loss_mask()[~truncated], batch.seqs.completion_mask[~truncated].float())
