"""A probe shared by trainer tests: the gradients each optimizer step applies."""

from __future__ import annotations

import torch


def capture_step_gradients(trainer) -> dict[str, list[torch.Tensor]]:
    """Filled at each optimizer step with the gradients it applies, per role (actor, critic)."""
    grads = {}
    for role, opt in (("actor", trainer.models.actor), ("critic", trainer.models.critic_opt)):
        if opt is None:
            continue
        original = opt.optimizer.step

        def step(*args, _role=role, _opt=opt, _original=original, **kwargs):
            grads[_role] = [p.grad.clone() for p in _opt.model.parameters() if p.grad is not None]
            return _original(*args, **kwargs)

        opt.optimizer.step = step
    return grads
