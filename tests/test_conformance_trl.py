"""rlsp's actor loss against TRL's ``GRPOTrainer._compute_loss`` on identical tensors.

Both sides get the same tiny model (two copies of one checkpoint), the same prompts and
completions (right-padded), the same per-sequence advantages, old and reference log-probs. rlsp's
side is the loss its update computes (``rlsp.training.update._actor_loss``) under a recipe that
names the algorithm and otherwise keeps rlsp's defaults; TRL's side is its trainer's loss with the
matching ``loss_type``. The reference code path per variant:

| rlsp recipe (train.*) | TRL `GRPOConfig` |
|---|---|
| `advantage_estimator: grpo` | `loss_type="grpo"` (sequence mean of token means), k3 KL in the loss |
| `advantage_estimator: dr_grpo` | `loss_type="dr_grpo"` (sum / (rows x max_completion_length)) |
| `grpo` + `loss_aggregation: token-mean`, `clip_eps_high: 0.28` (DAPO) | `loss_type="dapo"`, `epsilon_high=0.28` |
| `grpo` + `policy_loss: cispo` | `loss_type="cispo"`, `epsilon_high=5.0` (ScaleRL's epsilon_max) |
| `grpo` + `policy_loss: gspo` | `loss_type="grpo"`, `importance_sampling_level="sequence"`, GSPO's clip range |

GSPO's clip range: ``epsilon=3e-4`` below a ratio of 1, ``epsilon_high=4e-4`` above it.

TRL multiplies the k3 term by the importance ratio by default (``use_bias_correction_kl``): its
value is unchanged on-policy, but its gradient gains ``k3 * grad log pi``, which turns k3's gradient
from that of KL(ref || pi) into that of KL(pi || ref) (tests/test_conformance_kl.py). DeepSeekMath's
GRPO has no such factor and rlsp follows the paper, so the references run with it off.

Losses and gradients agree to the fp32 rounding of two implementations of the same sums: the
tiny model's longest reduction is under 2,000 terms, so 2 x 1,999 x 2^-24 = 2.4e-4 relative
(tests/numerics.py).
"""

from __future__ import annotations

import pytest
import torch
from numerics import relative_difference, reordered_sum_rtol

from rlsp.config import load_recipe
from rlsp.training.forward import Sequences
from rlsp.training.update import UpdateBatch, _actor_loss

trl = pytest.importorskip("trl")

B, P, T, BETA = 4, 5, 6, 0.04
RTOL = reordered_sum_rtol(2_000)

VARIANTS = {
    "grpo": ([], {"loss_type": "grpo"}),
    "dr_grpo": (["train.advantage_estimator=dr_grpo"], {"loss_type": "dr_grpo"}),
    "dapo": (["train.loss_aggregation=token-mean", "train.clip_eps_high=0.28"],
             {"loss_type": "dapo", "epsilon_high": 0.28}),
    "cispo": (["train.policy_loss=cispo"], {"loss_type": "cispo", "epsilon_high": 5.0}),
    "gspo": (["train.policy_loss=gspo"], {"loss_type": "grpo", "importance_sampling_level": "sequence",
                                          "epsilon": 3e-4, "epsilon_high": 4e-4}),
}


@pytest.fixture(scope="module")
def tensors(tiny_model_dir):
    """Fixed prompts, completions (rows 1 and 3 shorter), advantages and log-probs."""
    from transformers import AutoModelForCausalLM

    from rlsp.training.forward import completion_logprobs

    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    g = torch.Generator().manual_seed(1)
    completion_mask = torch.tensor([[1] * 6, [1] * 3 + [0] * 3, [1] * 6, [1] * 4 + [0] * 2])
    ids = lambda width: torch.randint(3, model.config.vocab_size, (B, width), generator=g)
    seqs = Sequences(ids(P), torch.ones(B, P, dtype=torch.long), ids(T) * completion_mask, completion_mask)
    with torch.no_grad():
        logp = completion_logprobs(model, seqs, 1.0)[0]
    old = (logp + 0.2 * torch.randn(B, T, generator=g)) * completion_mask  # ratios off 1: clipping takes part
    ref = (logp + 0.3 * torch.randn(B, T, generator=g)) * completion_mask
    advantages = torch.tensor([1.2, -0.7, 0.4, -0.9])
    return seqs, old, ref, advantages


def rlsp_loss_and_grads(tiny_model_dir, tmp_path, overrides, tensors):
    from transformers import AutoModelForCausalLM

    seqs, old, ref, advantages = tensors
    recipe = tmp_path / "r.yaml"
    recipe.write_text("train: {advantage_estimator: grpo, samples_per_prompt: 2}\n")
    cfg = load_recipe(recipe, [f"train.kl.coef={BETA}", f"generation.max_new_tokens={T}", *overrides]).train
    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir).train()
    mask = seqs.completion_mask.float()
    batch = UpdateBatch(seqs, old, ref, advantages[:, None] * mask, None, None, T)
    loss, _, _ = _actor_loss(model, batch, mask, lambda aggregation: 1.0, cfg, 1.0, BETA)  # the whole minibatch
    loss.backward()
    return loss.item(), [p.grad for p in model.parameters()]


def trl_loss_and_grads(tiny_model_dir, tmp_path, config, tensors):
    from datasets import Dataset

    seqs, old, ref, advantages = tensors
    args = trl.GRPOConfig(output_dir=str(tmp_path / "trl"), per_device_train_batch_size=B, num_generations=2,
                          max_completion_length=T, beta=BETA, use_cpu=True, bf16=False, report_to=[],
                          save_strategy="no", temperature=1.0, use_bias_correction_kl=False, **config)
    trainer = trl.GRPOTrainer(model=str(tiny_model_dir), reward_funcs=[lambda prompts, completions, **kw: [0.0] *
                                                                       len(prompts)],
                              args=args, train_dataset=Dataset.from_list([{"prompt": "1 + 1?"}] * B))
    trainer.model.train()
    trainer.current_gradient_accumulation_steps = 1
    inputs = {"prompt_ids": seqs.prompt_ids, "prompt_mask": seqs.prompt_mask, "completion_ids": seqs.completion_ids,
              "completion_mask": seqs.completion_mask, "advantages": advantages, "old_per_token_logps": old,
              "ref_per_token_logps": ref, "num_items_in_batch": seqs.completion_mask.sum()}
    loss = trainer._compute_loss(trainer.model, inputs)
    loss.backward()
    return loss.item(), [p.grad for p in trainer.model.parameters()]


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_rlsp_loss_and_gradients_equal_trls(variant, tiny_model_dir, tmp_path, tensors):
    overrides, config = VARIANTS[variant]
    ours, our_grads = rlsp_loss_and_grads(tiny_model_dir, tmp_path, overrides, tensors)
    theirs, their_grads = trl_loss_and_grads(tiny_model_dir, tmp_path, config, tensors)
    assert ours == pytest.approx(theirs, rel=RTOL)
    flat = lambda grads: torch.cat([g.flatten() for g in grads if g is not None])
    assert flat(their_grads).norm() > 0
    assert relative_difference(flat(our_grads), flat(their_grads), flat(their_grads)) < RTOL
