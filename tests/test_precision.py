"""model.precision: the auto choice, explicit settings, and the dtypes training really uses."""

from __future__ import annotations

import json
import warnings

import pytest
import torch
from test_training import make_recipe

from rlsp.config import load_recipe
from rlsp.errors import ConfigError
from rlsp.precision import CpuBf16Probe, cpu_description, probe_cpu_bf16, resolve_precision
from rlsp.training.ppo_trainer import Trainer

EMULATED = CpuBf16Probe(torch_says_native=False, fp32_gflops=110.0, bf16_gflops=0.9)  # AVX2-only Zen 3
NATIVE = CpuBf16Probe(torch_says_native=True, fp32_gflops=100.0, bf16_gflops=500.0)  # AMX
CLAIMED_BUT_SLOW = CpuBf16Probe(torch_says_native=True, fp32_gflops=100.0, bf16_gflops=40.0)


@pytest.fixture
def cpu_reports(monkeypatch):
    """Make the CPU probe report a chosen machine."""
    def use(probe: CpuBf16Probe):
        monkeypatch.setattr("rlsp.precision.probe_cpu_bf16", lambda: probe)
    return use


def test_auto_is_fp32_on_a_cpu_without_native_bf16(cpu_reports):
    cpu_reports(EMULATED)
    p = resolve_precision("auto", "cpu", training=True)
    assert (p.compute, p.weights, p.autocast_dtype) == (torch.float32, torch.float32, None)
    assert "no native bf16" in p.reason and "122x slower" in p.reason


def test_auto_is_bf16_autocast_over_fp32_weights_where_native(cpu_reports):
    cpu_reports(NATIVE)
    p = resolve_precision("auto", "cpu", training=True)
    assert (p.compute, p.weights, p.autocast_dtype) == (torch.bfloat16, torch.float32, torch.bfloat16)
    inference = resolve_precision("auto", "cpu", training=False)
    assert (inference.compute, inference.weights, inference.autocast_dtype) == (torch.bfloat16, torch.bfloat16, None)


def test_auto_trusts_the_timing_over_torchs_claim(cpu_reports):
    cpu_reports(CLAIMED_BUT_SLOW)
    p = resolve_precision("auto", "cpu", training=True)
    assert p.compute == torch.float32 and "2.5x slower" in p.reason


def test_explicit_bf16_on_an_emulating_cpu_warns_with_the_slowdown(cpu_reports):
    cpu_reports(EMULATED)
    with pytest.warns(UserWarning, match="122x slower than fp32"):
        p = resolve_precision("bf16", "cpu", training=True)
    assert (p.compute, p.weights) == (torch.bfloat16, torch.float32)


def test_bf16_pure_warns_that_small_updates_are_lost(cpu_reports):
    cpu_reports(NATIVE)
    with pytest.warns(UserWarning, match="2\\^-8"):
        p = resolve_precision("bf16-pure", "cpu", training=True)
    assert (p.compute, p.weights, p.autocast_dtype) == (torch.bfloat16, torch.bfloat16, None)


def test_fp16_needs_cuda():
    with pytest.raises(ConfigError, match="fp16 needs a CUDA GPU"):
        resolve_precision("fp16", "cpu", training=False)


def test_probe_measures_this_machine():
    probe = probe_cpu_bf16()
    assert probe.fp32_gflops > 0.1 and probe.bf16_gflops > 0.01
    assert probe.torch_says_native == torch.ops.mkldnn._is_mkldnn_bf16_supported()
    assert "torch threads" in cpu_description()


@pytest.mark.parametrize("key", ["model.dtype=bfloat16", "train.mixed_precision=bf16"])
def test_old_precision_keys_point_to_model_precision(tmp_path, tiny_model_dir, key):
    path, _ = make_recipe(tmp_path, tiny_model_dir)
    with pytest.raises(ConfigError, match=f"{key.split('=')[0]}: replaced by model.precision"):
        load_recipe(path, [key])


@pytest.mark.parametrize(
    "setting, probe, weights, states",
    [
        ("fp32", NATIVE, torch.float32, torch.float32),
        ("auto", EMULATED, torch.float32, torch.float32),
        ("auto", NATIVE, torch.float32, torch.float32),  # bf16 autocast, fp32 master weights
        ("bf16", EMULATED, torch.float32, torch.float32),
        ("bf16-pure", NATIVE, torch.bfloat16, torch.bfloat16),
    ],
)
def test_weight_and_optimizer_state_dtypes_after_one_step(tmp_path, tiny_model_dir, cpu_reports, setting, probe,
                                                          weights, states):
    cpu_reports(probe)
    path, recipe = make_recipe(tmp_path, tiny_model_dir, f"model.precision={setting}", "train.steps=1",
                               "train.advantage_estimator=rloo", "train.samples_per_prompt=2",
                               "train.kl.placement=loss", "train.minibatch_size=8", "train.micro_batch_size=4")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        trainer = Trainer(recipe, path)
    precision_warnings = [w for w in caught if "model.precision=" in str(w.message)]
    assert bool(precision_warnings) == setting.startswith("bf16")  # bf16 on an emulating CPU, or pure bf16
    before = {k: v.detach().clone() for k, v in trainer.models.policy.named_parameters()}
    trainer.fit()
    policy = trainer.models.policy
    assert {p.dtype for p in policy.parameters()} == {weights}
    assert any(not torch.equal(before[k], v) for k, v in policy.named_parameters())
    state = trainer.models.actor.optimizer.state
    assert state and {s["exp_avg"].dtype for s in state.values()} == {states}
    assert {s["exp_avg_sq"].dtype for s in state.values()} == {states}
    summary = json.loads((trainer.run_dir / "summary.json").read_text())
    expected_compute = "fp32" if (setting, probe) in (("fp32", NATIVE), ("auto", EMULATED)) else "bf16"
    assert summary["precision"]["setting"] == setting
    assert summary["precision"]["compute"] == expected_compute


def test_explicit_bf16_warns_before_any_model_loads(tmp_path, tiny_model_dir, cpu_reports, monkeypatch):
    cpu_reports(EMULATED)
    seen = []
    monkeypatch.setattr("rlsp.training.components.load_causal_lm",
                        lambda *a, **k: seen.append("loaded") or pytest.fail("model loaded"))
    path, recipe = make_recipe(tmp_path, tiny_model_dir, "model.precision=bf16")
    with pytest.warns(UserWarning, match="slower") as caught, pytest.raises(pytest.fail.Exception):
        Trainer(recipe, path)
    assert caught and seen == ["loaded"]  # the warning came first, then the (refused) load


def test_no_shipped_cpu_recipe_forces_bf16():
    from pathlib import Path

    recipes = sorted((Path(__file__).resolve().parents[1] / "recipes").glob("*.yaml"))
    cpu_recipes = [p for p in recipes if load_recipe(p, []).model.name_or_path == "smollm2-135m-instruct"
                   or load_recipe(p, []).model.device == "cpu"]
    assert len(cpu_recipes) >= 3
    for path in cpu_recipes:
        assert load_recipe(path, []).model.precision in ("auto", "fp32"), path.name


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
@pytest.mark.parametrize("setting", ["auto", "fp32", "bf16", "bf16-pure"])
def test_weight_and_optimizer_state_dtypes_on_cuda(tmp_path, tiny_model_dir, setting):
    path, recipe = make_recipe(tmp_path, tiny_model_dir, f"model.precision={setting}", "model.device=cuda",
                               "train.steps=1", "train.advantage_estimator=rloo", "train.samples_per_prompt=2",
                               "train.kl.placement=loss", "train.minibatch_size=8", "train.micro_batch_size=4")
    trainer = Trainer(recipe, path)
    trainer.fit()
    weights = torch.bfloat16 if setting == "bf16-pure" else torch.float32
    assert {p.dtype for p in trainer.models.policy.parameters()} == {weights}
    assert {s["exp_avg"].dtype for s in trainer.models.actor.optimizer.state.values()} == {weights}
    native = torch.cuda.get_device_capability(0) >= (8, 0)  # Ampere and later; older cards emulate bf16
    expected = "fp32" if setting == "fp32" or (setting == "auto" and not native) else "bf16"
    assert trainer.precision.summary()["compute"] == expected


@pytest.mark.parametrize(("cards", "run_on", "expected"), [
    ({0: ("Tesla V100-SXM2-32GB", (7, 0))}, "cuda", torch.float32),  # emulated bf16: torch still says "supported"
    ({0: ("Tesla T4", (7, 5))}, "cuda:0", torch.float32),
    ({0: ("NVIDIA A100-SXM4-80GB", (8, 0))}, "cuda", torch.bfloat16),
    ({0: ("NVIDIA H100 80GB HBM3", (9, 0))}, "cuda:0", torch.bfloat16),
    # the run's own card decides, not the current device
    ({0: ("NVIDIA A100-SXM4-80GB", (8, 0)), 1: ("Tesla V100-SXM2-32GB", (7, 0))}, "cuda:1", torch.float32),
    ({0: ("Tesla V100-SXM2-32GB", (7, 0)), 1: ("NVIDIA A100-SXM4-80GB", (8, 0))}, "cuda:1", torch.bfloat16),
])
def test_auto_takes_bf16_only_on_a_gpu_that_runs_it_natively(monkeypatch, cards, run_on, expected):
    """Named cards with their published compute capabilities; no GPU needed."""
    monkeypatch.setattr(torch.version, "hip", None)
    monkeypatch.setattr(torch.cuda, "current_device", lambda: 0)
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda i=None: cards[0 if i is None else i][0])
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda i=None: cards[0 if i is None else i][1])
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda including_emulation=True: True)
    precision = resolve_precision("auto", run_on, training=True)
    assert precision.compute == expected, precision.reason


def test_accelerate_adds_no_autocast_of_its_own(tmp_path, tiny_model_dir, monkeypatch):
    """model.precision alone decides: accelerate's mixed precision (from a launch's environment or an
    earlier accelerator in the process) would wrap the policy's forward in a second autocast."""
    monkeypatch.setenv("ACCELERATE_MIXED_PRECISION", "bf16")
    path, recipe = make_recipe(tmp_path, tiny_model_dir)  # model.precision: fp32
    trainer = Trainer(recipe, path)
    assert trainer.models.dist.accelerator.mixed_precision == "no"
