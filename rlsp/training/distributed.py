"""Every accelerate (and, later, DeepSpeed) specific of the RL loop, in one place.

The loop asks this object to prepare models and optimizers, run the backward pass, skip the
gradient all-reduce between micro-batches, clip gradients, hand out the unwrapped policy for
generation and gather rollout records onto the main process. Today that is accelerate's DDP or a
single process; DeepSpeed ZeRO (the scale-out issue) changes this file, not the loop.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator

import torch

from rlsp.config import Recipe


class Distributed:
    """The process group of a run, as the RL loop sees it."""

    def __init__(self, cpu: bool):
        from accelerate import Accelerator

        from rlsp.launch_setup import announce_setup

        self.accelerator = Accelerator(cpu=cpu)
        announce_setup(self.accelerator.state, "train")

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
    def prepare(self, *objects):
        """Models and optimizers wrapped for this process group (DDP, or as they are on one)."""
        return self.accelerator.prepare(*objects)

    def unwrap(self, model: torch.nn.Module) -> torch.nn.Module:
        """The plain model under any wrapper: what hooks, checkpoints and saving see."""
        return self.accelerator.unwrap_model(model)

    @contextlib.contextmanager
    def policy_for_generation(self, policy: torch.nn.Module) -> Iterator[torch.nn.Module]:
        """The whole policy, ready to generate. Under DDP every process holds all weights, so
        this is the unwrapped model; under ZeRO-3 this is where the shards will be gathered."""
        yield self.unwrap(policy)

    # -- the backward pass ---------------------------------------------------------------------
    def backward(self, loss: torch.Tensor) -> None:
        self.accelerator.backward(loss)

    def no_sync_unless(self, last: bool, model: torch.nn.Module) -> contextlib.AbstractContextManager:
        """Skip DDP's gradient all-reduce on every micro-batch but the minibatch's last."""
        return contextlib.nullcontext() if last else self.accelerator.no_sync(model)

    def clip_grad_norm_(self, parameters, max_norm: float) -> float:
        return float(self.accelerator.clip_grad_norm_(parameters, max_norm))

    # -- logs ----------------------------------------------------------------------------------
    def gather_objects(self, items: list) -> list:
        """Every process's ``items``, concatenated in rank order (on every process)."""
        if self.num_processes == 1:
            return items
        from accelerate.utils import gather_object

        return gather_object(items)


def training_device(recipe: Recipe) -> torch.device:
    """The device this process will train on, known before accelerate is set up (as Accelerator
    picks it: the local rank's GPU if there is one)."""
    if recipe.model.device != "auto":
        return torch.device(recipe.model.device)
    if torch.cuda.is_available():
        return torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
    return torch.device("cpu")
