"""Saving and restoring a whole run: networks, optimizers, schedules, random state and the loop's
own counters, in one checkpoint folder.

Without DeepSpeed the main process writes everything into ``state.pt``. Under DeepSpeed every
process writes its engines' shards into the same (still hidden) folder first, and its own random
state beside them, so a resumed run draws the same samples on every process as a straight one;
the main process then completes the folder and renames it into place.
"""

from __future__ import annotations

from pathlib import Path

import torch

from rlsp.training import checkpoint as ckpt
from rlsp.training.nonfinite import check_weights


def save_run(trainer) -> None:
    dist, models = trainer.models.dist, trainer.models
    check_weights(models)  # a checkpoint full of NaN would look complete and resumable
    state = {
        "step": trainer.step, "position": trainer.position, "eval_before": trainer.eval_before,
        "kl_controller": trainer.kl_ctl.state_dict(), "normalizers": trainer.normalizers.state_dict(),
    }
    if not dist.uses_deepspeed:
        if dist.is_main_process:
            ckpt.save_checkpoint(trainer.run_dir, trainer.step, {**models.state_dict(), "rng": ckpt.rng_state()},
                                 state, keep=trainer.cfg.keep_checkpoints)
        return
    tmp = dist.broadcast_object(str(ckpt.open_checkpoint(trainer.run_dir, trainer.step)) if dist.is_main_process
                                else None)
    tmp = Path(tmp)
    dist.save_engines(models.engines(), tmp)
    torch.save(ckpt.rng_state(), tmp / _rng_file(dist.process_index))
    dist.barrier()  # every shard is on disk before the folder is completed
    if dist.is_main_process:
        ckpt.commit_checkpoint(trainer.run_dir, trainer.step, tmp, models.state_dict(), state,
                               keep=trainer.cfg.keep_checkpoints)
    dist.barrier()


def load_run(trainer, path: Path) -> None:
    dist = trainer.models.dist
    tensors, state = ckpt.load_checkpoint(path)
    trainer.models.load_state_dict(tensors, path)
    own_rng = path / _rng_file(dist.process_index)
    ckpt.restore_rng(torch.load(own_rng, weights_only=False) if own_rng.is_file() else tensors["rng"])
    trainer.step, trainer.position, trainer.eval_before = state["step"], state["position"], state["eval_before"]
    trainer.kl_ctl.load_state_dict(state["kl_controller"])
    trainer.normalizers.load_state_dict(state["normalizers"])


def _rng_file(rank: int) -> str:
    return f"rng-rank{rank:03d}.pt"
