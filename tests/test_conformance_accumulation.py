"""Gradient accumulation is exact: for every loss aggregation and policy loss, with and without
rows left out of the losses (``mask_truncated``), a minibatch split into micro-batches gives the
gradient and the logged losses of one pass over the whole minibatch.

The reference is the whole minibatch in one micro-batch, whose loss is the aggregation's formula
over all of it. The two differ only in the order fp32 adds the same terms: the tiny model's longest
reduction is under 2,000 terms (vocabulary 300, hidden 32, MLP 64, 12 positions, 8 rows), so they
agree to 2 x 1,999 x 2^-24 = 2.4e-4 relative, normwise (tests/numerics.py).
"""

from __future__ import annotations

import copy

import pytest
import torch
from numerics import relative_difference, reordered_sum_rtol

from rlsp.algorithms.losses import AGGREGATIONS
from rlsp.algorithms.policy_losses import POLICY_LOSSES
from rlsp.config.algorithm_defaults import resolve_algorithm_defaults
from rlsp.config.train_schema import KLConfig, TrainConfig
from rlsp.training.distributed import Distributed
from rlsp.training.forward import Sequences
from rlsp.training.update import Optimisation, UpdateBatch, ppo_update

B, P, T = 8, 4, 8
RTOL = reordered_sum_rtol(2_000)


@pytest.fixture(scope="module")
def model_and_batch(tiny_model_dir):
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir).float()
    g = torch.Generator().manual_seed(0)
    lengths = torch.tensor([8, 3, 5, 8, 1, 6, 8, 2])  # rows of 8 tokens were cut at the limit
    completion_mask = (torch.arange(T)[None, :] < lengths[:, None]).long()
    ids = lambda width: torch.randint(3, model.config.vocab_size, (B, width), generator=g)
    seqs = Sequences(ids(P), torch.ones(B, P, dtype=torch.long), ids(T) * completion_mask, completion_mask)
    with torch.no_grad():
        from rlsp.training.forward import completion_logprobs

        logp = completion_logprobs(model, seqs, 1.0)[0]
    old = logp + 0.3 * torch.randn(B, T, generator=g)  # ratios away from 1, so clipping takes part
    ref = logp + 0.2 * torch.randn(B, T, generator=g)
    advantages = torch.randn(B, 1, generator=g).expand(B, T) * completion_mask  # one per sequence, as grpo's
    truncated = (lengths == T).float()
    return model, seqs, old, ref, advantages, truncated


def run_update(model, batch: UpdateBatch, cfg: TrainConfig) -> tuple[dict, list[torch.Tensor]]:
    """One ppo_update with a zero learning rate; the gradients at the optimizer step and the stats."""
    model = copy.deepcopy(model).train()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.0)
    grads: list[torch.Tensor] = []
    optimizer.register_step_pre_hook(lambda opt, args, kwargs: grads.extend(
        p.grad.detach().clone() for p in model.parameters() if p.grad is not None))
    actor = Optimisation(model, optimizer, torch.optim.lr_scheduler.LambdaLR(optimizer, lambda _: 1.0))
    stats, _ = ppo_update(batch, actor, None, cfg, 1.0, cfg.kl.coef, Distributed(cpu=True))
    return stats, grads


@pytest.mark.parametrize("masked", [False, True], ids=["all-rows", "mask_truncated"])
@pytest.mark.parametrize("policy_loss", POLICY_LOSSES)
@pytest.mark.parametrize("aggregation", AGGREGATIONS)
def test_micro_batches_add_up_to_the_whole_minibatch(model_and_batch, aggregation, policy_loss, masked):
    model, seqs, old, ref, advantages, truncated = model_and_batch
    batch = UpdateBatch(seqs, old, ref, advantages, None, None, T, 1 - truncated if masked else None)
    results = {}
    for micro in (B, 1, 3):  # 3: micro-batches of unequal size
        cfg = resolve_algorithm_defaults(TrainConfig(
            minibatch_size=B, micro_batch_size=micro, loss_aggregation=aggregation, policy_loss=policy_loss,
            mask_truncated=masked, entropy_coef=0.01, padding_free=False,
            kl=KLConfig(coef=0.1, placement="loss", estimator="k3")), "test")
        torch.manual_seed(0)
        results[micro] = run_update(model, batch, cfg)
    (whole, whole_grads) = results[B]
    assert whole_grads
    for micro in (1, 3):
        stats, grads = results[micro]
        flat = lambda gs: torch.cat([g.flatten() for g in gs])
        assert relative_difference(flat(grads), flat(whole_grads), flat(whole_grads)) < RTOL, micro
        for key in ("policy/loss", "policy/entropy", "policy/kl_loss", "policy/clipfrac"):
            assert stats[key] == pytest.approx(whole[key], rel=RTOL, abs=1e-7), (micro, key)
