"""TRL's ``SFTTrainer`` firing rlsp's hook events (``rlsp.hooks``), so one hook serves both
``rlsp sft`` and ``rlsp train``.

TRL exposes optimizer steps to callbacks but not forward or backward passes, so those two are
fired from overrides of ``compute_loss`` (the forward) and ``training_step`` (forward and
backward of one micro-batch). Scalars hooks set are merged into the trainer's next log entry.
"""

from __future__ import annotations

import torch

from rlsp.hooks import HookRunner
from rlsp.hooks.replay import replay_gradients
from rlsp.training.nonfinite import NonFiniteError


def hooked_sft_trainer(hooks: HookRunner, **trainer_kwargs):
    """An ``SFTTrainer`` built with ``trainer_kwargs`` that fires the events of ``hooks``."""
    from trl import SFTTrainer

    class HookedSFTTrainer(SFTTrainer):
        replaying = False  # True while replay() runs: no events, nothing kept

        def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
            if self.replaying:
                return super().compute_loss(model, inputs, return_outputs, num_items_in_batch)
            labels = inputs.get("labels")
            wanted = self.hook_runner.hooks and labels is not None and model.training
            token_mask = (labels != -100) if wanted else None
            with self.hook_runner.around("forward", role="policy", grad=model.training, token_mask=token_mask):
                return super().compute_loss(model, inputs, return_outputs, num_items_in_batch)

        def training_step(self, model, inputs, num_items_in_batch=None):
            if self.hook_runner.wants_replay and not self.replaying:
                self.micro_batches.append((inputs, num_items_in_batch))
            loss = super().training_step(model, inputs, num_items_in_batch)
            if not self.replaying:
                self.hook_runner.fire("backward_end")
            return loss

        def replay(self) -> dict:
            """This optimizer step's gradients again, every hook suspended."""
            model, training_step = self.model_wrapped, super().training_step

            def run_micro_batches():
                self.replaying = True
                try:
                    for inputs, num_items in self.micro_batches:
                        training_step(model, inputs, num_items)
                finally:
                    self.replaying = False

            return replay_gradients(model, self.accelerator.unwrap_model(model), self.hook_runner, run_micro_batches)

        def log(self, logs, start_time=None):
            logs.update(self.hook_runner.pop_scalars())
            super().log(logs, start_time)

        def train(self, *args, **kwargs):
            self.hook_runner.fire("train_start")
            try:
                return super().train(*args, **kwargs)
            finally:
                self.hook_runner.end()

    trainer = HookedSFTTrainer(**trainer_kwargs)
    trainer.micro_batches = []  # this optimizer step's (inputs, num_items_in_batch), for a replay
    hooks.model_getter = lambda: trainer.accelerator.unwrap_model(trainer.model)
    trainer.hook_runner = hooks
    trainer.add_callback(hook_events(trainer, hooks))
    return trainer


def hook_events(trainer, hooks: HookRunner):
    """The callback that fires ``hooks``' optimizer-step events in ``trainer`` (a
    ``hooked_sft_trainer``) and keeps the step count the hooks see."""
    from transformers import TrainerCallback

    class HookEvents(TrainerCallback):
        """Optimizer-step events, and the step count the hooks see."""

        def __init__(self, runner: HookRunner):
            self.runner = runner

        def on_step_begin(self, args, state, control, **kwargs):
            self.runner.step = state.global_step

        def on_pre_optimizer_step(self, args, state, control, **kwargs):
            # NaN or inf gradients (the same on every process once reduced) stop the run before the
            # step and before any later checkpoint could keep them (DeepSpeed's sharded gradients
            # are its own to check: it skips such a step)
            if not all(bool(torch.isfinite(p.grad).all()) for p in trainer.model.parameters() if p.grad is not None):
                raise NonFiniteError(f"optimizer step {state.global_step + 1}: a gradient is not finite; the step was "
                                     "not applied and nothing after the last saved checkpoint was kept. Usual causes: "
                                     "a learning rate too high, a hook setting that is not a finite number.")
            self.runner.fire("optimizer_step_start", replay=trainer.replay if self.runner.wants_replay else None)

        def on_optimizer_step(self, args, state, control, **kwargs):
            self.runner.fire("optimizer_step_end")
            trainer.micro_batches = []

        def on_step_end(self, args, state, control, **kwargs):
            self.runner.step = state.global_step
            self.runner.fire("step_end")

    return HookEvents(hooks)
