"""Saving and restoring a whole run: networks, optimizers, schedules, random state and the loop's
own counters, in one checkpoint folder; which checkpoint ``--resume`` continues from.

Every process writes its own random state (``rng-rankNNN.pt``) into the still hidden folder, and
under DeepSpeed its engines' shards; the main process then writes ``state.pt`` (weights and
optimizers without DeepSpeed, the schedules, and the run's global state: counters, reward
normalisers, KL controller, the same on every process) and renames the folder into place. A
resumed process restores its own rank's random state, so it draws the same samples as in a
straight run.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import torch

from rlsp.errors import ConfigError
from rlsp.launch_env import launched_rank
from rlsp.output_folder import claim_output_dir
from rlsp.training import checkpoint as ckpt
from rlsp.training.nonfinite import check_weights

# What a run writes into run.output_dir (other folders there, e.g. a demo's sft/, are left alone).
RUN_OUTPUTS = ("checkpoints", "summary.json", "rollouts.jsonl", "diagnostics.jsonl", "tensorboard", "final")


def save_run(trainer) -> None:
    dist, models = trainer.models.dist, trainer.models
    check_weights(models)  # a checkpoint full of NaN would look complete and resumable
    state = {
        "step": trainer.step, "position": trainer.position, "eval_before": trainer.eval_before,
        "kl_controller": trainer.kl_ctl.state_dict(), "normalizers": trainer.normalizers.state_dict(),
    }
    tmp = dist.broadcast_object(str(ckpt.open_checkpoint(trainer.run_dir, trainer.step)) if dist.is_main_process
                                else None)
    tmp = Path(tmp)
    dist.save_engines(models.engines(), tmp)  # DeepSpeed's shards (a no-op without DeepSpeed)
    torch.save(ckpt.rng_state(), tmp / _rng_file(dist.process_index))
    dist.barrier()  # every process's files are on disk before the folder is completed
    if dist.is_main_process:
        ckpt.commit_checkpoint(trainer.run_dir, trainer.step, tmp, models.state_dict(), state,
                               keep=trainer.cfg.keep_checkpoints)
    dist.barrier()


def load_run(trainer, path: Path) -> None:
    dist = trainer.models.dist
    tensors, state = ckpt.load_checkpoint(path)
    trainer.models.load_state_dict(tensors, path)
    own_rng = path / _rng_file(dist.process_index)
    if own_rng.is_file():
        ckpt.restore_rng(torch.load(own_rng, weights_only=False))
    elif "rng" in tensors:  # written by an rlsp that kept one random state in state.pt
        ckpt.restore_rng(tensors["rng"])
    else:
        warnings.warn(f"--resume: {path.name} holds no random state of process {dist.process_index} (it was saved by a "
                      f"run with fewer processes); this process samples from its seed's stream, so the resumed run "
                      f"does not replay a straight one.", stacklevel=2)
    trainer.step, trainer.position, trainer.eval_before = state["step"], state["position"], state["eval_before"]
    trainer.kl_ctl.load_state_dict(state["kl_controller"])
    trainer.normalizers.load_state_dict(state["normalizers"])


def _rng_file(rank: int) -> str:
    return f"rng-rank{rank:03d}.pt"


def checkpoint_to_resume(run_dir: Path, steps: int, resume: bool, overwrite: bool) -> Path | None:
    """The checkpoint to continue from (``--resume``), or None after making sure a new run
    overwrites nothing of an earlier one (unless ``--overwrite``, which removes it)."""
    if resume and overwrite:
        raise ConfigError("--resume continues a run and --overwrite replaces it; pass one of them.")
    latest = ckpt.latest_checkpoint(run_dir)
    if resume:
        if latest is None:
            raise ConfigError(f"--resume: no checkpoint in {run_dir}/checkpoints; start without --resume.")
        intact, damaged = ckpt.resumable_checkpoint(run_dir)
        for path, why in damaged if launched_rank() == 0 else []:
            warnings.warn(f"--resume: checkpoint {path.name} is damaged ({why}); passed over, and replaced "
                          f"when the run saves that step again.", stacklevel=2)
        if intact is None:
            raise ConfigError(f"--resume: no intact checkpoint in {run_dir}/checkpoints (the newest is "
                              f"{latest.name}: {damaged[0][1]}); start again with --overwrite.")
        if damaged and launched_rank() == 0:
            print(f"resuming from {intact.name}, the newest intact checkpoint")
        done = ckpt.checkpoint_step(intact)
        if done > steps:
            raise ConfigError(f"--resume: {intact.name} is past train.steps ({steps}); resuming would "
                              f"end at once and rewrite the run's summary and final/ under a shorter recipe. "
                              f"Set train.steps to {done} or more.")
        return intact
    if latest is not None and not overwrite:
        raise ConfigError(
            f"run.output_dir {run_dir} already holds checkpoints (latest {latest.name}). Continue it with "
            f"--resume, replace it with --overwrite, or choose another run.output_dir; nothing was overwritten."
        )
    claim_output_dir(run_dir, RUN_OUTPUTS, overwrite, "train")
    return None


def nothing_kept(run_dir: Path, step: int, causes: str) -> str:
    """What a run that stops inside ``step`` leaves to continue from, and how."""
    latest = ckpt.resumable_checkpoint(run_dir)[0]
    kept = f"the latest checkpoint is {latest.name}" if latest else "no checkpoint was saved before it"
    return (f"Nothing of step {step} was saved; {kept}. {causes} Fix it, then "
            f"{'continue with --resume' if latest else 'start again with --overwrite'}.")
