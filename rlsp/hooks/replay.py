"""One optimizer step's gradients computed again with every hook suspended, for hooks that compare
a step with and without the defences (``gradient_diagnostics``). ``rlsp train`` and ``rlsp sft``
each re-run their own micro-batches; what is kept and put back around them is the same."""

from __future__ import annotations

from collections.abc import Callable

import torch

from rlsp.hooks.events import HookRunner


def replay_gradients(model: torch.nn.Module, unwrapped: torch.nn.Module, hooks: HookRunner,
                     run_micro_batches: Callable[[], None]) -> dict[str, torch.Tensor]:
    """The gradients ``run_micro_batches`` accumulates from zero with every hook suspended, by
    parameter name of ``unwrapped`` (the model without its DDP or DeepSpeed wrapper). ``model``'s
    own gradients, the ones the step is about to apply, are put back afterwards."""
    kept = {name: p.grad for name, p in model.named_parameters()}
    model.zero_grad(set_to_none=True)
    with hooks.suspended():
        run_micro_batches()
    grads = {name: p.grad.detach().clone() for name, p in unwrapped.named_parameters() if p.grad is not None}
    for name, p in model.named_parameters():
        p.grad = kept[name]
    return grads
