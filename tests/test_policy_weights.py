"""The weights an inference engine gets from the policy: checkpoint names, LoRA merged on the side."""

from __future__ import annotations

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
