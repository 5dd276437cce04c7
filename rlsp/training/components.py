"""Building the networks, optimizers and schedulers of a run, and saving/restoring them."""

from __future__ import annotations

import copy
from dataclasses import dataclass
from pathlib import Path

import torch
from transformers.optimization import (
    get_constant_schedule_with_warmup,
    get_cosine_with_min_lr_schedule_with_warmup,
)

from rlsp.config import Recipe
from rlsp.errors import ConfigError
from rlsp.generation.policy_weights import policy_weights
from rlsp.launch_env import launched_with_deepspeed
from rlsp.modeling.causal_lm import load_causal_lm
from rlsp.modeling.lora import add_lora
from rlsp.modeling.networks import Critic, Reference, trainable_parameters
from rlsp.precision import Precision
from rlsp.training.checkpoint import trainable_state
from rlsp.training.distributed import Distributed, training_device
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

    def engines(self) -> dict[str, torch.nn.Module]:
        """The trained networks by role (DeepSpeed engines under a DeepSpeed launch)."""
        return {"actor": self.policy, **({"critic": self.critic} if self.critic is not None else {})}

    def state_dict(self) -> dict:
        """What ``state.pt`` keeps of the networks: weights and optimizer states (unless DeepSpeed
        writes them itself, see ``dist.save_engines``) and the learning-rate schedules."""
        state = {"actor_scheduler": self.actor.scheduler.state_dict()}
        if self.critic is not None:
            state["critic_scheduler"] = self.critic_opt.scheduler.state_dict()
        if self.dist.uses_deepspeed:
            return state
        state["policy"] = trainable_state(self.dist.unwrap(self.policy))
        state["actor_optimizer"] = self.actor.optimizer.state_dict()
        if self.critic is not None:
            state["critic"] = {k: v.detach().cpu() for k, v in self.dist.unwrap(self.critic).state_dict().items()}
            state["critic_optimizer"] = self.critic_opt.optimizer.state_dict()
        return state

    def load_state_dict(self, state: dict, path: Path) -> None:
        try:
            if self.dist.uses_deepspeed:
                self.dist.load_engines(self.engines(), path)
            else:
                self._load_state_dict(state)
            self.actor.scheduler.load_state_dict(state["actor_scheduler"])
            if self.critic is not None:
                self.critic_opt.scheduler.load_state_dict(state["critic_scheduler"])
        except (RuntimeError, KeyError, ValueError) as e:  # shapes, names or optimizer groups differ
            first = str(e).strip().splitlines()[0]
            raise ConfigError(
                f"--resume: {path} does not fit this recipe's model ({first[:200]}). It was saved by a run with "
                f"another model.name_or_path, model.lora, train.advantage_estimator or launch config; resume with "
                f"the recipe and launch that made it, or start a new run in another run.output_dir."
            ) from None

    def _load_state_dict(self, state: dict) -> None:
        policy = self.dist.unwrap(self.policy)
        missing = set(state["policy"]) - set(policy.state_dict())
        if missing:
            raise RuntimeError(f"unknown weights {sorted(missing)[:3]}")
        policy.load_state_dict(state["policy"], strict=False)
        self.actor.optimizer.load_state_dict(state["actor_optimizer"])
        if self.critic is not None:
            self.dist.unwrap(self.critic).load_state_dict(state["critic"])
            self.critic_opt.optimizer.load_state_dict(state["critic_optimizer"])

    def save_final(self, directory: Path) -> None:
        """A directory that loads as ``model.name_or_path`` (LoRA adapters merged in; under ZeRO-3
        the shards are gathered first, by every process)."""
        with self.dist.full_weights(self.policy) as policy:
            if not self.dist.is_main_process:
                return
            weights = {name: tensor.detach().cpu().clone() for name, tensor in policy_weights(policy)}
            model = policy.get_base_model() if self.uses_lora else policy
            model.save_pretrained(directory, state_dict=weights, safe_serialization=True)
        self.tokenizer.save_pretrained(directory)


def make_distributed(recipe: Recipe, generation_backend: str = "hf") -> Distributed:
    """The process group this launch asked for: DeepSpeed ZeRO engines or accelerate's DDP.
    ``generation_backend``: ``resolve_backend``'s answer (ZeRO-3 gathers for rlsp's own loop only)."""
    cpu = training_device(recipe).type == "cpu"
    if launched_with_deepspeed():
        from rlsp.training.zero_distributed import DeepSpeedDistributed

        dist = DeepSpeedDistributed(recipe, cpu, generation_backend)
    else:
        dist = Distributed(cpu)
    if dist.is_main_process:
        print(f"training engines: {dist.describe()}")
    return dist


def build_models(recipe: Recipe, n_value_heads: int, total_optimizer_steps: int, precision: Precision,
                 hidden_size: int, generation_backend: str = "hf") -> TrainingModels:
    dist = make_distributed(recipe, generation_backend)
    cfg = recipe.train
    # DeepSpeed's bf16 mode keeps bf16 weights and the fp32 master copy inside its optimizer.
    bf16 = dist.uses_deepspeed and precision.compute == torch.bfloat16
    dtype = torch.bfloat16 if bf16 else precision.weights
    uses_lora = recipe.model.lora.enabled
    fresh = lambda: load_causal_lm(recipe.model.name_or_path, dtype, str(dist.device))[0]
    with dist.sharded_loading(bf16, hidden_size):
        model, tokenizer = load_causal_lm(recipe.model.name_or_path, dtype, str(dist.device))
        # Under ZeRO-3 the weights are shards: critic and reference load their own instead of copying.
        sharded = dist.stage == 3
        critic = None
        if n_value_heads:
            critic = Critic(fresh() if sharded else model, n_value_heads, copy_backbone=not sharded)
        frozen = None if uses_lora else (fresh() if sharded else copy.deepcopy(model))
    policy = add_lora(model, recipe.model.lora) if uses_lora else model
    if cfg.gradient_checkpointing:
        policy.gradient_checkpointing_enable()
        if critic is not None:
            critic.enable_gradient_checkpointing()
    policy.train()
    if frozen is not None:
        frozen = dist.prepare_reference(frozen.eval().requires_grad_(False))
    reference = Reference(policy, frozen)

    actor = _optimisation(policy, cfg.actor_lr, cfg, total_optimizer_steps)
    critic_opt = _optimisation(critic, cfg.critic_lr, cfg, total_optimizer_steps) if critic is not None else None
    roles = [actor] if critic_opt is None else [actor, critic_opt]
    dist.prepare_training(roles, lambda optimizer: _schedule(optimizer, cfg, total_optimizer_steps), bf16, hidden_size)
    critic = critic_opt.model if critic_opt is not None else None
    return TrainingModels(actor.model, tokenizer, reference, critic, actor, critic_opt, dist, uses_lora)


def _optimisation(model: torch.nn.Module, lr: float, cfg, total_steps: int) -> Optimisation:
    optimizer = torch.optim.AdamW(
        trainable_parameters(model), lr=lr, betas=tuple(cfg.adam_betas), weight_decay=cfg.weight_decay
    )
    return Optimisation(model, optimizer, _schedule(optimizer, cfg, total_steps))


def _schedule(optimizer: torch.optim.Optimizer, cfg, total_steps: int):
    if cfg.lr_schedule == "cosine":
        return get_cosine_with_min_lr_schedule_with_warmup(
            optimizer, cfg.warmup_steps, total_steps, min_lr_rate=cfg.min_lr_ratio
        )
    return get_constant_schedule_with_warmup(optimizer, cfg.warmup_steps)
