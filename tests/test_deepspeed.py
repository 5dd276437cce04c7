"""`rlsp train` and `rlsp sft` under DeepSpeed ZeRO with two CPU processes (gloo), through
`accelerate launch` and the repository's own launch configs, against one process.

Tolerance (tests/numerics.py): one process and two add the same fp32 terms in another order. The
longest reduction chain in the tiny model's gradients is under 2,000 terms (the LM head's 300-token
vocabulary, two layers of sums over 32 hidden, 64 MLP and at most 50 positions, and at most 200
tokens a batch), so losses and gradient norms agree to 2 x 1,999 x 2^-24 = 2.4e-4 relative, and the
weights after the updates to that fraction of the distance the updates moved them. SFT batches
hold up to 4 x 512 tokens, so its chain is under 4,000 terms. These runs pin
model.precision=fp32; bf16 (u = 2^-8) resolves nothing at this scale.
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from numerics import relative_difference, reordered_sum_rtol
from safetensors.torch import load_file
from test_training import make_recipe

from rlsp.config.schema import HookSpec
from rlsp.errors import ConfigError
from rlsp.training.deepspeed_auto_values import reference_config, training_config
from rlsp.training.deepspeed_checks import check_deepspeed_recipe

REPO = Path(__file__).resolve().parents[1]
ACCELERATE = Path(sys.executable).with_name("accelerate")
WORKER = Path(__file__).with_name("zero_worker.py")
RTOL = reordered_sum_rtol(2_000)  # see the module docstring
pytestmark = pytest.mark.skipif(not ACCELERATE.exists(), reason="accelerate's launcher is not beside this Python")
SMALL = ["train.prompts_per_step=2", "train.samples_per_prompt=2", "train.minibatch_size=4"]


def launch(config: str, *args: str) -> str:
    """``accelerate launch --config_file launch/<config> --num_processes 2 ARGS`` from the repo root."""
    config_file = config if Path(config).is_absolute() else f"launch/{config}"
    command = [str(ACCELERATE), "launch", "--config_file", config_file, "--num_processes", "2", *args]
    result = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=300, check=False,
                            env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert result.returncode == 0, (result.stdout + result.stderr)[-4000:]
    return result.stdout + result.stderr


def flat(tensors: dict[str, torch.Tensor], names) -> torch.Tensor:
    """The tensors ``names`` (e.g. the base model's) of a state dict, flattened into one vector."""
    return torch.cat([tensors[k].float().flatten() for k in names])


def zero1_config(tmp_path: Path) -> str:
    """launch/zero2.yaml with stage 1 (optimizer states sharded only); no such config ships."""
    ds = json.loads((REPO / "launch" / "ds_zero2.json").read_text())
    ds["zero_optimization"]["stage"] = 1
    (tmp_path / "ds_zero1.json").write_text(json.dumps(ds))
    accelerate_yaml = (REPO / "launch" / "zero2.yaml").read_text()
    zero1_yaml = accelerate_yaml.replace("launch/ds_zero2.json", str(tmp_path / "ds_zero1.json"))
    (tmp_path / "zero1.yaml").write_text(zero1_yaml)
    return str(tmp_path / "zero1.yaml")


def test_train_under_zero3_with_a_critic_shards_data_logs_once_and_resumes_exactly(tmp_path, tiny_model_dir):
    # model.precision=auto: DeepSpeed's bf16 engines where this CPU has native bf16, fp32 elsewhere
    overrides = [*SMALL, "train.steps=3", "train.checkpoint_every=1", "train.keep_checkpoints=5",
                 "model.precision=auto"]
    path, recipe = make_recipe(tmp_path, tiny_model_dir, *overrides)
    out = launch("zero3.yaml", "-m", "rlsp", "train", str(path), *overrides)
    assert "distributed: 2 processes" in out and "DeepSpeed ZeRO-3" in out
    assert out.count("held-out accuracy") == 1 and out.count("training engines: DeepSpeed ZeRO-3") == 1
    run = Path(recipe.run.output_dir)
    records = [json.loads(line) for line in (run / "rollouts.jsonl").read_text().splitlines()]
    assert len(records) == 3 * 2 * 2 * 2  # steps x processes x prompts x samples, written once
    for step in (1, 2, 3):  # each process drew its own prompts
        assert len({r["prompt"] for r in records if r["step"] == step}) == 4
    assert len(list((run / "tensorboard").rglob("events.*"))) == 1
    step3 = run / "checkpoints" / "step-000003"
    prefix = "bf16_" if "precision: bf16 compute" in out else ""  # DeepSpeed names bf16 shards apart
    assert sorted(p.name for p in (step3 / "actor" / "engine").glob("*optim_states.pt")) == [
        f"{prefix}zero_pp_rank_0_mp_rank_00_optim_states.pt", f"{prefix}zero_pp_rank_1_mp_rank_00_optim_states.pt"]
    assert (step3 / "critic" / "engine").is_dir() and (step3 / "rng-rank001.pt").is_file()
    final = load_file(run / "final" / "model.safetensors")
    base = load_file(tiny_model_dir / "model.safetensors")
    assert any(not torch.equal(final[k], base[k]) for k in base)  # consolidated, trained weights

    straight = tmp_path / "straight"
    shutil.copytree(run, straight)
    shutil.rmtree(step3)
    shutil.rmtree(run / "final")
    launch("zero3.yaml", "-m", "rlsp", "train", str(path), *overrides, "--resume")
    resumed = load_file(run / "final" / "model.safetensors")
    assert all(torch.equal(resumed[k], v) for k, v in load_file(straight / "final" / "model.safetensors").items())
    again = [json.loads(line) for line in (run / "rollouts.jsonl").read_text().splitlines()]
    assert [r["completion"] for r in again] == [r["completion"] for r in records]


def test_train_under_zero2_critic_free_with_lora_saves_the_merged_policy(tmp_path, tiny_model_dir):
    overrides = [*SMALL, "train.advantage_estimator=rloo", "train.kl.placement=loss", "train.kl.estimator=k3",
                 "model.lora.enabled=true", "model.lora.r=2"]
    path, recipe = make_recipe(tmp_path, tiny_model_dir, *overrides)
    out = launch("zero2.yaml", "-m", "rlsp", "train", str(path), *overrides)
    assert "distributed: 2 processes" in out and "training engines: DeepSpeed ZeRO-2" in out
    run = Path(recipe.run.output_dir)
    assert not (run / "checkpoints" / "step-000002" / "critic").exists()  # critic-free: no critic engine
    final = load_file(run / "final" / "model.safetensors")
    base = load_file(tiny_model_dir / "model.safetensors")
    assert not any("lora" in k for k in final) and set(base) <= set(final)
    assert any(not torch.equal(final[k], base[k]) for k in base)


SFT = """\
data:
  prompt_template: "{prompt} Put the final answer in \\\\\\\\boxed{}."
  arith: {levels: [2, 3]}
sft: {arith: {size: 8, error_share: 0.5}, max_length: 512, logging_steps: 1, max_steps: 2,
      learning_rate: 3.0e-3, lr_scheduler: constant}
"""


def test_sft_under_zero3_matches_one_process(tmp_path, tiny_model_dir):
    path = tmp_path / "sft.yaml"
    path.write_text(SFT)
    common = [f"model.name_or_path={tiny_model_dir}", "model.device=cpu", "model.precision=fp32"]
    subprocess.run([sys.executable, "-m", "rlsp", "sft", str(path), *common, f"run.output_dir={tmp_path / 'one'}",
                    "sft.per_device_batch_size=4"], check=True, capture_output=True, timeout=300)
    out = launch("zero3.yaml", "-m", "rlsp", "sft", str(path), *common, f"run.output_dir={tmp_path / 'two'}",
                 "sft.per_device_batch_size=2")
    assert "distributed: 2 processes (DEEPSPEED, backend gloo), device cpu:0, DeepSpeed ZeRO-3" in out
    losses = [[e["loss"] for e in json.loads((tmp_path / d / "sft_log.json").read_text()) if "loss" in e]
              for d in ("one", "two")]
    rtol = reordered_sum_rtol(4_000)  # see the module docstring
    assert len(losses[0]) == 2 and losses[1] == pytest.approx(losses[0], rel=rtol)
    base = load_file(tiny_model_dir / "model.safetensors")
    one, two = (flat(load_file(tmp_path / d / "model.safetensors"), base) for d in ("one", "two"))
    assert relative_difference(two, one, one - flat(base, base)) < rtol


# -- the config, without launching -------------------------------------------------------------
def test_auto_values_are_filled_from_the_recipe(tmp_path, tiny_model_dir):
    _, recipe = make_recipe(tmp_path, tiny_model_dir, "train.micro_batch_size=2", "train.max_grad_norm=0.5")
    config = json.loads((REPO / "launch" / "ds_zero3.json").read_text())
    filled = training_config(config, recipe, world_size=8, bf16=True, hidden_size=64)
    assert filled["train_micro_batch_size_per_gpu"] == 2 and filled["train_batch_size"] == 16
    assert filled["gradient_accumulation_steps"] == 1 and filled["gradient_clipping"] == 0.5
    assert filled["bf16"]["enabled"] is True and filled["fp16"]["enabled"] is False
    zero = filled["zero_optimization"]
    assert zero["reduce_bucket_size"] == 64 * 64 and zero["stage3_param_persistence_threshold"] == 640
    assert zero["stage3_prefetch_bucket_size"] == int(0.9 * 64 * 64)
    assert "auto" not in json.dumps(filled)
    reference = reference_config(filled)
    assert reference["zero_optimization"]["stage"] == 3 and "optimizer" not in reference


def test_what_zero_cannot_honour_is_refused_with_the_field(tmp_path, tiny_model_dir):
    _, recipe = make_recipe(tmp_path, tiny_model_dir)
    stage2_offload = {"zero_optimization": {"stage": 2, "offload_param": {"device": "cpu"}}}
    with pytest.raises(ConfigError, match="offload_param needs ZeRO stage 3"):
        check_deepspeed_recipe(recipe, stage2_offload)
    with pytest.raises(ConfigError, match="remove the 'scheduler' section"):
        check_deepspeed_recipe(recipe, {"zero_optimization": {"stage": 3}, "scheduler": {"type": "WarmupLR"}})
    with pytest.raises(ConfigError, match="zero_optimization.stage is 0"):
        check_deepspeed_recipe(recipe, {"zero_optimization": {"stage": 0}})
    with pytest.raises(ConfigError, match="fp16 under DeepSpeed needs loss scaling"):
        check_deepspeed_recipe(recipe, {"zero_optimization": {"stage": 3}, "fp16": {"enabled": True}})
    hooked = dataclasses.replace(recipe, hooks=[HookSpec(hook="gradient_diagnostics")])
    with pytest.raises(ConfigError, match="gradient_diagnostics reads every parameter's gradient"):
        check_deepspeed_recipe(hooked, {"zero_optimization": {"stage": 2}})
    check_deepspeed_recipe(recipe, {"zero_optimization": {"stage": 3, "offload_optimizer": {"device": "cpu"}}})


def test_more_processes_than_gpus_is_refused(monkeypatch):
    from rlsp.training.deepspeed_checks import check_devices

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    monkeypatch.setenv("LOCAL_WORLD_SIZE", "4")
    with pytest.raises(ConfigError, match="started 4 processes on this machine but it has 2 GPU"):
        check_devices()
    monkeypatch.setenv("LOCAL_WORLD_SIZE", "2")
    check_devices()


GATHER_PROBE = """
import json
from pathlib import Path

from rlsp.hooks import Hook


class GatherProbe(Hook):
    \"\"\"The most decoder-layer weights ZeRO-3 holds gathered at once while a step samples, counted
    before every submodule's forward (after ZeRO-3's own hook has fetched what it needs), in
    elements; persistent parameters (too small to shard) are left out: they are always there.\"\"\"

    def on_train_start(self, ctx):
        from deepspeed.runtime.zero.partition_parameters import ZeroParamStatus

        layers = list(ctx.model.model.layers)
        params = [p for layer in layers for p in layer.parameters() if not p.ds_persist]
        self.sizes = {"layer": max(sum(p.ds_numel for p in layer.parameters() if not p.ds_persist)
                                   for layer in layers), "layers": sum(p.ds_numel for p in params)}
        self.peak, self.sampling = 0, False

        def count(*_):
            if self.sampling:
                held = sum(p.ds_numel for p in params if p.ds_status == ZeroParamStatus.AVAILABLE)
                self.peak = max(self.peak, held)

        self.handles = [module.register_forward_pre_hook(count) for module in ctx.model.modules()]

    def on_generation_start(self, ctx):
        self.sampling = True

    def on_generation_end(self, ctx):
        self.sampling = False

    def on_train_end(self, ctx):
        for handle in self.handles:
            handle.remove()
        out = Path(ctx.run_dir) / "gathered.json"
        if not out.exists():
            out.write_text(json.dumps({"peak": self.peak, **self.sizes}))
"""


def test_zero3_generation_layer_by_layer_gathers_one_layer_and_samples_what_the_gathered_policy_does(tmp_path,
                                                                                                    tiny_model_dir):
    """Under the default generation.backend (auto, which resolves to rlsp's own loop here): 'layer'
    holds at most one decoder layer's weights gathered at a time while sampling (plus what ZeRO-3
    prefetches: stage3_prefetch_bucket_size, 0.9 x hidden^2 elements as rlsp fills it), 'whole' all
    of them; both sample the same tokens and train to the same weights."""
    (tmp_path / "probe.py").write_text(GATHER_PROBE)
    overrides = [*SMALL, "generation.max_new_tokens=16", "train.advantage_estimator=grpo",
                 "hooks=[{hook: probe.py:GatherProbe}]"]
    path, recipe = make_recipe(tmp_path, tiny_model_dir, *overrides)
    assert recipe.generation.backend == "auto"
    run = Path(recipe.run.output_dir)
    results = {}
    for gather in ("whole", "layer"):
        launch("zero3.yaml", "-m", "rlsp", "train", str(path), *overrides, f"generation.zero3_gather={gather}",
               "--overwrite")
        rows = [json.loads(line) for line in (run / "rollouts.jsonl").read_text().splitlines()]
        probe = json.loads((run / "gathered.json").read_text())
        (run / "gathered.json").unlink()
        results[gather] = ([r["completion"] for r in rows], load_file(run / "final" / "model.safetensors"), probe)
    whole, layer = results["whole"][2], results["layer"][2]
    prefetch = int(0.9 * 32 * 32)  # the tiny model's hidden size is 32
    assert whole["peak"] == whole["layers"] > 1.5 * whole["layer"]  # both layers at once
    assert 0 < layer["peak"] <= layer["layer"] + prefetch  # one at a time
    assert results["layer"][0] == results["whole"][0]
    assert all(torch.equal(results["layer"][1][k], v) for k, v in results["whole"][1].items())


def test_zero3_with_optimizer_and_parameter_offload_trains_like_zero3(tmp_path, tiny_model_dir):
    path, recipe = make_recipe(tmp_path, tiny_model_dir, *SMALL)
    run = Path(recipe.run.output_dir)
    finals = {}
    for config in ("zero3.yaml", "zero3_offload.yaml"):
        out = launch(config, "-m", "rlsp", "train", str(path), *SMALL, "--overwrite")
        finals[config] = load_file(run / "final" / "model.safetensors")
    assert "DeepSpeed ZeRO-3 (optimizer offload to cpu, param offload to cpu)" in out  # DeepSpeed's CPU Adam
    base = load_file(tiny_model_dir / "model.safetensors")
    offload, plain = (flat(finals[c], base) for c in ("zero3_offload.yaml", "zero3.yaml"))
    # CPU Adam computes AdamW's formula in its own order
    assert relative_difference(offload, plain, plain - flat(base, base)) < RTOL
