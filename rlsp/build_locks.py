"""Lock files left in PyTorch's extension cache by a process that was killed while holding them.

DeepSpeed compiles its CPU and GPU ops (CPU Adam, the shared-memory collectives) with
``torch.utils.cpp_extension``. Every process that loads an op, even one already built, creates
``<cache>/<build>/<op>/lock`` while it runs ninja and deletes it afterwards; a process killed in
between (SIGKILL, a launcher timing out, a node lost) leaves the file, and every later process
that loads the op waits for it to disappear, forever and without a word. PyTorch keeps the lock's
file descriptor open while it builds, so on Linux a lock that no process on this machine holds
open was left by a dead one. Several machines can share one home folder, though: when the launch
spans machines, a recent lock held by no process here may be a build on another machine, and it
is named rather than removed.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

MULTI_MACHINE_GRACE_S = 600  # no single op's build on another machine takes longer than this


def extension_cache() -> Path:
    """Where ``torch.utils.cpp_extension`` builds: ``TORCH_EXTENSIONS_DIR`` or its default root."""
    from torch.utils.cpp_extension import get_default_build_root

    return Path(os.environ.get("TORCH_EXTENSIONS_DIR") or get_default_build_root())


def open_files_here() -> set[Path] | None:
    """Every file some process on this machine holds open (as far as /proc shows), or None where
    /proc cannot tell (not Linux)."""
    proc = Path("/proc")
    if not (proc / "self" / "fd").is_dir():
        return None
    held = set()
    for fd_dir in proc.glob("[0-9]*/fd"):
        try:
            for fd in fd_dir.iterdir():
                held.add(Path(os.readlink(fd)))
        except OSError:  # a process that ended while being read, or another user's
            continue
    return held


def clear_stale_build_locks(cache: Path | None = None, spans_machines: bool = False) -> list[Path]:
    """Remove the extension build locks in ``cache`` that no living process holds, saying so on
    stderr; return the removed paths. Where the launch spans machines, a lock younger than
    ``MULTI_MACHINE_GRACE_S`` is only named (another machine may be building)."""
    cache = cache or extension_cache()
    locks = [p for pattern in ("*/lock", "*/*/lock") for p in cache.glob(pattern)] if cache.is_dir() else []
    if not locks:
        return []
    held = open_files_here()
    if held is None:
        return []
    removed = []
    for lock in locks:
        if lock.resolve() in held:
            continue
        try:
            age = time.time() - lock.stat().st_mtime
        except FileNotFoundError:  # released meanwhile
            continue
        if spans_machines and age < MULTI_MACHINE_GRACE_S:
            print(f"rlsp: {lock} is held by no process on this machine; if no other machine is building "
                  f"DeepSpeed's ops now, delete it, or this run waits for it.", file=sys.stderr)
            continue
        try:
            lock.unlink()
        except FileNotFoundError:  # another rank removed it first
            continue
        removed.append(lock)
        print(f"rlsp: removed {lock}, left {age / 60:.0f} min ago by a build that was killed (DeepSpeed would "
              f"have waited for it forever).", file=sys.stderr)
    return removed
