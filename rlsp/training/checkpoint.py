"""Checkpoints that are complete or absent, never half-written.

A checkpoint is written into a hidden temporary directory and renamed to ``step-NNNNNN`` only
when every file is on disk; a rename within one directory is atomic, so a crash mid-save leaves
at most a ``.tmp-*`` directory, which is ignored and cleaned up later.
"""

from __future__ import annotations

import json
import os
import random
import re
import shutil
import tempfile
from pathlib import Path

import numpy as np
import torch

from rlsp.errors import RlspError

STEP_DIR = re.compile(r"^step-(\d{6,})$")


def checkpoint_root(run_dir: Path) -> Path:
    return run_dir / "checkpoints"


def list_checkpoints(run_dir: Path) -> list[Path]:
    root = checkpoint_root(run_dir)
    if not root.is_dir():
        return []
    found = [p for p in root.iterdir() if p.is_dir() and STEP_DIR.match(p.name)]
    return sorted(found, key=lambda p: int(STEP_DIR.match(p.name).group(1)))


def latest_checkpoint(run_dir: Path) -> Path | None:
    found = list_checkpoints(run_dir)
    return found[-1] if found else None


def rng_state() -> dict:
    return {"torch": torch.get_rng_state(), "python": random.getstate(), "numpy": np.random.get_state()}


def restore_rng(state: dict) -> None:
    torch.set_rng_state(state["torch"])
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])


def trainable_state(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """Only the parameters that train (all of them, or the LoRA adapters), plus buffers."""
    names = {n for n, p in model.named_parameters() if p.requires_grad}
    return {k: v.detach().cpu() for k, v in model.state_dict().items() if k in names}


def save_checkpoint(run_dir: Path, step: int, tensors: dict, trainer_state: dict, keep: int) -> Path:
    """Write ``tensors`` (torch-saveable) and the JSON ``trainer_state`` as checkpoint ``step``."""
    return commit_checkpoint(run_dir, step, open_checkpoint(run_dir, step), tensors, trainer_state, keep)


def open_checkpoint(run_dir: Path, step: int) -> Path:
    """A fresh hidden folder for checkpoint ``step``; others (DeepSpeed's shards) may write there
    before ``commit_checkpoint`` completes it."""
    root = checkpoint_root(run_dir)
    root.mkdir(parents=True, exist_ok=True)
    return Path(tempfile.mkdtemp(prefix=f".tmp-step-{step:06d}-", dir=root))


def commit_checkpoint(run_dir: Path, step: int, tmp: Path, tensors: dict, trainer_state: dict, keep: int) -> Path:
    """Add ``state.pt`` and ``trainer_state.json`` to ``tmp`` and rename it to ``step-NNNNNN``."""
    root = checkpoint_root(run_dir)
    final = root / f"step-{step:06d}"
    try:
        try:
            torch.save(tensors, tmp / "state.pt")
            (tmp / "trainer_state.json").write_text(json.dumps(trainer_state, indent=2) + "\n")
            _fsync_tree(tmp)
        except (OSError, RuntimeError) as e:  # torch reports a full disk as a RuntimeError of its zip writer
            raise CheckpointError(_save_failed(run_dir, step, e)) from e
        if final.exists():  # a re-run of the same step after a resume: replace it
            shutil.rmtree(final)
        os.rename(tmp, final)
        _fsync_dir(root)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    for old in list_checkpoints(run_dir)[:-keep]:
        shutil.rmtree(old, ignore_errors=True)
    for stale in root.glob(".tmp-step-*"):
        shutil.rmtree(stale, ignore_errors=True)
    return final


class CheckpointError(RlspError):
    """A checkpoint could not be written; the earlier ones are intact."""


def _save_failed(run_dir: Path, step: int, error: Exception) -> str:
    free = shutil.disk_usage(checkpoint_root(run_dir)).free / 2**30
    latest = latest_checkpoint(run_dir)
    resume = (f"the latest complete checkpoint is {latest.name}; free space and continue with --resume"
              if latest else "no earlier checkpoint was saved; free space and start the run again")
    return (f"writing the checkpoint of step {step} in {checkpoint_root(run_dir)} failed ({error}); "
            f"{free:.1f} GiB free there (a full disk is the usual cause). Nothing earlier was lost: {resume}.")


def load_checkpoint(path: Path) -> tuple[dict, dict]:
    tensors = torch.load(path / "state.pt", weights_only=False)
    trainer_state = json.loads((path / "trainer_state.json").read_text())
    return tensors, trainer_state


def _fsync_tree(path: Path) -> None:
    """``_fsync_dir`` on ``path`` and every folder under it (DeepSpeed writes sub-folders)."""
    for folder in [path, *(p for p in path.rglob("*") if p.is_dir())]:
        _fsync_dir(folder)


def _fsync_dir(path: Path) -> None:
    """Flush the files in ``path`` and the directory entry itself, so a rename is durable."""
    for f in path.iterdir():
        if f.is_file():
            with open(f, "rb") as fh:
                os.fsync(fh.fileno())
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
