"""Every accelerate and DeepSpeed specific of the RL loop, behind one interface.

The loop asks this object to prepare models and optimizers, run the backward pass, skip the
gradient all-reduce between micro-batches, clip and step, hand out the whole policy for
generation and gather rollout records onto the main process. Here: accelerate's DDP or a single
process. Under a DeepSpeed launch, ``components.make_distributed`` builds the ZeRO version
(zero_distributed.py), which overrides what differs.
"""

from __future__ import annotations

import contextlib
import math
import os
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import torch

from rlsp.config import Recipe
from rlsp.training.nonfinite import check_grad_norm


class Distributed:
    """The process group of a run, as the RL loop sees it."""

    uses_deepspeed = False
    stage = 0

    def __init__(self, cpu: bool):
        from accelerate import Accelerator

        from rlsp.launch_setup import announce_setup

        # rlsp applies model.precision itself (autocast over fp32 weights, or DeepSpeed's bf16
        # engines); accelerate's mixed precision would wrap every forward in a second autocast.
        self.accelerator = Accelerator(cpu=cpu, mixed_precision="no")
        announce_setup(self.accelerator.state, "train")

    def describe(self) -> str:
        return "data parallel (DDP), a whole copy per process" if self.num_processes > 1 else "one process"

    # -- who am I ----------------------------------------------------------------------------
    @property
    def device(self) -> torch.device:
        return self.accelerator.device

    @property
    def is_main_process(self) -> bool:
        return self.accelerator.is_main_process

    @property
    def process_index(self) -> int:
        return self.accelerator.process_index

    @property
    def num_processes(self) -> int:
        return self.accelerator.num_processes

    # -- models ------------------------------------------------------------------------------
    @contextlib.contextmanager
    def sharded_loading(self, bf16: bool, hidden_size: int) -> Iterator[None]:
        """Models loaded inside are sharded as they load (ZeRO-3 only)."""
        yield

    def prepare_training(self, roles: list, make_scheduler: Callable, bf16: bool, hidden_size: int) -> None:
        """Wrap each trained network's model and optimizer for this process group, in place."""
        for opt in roles:
            opt.model, opt.optimizer = self.accelerator.prepare(opt.model, opt.optimizer)

    def prepare_reference(self, module: torch.nn.Module) -> torch.nn.Module:
        return module

    def unwrap(self, model: torch.nn.Module) -> torch.nn.Module:
        """The plain model under any wrapper: what hooks, checkpoints and saving see."""
        return self.accelerator.unwrap_model(model)

    @contextlib.contextmanager
    def policy_for_generation(self, policy: torch.nn.Module) -> Iterator[torch.nn.Module]:
        """The whole policy, ready to generate. Under DDP every process holds all weights, so
        this is the unwrapped model; under ZeRO-3 the shards are gathered."""
        yield self.unwrap(policy)

    def generation_lockstep(self):
        """What keeps sampling loops in step across processes (ZeRO-3 layer by layer); None here."""
        return

    @contextlib.contextmanager
    def full_weights(self, policy: torch.nn.Module) -> Iterator[torch.nn.Module]:
        """The whole policy with its current weights, e.g. to save ``final/``."""
        yield self.unwrap(policy)

    # -- the backward pass ---------------------------------------------------------------------
    def backward(self, loss: torch.Tensor, model: torch.nn.Module) -> None:
        self.accelerator.backward(loss)

    def no_sync_unless(self, last: bool, model: torch.nn.Module) -> contextlib.AbstractContextManager:
        """Skip DDP's gradient all-reduce on every micro-batch but the minibatch's last."""
        return contextlib.nullcontext() if last else self.accelerator.no_sync(model)

    def optimizer_step(self, opt, max_norm: float, before_step: Callable[[], None], role: str) -> float:
        """Clip ``opt``'s gradients, run ``before_step`` (hooks), step and zero; returns the norm.
        A non-finite norm (the same on every process: DDP has reduced the gradients) stops the run
        before the step."""
        norm = float(self.accelerator.clip_grad_norm_(opt.model.parameters(), max_norm))
        if not math.isfinite(norm):
            opt.optimizer.zero_grad(set_to_none=True)
            check_grad_norm(norm, role)
        before_step()
        opt.optimizer.step()
        opt.optimizer.zero_grad(set_to_none=True)
        return norm

    # -- checkpoints -----------------------------------------------------------------------------
    def save_engines(self, engines: dict, directory: Path) -> None:
        """Only DeepSpeed writes its own checkpoint files; here the weights go into state.pt."""

    def load_engines(self, engines: dict, directory: Path) -> None:
        """See save_engines."""

    def sum_across(self, values: dict[str, float]) -> dict[str, float]:
        """Each value summed over the processes (in float64; a collective: every process calls it
        with the same keys)."""
        return self._reduce(values, "SUM")

    def max_across(self, values: dict[str, float]) -> dict[str, float]:
        """Each value's largest over the processes (a collective, as ``sum_across``)."""
        return self._reduce(values, "MAX")

    def _reduce(self, values: dict[str, float], op: str) -> dict[str, float]:
        if self.num_processes == 1:
            return dict(values)
        keys = sorted(values)
        total = torch.tensor([float(values[k]) for k in keys], dtype=torch.float64, device=self.device)
        torch.distributed.all_reduce(total, op=getattr(torch.distributed.ReduceOp, op))
        return dict(zip(keys, total.tolist(), strict=True))

    def check_shared_folder(self, folder: Path) -> None:
        """Refuse an output folder the processes do not share. The main process completes every
        checkpoint from the files all processes write into it (DeepSpeed's shards, each process's
        random state), so on several machines it must be one filesystem (NFS, Lustre...)."""
        if self.num_processes == 1:
            return
        token = f".rlsp-shared-{os.getpid()}-{time.time_ns()}" if self.is_main_process else None
        token = self.broadcast_object(token)
        if self.is_main_process:
            (folder / token).write_text("")
        self.barrier()
        seen = (folder / token).exists()
        agreed = self.all_agree(seen)
        self.barrier()
        if self.is_main_process:
            (folder / token).unlink()
        if not agreed:
            from rlsp.errors import ConfigError

            unseen = f" (process {self.process_index} cannot see what process 0 writes there)"
            raise ConfigError(f"run.output_dir {folder} is not one folder for every process"
                              f"{'' if seen else unseen}"
                              f": checkpoints gather every process's files, so a run on several machines needs "
                              f"run.output_dir on a filesystem they share.")

    def all_agree(self, ok: bool) -> bool:
        """Whether ``ok`` holds on every process (a collective: every process must call it)."""
        if self.num_processes == 1:
            return ok
        flag = torch.tensor([1.0 if ok else 0.0], device=self.device)
        torch.distributed.all_reduce(flag, op=torch.distributed.ReduceOp.MIN)
        return bool(flag.item())

    def barrier(self) -> None:
        self.accelerator.wait_for_everyone()

    def broadcast_object(self, obj):
        """The main process's ``obj``, on every process."""
        if self.num_processes == 1:
            return obj
        from accelerate.utils import broadcast_object_list

        return broadcast_object_list([obj])[0]

    # -- logs ----------------------------------------------------------------------------------
    def gather_objects(self, items: list) -> list:
        """Every process's ``items``, concatenated in rank order (on every process)."""
        if self.num_processes == 1:
            return items
        from accelerate.utils import gather_object

        return gather_object(items)


def rank_seed(seed: int, rank: int) -> int:
    """The seed of process ``rank``'s own random stream (sampling, dropout, minibatch order): a
    different stream on every process, each a function of ``run.seed`` and the rank alone, so a run
    is reproducible with the same number of processes."""
    import numpy as np

    return int(np.random.SeedSequence([seed, rank]).generate_state(1, dtype=np.uint64)[0] >> 1)


def training_device(recipe: Recipe) -> torch.device:
    """The device this process will train on, known before accelerate is set up (as Accelerator
    picks it: the local rank's GPU if there is one); ``pick_device``'s rule for ``model.device``."""
    from rlsp.modeling.causal_lm import pick_device

    return pick_device(recipe.model.device)
