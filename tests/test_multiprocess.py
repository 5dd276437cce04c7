"""`rlsp train` under two processes (torchrun, gloo on the CPU): the data-parallel path."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from test_training import make_recipe

TORCHRUN = Path(sys.executable).with_name("torchrun")
pytestmark = pytest.mark.skipif(not TORCHRUN.exists(), reason="torchrun is not installed beside this Python")

RLOO = ["train.advantage_estimator=rloo", "train.samples_per_prompt=2", "train.kl.placement=loss",
        "train.kl.estimator=k3", "train.prompts_per_step=2", "train.minibatch_size=4", "train.steps=3",
        "train.checkpoint_every=2"]


def torchrun(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    command = [str(TORCHRUN), "--standalone", "--nproc_per_node", "2", *args]
    result = subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, timeout=300, check=False)
    assert result.returncode == 0, result.stderr[-3000:]
    return result


def test_two_processes_gather_rollouts_and_stay_in_sync(tmp_path, tiny_model_dir):
    path, recipe = make_recipe(tmp_path, tiny_model_dir, *RLOO)
    recipe_text = path.read_text()
    result = torchrun("-m", "rlsp", "train", str(path), *RLOO, cwd=tmp_path)
    run = Path(recipe.run.output_dir)
    records = [json.loads(line) for line in (run / "rollouts.jsonl").read_text().splitlines()]
    # 3 steps x 2 processes x 2 prompts x 2 samples, each written once by the main process.
    assert len(records) == 24 and sorted({r["step"] for r in records}) == [1, 2, 3]
    summary = json.loads((run / "summary.json").read_text())
    assert summary["heldout_size"] == 4 and summary["steps"] == 3
    assert result.stdout.count("held-out accuracy") == 1  # one report, from the main process
    assert (run / "final" / "config.json").exists()

    # Every process ends with the same weights although each trained on its own prompts.
    shutil.rmtree(run)
    path.write_text(recipe_text)
    worker = Path(__file__).with_name("ddp_worker.py")
    out = torchrun(str(worker), str(path), str(run), cwd=tmp_path).stdout
    sums = sorted(line.split(" sums ")[1] for line in out.splitlines() if line.startswith("rank "))
    assert len(sums) == 2 and sums[0] == sums[1], out
