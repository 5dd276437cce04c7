"""Keeping every process's sampling loop in step, for ZeRO-3 with weights gathered layer by layer.

Under ZeRO-3 each forward pass gathers every layer's shards from all processes, a collective
that every process must join. A process whose answers all stopped early would leave the others
waiting in the next gather, so until every process is done it keeps taking part with a
one-token forward pass whose result it ignores; every process also prefills in one pass.
"""

from __future__ import annotations

import torch


class Lockstep:
    def __init__(self, device: torch.device):
        self.device = device

    def any(self, flag: bool) -> bool:
        """True on every process if ``flag`` is True on any."""
        import torch.distributed as dist

        value = torch.tensor([1 if flag else 0], device=self.device)
        dist.all_reduce(value, op=dist.ReduceOp.MAX)
        return bool(value.item())

    def idle_forward(self, model) -> None:
        """A forward pass that gathers every layer like a real one; its output is dropped."""
        token = torch.zeros((1, 1), dtype=torch.long, device=self.device)
        model(input_ids=token, attention_mask=torch.ones_like(token), use_cache=False, logits_to_keep=1)
