"""The policy's current weights under the names of its Hugging Face checkpoint, for an inference
engine to load (``model.load_weights`` in vLLM).

A LoRA policy (PEFT) is exported merged: ``W + scale * B @ A`` per adapted layer, computed on the
side. PEFT's ``merge_adapter``/``unmerge_adapter`` would give the same tensors but add and then
subtract the delta in place, which leaves rounding error in the base weights after every step.
Tensors are yielded one at a time so an engine can copy each before the next is made.
"""

from __future__ import annotations

from collections.abc import Iterator

import torch

_PEFT_PREFIX = "base_model.model."


def policy_weights(policy: torch.nn.Module) -> Iterator[tuple[str, torch.Tensor]]:
    """(checkpoint name, tensor) for every parameter and persistent buffer of ``policy``; LoRA
    factors are folded into the weights they adapt and not yielded themselves."""
    lora_layers = _lora_layers(policy)
    for name, tensor in policy.state_dict(keep_vars=False).items():
        if ".lora_" in name or "lora_embedding" in name:
            continue
        owner = name.rsplit(".", 1)[0].removesuffix(".base_layer")
        clean = _checkpoint_name(name)
        if name.endswith("base_layer.weight") and owner in lora_layers:
            yield clean, _merged(lora_layers[owner], tensor)
        else:
            yield clean, tensor


def _lora_layers(policy: torch.nn.Module) -> dict[str, torch.nn.Module]:
    """Modules (by name) that carry an active LoRA adapter."""
    try:
        from peft.tuners.lora import LoraLayer
    except ImportError:  # peft is a dependency; without it there is no LoRA to merge
        return {}
    return {name: m for name, m in policy.named_modules() if isinstance(m, LoraLayer) and m.active_adapters}


@torch.no_grad()
def _merged(layer, base_weight: torch.Tensor) -> torch.Tensor:
    weight = base_weight.clone()
    for adapter in layer.active_adapters:
        if adapter in layer.lora_A:
            weight += layer.get_delta_weight(adapter).to(weight.dtype)
    return weight


def _checkpoint_name(name: str) -> str:
    """``base_model.model.model.layers.0.self_attn.q_proj.base_layer.weight`` ->
    ``model.layers.0.self_attn.q_proj.weight``."""
    return name.removeprefix(_PEFT_PREFIX).replace(".base_layer.", ".")
