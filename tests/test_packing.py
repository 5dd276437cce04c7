"""Padding-free passes (rlsp/training/packing.py): the packed layout by hand, and log-probs,
entropies, gradients and a whole training step equal to the plain padded pass."""

from __future__ import annotations

import pytest
import torch
from step_gradients import capture_step_gradients
from test_decode import CONVERSATIONS
from test_training import make_recipe

from rlsp.generation import HFBackend, SamplingParams
from rlsp.modeling.causal_lm import load_causal_lm
from rlsp.modeling.networks import Critic
from rlsp.training import forward, packing
from rlsp.training.forward import Sequences, completion_logprobs, completion_values
from rlsp.training.packing import micro_batch_order, pack_by_prompt, prompt_groups
from rlsp.training.ppo_trainer import Trainer

# Two samples of prompt [5 6] (left-padded to 3) and one of prompt [7 8 9].
PROMPT_IDS = torch.tensor([[0, 5, 6], [7, 8, 9], [0, 5, 6]])
PROMPT_MASK = torch.tensor([[0, 1, 1], [1, 1, 1], [0, 1, 1]])
COMPLETION_IDS = torch.tensor([[10, 11, 12], [20, 0, 0], [30, 31, 0]])
COMPLETION_MASK = torch.tensor([[1, 1, 1], [1, 0, 0], [1, 1, 0]])


def test_rows_of_one_prompt_share_a_packed_row():
    assert prompt_groups(PROMPT_IDS, PROMPT_MASK) == [0, 1, 0]
    rows = pack_by_prompt(PROMPT_IDS, PROMPT_MASK, COMPLETION_IDS, COMPLETION_MASK)
    # row 0: prompt 5 6, sample 0 (10 11 12), sample 2 (30 31); row 1: prompt 7 8 9, sample 1 (20), padding
    assert rows.inputs["input_ids"].tolist() == [[5, 6, 10, 11, 12, 30, 31], [7, 8, 9, 20, 0, 0, 0]]
    assert rows.inputs["position_ids"].tolist() == [[0, 1, 2, 3, 4, 2, 3], [0, 1, 2, 3, 0, 0, 0]]
    mask = rows.inputs["attention_mask"][:, 0].int()
    assert mask[0].tolist() == [
        [1, 0, 0, 0, 0, 0, 0],
        [1, 1, 0, 0, 0, 0, 0],
        [1, 1, 1, 0, 0, 0, 0],
        [1, 1, 1, 1, 0, 0, 0],
        [1, 1, 1, 1, 1, 0, 0],
        [1, 1, 0, 0, 0, 1, 0],  # sample 2 sees the prompt and itself, not sample 0
        [1, 1, 0, 0, 0, 1, 1],
    ]
    # padding columns see the prompt and themselves (no empty softmax rows); nothing reads them
    assert mask[1, 4:].tolist() == [[1, 1, 1, 0, 1, 0, 0], [1, 1, 1, 0, 0, 1, 0], [1, 1, 1, 0, 0, 0, 1]]
    # completion token t is predicted at the prompt's last column (t = 0), else at token t - 1's
    assert rows.source_row.tolist() == [[0, 0, 0], [1, 1, 1], [0, 0, 0]]
    assert rows.source_col[0].tolist() == [1, 2, 3]
    assert rows.source_col[1, 0].item() == 2
    assert rows.source_col[2, :2].tolist() == [1, 5]


def test_micro_batch_order_keeps_a_prompts_rows_together():
    # lengths 3, 1, 2: plain order by length; packed, prompt [7 8 9] (total 1) before [5 6] (total 5)
    assert micro_batch_order(PROMPT_IDS, PROMPT_MASK, COMPLETION_MASK, by_prompt=False).tolist() == [1, 2, 0]
    assert micro_batch_order(PROMPT_IDS, PROMPT_MASK, COMPLETION_MASK, by_prompt=True).tolist() == [1, 2, 0]
    ids = torch.tensor([[1], [2], [1], [2]])
    lengths = torch.tensor([[1, 1, 1, 1], [1, 0, 0, 0], [1, 0, 0, 0], [1, 1, 0, 0]])
    assert micro_batch_order(ids, torch.ones_like(ids), lengths, by_prompt=True).tolist() == [1, 3, 2, 0]


def sampled_rows(tiny_model_dir, samples=3):
    """Rows from the tiny model with stops at different steps and prompts of different lengths."""
    model, tokenizer = load_causal_lm(str(tiny_model_dir), device="cpu")
    backend = HFBackend(model, tokenizer)
    backend.stop_ids = backend.stop_ids + list(range(0, 300, 11))
    torch.manual_seed(3)
    rollout = backend.generate(CONVERSATIONS, SamplingParams(temperature=1.0, max_new_tokens=10), samples)
    assert len(set(rollout.completion_mask.sum(1).tolist())) > 3, "the test needs completions of different lengths"
    return model, Sequences(rollout.prompt_ids, rollout.prompt_mask, rollout.completion_ids, rollout.completion_mask)


def test_packed_logprobs_entropy_and_gradients_equal_the_plain_pass(tiny_model_dir):
    model, seqs = sampled_rows(tiny_model_dir)
    mask = seqs.completion_mask.float()
    results = []
    for padding_free in (False, True):
        model.zero_grad()
        logp, entropy = completion_logprobs(model, seqs, 0.7, with_entropy=True, entropy_grad=True,
                                            padding_free=padding_free)
        ((logp * mask).sum() + (entropy * mask).sum()).backward()
        results.append((logp * mask, entropy * mask, [p.grad.clone() for p in model.parameters()]))
    assert model._rlsp_packing_agrees
    (plain_lp, plain_h, plain_g), (packed_lp, packed_h, packed_g) = results
    assert torch.allclose(plain_lp, packed_lp, atol=1e-5)
    assert torch.allclose(plain_h, packed_h, atol=1e-5)
    for a, b in zip(plain_g, packed_g, strict=True):
        assert torch.allclose(a, b, atol=1e-5, rtol=1e-4)
    assert (packed_lp[mask == 0] == 0).all()


def test_a_model_whose_packed_pass_disagrees_falls_back_to_the_plain_one(tiny_model_dir, monkeypatch):
    model, seqs = sampled_rows(tiny_model_dir)
    plain = completion_logprobs(model, seqs, 1.0)[0] * seqs.completion_mask

    def leaky(*args):  # samples of one prompt see each other: what an attention ignoring the mask does
        rows = pack_by_prompt(*args)
        S = rows.inputs["attention_mask"].shape[-1]
        causal = torch.ones(S, S, dtype=torch.bool).tril()
        rows.inputs["attention_mask"] = causal.expand_as(rows.inputs["attention_mask"])
        return rows

    monkeypatch.setattr(forward, "pack_by_prompt", leaky)
    with pytest.warns(UserWarning, match="differs from the plain pass"):
        logp = completion_logprobs(model, seqs, 1.0, padding_free=True)[0]
    assert model._rlsp_packing_agrees is False
    assert torch.allclose(logp * seqs.completion_mask, plain)


def test_attention_other_than_sdpa_takes_the_plain_pass(tiny_model_dir, monkeypatch):
    model, seqs = sampled_rows(tiny_model_dir)
    model.config._attn_implementation = "eager"
    monkeypatch.setattr(forward, "pack_by_prompt", None)  # never reached
    completion_logprobs(model, seqs, 1.0, padding_free=True)
    assert model._rlsp_packing_agrees is False
    assert not packing.supports_packing(model)


def test_packed_values_equal_the_plain_pass(tiny_model_dir):
    model, seqs = sampled_rows(tiny_model_dir)
    critic = Critic(model, n_heads=2)
    torch.nn.init.normal_(critic.value_head.weight)  # zero at the start: give the heads something to show
    mask = seqs.completion_mask[..., None]
    plain = completion_values(critic, seqs) * mask
    packed = completion_values(critic, seqs, padding_free=True)
    assert critic._rlsp_packing_agrees
    assert torch.allclose(plain, packed, atol=1e-5)
    assert (packed * (1 - mask) == 0).all()


@pytest.mark.parametrize("estimator", ["grpo", "gae"])
def test_a_padding_free_training_step_equals_the_plain_one(tmp_path, tiny_model_dir, estimator):
    """Reference pass, old log-probs, values and the update's gradients: one step with samples
    packed per prompt gives the plain step's gradients, KL and losses."""
    overrides = [f"train.advantage_estimator={estimator}", "train.samples_per_prompt=3", "train.kl.placement=loss",
                 "train.kl.estimator=k3", "train.kl.coef=0.1", "train.minibatch_size=12", "train.micro_batch_size=6",
                 "generation.max_new_tokens=10"]
    results = []
    for padding_free in (False, True):
        path, recipe = make_recipe(tmp_path, tiny_model_dir, *overrides, f"train.padding_free={padding_free}",
                                   name=f"packed{estimator}{padding_free}")
        trainer = Trainer(recipe, path)
        grads = capture_step_gradients(trainer)
        trainer.step = 1
        torch.manual_seed(5)
        scalars = trainer.train_step()
        verdicts = [getattr(m, "_rlsp_packing_agrees", None) for m in (trainer.models.policy, trainer.models.critic)]
        results.append((grads, scalars, verdicts))
    (plain, plain_scalars, plain_verdicts), (packed, packed_scalars, packed_verdicts) = results
    assert set(plain_verdicts) == {None}
    assert packed_verdicts == [True, True if estimator == "gae" else None]  # the packed run really packed
    assert plain.keys() == packed.keys() == ({"actor", "critic"} if estimator == "gae" else {"actor"})
    for role in plain:
        assert len(plain[role]) == len(packed[role]) > 0
        for a, b in zip(plain[role], packed[role], strict=True):
            assert torch.allclose(a, b, atol=1e-6, rtol=1e-4)
    keys = ["kl/mean", "policy/loss", "policy/kl_loss", "policy/entropy"]
    keys += ["value/loss"] if estimator == "gae" else []
    for key in keys:
        assert packed_scalars[key] == pytest.approx(plain_scalars[key], abs=1e-5)
