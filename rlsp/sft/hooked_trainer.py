"""TRL's ``SFTTrainer`` firing rlsp's hook events (``rlsp.hooks``), so one hook serves both
``rlsp sft`` and ``rlsp train``.

TRL exposes optimizer steps to callbacks but not forward or backward passes, so those two are
fired from overrides of ``compute_loss`` (the forward) and ``training_step`` (forward and
backward of one micro-batch). Scalars hooks set are merged into the trainer's next log entry.
"""

from __future__ import annotations

from rlsp.hooks import Hook, HookRunner


def hooked_sft_trainer(hooks: list[Hook], **trainer_kwargs):
    """An ``SFTTrainer`` built with ``trainer_kwargs`` that fires ``hooks``' events."""
    from transformers import TrainerCallback
    from trl import SFTTrainer

    class HookedSFTTrainer(SFTTrainer):
        def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
            with self.hook_runner.around("forward", role="policy", grad=model.training):
                return super().compute_loss(model, inputs, return_outputs, num_items_in_batch)

        def training_step(self, model, inputs, num_items_in_batch=None):
            loss = super().training_step(model, inputs, num_items_in_batch)
            self.hook_runner.fire("backward_end")
            return loss

        def log(self, logs, start_time=None):
            logs.update(self.hook_runner.pop_scalars())
            super().log(logs, start_time)

        def train(self, *args, **kwargs):
            self.hook_runner.fire("train_start")
            try:
                return super().train(*args, **kwargs)
            finally:
                self.hook_runner.end()

    class HookEvents(TrainerCallback):
        """Optimizer-step events, and the step count the hooks see."""

        def __init__(self, runner: HookRunner):
            self.runner = runner

        def on_step_begin(self, args, state, control, **kwargs):
            self.runner.step = state.global_step

        def on_pre_optimizer_step(self, args, state, control, **kwargs):
            self.runner.fire("optimizer_step_start")

        def on_optimizer_step(self, args, state, control, **kwargs):
            self.runner.fire("optimizer_step_end")

        def on_step_end(self, args, state, control, **kwargs):
            self.runner.step = state.global_step
            self.runner.fire("step_end")

    trainer = HookedSFTTrainer(**trainer_kwargs)
    trainer.hook_runner = HookRunner(hooks, "sft", lambda: trainer.accelerator.unwrap_model(trainer.model))
    trainer.add_callback(HookEvents(trainer.hook_runner))
    return trainer
