"""Stop a run before NaN or inf reaches the weights or a checkpoint.

A non-finite loss (a hook value or steering vector that is not a finite number, a learning rate
that blows the policy up) turns every gradient, then every weight, into NaN. Three checks keep
that out of what the run keeps:

- every micro-batch loss of an optimizer step, before the step (all processes agree, so they stop
  together and no process waits in a collective for one that left);
- the clipped gradient norm, before the optimizer step (DeepSpeed skips a step whose gradients
  overflow; the check then stops the run instead of going on without the step);
- the trained weights, before a checkpoint is committed.

Each raises ``NonFiniteError``: the CLI prints it as one line, the trainer adds the step and the
latest intact checkpoint to resume from.
"""

from __future__ import annotations

import math

import torch

from rlsp.errors import RlspError


class NonFiniteError(RlspError):
    """Training produced NaN or inf; nothing of it was applied or saved."""

    causes = ("Usual causes: a learning rate too high, a hook setting, steering vector or reward that is not a "
              "finite number.")


def check_losses(non_finite: list[str], dist) -> None:
    """Raise if any process saw a non-finite loss in this optimizer step (``non_finite`` names
    this process's, e.g. ``["policy loss nan"]``). A collective: every process calls it."""
    if dist.all_agree(not non_finite):
        return
    where = ", ".join(dict.fromkeys(non_finite)) if non_finite else "a loss on another process"
    raise NonFiniteError(f"{where} in the update, before the optimizer step")


def check_grad_norm(norm: float, role: str) -> None:
    if not math.isfinite(norm):
        raise NonFiniteError(f"the {role}'s gradient norm is {norm} (the optimizer step was not applied)")


def own_elements(p: torch.Tensor, rank: int) -> torch.Tensor:
    """The elements of ``p`` this process holds: under ZeRO-3 its shard without the padding that
    evens out the last shards (DeepSpeed leaves that memory uninitialised, so it may read as NaN
    in a run whose weights are all finite)."""
    shard = getattr(p, "ds_tensor", None)
    if shard is None:
        return p
    size = shard.numel()
    real = max(0, min(size, p.ds_numel - size * rank))
    return shard.view(-1).narrow(0, 0, real)


def check_weights(models) -> None:
    """Raise if a trained weight (policy or critic, this process's shards) is not finite. A
    collective: every process calls it."""
    rank = models.dist.process_index
    bad = [name for module in models.engines().values() for name, p in module.named_parameters()
           if p.requires_grad and not bool(torch.isfinite(own_elements(p, rank)).all())]
    if not models.dist.all_agree(not bad):
        where = f"weight {bad[0]}" if bad else "a weight on another process"
        raise NonFiniteError(f"{where} is not finite; the checkpoint was not written")
