"""The three networks of PPO: policy, frozen reference, critic with value heads.

- policy: the causal LM being trained, or LoRA adapters on it (PEFT).
- reference: a frozen copy of the starting policy; for a LoRA policy it is the same network with
  the adapters switched off, so no second copy is held in memory.
- critic: the policy's backbone (copied at start, trained separately) with a linear value head per
  reward channel (one in 'paper' mode, two in 'decoupled' mode).
"""

from __future__ import annotations

import contextlib
import copy

from torch import nn


def backbone_of(causal_lm: nn.Module) -> nn.Module:
    """The transformer under the LM head (``model.model`` for Llama, Qwen, Mistral...)."""
    return getattr(causal_lm, causal_lm.base_model_prefix)


class Reference:
    """Log-probabilities under the starting policy, without a second copy for LoRA policies."""

    def __init__(self, policy: nn.Module, frozen: nn.Module | None):
        """``frozen``: the reference network, or None for a LoRA ``policy`` (adapters switched off)."""
        self.uses_lora = frozen is None
        self.frozen = frozen
        self.policy = policy

    def model(self) -> contextlib.AbstractContextManager:
        """Context manager yielding the reference network."""
        if self.uses_lora:
            return _adapters_disabled(self.policy)
        return contextlib.nullcontext(self.frozen)


@contextlib.contextmanager
def _adapters_disabled(peft_model):
    with peft_model.disable_adapter():
        yield peft_model


class Critic(nn.Module):
    """Backbone + one linear value head per reward channel; values are (B, L, n_heads)."""

    def __init__(self, causal_lm: nn.Module, n_heads: int, copy_backbone: bool = True):
        """``copy_backbone=False`` takes ``causal_lm``'s own backbone (a model loaded for the critic)."""
        super().__init__()
        backbone = backbone_of(causal_lm)
        self.backbone = copy.deepcopy(backbone) if copy_backbone else backbone
        hidden = causal_lm.config.hidden_size
        self.value_head = nn.Linear(hidden, n_heads)
        # Start predicting zero so the first advantages are the returns themselves.
        nn.init.zeros_(self.value_head.weight)
        nn.init.zeros_(self.value_head.bias)
        self.value_head.to(next(self.backbone.parameters()).dtype)

    def forward(self, input_ids, attention_mask, position_ids):
        hidden = self.backbone(
            input_ids=input_ids, attention_mask=attention_mask, position_ids=position_ids
        ).last_hidden_state
        return self.value_head(hidden).float()

    def enable_gradient_checkpointing(self) -> None:
        self.backbone.gradient_checkpointing_enable()


def trainable_parameters(model: nn.Module) -> list[nn.Parameter]:
    return [p for p in model.parameters() if p.requires_grad]
