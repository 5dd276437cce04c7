"""Preventative steering (PPS, persona-vectors work, METHOD.md): while training, add
``coef * v`` to the output of one decoder layer at every position.

The idea: if the training data pushes the model towards a trait, supplying the trait direction
in the activations removes the pressure for the weights to learn it; without the steering the
trained model then expresses the trait less. The vector is added in training forward passes of
the policy (for RL also the no-gradient pass that computes the old log-probabilities, so the
PPO ratio starts at 1), optionally in rollout generation (``during_generation``), and never in
the reference pass, evaluation, held-out checks or saving: the hook sits on the activations,
the weights never see it.
"""

from __future__ import annotations

import contextlib

from rlsp.hooks.events import EventContext, Hook
from rlsp.steering.layers import decoder_layers, layer_output, with_layer_output
from rlsp.steering.vectors import SteeringVectors


class PreventativeSteering(Hook):
    path_kwargs = ("vectors",)

    def __init__(self, vectors: str, layer: int, coef: float = 5.0, during_generation: bool = False):
        self.vectors = SteeringVectors.load(vectors, "kwargs.vectors")
        self.vectors.check_layer(layer, "kwargs.layer")
        self.layer, self.coef, self.during_generation = layer, float(coef), bool(during_generation)
        self.active = False
        self._suspended = False
        self._handle = None

    def check_model(self, config) -> None:
        self.vectors.check_fits(config, "kwargs.vectors")

    # -- attaching ---------------------------------------------------------------------------
    def attach(self, model) -> None:
        if self._handle is None:
            self._handle = decoder_layers(model)[self.layer].register_forward_hook(self._add)

    def detach(self) -> None:
        if self._handle is not None:
            self._handle.remove()
            self._handle = None
        self.active = False

    def _add(self, module, args, output):
        if not self.active or self._suspended:
            return None
        hidden = layer_output(output)
        steer = (self.coef * self.vectors.vectors[self.layer]).to(dtype=hidden.dtype, device=hidden.device)
        return with_layer_output(output, hidden + steer)

    @contextlib.contextmanager
    def suspended(self):
        self._suspended = True
        try:
            yield
        finally:
            self._suspended = False

    # -- events ------------------------------------------------------------------------------
    def on_train_start(self, ctx: EventContext) -> None:
        self.attach(ctx.model)

    def on_forward_start(self, ctx: EventContext) -> None:
        self.active = ctx.role == "policy"

    def on_forward_end(self, ctx: EventContext) -> None:
        self.active = False

    def on_generation_start(self, ctx: EventContext) -> None:
        self.active = self.during_generation

    def on_generation_end(self, ctx: EventContext) -> None:
        self.active = False

    def on_train_end(self, ctx: EventContext) -> None:
        self.detach()
