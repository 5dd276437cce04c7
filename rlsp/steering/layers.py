"""Finding the decoder layers of a causal LM, whatever wraps it (PEFT), and reading the residual
stream after each of them."""

from __future__ import annotations

import torch
from torch import nn

from rlsp.modeling.networks import backbone_of


def base_causal_lm(model: nn.Module) -> nn.Module:
    """The transformers model under a PEFT wrapper (the model itself otherwise)."""
    return model.get_base_model() if hasattr(model, "get_base_model") else model


def decoder_layers(model: nn.Module) -> nn.ModuleList:
    """The decoder layers (``model.model.layers`` for Llama, Qwen, Mistral...)."""
    layers = getattr(backbone_of(base_causal_lm(model)), "layers", None)
    if not isinstance(layers, nn.ModuleList):
        raise TypeError(f"{type(model).__name__} has no decoder layer list at <backbone>.layers")
    return layers


def layer_output(output):
    """The hidden states a decoder layer returned (a tensor, or the first item of a tuple)."""
    return output[0] if isinstance(output, tuple) else output


def with_layer_output(output, hidden: torch.Tensor):
    """``output`` with its hidden states replaced by ``hidden``, in the same structure."""
    return (hidden, *output[1:]) if isinstance(output, tuple) else hidden


def masked_token_mean(values: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean over the positions where ``mask`` is 1: (B, L, ...) and (B, L) -> (B, ...)."""
    weights = mask.to(values.dtype)
    while weights.dim() < values.dim():
        weights = weights.unsqueeze(-1)
    return (values * weights).sum(1) / weights.sum(1).clamp(min=1)
