"""Run under torchrun by test_multiprocess.py: two training steps, then each rank's parameter sums."""

import sys

import torch

from rlsp.config import load_recipe
from rlsp.training.ppo_trainer import Trainer

recipe_path, output = sys.argv[1], sys.argv[2]
trainer = Trainer(load_recipe(recipe_path, [f"run.output_dir={output}"]), recipe_path)
for step in (1, 2):
    trainer.step = step
    trainer.train_step()
policy = trainer.models.dist.unwrap(trainer.models.policy)
flat = torch.cat([p.detach().double().flatten() for p in policy.parameters()])
print(f"rank {trainer.models.dist.process_index} sums {flat.sum().item():.12e} {flat.square().sum().item():.12e}")
