"""Gradient diagnostics on a steering axis ("Shifting the Gradient", METHOD.md), every K
optimizer steps, to TensorBoard (``diagnostics/...``) and ``diagnostics.jsonl`` in the run folder.

At decoder layer ``layer``, over the response tokens of the step's training forward passes:

- ``diagnostics/activation_projection``: mean ``h . v_hat`` of the layer's output, as the model
  computes it (before any preventative steering is added);
- ``diagnostics/grad_projection``: mean ``g . v_hat`` with ``g = dL/dh``. Sign convention: a
  descent step moves ``h`` by ``-lr * g``, so a *negative* ``grad_projection`` (a positive
  ``diagnostics/trait_push = -g . v_hat``) means the update pushes the trait up;
- ``diagnostics/grad_norm/layer_NN``: the norm of the trained parameters' gradients per layer;
- ``diagnostics/grad_cosine_without_defences`` (and ``.../layer_NN``): the cosine between this
  step's parameter gradients and those of the same batch replayed with every hook suspended
  (the cost: one more forward and backward). It is 1 when no hook changes the model's
  computation, e.g. under inoculation prompting, whose effect is in the prompt, not the model.
"""

from __future__ import annotations

import json
import re
from collections import defaultdict
from pathlib import Path

import torch

from rlsp.errors import ConfigError
from rlsp.hooks.events import EventContext, Hook
from rlsp.steering.layers import decoder_layers, layer_output
from rlsp.steering.vectors import SteeringVectors

LAYER_IN_NAME = re.compile(r"\.layers\.(\d+)\.")


class GradientDiagnostics(Hook):
    path_kwargs = ("vectors",)
    wants_replay = True

    def __init__(self, vectors: str, layer: int, every: int = 1, compare_without_defences: bool = True):
        self.vectors = SteeringVectors.load(vectors, "kwargs.vectors")
        self.vectors.check_layer(layer, "kwargs.layer")
        if every < 1:
            raise ConfigError(f"kwargs.every: measure every N optimizer steps, N at least 1; got {every}.")
        self.layer, self.every, self.compare = layer, int(every), bool(compare_without_defences)
        self.unit = self.vectors.unit(layer)
        self.optimizer_steps = 0
        self._handle = None
        self._mask = None
        self._sums: dict[str, float] = defaultdict(float)
        self._file: Path | None = None

    def check_model(self, config) -> None:
        self.vectors.check_fits(config, "kwargs.vectors")

    def measuring(self) -> bool:
        return self.optimizer_steps % self.every == 0

    # -- capturing h and dL/dh ---------------------------------------------------------------
    def on_train_start(self, ctx: EventContext) -> None:
        # prepend: read the layer's own output, before a steering hook on the same layer adds to it
        self._handle = decoder_layers(ctx.model)[self.layer].register_forward_hook(self._capture, prepend=True)
        if ctx.run_dir is not None:
            self._file = Path(ctx.run_dir) / "diagnostics.jsonl"

    def on_forward_start(self, ctx: EventContext) -> None:
        if ctx.role == "policy" and ctx.grad and ctx.token_mask is not None and self.measuring():
            self._mask = ctx.token_mask

    def on_forward_end(self, ctx: EventContext) -> None:
        self._mask = None

    def _capture(self, module, args, output):
        if self._mask is None:
            return
        hidden = layer_output(output)
        mask = self._mask.to(hidden.device, torch.float32)
        unit = self.unit.to(hidden.device, torch.float32)
        tokens = float(mask.sum())
        self._sums["tokens"] += tokens
        self._sums["activation"] += float((hidden.detach().float() @ unit * mask).sum())
        if hidden.requires_grad:
            hidden.register_hook(lambda g: self._add_grad((g.float() @ unit * mask).sum()))
        return

    def _add_grad(self, total: torch.Tensor) -> None:
        self._sums["grad"] += float(total)

    # -- the step ------------------------------------------------------------------------------
    def on_optimizer_step_start(self, ctx: EventContext) -> None:
        if not self.measuring() or not self._sums["tokens"]:
            return
        tokens = self._sums["tokens"]
        record = {
            "trainer": ctx.trainer, "step": ctx.step, "optimizer_step": self.optimizer_steps + 1, "layer": self.layer,
            "activation_projection": self._sums["activation"] / tokens,
            # the loss of each micro-batch is scaled by its share of the minibatch, so the summed
            # g . v_hat over tokens is the minibatch's own; divided by tokens for a per-token mean
            "grad_projection": self._sums["grad"] / tokens,
        }
        record["trait_push"] = -record["grad_projection"]
        grads = {n: p.grad.detach().float() for n, p in ctx.model.named_parameters()
                 if p.requires_grad and p.grad is not None}
        record["grad_norm"] = {f"layer_{i:02d}": float(n) for i, n in sorted(per_layer_norms(grads).items())}
        if self.compare and ctx.replay is not None:
            without = ctx.replay()
            record["grad_cosine_without_defences"] = cosine(grads, without)
            record["grad_cosine_without_defences_by_layer"] = {
                f"layer_{i:02d}": c for i, c in sorted(per_layer_cosines(grads, without).items())
            }
        self._sums.clear()
        ctx.scalars.update(flat_scalars(record))
        if self._file is not None:
            with self._file.open("a") as f:
                f.write(json.dumps(record) + "\n")

    def on_optimizer_step_end(self, ctx: EventContext) -> None:
        self.optimizer_steps += 1
        self._sums.clear()

    def on_train_end(self, ctx: EventContext) -> None:
        if self._handle is not None:
            self._handle.remove()
            self._handle = None
        self._mask = None


def layer_of(name: str) -> int | None:
    match = LAYER_IN_NAME.search(name)
    return int(match.group(1)) if match else None


def per_layer_norms(grads: dict[str, torch.Tensor]) -> dict[int, float]:
    squares: dict[int, float] = defaultdict(float)
    for name, g in grads.items():
        layer = layer_of(name)
        if layer is not None:
            squares[layer] += float(g.square().sum())
    return {layer: s ** 0.5 for layer, s in squares.items()}


def cosine(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> float:
    """Cosine between two gradients given as {parameter name: tensor}, over their shared names."""
    names = sorted(set(a) & set(b))
    dot = sum(float((a[n] * b[n].float()).sum()) for n in names)
    norm_a = sum(float(a[n].square().sum()) for n in names) ** 0.5
    norm_b = sum(float(b[n].float().square().sum()) for n in names) ** 0.5
    return dot / max(norm_a * norm_b, 1e-30)


def per_layer_cosines(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> dict[int, float]:
    by_layer: dict[int, list[str]] = defaultdict(list)
    for name in set(a) & set(b):
        if (layer := layer_of(name)) is not None:
            by_layer[layer].append(name)
    return {layer: cosine({n: a[n] for n in names}, {n: b[n] for n in names}) for layer, names in by_layer.items()}


def flat_scalars(record: dict) -> dict[str, float]:
    out = {}
    for key, value in record.items():
        if key in ("trainer", "step", "optimizer_step", "layer"):
            continue
        if isinstance(value, dict):
            out.update({f"diagnostics/{key}/{k}": v for k, v in value.items()})
        else:
            out[f"diagnostics/{key}"] = value
    return out
