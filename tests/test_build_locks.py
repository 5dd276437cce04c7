"""A DeepSpeed op's build lock left by a killed process no longer hangs the next launch (seen in CI:
a ZeRO-3 offload run waited on CPU Adam's lock until the test's 300 s timeout). The locks here are
taken with PyTorch's own ``FileBaton``, the way ``torch.utils.cpp_extension`` takes them."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from torch.utils.file_baton import FileBaton

from rlsp.build_locks import MULTI_MACHINE_GRACE_S, clear_stale_build_locks

pytestmark = pytest.mark.skipif(not Path("/proc/self/fd").is_dir(), reason="needs /proc to see who holds a lock")

HOLD = """
import sys, time
from torch.utils.file_baton import FileBaton
assert FileBaton(sys.argv[1]).try_acquire()
print("held", flush=True)
time.sleep(600)
"""


def hold_lock(lock: Path) -> subprocess.Popen:
    """A process that takes ``lock`` as torch's extension builder does and keeps it."""
    holder = subprocess.Popen([sys.executable, "-c", HOLD, str(lock)], stdout=subprocess.PIPE, text=True)
    assert holder.stdout.readline().strip() == "held"
    return holder


def op_lock(cache: Path, op: str = "cpu_adam") -> Path:
    """The lock path torch uses for ``op`` under ``cache`` (``<cache>/py311_cpu/<op>/lock``)."""
    build = cache / "py311_cpu" / op
    build.mkdir(parents=True)
    return build / "lock"


def test_a_lock_whose_holder_was_killed_is_removed_and_named(tmp_path, capsys):
    lock = op_lock(tmp_path)
    holder = hold_lock(lock)
    holder.send_signal(signal.SIGKILL)
    holder.wait()
    assert lock.exists()  # what torch leaves: every later build would wait on it
    assert clear_stale_build_locks(tmp_path) == [lock]
    assert not lock.exists() and FileBaton(str(lock)).try_acquire()
    assert f"removed {lock}" in capsys.readouterr().err


def test_a_lock_a_living_process_holds_is_left_alone(tmp_path, capsys):
    lock = op_lock(tmp_path)
    holder = hold_lock(lock)
    try:
        assert clear_stale_build_locks(tmp_path) == []
        assert lock.exists() and capsys.readouterr().err == ""
    finally:
        holder.kill()
        holder.wait()


def test_across_machines_a_recent_unheld_lock_is_named_not_removed(tmp_path, capsys):
    """Another machine sharing the home folder may be building: only an old lock is removed."""
    lock = op_lock(tmp_path)
    lock.touch()
    assert clear_stale_build_locks(tmp_path, spans_machines=True) == []
    assert lock.exists() and "held by no process on this machine" in capsys.readouterr().err
    old = time.time() - MULTI_MACHINE_GRACE_S - 60
    os.utime(lock, (old, old))
    assert clear_stale_build_locks(tmp_path, spans_machines=True) == [lock]


def test_a_deepspeed_launch_clears_a_killed_builds_lock_before_loading(tmp_path, monkeypatch, capsys):
    """``check_launch``, which every launched command runs first, does the clearing."""
    from rlsp.launch_setup import check_launch

    lock = op_lock(tmp_path, "deepspeed_shm_comm")
    lock.touch()
    monkeypatch.setenv("TORCH_EXTENSIONS_DIR", str(tmp_path))
    monkeypatch.setenv("ACCELERATE_USE_DEEPSPEED", "true")
    monkeypatch.delenv("ACCELERATE_DEEPSPEED_CONFIG_FILE", raising=False)
    check_launch("train")
    assert not lock.exists() and "removed" in capsys.readouterr().err
