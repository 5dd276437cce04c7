"""Phase 4 and two PPO updates of one fixed global batch, under whatever launch runs this script.

Every process takes its own rows of the batch (all of them when alone): different prompts,
completions of different lengths (so the processes hold different numbers of tokens), scores and
critic values. It builds the networks through ``build_models`` (DeepSpeed engines under a
DeepSpeed launch, DDP under a plain one), computes the advantages as the trainer does
(``global_advantages``: reward normalisers and whitening over every process's rows) and runs
``ppo_update`` twice. The main process saves every statistic the step would log, the reward
normalisers' state, the advantages of every row and the policy's and critic's whole weights,
for tests/test_deepspeed.py and tests/test_multiprocess.py to compare launches.

    python tests/zero_worker.py RECIPE OUT.pt [overrides...]
    accelerate launch --config_file launch/zero3.yaml --num_processes 2 tests/zero_worker.py RECIPE OUT.pt
"""

from __future__ import annotations

import sys

import torch

from rlsp.cli import exit_at_once, leave_process_group
from rlsp.config import load_recipe
from rlsp.modeling.causal_lm import model_config
from rlsp.precision import resolve_precision
from rlsp.training.advantage_step import ChannelNormalizers, global_advantages, value_heads
from rlsp.training.components import build_models
from rlsp.training.forward import Sequences
from rlsp.training.update import UpdateBatch, ppo_update

B, P, T = 8, 5, 6  # the global batch: 8 sequences of 5 prompt and up to 6 completion tokens
LENGTHS = [6, 2, 5, 6, 1, 3, 4, 4]  # rank 0's rows hold 19 tokens and are 6 wide, rank 1's 12 and 4


def global_batch(vocab: int, heads: int):
    g = torch.Generator().manual_seed(0)
    ids = lambda width: torch.randint(3, vocab, (B, width), generator=g)
    mask = (torch.arange(T)[None, :] < torch.tensor(LENGTHS)[:, None]).long()
    seqs = Sequences(ids(P), torch.ones(B, P, dtype=torch.long), ids(T) * mask, mask)
    scores = {"verifier": torch.tensor([1.0, 0.0, 1.0, 1.0, 0.0, 0.0, 1.0, 0.0]),
              "exploration": torch.rand(B, generator=g)}
    values = torch.randn(B, T, heads, generator=g) * mask[..., None]
    kl = 0.05 * torch.randn(B, T, generator=g) * mask
    return seqs, scores, values, kl


def flat(module: torch.nn.Module) -> torch.Tensor:
    return torch.cat([p.detach().float().flatten().cpu() for p in module.parameters()])


def main(recipe_path: str, out: str, *overrides: str) -> None:
    recipe = load_recipe(recipe_path, list(overrides))
    cfg = recipe.train
    torch.manual_seed(recipe.run.seed)
    config = model_config(recipe.model.name_or_path)
    heads = value_heads(cfg)
    models = build_models(recipe, heads, 10, resolve_precision("fp32", "cpu", training=True), config.hidden_size)
    dist = models.dist
    per_process = B // dist.num_processes
    mine = torch.arange(dist.process_index * per_process, (dist.process_index + 1) * per_process)
    seqs, scores, values, kl = global_batch(config.vocab_size, heads)
    seqs, mask = seqs.index(mine), seqs.completion_mask[mine]
    width = int(mask.sum(1).max())  # each process's rows are as wide as its longest completion, as sampled
    seqs = Sequences(seqs.prompt_ids, seqs.prompt_mask, seqs.completion_ids[:, :width], mask[:, :width])
    mask = mask[:, :width]
    result = {"world_size": dist.num_processes, "engines": dist.describe(), "updates": []}
    if models.critic is not None:
        with dist.full_weights(models.critic) as critic:
            result["critic_start"] = flat(critic)
    normalizers = ChannelNormalizers.create(cfg.reward.clip)
    in_reward = cfg.kl.placement == "reward"
    adv = global_advantages(
        cfg, dist, alpha=0.8, verifier=scores["verifier"][mine], exploration=scores["exploration"][mine],
        kl=kl[mine, :width] if in_reward else None, kl_coef=cfg.kl.coef, values=values[mine, :width] if heads else None,
        mask=mask, group_ids=torch.arange(per_process) // 2, normalizers=normalizers)  # 2 samples a prompt
    result["advantage_stats"], result["normalizers"] = adv.stats, normalizers.state_dict()
    result["advantages"] = dist.gather_objects([adv.advantages])
    # no old log-probs: one optimizer step per batch, whose own (detached) log-probs are the old ones
    batch = UpdateBatch(seqs, None, None, adv.advantages, values[mine, :width] if heads else None, adv.returns, T)
    for _ in range(2):
        stats, _ = ppo_update(batch, models.actor, models.critic_opt, cfg, 1.0, 0.0, dist)
        result["updates"].append(stats)
    with dist.full_weights(models.policy) as policy:
        result["policy"] = flat(policy)
        result["weight_sums"] = dist.gather_objects([float(result["policy"].double().sum())])  # every process's
    if models.critic is not None:
        with dist.full_weights(models.critic) as critic:
            result["critic"] = flat(critic)
    if dist.is_main_process:
        torch.save(result, out)
    if leave_process_group():  # as rlsp's CLI ends a launched command
        exit_at_once(0)


if __name__ == "__main__":
    main(*sys.argv[1:])
