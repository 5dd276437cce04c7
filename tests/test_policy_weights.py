"""The weights an inference engine gets from the policy: checkpoint names, LoRA merged on the side."""

from __future__ import annotations

import pytest
import torch
from tiny_models import build_model, build_tokenizer

from rlsp.config.train_schema import LoraConfig
from rlsp.generation.policy_weights import policy_weights
from rlsp.modeling.lora import add_lora


def test_full_model_weights_are_its_state_dict():
    model = build_model(len(build_tokenizer()))
    exported = dict(policy_weights(model))
    assert exported.keys() == model.state_dict().keys()
    assert all(torch.equal(exported[k], v) for k, v in model.state_dict().items())


def test_lora_policy_exports_merged_weights_under_checkpoint_names_and_stays_unmerged():
    base = build_model(len(build_tokenizer()))
    names = set(base.state_dict())
    policy = add_lora(base, LoraConfig(enabled=True, r=2, alpha=4.0, target_modules=["q_proj", "v_proj"]))
    with torch.no_grad():  # a trained adapter: B is zero at initialisation, which would hide a missing merge
        for name, p in policy.named_parameters():
            if "lora_B" in name:
                p.normal_(0, 0.5)
    before = {k: v.clone() for k, v in policy.state_dict().items()}
    exported = dict(policy_weights(policy))
    assert set(exported) == names  # no lora_A/B, no base_layer, no PEFT prefix

    layer = policy.base_model.model.model.layers[0].self_attn.q_proj
    expected = layer.base_layer.weight + layer.get_delta_weight("default")
    assert torch.allclose(exported["model.layers.0.self_attn.q_proj.weight"], expected, atol=1e-6)
    assert not torch.equal(exported["model.layers.0.self_attn.q_proj.weight"], layer.base_layer.weight)
    k_proj = policy.base_model.model.model.layers[0].self_attn.k_proj  # not adapted: exported as it is
    assert torch.equal(exported["model.layers.0.self_attn.k_proj.weight"], k_proj.weight)
    # The policy itself is untouched (no in-place merge and unmerge).
    assert all(torch.equal(before[k], v) for k, v in policy.state_dict().items())


def test_merged_export_gives_the_lora_policys_outputs():
    tokenizer = build_tokenizer()
    policy = add_lora(build_model(len(tokenizer)), LoraConfig(enabled=True, r=1, alpha=2.0, target_modules=["o_proj"]))
    with torch.no_grad():
        for name, p in policy.named_parameters():
            if "lora_B" in name:
                p.normal_(0, 0.5)
    plain = build_model(len(tokenizer), seed=1)  # other weights, overwritten by the export
    plain.load_state_dict(dict(policy_weights(policy)))
    ids = torch.tensor([[5, 6, 7, 8, 9]])
    with torch.no_grad():
        assert torch.allclose(plain(ids).logits, policy(input_ids=ids).logits, atol=1e-5)


@pytest.fixture
def one_process_group(tmp_path, monkeypatch):
    """A gloo group of one process, for ZeRO-3 to partition in; removed again afterwards."""
    import torch.distributed as dist

    for name, value in {"RANK": "0", "LOCAL_RANK": "0", "WORLD_SIZE": "1", "LOCAL_WORLD_SIZE": "1"}.items():
        monkeypatch.setenv(name, value)  # what DeepSpeed reads of the launch
    dist.init_process_group("gloo", init_method=f"file://{tmp_path / 'rendezvous'}", rank=0, world_size=1)
    yield
    dist.destroy_process_group()


def test_zero3_weights_are_gathered_one_module_at_a_time_and_equal_the_whole_model(one_process_group):
    """Every parameter partitioned by ZeRO-3 (one process: each shard is the whole tensor, but the
    parameters themselves are emptied, as on many processes)."""
    deepspeed = pytest.importorskip("deepspeed")
    from deepspeed.runtime.zero.partition_parameters import ZeroParamStatus

    config = {"train_micro_batch_size_per_gpu": 1, "zero_optimization": {"stage": 3}}
    with deepspeed.zero.Init(config_dict_or_path=config, dtype=torch.float32):
        sharded = build_model(len(build_tokenizer()), seed=3)
    params = list(sharded.parameters())
    with deepspeed.zero.GatheredParameters(params):  # the reference: DeepSpeed's own whole-model gather
        whole = {k: v.detach().clone() for k, v in sharded.state_dict().items()}
    assert all(p.ds_status == ZeroParamStatus.NOT_AVAILABLE and p.numel() == 0 for p in params)
    largest_module = max(sum(p.ds_numel for p in m.parameters(recurse=False)) for m in sharded.modules())
    exported, peak = {}, 0
    for name, tensor in policy_weights(sharded):
        gathered = sum(p.ds_numel for p in params if p.ds_status == ZeroParamStatus.AVAILABLE)
        peak = max(peak, gathered)
        exported[name] = tensor
    assert 0 < peak <= largest_module  # never more than one module's full weights at once
    assert all(p.ds_status == ZeroParamStatus.NOT_AVAILABLE for p in params)  # all released again
    assert exported.keys() == whole.keys()
    assert all(torch.equal(exported[k], v) for k, v in whole.items())


def test_after_a_whole_sync_only_what_training_changes_moves_with_its_siblings():
    """LoRA on q and v: the attention projections move (k and o too, which an engine fuses or
    keeps beside them), merged; nothing else does. A trainable module outside LoRA moves too."""
    base = build_model(len(build_tokenizer()))
    policy = add_lora(base, LoraConfig(enabled=True, r=2, alpha=4.0, target_modules=["q_proj", "v_proj"]))
    moved = dict(policy_weights(policy, changed_only=True))
    everything = dict(policy_weights(policy))
    layers = base.config.num_hidden_layers
    assert set(moved) == {f"model.layers.{i}.self_attn.{p}_proj.weight" for i in range(layers) for p in "qkvo"}
    assert all(torch.equal(moved[k], everything[k]) for k in moved)
    policy.base_model.model.lm_head.weight.requires_grad_(True)
    assert "lm_head.weight" in dict(policy_weights(policy, changed_only=True))
