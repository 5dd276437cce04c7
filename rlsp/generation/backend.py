"""The generation interface every caller uses (``HFBackend`` in hf.py, ``VLLMBackend`` in vllm_backend.py).

A backend takes a batch of chat conversations and sampling settings and returns a ``Rollout``:
token ids, masks, per-token log-probabilities under the sampling policy, texts and finish reasons.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, Protocol

import torch

FinishReason = Literal["stop", "length"]


@dataclass(frozen=True)
class SamplingParams:
    temperature: float = 0.0  # 0 means greedy
    top_p: float = 1.0
    max_new_tokens: int = 256


@dataclass
class Rollout:
    """One generated batch. B prompts, P prompt tokens (left-padded), T completion tokens."""

    prompt_ids: torch.Tensor  # (B, P) long, left-padded
    prompt_mask: torch.Tensor  # (B, P) long, 1 on real prompt tokens
    completion_ids: torch.Tensor  # (B, T) long, right-padded after the stop token
    completion_mask: torch.Tensor  # (B, T) long, 1 up to and including the stop token
    logprobs: torch.Tensor  # (B, T) float, log p of each sampled token under the sampling policy; 0 on padding
    texts: list[str]  # decoded completions without special tokens
    finish_reasons: list[FinishReason]  # 'stop' (hit a stop token) or 'length' (hit max_new_tokens)

    @property
    def completion_lengths(self) -> list[int]:
        return self.completion_mask.sum(dim=1).tolist()


class GenerationBackend(Protocol):
    tokenizer: object

    def generate(self, conversations: list[list[dict]], params: SamplingParams, samples_per_prompt: int = 1) -> Rollout:
        """``samples_per_prompt`` completions per conversation; rows prompt-major, samples adjacent."""
        ...

    def sync_weights(self, policy) -> None:
        """Make the next ``generate`` sample from ``policy``'s current weights (the trainer calls it
        before every generation phase, so after every update)."""
        ...

    def release(self) -> None:
        """Free memory the backend holds on the training device while the trainer updates."""
        ...
