"""Every launch config in launch/ starts the processes it claims, launched as the README launches
it (``accelerate launch --config_file launch/<file> [--num_processes N]``): each process reports
the world size and rank that accelerate's process state sees, the way rlsp's commands set it up on
a CPU. The multi-machine and SLURM files need several machines and are only read here."""

from __future__ import annotations

import pytest
import yaml
from test_deepspeed import ACCELERATE, REPO, launch

pytestmark = pytest.mark.skipif(not ACCELERATE.exists(), reason="accelerate's launcher is not beside this Python")

PROBE = """
import sys
from accelerate import PartialState
state = PartialState(cpu=True)  # rlsp eval and train on a CPU set up the process group this way
sys.stdout.write(f"world {state.num_processes} rank {state.process_index}\\n")  # one write: lines do not interleave
sys.stdout.flush()
"""
CONFIGS = ["cpu.yaml", "ddp.yaml", "zero2.yaml", "zero3.yaml", "zero3_offload.yaml", "zero3_offload_optimizer.yaml"]


@pytest.mark.parametrize("config", CONFIGS)
def test_a_launch_config_starts_the_processes_it_claims(config, tmp_path):
    probe = tmp_path / "probe.py"
    probe.write_text(PROBE)
    out = launch(config, str(probe))  # --num_processes 2, as the README runs them on a CPU
    assert "world 2 rank 0" in out and "world 2 rank 1" in out, out[-2000:]


def test_the_single_process_config_starts_one(tmp_path):
    import os
    import subprocess

    probe = tmp_path / "probe.py"
    probe.write_text(PROBE)
    result = subprocess.run([str(ACCELERATE), "launch", "--config_file", "launch/single.yaml", str(probe)], cwd=REPO,
                            capture_output=True, text=True, timeout=120, check=True,
                            env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert "world 1 rank 0" in result.stdout


def test_every_launch_file_is_tested_or_named_here():
    launch_dir = REPO / "launch"
    read_only = {"zero3_multinode.yaml"}  # several machines
    assert {p.name for p in launch_dir.glob("*.yaml")} == {*CONFIGS, "single.yaml", *read_only}
    multinode = yaml.safe_load((launch_dir / "zero3_multinode.yaml").read_text())
    assert multinode["num_machines"] > 1 and multinode["distributed_type"] == "DEEPSPEED"
