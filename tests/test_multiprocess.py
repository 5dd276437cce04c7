"""Two processes (gloo on the CPU, launched as the README launches them) against one process.

Tolerance (tests/numerics.py): the two runs add the same fp32 terms in another order. The longest
reduction chain in the tiny model's gradients and losses is under 2,000 terms (the LM head's
300-token vocabulary, two layers of sums over 32 hidden, 64 MLP and at most 11 positions, the
batch's tokens), so statistics agree to 2 x 1,999 x 2^-24 = 2.4e-4 relative, and the weights after
two updates to that fraction of the distance the updates moved them. The runs pin fp32.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from numerics import relative_difference, reordered_sum_rtol
from safetensors.torch import load_file
from test_deepspeed import ACCELERATE, WORKER, launch, zero1_config
from test_training import make_recipe
from transformers import AutoModelForCausalLM

RTOL = reordered_sum_rtol(2_000)
pytestmark = pytest.mark.skipif(not ACCELERATE.exists(), reason="accelerate's launcher is not beside this Python")
LAUNCHES = {"DDP": "cpu.yaml", "ZeRO-1": None, "ZeRO-2": "zero2.yaml", "ZeRO-3": "zero3.yaml"}


@pytest.mark.parametrize("name", list(LAUNCHES))
def test_a_two_process_step_equals_one_process_on_the_same_global_batch(name, tmp_path, tiny_model_dir):
    """Different rows, lengths and token counts on each process; the advantages (reward normalisers
    and whitening over the batch), every statistic the step logs and every weight after two
    updates (GAE: policy and critic) equal one process given all the rows."""
    import subprocess
    import sys

    path, _ = make_recipe(tmp_path, tiny_model_dir)
    alone, shared = tmp_path / "one.pt", tmp_path / "two.pt"
    subprocess.run([sys.executable, str(WORKER), str(path), str(alone), "train.minibatch_size=8"], check=True,
                   capture_output=True, timeout=300)
    launch(LAUNCHES[name] or zero1_config(tmp_path), str(WORKER), str(path), str(shared))
    one, two = torch.load(alone), torch.load(shared)
    assert (one["world_size"], two["world_size"]) == (1, 2)
    assert two["engines"].startswith("data parallel" if name == "DDP" else f"DeepSpeed {name}")
    assert two["advantage_stats"] == pytest.approx(one["advantage_stats"], rel=RTOL)
    for channel, stats in one["normalizers"].items():  # the same running statistics, of all 8 rows
        assert two["normalizers"][channel] == pytest.approx(stats, rel=RTOL), channel
    assert one["normalizers"]["total"]["count"] == 8
    rows = torch.cat([F.pad(a, (0, one["advantages"][0].shape[1] - a.shape[1])) for a in two["advantages"]])
    assert relative_difference(rows, one["advantages"][0], one["advantages"][0]) < RTOL
    for a, b in zip(one["updates"], two["updates"], strict=True):
        assert set(a) == set(b)
        for key in a:
            assert b[key] == pytest.approx(a[key], rel=RTOL, abs=1e-7), key
    assert one["updates"][0]["actor/grad_norm"] > 1.0  # so the clipping at train.max_grad_norm=1 took part
    policy = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    start = {"policy": torch.cat([p.flatten() for p in policy.parameters()]), "critic": one["critic_start"]}
    for role in ("policy", "critic"):
        moved = one[role] - start[role]
        assert moved.abs().max() > 0.005  # two Adam steps at lr 0.01 moved the weights
        assert relative_difference(two[role], one[role], moved) < RTOL, role
    assert len(set(two["weight_sums"])) == 1  # every process holds the same weights


RLOO = ["train.advantage_estimator=rloo", "train.samples_per_prompt=2", "train.prompts_per_step=2",
        "train.minibatch_size=4", "train.steps=3", "train.checkpoint_every=1", "train.keep_checkpoints=5"]


def test_rlsp_train_on_two_processes_samples_apart_logs_once_and_resumes_exactly(tmp_path, tiny_model_dir):
    path, recipe = make_recipe(tmp_path, tiny_model_dir, *RLOO)
    out = launch("cpu.yaml", "-m", "rlsp", "train", str(path), *RLOO)
    assert "distributed: 2 processes" in out and out.count("held-out accuracy") == 1
    run = Path(recipe.run.output_dir)
    records = [json.loads(line) for line in (run / "rollouts.jsonl").read_text().splitlines()]
    assert len(records) == 3 * 2 * 2 * 2  # steps x processes x prompts x samples, written once
    summary = json.loads((run / "summary.json").read_text())
    assert len(set(summary["sampling_seeds"])) == 2  # a stream of its own per process
    for step in (1, 2, 3):  # rank 0's four rows, then rank 1's: no answer drawn alike
        rows = [r["completion"] for r in records if r["step"] == step]
        assert all(a != b for a, b in zip(rows[:4], rows[4:], strict=True)), rows
    assert (run / "checkpoints" / "step-000003" / "rng-rank001.pt").is_file()

    straight = tmp_path / "straight"
    shutil.copytree(run, straight)
    shutil.rmtree(run / "checkpoints" / "step-000003")
    shutil.rmtree(run / "final")
    launch("cpu.yaml", "-m", "rlsp", "train", str(path), *RLOO, "--resume")
    again = [json.loads(line) for line in (run / "rollouts.jsonl").read_text().splitlines()]
    assert [r["completion"] for r in again] == [r["completion"] for r in records]
    resumed = load_file(run / "final" / "model.safetensors")
    expected = load_file(straight / "final" / "model.safetensors")
    assert all(torch.equal(resumed[k], v) for k, v in expected.items())


SHARED_FOLDER_PROBE = """
import sys
from pathlib import Path
from rlsp.errors import ConfigError
from rlsp.training.distributed import Distributed

dist = Distributed(cpu=True)
base = Path(sys.argv[1])
dist.check_shared_folder(base)  # one folder for both: passes
own = base / f"machine{dist.process_index}"  # as two machines' local disks would look
own.mkdir(exist_ok=True)
try:
    dist.check_shared_folder(own)
except ConfigError as e:
    sys.stdout.write(f"rank {dist.process_index}: {e}\\n")
"""


def test_an_output_folder_the_processes_do_not_share_is_refused(tmp_path):
    probe = tmp_path / "probe.py"
    probe.write_text(SHARED_FOLDER_PROBE)
    out = launch("cpu.yaml", str(probe), str(tmp_path))
    assert out.count("is not one folder for every process") == 2, out[-2000:]
    assert "(process 1 cannot see what process 0 writes there)" in out
    assert not list(tmp_path.rglob(".rlsp-shared-*"))  # the probe file is removed
