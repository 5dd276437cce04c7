"""Building the networks, optimizers and schedulers of a run, and saving/restoring them."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
from transformers.optimization import (
    get_constant_schedule_with_warmup,
    get_cosine_with_min_lr_schedule_with_warmup,
)

from rlsp.config import Recipe
from rlsp.errors import ConfigError
from rlsp.modeling.causal_lm import load_causal_lm
from rlsp.modeling.lora import add_lora
from rlsp.modeling.networks import Critic, Reference, trainable_parameters
from rlsp.training.checkpoint import trainable_state
from rlsp.training.distributed import Distributed
from rlsp.training.update import Optimisation


@dataclass
class TrainingModels:
    policy: torch.nn.Module
    tokenizer: object
    reference: Reference
    critic: Critic | None
    actor: Optimisation
    critic_opt: Optimisation | None
    dist: Distributed
    uses_lora: bool

    def state_dict(self) -> dict:
        state = {
            "policy": trainable_state(self.dist.unwrap(self.policy)),
            "actor_optimizer": self.actor.optimizer.state_dict(),
            "actor_scheduler": self.actor.scheduler.state_dict(),
        }
        if self.critic is not None:
            state["critic"] = {k: v.detach().cpu() for k, v in self.dist.unwrap(self.critic).state_dict().items()}
            state["critic_optimizer"] = self.critic_opt.optimizer.state_dict()
            state["critic_scheduler"] = self.critic_opt.scheduler.state_dict()
        return state

    def load_state_dict(self, state: dict, path: Path) -> None:
        try:
            self._load_state_dict(state)
        except (RuntimeError, KeyError, ValueError) as e:  # shapes, names or optimizer groups differ
            first = str(e).strip().splitlines()[0]
            raise ConfigError(
                f"--resume: {path} does not fit this recipe's model ({first[:200]}). It was saved by a run with "
                f"another model.name_or_path, model.lora or train.advantage_estimator; resume with the recipe "
                f"that made it, or start a new run in another run.output_dir."
            ) from None

    def _load_state_dict(self, state: dict) -> None:
        policy = self.dist.unwrap(self.policy)
        missing = set(state["policy"]) - set(policy.state_dict())
        if missing:
            raise RuntimeError(f"unknown weights {sorted(missing)[:3]}")
        policy.load_state_dict(state["policy"], strict=False)
        self.actor.optimizer.load_state_dict(state["actor_optimizer"])
        self.actor.scheduler.load_state_dict(state["actor_scheduler"])
        if self.critic is not None:
            self.dist.unwrap(self.critic).load_state_dict(state["critic"])
            self.critic_opt.optimizer.load_state_dict(state["critic_optimizer"])
            self.critic_opt.scheduler.load_state_dict(state["critic_scheduler"])

    def save_final(self, directory: Path) -> None:
        """A directory that loads as ``model.name_or_path`` (LoRA adapters merged in)."""
        if not self.dist.is_main_process:
            return
        policy = self.dist.unwrap(self.policy)
        if self.uses_lora:
            policy = policy.merge_and_unload()
        policy.save_pretrained(directory, safe_serialization=True)
        self.tokenizer.save_pretrained(directory)


def build_models(recipe: Recipe, n_value_heads: int, total_optimizer_steps: int,
                 weights_dtype: torch.dtype = torch.float32) -> TrainingModels:
    dist = Distributed(cpu=recipe.model.device == "cpu")
    cfg = recipe.train
    model, tokenizer = load_causal_lm(recipe.model.name_or_path, weights_dtype, str(dist.device))
    critic = Critic(model, n_value_heads) if n_value_heads else None
    uses_lora = recipe.model.lora.enabled
    policy = add_lora(model, recipe.model.lora) if uses_lora else model
    if cfg.gradient_checkpointing:
        policy.gradient_checkpointing_enable()
        if critic is not None:
            critic.enable_gradient_checkpointing()
    policy.train()
    reference = Reference(policy, uses_lora)

    actor = _optimisation(policy, cfg.actor_lr, cfg, total_optimizer_steps)
    critic_opt = _optimisation(critic, cfg.critic_lr, cfg, total_optimizer_steps) if critic is not None else None
    if critic_opt is not None:
        actor.model, actor.optimizer, critic_opt.model, critic_opt.optimizer = dist.prepare(
            actor.model, actor.optimizer, critic_opt.model, critic_opt.optimizer
        )
        critic = critic_opt.model
    else:
        actor.model, actor.optimizer = dist.prepare(actor.model, actor.optimizer)
    return TrainingModels(actor.model, tokenizer, reference, critic, actor, critic_opt, dist, uses_lora)


def _optimisation(model: torch.nn.Module, lr: float, cfg, total_steps: int) -> Optimisation:
    optimizer = torch.optim.AdamW(
        trainable_parameters(model), lr=lr, betas=tuple(cfg.adam_betas), weight_decay=cfg.weight_decay
    )
    if cfg.lr_schedule == "cosine":
        scheduler = get_cosine_with_min_lr_schedule_with_warmup(
            optimizer, cfg.warmup_steps, total_steps, min_lr_rate=cfg.min_lr_ratio
        )
    else:
        scheduler = get_constant_schedule_with_warmup(optimizer, cfg.warmup_steps)
    return Optimisation(model, optimizer, scheduler)
