"""Two PPO updates on one fixed global batch, under whatever launch runs this script.

Every process takes its own rows of the batch (all of them when alone), builds the networks
through ``build_models`` (DeepSpeed engines under a DeepSpeed launch) and runs ``ppo_update``
twice. The main process saves the policy's and critic's whole weights afterwards, and each
update's mean policy loss and gradient norms, for tests/test_deepspeed.py to compare launches.

    python tests/zero_worker.py RECIPE OUT.pt [overrides...]
    accelerate launch --config_file launch/zero3.yaml --num_processes 2 tests/zero_worker.py RECIPE OUT.pt
"""

from __future__ import annotations

import sys

import torch

from rlsp.config import load_recipe
from rlsp.modeling.causal_lm import model_config
from rlsp.precision import resolve_precision
from rlsp.training.advantage_step import value_heads
from rlsp.training.components import build_models
from rlsp.training.forward import Sequences
from rlsp.training.update import UpdateBatch, ppo_update

B, P, T = 8, 5, 6  # the global batch: 8 sequences, 5 prompt and 6 completion tokens, no padding


def global_batch(vocab: int, heads: int) -> UpdateBatch:
    g = torch.Generator().manual_seed(0)
    ids = lambda width: torch.randint(3, vocab, (B, width), generator=g)
    seqs = Sequences(ids(P), torch.ones(B, P, dtype=torch.long), ids(T), torch.ones(B, T, dtype=torch.long))
    return UpdateBatch(seqs, None, None, torch.randn(B, T, generator=g), torch.zeros(B, T, heads),
                       torch.randn(B, T, heads, generator=g), T)


def flat(module: torch.nn.Module) -> torch.Tensor:
    return torch.cat([p.detach().float().flatten().cpu() for p in module.parameters()])


def main(recipe_path: str, out: str, *overrides: str) -> None:
    recipe = load_recipe(recipe_path, list(overrides))
    torch.manual_seed(recipe.run.seed)
    config = model_config(recipe.model.name_or_path)
    heads = value_heads(recipe.train)
    models = build_models(recipe, heads, 10, resolve_precision("fp32", "cpu", training=True), config.hidden_size)
    dist = models.dist
    per_process = B // dist.num_processes
    mine = torch.arange(dist.process_index * per_process, (dist.process_index + 1) * per_process)
    batch = global_batch(config.vocab_size, heads).rows(mine)
    critic_start = None
    if models.critic is not None:
        with dist.full_weights(models.critic) as critic:
            critic_start = flat(critic)
    updates = []
    for _ in range(2):
        stats, _ = ppo_update(batch, models.actor, models.critic_opt, recipe.train, 1.0, 0.0, dist)
        losses = dist.gather_objects([stats["policy/loss"]])
        updates.append({"policy_loss": sum(losses) / len(losses), "actor_grad_norm": stats["actor/grad_norm"],
                        "critic_grad_norm": stats.get("critic/grad_norm")})
    result = {"world_size": dist.num_processes, "updates": updates, "engines": dist.describe(),
              "critic_start": critic_start}
    with dist.full_weights(models.policy) as policy:
        result["policy"] = flat(policy)
    if models.critic is not None:
        with dist.full_weights(models.critic) as critic:
            result["critic"] = flat(critic)
    if dist.is_main_process:
        torch.save(result, out)


if __name__ == "__main__":
    main(*sys.argv[1:])
