"""The layout of vLLM engines over a launch's processes (rlsp/generation/vllm_groups.py), without
vLLM: shared-memory files a finished tensor-parallel run left are cleared, mapped ones kept."""

from __future__ import annotations

import mmap
import sys

import pytest

from rlsp.generation.vllm_groups import clear_stale_cpu_shm, launch_mode

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")


def test_left_shm_files_are_removed_and_mapped_ones_kept(tmp_path):
    left, live = tmp_path / "-tp:0-[0-1]-cpushm_0", tmp_path / "-tp:0-[0-1]-cpushm_1"
    for path in (left, live):
        path.write_bytes(b"\0" * 4096)
    other = tmp_path / "not-vllms"
    other.write_bytes(b"x")
    with live.open("r+b") as f:
        mapping = mmap.mmap(f.fileno(), 4096)  # an engine of a running launch maps it (its descriptor closed)
    try:
        assert clear_stale_cpu_shm(tmp_path) == [left]
    finally:
        mapping.close()
    assert not left.exists() and live.exists() and other.exists()


def test_one_process_uses_vllms_own_executor_and_several_the_external_launcher():
    assert launch_mode(1, 1) == {}
    assert launch_mode(2, 4) == {"distributed_executor_backend": "external_launcher", "tensor_parallel_size": 2}
