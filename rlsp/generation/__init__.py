"""Sampling completions behind a small backend interface (transformers now, vLLM later)."""

from .backend import GenerationBackend, Rollout, SamplingParams
from .batching import Completion, generate_all
from .hf import HFBackend

__all__ = ["Completion", "GenerationBackend", "HFBackend", "Rollout", "SamplingParams", "generate_all"]
