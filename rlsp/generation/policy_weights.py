"""The policy's current weights under the names of its Hugging Face checkpoint, for an inference
engine to load (``model.load_weights`` in vLLM).

They are streamed one module at a time (after the first sync, only the modules training can
change): each module's own parameters and persistent buffers (a
LoRA layer's base weight with its adapter folded in), then the next module's. Under ZeRO-3 a
module's shards are gathered just before its tensors are yielded and released as the engine asks
for the next module's, so a process never holds more than one module's full weights beside its
shards (the largest is the embedding or the LM head; ``tests/test_policy_weights.py`` counts the
gathered parameters at every step). No whole-model gather happens.

A LoRA policy (PEFT) is exported merged: ``W + scale * B @ A`` per adapted layer, computed on the
side. PEFT's ``merge_adapter``/``unmerge_adapter`` would give the same tensors but add and then
subtract the delta in place, which leaves rounding error in the base weights after every step.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch

_PEFT_PREFIX = "base_model.model."


def policy_weights(policy: torch.nn.Module, changed_only: bool = False) -> Iterator[tuple[str, torch.Tensor]]:
    """(checkpoint name, tensor) for every parameter and persistent buffer of ``policy``; LoRA
    factors are folded into the weights they adapt and not yielded themselves. ``changed_only``:
    for an engine that holds the policy's weights already, only the modules training can change
    (a LoRA layer, trainable parameters) and their siblings; with LoRA on attention, only the
    attention projections then move. Under ZeRO-3 a
    collective: every process must consume its iterator in step with the others."""
    lora_layers = _lora_layers(policy)
    changing = _changing_parents(policy, lora_layers) if changed_only else None
    for prefix, module in _units(policy, lora_layers):
        whole = prefix in lora_layers  # a LoRA layer: its base layer and adapters together
        if changing is not None and not whole and prefix.rpartition(".")[0] not in changing:
            continue
        sharded = _shards(list(module.parameters(recurse=whole)))
        with _gathered(sharded):
            for name, tensor in _own_tensors(module, whole):
                full = f"{prefix}.{name}" if prefix else name
                if ".lora_" in full or "lora_embedding" in full:
                    continue
                if whole and name == "base_layer.weight":
                    tensor = _merged(module, tensor)
                elif sharded:
                    tensor = tensor.detach().clone()  # the gathered storage is released after this module
                yield _checkpoint_name(full), tensor.detach()


def _changing_parents(policy: torch.nn.Module, lora_layers: dict[str, torch.nn.Module]) -> set[str]:
    """Modules with a child that training changes (a LoRA layer, or trainable parameters). All
    their children travel together: an engine fuses siblings (q, k and v into one matrix; gate and
    up) and rebuilds a fused layer only from all of its parts."""
    changing = {name for name, m in policy.named_modules()
                if name in lora_layers or any(p.requires_grad for p in m.parameters(recurse=False))}
    return {name.rpartition(".")[0] for name in changing}


def _units(policy: torch.nn.Module, lora_layers: dict[str, torch.nn.Module]):
    """(name, module) of every module whose tensors travel together: a LoRA layer with everything
    under it, any other module with its own tensors only."""
    for name, module in policy.named_modules():
        if any(name.startswith(layer + ".") for layer in lora_layers):
            continue  # inside a LoRA layer: sent with it
        yield name, module


def _own_tensors(module: torch.nn.Module, whole: bool) -> Iterator[tuple[str, torch.Tensor]]:
    """A module's parameters and persistent buffers (all of them under it where ``whole``)."""
    if whole:
        yield from module.state_dict(keep_vars=True).items()
        return
    yield from ((n, p) for n, p in module._parameters.items() if p is not None)
    yield from ((n, b) for n, b in module._buffers.items()
                if b is not None and n not in module._non_persistent_buffers_set)


def _shards(params: list[torch.nn.Parameter]) -> list[torch.nn.Parameter]:
    """The ZeRO-3 parameters among ``params`` not gathered already (by a caller's whole gather)."""
    if not any(hasattr(p, "ds_id") for p in params):
        return []
    from deepspeed.runtime.zero.partition_parameters import ZeroParamStatus

    return [p for p in params if p.ds_status == ZeroParamStatus.NOT_AVAILABLE]


def _gathered(params: list[torch.nn.Parameter]):
    if not params:
        return contextlib.nullcontext()
    import deepspeed

    return deepspeed.zero.GatheredParameters(params)


def _lora_layers(policy: torch.nn.Module) -> dict[str, torch.nn.Module]:
    """Modules (by name) that carry an active LoRA adapter."""
    try:
        from peft.tuners.lora import LoraLayer
    except ImportError:  # peft is a dependency; without it there is no LoRA to merge
        return {}
    return {name: m for name, m in policy.named_modules() if isinstance(m, LoraLayer) and m.active_adapters}


@torch.no_grad()
def _merged(layer, base_weight: torch.Tensor) -> torch.Tensor:
    weight = base_weight.detach().clone()
    for adapter in layer.active_adapters:
        if adapter in layer.lora_A:
            weight += layer.get_delta_weight(adapter).to(weight.dtype)
    return weight


def _checkpoint_name(name: str) -> str:
    """``base_model.model.model.layers.0.self_attn.q_proj.base_layer.weight`` ->
    ``model.layers.0.self_attn.q_proj.weight``."""
    return name.removeprefix(_PEFT_PREFIX).replace(".base_layer.", ".")
