"""Checkpoints that are complete or absent, never half-written, and checked before a resume.

A checkpoint is written into a hidden temporary directory and renamed to ``step-NNNNNN`` only
when every file is on disk; a rename within one directory is atomic, so a crash mid-save leaves
at most a ``.tmp-*`` directory, which is ignored and cleaned up later.

Its last file, ``manifest.json``, lists every file with its size. What happens to a checkpoint
after it is committed (a disk that loses a file, a copy cut short, a user's edit) shows there:
``--resume`` takes the newest checkpoint that still matches its manifest and says which it
skipped and why.
"""

from __future__ import annotations

import json
import os
import pickle
import random
import re
import shutil
import tempfile
from pathlib import Path

import numpy as np
import torch

from rlsp.errors import RlspError

STEP_DIR = re.compile(r"^step-(\d{6,})$")
MANIFEST = "manifest.json"  # written last: every other file of the checkpoint and its size


def checkpoint_root(run_dir: Path) -> Path:
    return run_dir / "checkpoints"


def list_checkpoints(run_dir: Path) -> list[Path]:
    root = checkpoint_root(run_dir)
    if not root.is_dir():
        return []
    found = [p for p in root.iterdir() if p.is_dir() and STEP_DIR.match(p.name)]
    return sorted(found, key=checkpoint_step)


def checkpoint_step(path: Path) -> int:
    """The step a ``step-NNNNNN`` folder holds."""
    return int(STEP_DIR.match(path.name).group(1))


def latest_checkpoint(run_dir: Path) -> Path | None:
    found = list_checkpoints(run_dir)
    return found[-1] if found else None


def rng_state() -> dict:
    """This process's random state: torch's CPU and (where there is one) CUDA generators, Python's
    and numpy's. Sampling draws from torch's generator of the device it runs on, and the vLLM
    backend takes its per-request seeds from torch's, so this is the sampler's state too."""
    state = {"torch": torch.get_rng_state(), "python": random.getstate(), "numpy": np.random.get_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_rng(state: dict) -> None:
    torch.set_rng_state(state["torch"])
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


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
            sizes = {str(f.relative_to(tmp)): f.stat().st_size for f in sorted(tmp.rglob("*")) if f.is_file()}
            (tmp / MANIFEST).write_text(json.dumps(sizes, indent=1) + "\n")
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


def damage(path: Path) -> str | None:
    """Why checkpoint ``path`` cannot be resumed from (a file missing or cut short), or None."""
    manifest = path / MANIFEST
    if not manifest.is_file():  # written by an rlsp before manifests: check what it has
        names = ("state.pt", "trainer_state.json")
        missing = [n for n in names if not (path / n).is_file()]
        return f"{missing[0]} is missing" if missing else None
    try:
        sizes = json.loads(manifest.read_text())
    except (OSError, ValueError) as e:
        return f"{MANIFEST} cannot be read ({e})"
    for name, size in sizes.items():
        f = path / name
        if not f.is_file():
            return f"{name} is missing"
        if f.stat().st_size != size:
            return f"{name} has {f.stat().st_size:,} bytes of the {size:,} written"
    return None


def resumable_checkpoint(run_dir: Path) -> tuple[Path | None, list[tuple[Path, str]]]:
    """The newest intact checkpoint, and the newer ones passed over with the reason for each."""
    skipped = []
    for path in reversed(list_checkpoints(run_dir)):
        why = damage(path)
        if why is None:
            return path, skipped
        skipped.append((path, why))
    return None, skipped


def load_checkpoint(path: Path) -> tuple[dict, dict]:
    """``state.pt`` and ``trainer_state.json`` of checkpoint ``path``; ``CheckpointError`` naming the
    file when one cannot be read."""
    try:
        tensors = torch.load(path / "state.pt", weights_only=False)
    except (OSError, RuntimeError, EOFError, ValueError, pickle.UnpicklingError) as e:
        raise CheckpointError(f"--resume: {path / 'state.pt'} cannot be read ({str(e).splitlines()[0][:200]}). "
                              f"Move {path} aside to resume from the checkpoint before it.") from None
    try:
        trainer_state = json.loads((path / "trainer_state.json").read_text())
    except (OSError, ValueError) as e:
        raise CheckpointError(f"--resume: {path / 'trainer_state.json'} cannot be read ({e}). Move {path} aside "
                              f"to resume from the checkpoint before it.") from None
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
