"""The RL loop on DeepSpeed ZeRO: one engine per trained network, as OpenRLHF does.

Why one engine per role rather than one engine over a policy-plus-critic wrapper (TRL's old PPO):
the critic trains alone during ``train.critic_warmup_steps``, while one engine would step the
policy too (AdamW moves weights even on zero gradients, through momentum and weight decay), and
policy and critic keep their own learning rates, schedules and gradient clipping. The frozen
reference is an engine without an optimizer under ZeRO-3 (sharded like the others) and a plain
module on each process under ZeRO-1/2. A critic-free estimator builds no critic engine at all.

The loop calls the same methods as on DDP (distributed.py); what differs is here:
- backward: the engine's, with rlsp's own loss scaling (DeepSpeed's accumulation count is 1 and
  rlsp marks the accumulation boundary on the last micro-batch of a minibatch);
- the optimizer step: the engine's, which clips to ``train.max_grad_norm`` and reports the norm;
- generation under ZeRO-3 (``generation.zero3_gather``): 'whole' gathers every parameter on every
  process for the generation phase and lifts the engine's per-module fetch hooks meanwhile (a
  process that finished early would otherwise wait in a collective the others never join);
  'layer' leaves the hooks to gather each layer as it runs and keeps the sampling loops of all
  processes in step (rlsp/generation/lockstep.py);
- checkpoints: DeepSpeed's own save/load (every process writes its shards); ``final/`` gets the
  consolidated weights.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from pathlib import Path

import torch

from rlsp.generation.lockstep import Lockstep
from rlsp.launch_env import launched_zero3_init
from rlsp.training.deepspeed_auto_values import reference_config, training_config, with_optimizer
from rlsp.training.deepspeed_launch import launch_config, offloads, zero_stage
from rlsp.training.distributed import Distributed
from rlsp.training.nonfinite import check_grad_norm

ENGINE_TAG = "engine"  # DeepSpeed's checkpoint tag inside each role's folder


class DeepSpeedDistributed(Distributed):
    uses_deepspeed = True

    def __init__(self, recipe, cpu: bool, generation_backend: str = "hf"):
        # cpu=True: accelerate then sets up the gloo group over every rank itself. With cpu=False
        # on a machine without GPUs it finds no device backend, lets DeepSpeed join the ranks, and
        # counts one process on each (the single-process look of DeepSpeed on CPU).
        super().__init__(cpu=cpu)
        import deepspeed

        deepspeed.init_distributed(dist_backend="gloo" if cpu else "nccl", auto_mpi_discovery=False)
        self.recipe, self.generation_backend = recipe, generation_backend
        self.config = launch_config()
        self.stage = zero_stage(self.config)

    def describe(self) -> str:
        off = ", ".join(f"{k} offload to {v}" for k, v in offloads(self.config).items())
        return f"DeepSpeed ZeRO-{self.stage}" + (f" ({off})" if off else "") + ", one engine per trained network"

    def filled_config(self, bf16: bool, hidden_size: int | None) -> dict:
        return training_config(self.config, self.recipe, self.num_processes, bf16, hidden_size)

    @contextlib.contextmanager
    def sharded_loading(self, bf16: bool, hidden_size: int) -> Iterator[None]:
        """Under ZeRO-3, ``from_pretrained`` inside this block shards the weights as they load
        (transformers reads the live DeepSpeed config), so no process holds a whole model."""
        if self.stage != 3 or not launched_zero3_init():
            yield
            return
        from transformers.integrations import HfDeepSpeedConfig
        from transformers.integrations.deepspeed import unset_hf_deepspeed_config

        config = HfDeepSpeedConfig(self.filled_config(bf16, hidden_size))  # transformers holds a weak reference
        try:
            yield
        finally:
            # Models loaded later (a judge reward's) must load whole: they are not in an engine.
            del config
            unset_hf_deepspeed_config()

    # -- models ------------------------------------------------------------------------------
    def prepare_training(self, roles: list, make_scheduler: Callable, bf16: bool, hidden_size: int) -> None:
        """Wrap each Optimisation (model, optimizer, scheduler) in its own engine, in place."""
        import deepspeed

        base = self.filled_config(bf16, hidden_size)
        for opt in roles:
            group = opt.optimizer.param_groups[0]
            config = with_optimizer(base, group["lr"], group["betas"], group["weight_decay"])
            client = None if "optimizer" in config else self._client_optimizer(opt.optimizer, config)
            params = [p for p in opt.model.parameters() if p.requires_grad]
            engine, optimizer, _, _ = deepspeed.initialize(model=opt.model, optimizer=client, model_parameters=params,
                                                           config=config)
            opt.model, opt.optimizer = engine, optimizer
            # The schedule acts on the torch optimizer inside ZeRO's wrapper: they share param_groups.
            opt.scheduler = make_scheduler(getattr(optimizer, "optimizer", optimizer))

    def _client_optimizer(self, optimizer: torch.optim.Optimizer, config: dict) -> torch.optim.Optimizer:
        """Optimizer states offloaded to the CPU need DeepSpeed's CPU Adam, with the same settings."""
        if "optimizer" not in offloads(config):
            return optimizer
        from deepspeed.ops.adam import DeepSpeedCPUAdam

        group = optimizer.param_groups[0]
        return DeepSpeedCPUAdam(group["params"], lr=group["lr"], betas=group["betas"],
                                weight_decay=group["weight_decay"], adamw_mode=True)

    def prepare_reference(self, module: torch.nn.Module) -> torch.nn.Module:
        if self.stage != 3:
            return module.to(self.device)
        import deepspeed

        bf16 = next(module.parameters()).dtype == torch.bfloat16
        engine, *_ = deepspeed.initialize(model=module, config=reference_config(self.filled_config(bf16, None)))
        engine.eval()
        return engine

    def unwrap(self, model: torch.nn.Module) -> torch.nn.Module:
        return getattr(model, "module", model)

    def _gathers_by_layer(self) -> bool:
        g = self.recipe.generation
        # the resolved backend: 'auto' (rlsp's own loop) gathers by layer too; vLLM's engines get the
        # weights streamed a module at a time instead
        return self.stage == 3 and g.zero3_gather == "layer" and self.generation_backend == "hf"

    def generation_lockstep(self) -> Lockstep | None:
        return Lockstep(self.device) if self._gathers_by_layer() else None

    @contextlib.contextmanager
    def policy_for_generation(self, policy: torch.nn.Module) -> Iterator[torch.nn.Module]:
        # vLLM's engines get the weights streamed a module at a time (policy_weights.py), and the
        # sync check's probe gathers layer by layer: no whole gather for them either.
        if self._gathers_by_layer() or (self.stage == 3 and self.generation_backend == "vllm"):
            try:
                yield self.unwrap(policy)  # ZeRO-3's own hooks gather each layer as it runs
            finally:
                _settle(policy)
            return
        with self.full_weights(policy) as module:
            if self.stage != 3:
                yield module
                return
            offload = policy.optimizer.parameter_offload
            _lift_fetch_hooks(offload)
            try:
                yield module
            finally:
                offload._register_deepspeed_module(offload.module)

    @contextlib.contextmanager
    def full_weights(self, policy: torch.nn.Module) -> Iterator[torch.nn.Module]:
        """The whole policy on every process (gathered under ZeRO-3), e.g. to save ``final/``."""
        module = self.unwrap(policy)
        if self.stage != 3:
            yield module
            return
        import deepspeed

        with deepspeed.zero.GatheredParameters(list(module.parameters())):
            yield module

    # -- the backward pass and the step ----------------------------------------------------------
    def backward(self, loss: torch.Tensor, model: torch.nn.Module) -> None:
        model.backward(loss, scale_wrt_gas=False)  # rlsp scaled each micro-batch's loss already

    def no_sync_unless(self, last: bool, model: torch.nn.Module) -> contextlib.AbstractContextManager:
        model.set_gradient_accumulation_boundary(last)  # reduce (and step) on the minibatch's last
        return contextlib.nullcontext()

    def optimizer_step(self, opt, max_norm: float, before_step: Callable[[], None], role: str) -> float:
        before_step()
        opt.model.step()  # clips to gradient_clipping (train.max_grad_norm), steps, zeroes the gradients
        norm = opt.model.get_global_grad_norm()
        if norm is None:  # not computed by this engine configuration
            return float("nan")
        check_grad_norm(float(norm), role)  # DeepSpeed skipped a step with overflowing gradients: stop, not go on
        return float(norm)

    # -- checkpoints -----------------------------------------------------------------------------
    def save_engines(self, engines: dict[str, torch.nn.Module], directory: Path) -> None:
        """Every process writes its shards of each engine (a collective: all must call it)."""
        for role, engine in engines.items():
            engine.save_checkpoint(str(directory / role), tag=ENGINE_TAG, save_latest=False)

    def load_engines(self, engines: dict[str, torch.nn.Module], directory: Path) -> None:
        for role, engine in engines.items():
            folder = directory / role / ENGINE_TAG
            if not folder.is_dir():
                from rlsp.errors import ConfigError

                raise ConfigError(f"--resume: {directory} holds no DeepSpeed checkpoint of the {role} ({folder}); it "
                                  f"was saved by a run without DeepSpeed or with another estimator. Resume with the "
                                  f"launch config and recipe that made it.")
            engine.load_checkpoint(str(directory / role), tag=ENGINE_TAG, load_optimizer_states=True,
                                   load_lr_scheduler_states=False)


def _lift_fetch_hooks(offload) -> None:
    """Remove ZeRO-3's per-module fetch/release hooks (the parameters are gathered already)."""
    from deepspeed.runtime.zero.partitioned_param_coordinator import iter_params

    for param in iter_params(offload.module, recurse=True):
        param.ds_active_sub_modules.clear()
    for hook in [*offload.forward_hooks, *offload.backward_hooks]:
        hook.remove()
    offload.forward_hooks, offload.backward_hooks = [], []


def _settle(engine) -> None:
    """Release the layers ZeRO-3 fetched ahead for a forward pass that never came (generation
    ends at a different layer than its prefetch trace expects); a later gather would find them
    still in flight."""
    engine.optimizer.parameter_offload.get_param_coordinator().release_and_reset_all(engine.module)
