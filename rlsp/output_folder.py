"""A run's output folder: checked before any work, cleared of an earlier run's outputs only when
asked, and owned by one run at a time (``rlsp train``, ``sft`` and ``eval``).

The owner holds an exclusive ``flock`` on ``<run.output_dir>/.rlsp.lock`` from before it loads a
model (and before ``--overwrite`` removes anything) until the process ends. The kernel drops the
lock when the process ends however it ends, a crash or ``kill -9`` included, so a stopped run
never leaves the folder stuck; the file stays behind and means nothing without the lock. Under a
launcher only the main process takes it: the other ranks belong to the same run.

Taking the lock also creates the folder and writes to it, so an output folder that cannot be
written (read-only, under a file, no permission) fails here, before any work, not at the first
checkpoint or after an evaluation's last sample.
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import socket
import time
from collections.abc import Sequence
from pathlib import Path

from rlsp.errors import ConfigError
from rlsp.launch_env import launched_rank

LOCK_FILE = ".rlsp.lock"
_held: dict[Path, int] = {}  # folder -> open descriptor holding its lock, for this process


def check_output_dir(out: Path) -> None:
    """A run folder must be a folder, or a place where one can be made, and writable (checked before
    any work, not at the first write). Nothing is created: ``own_output_dir`` does that."""
    if out.exists() and not out.is_dir():
        raise ConfigError(f"run.output_dir: {out} is a file, not a folder; choose a folder for the run's outputs.")
    existing = next(p for p in [out, *out.absolute().parents] if p.exists())
    if not existing.is_dir():
        raise ConfigError(f"run.output_dir: {out} lies under {existing}, which is a file; choose a folder for the "
                          f"run's outputs.")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise ConfigError(f"run.output_dir: cannot write to {existing} (read-only or no permission); choose a "
                          f"folder this user can write to.")


def claim_output_dir(out: Path, outputs: Sequence[str], overwrite: bool, command: str) -> None:
    """Refuse an output folder that already holds ``outputs`` of an earlier run (nothing is
    overwritten by accident); with ``overwrite`` remove those outputs first."""
    check_output_dir(out)
    found = [name for name in outputs if (out / name).exists()]
    if not found:
        return
    if not overwrite:
        raise ConfigError(
            f"run.output_dir {out} already holds the output of an earlier rlsp {command} ({', '.join(found)}); "
            f"nothing was overwritten. Choose another run.output_dir, or pass --overwrite to replace it."
        )
    if launched_rank() != 0:
        return  # under a launcher the main process removes them; two removing one tree would collide
    for name in found:
        path = out / name
        shutil.rmtree(path) if path.is_dir() else path.unlink()


def own_output_dir(out: Path, command: str) -> None:
    """Create ``out`` if needed and hold its lock until this process ends.

    Raises ``ConfigError`` when the folder cannot be written or another run holds it. A second
    call for the same folder in the same process (a resumed run in a test, a library user's
    second trainer) is allowed: it is one owner.
    """
    check_output_dir(Path(out))  # the precise reasons (a file, under a file, read-only) before trying
    if launched_rank() != 0:
        return
    folder = Path(out).resolve()
    if folder in _held:
        return
    try:
        folder.mkdir(parents=True, exist_ok=True)
        fd = os.open(folder / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as e:
        raise ConfigError(f"run.output_dir: cannot write to {out} ({e.strerror or e}); choose a folder this user "
                          f"can create and write to.") from None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = _read_holder(fd)
        os.close(fd)
        raise ConfigError(f"run.output_dir {out} is in use by another {holder}; wait for it to end or choose "
                          f"another run.output_dir. Nothing was changed.") from None
    try:
        _write_holder(fd, command)
    except OSError as e:  # a full disk or a folder that takes no writes
        os.close(fd)
        raise ConfigError(f"run.output_dir: cannot write to {out} ({e.strerror or e}); free space or choose "
                          f"another folder.") from None
    _held[folder] = fd


def release_output_dir(out: Path) -> None:
    """Give the folder up before the process ends (in-process callers; commands just exit)."""
    fd = _held.pop(Path(out).resolve(), None)
    if fd is not None:
        os.close(fd)  # closing the descriptor drops the flock


def _write_holder(fd: int, command: str) -> None:
    holder = {"command": f"rlsp {command}", "pid": os.getpid(), "host": socket.gethostname(),
              "started": time.strftime("%Y-%m-%d %H:%M:%S")}
    os.ftruncate(fd, 0)
    os.pwrite(fd, (json.dumps(holder) + "\n").encode(), 0)


def _read_holder(fd: int) -> str:
    """'rlsp train (pid 12, host h, started ...)', as far as the lock file tells."""
    try:
        holder = json.loads(os.pread(fd, 4096, 0).decode())
        return f"{holder['command']} (pid {holder['pid']} on {holder['host']}, started {holder['started']})"
    except (OSError, ValueError, KeyError, TypeError):
        return "rlsp run"
