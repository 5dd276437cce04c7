"""Sampling completions behind a small backend interface (transformers now, vLLM later)."""

from rlsp.generation.backend import GenerationBackend, Rollout, SamplingParams
from rlsp.generation.batching import Completion, generate_all
from rlsp.generation.hf import HFBackend


def sampling_params(generation_cfg) -> SamplingParams:
    """The sampling settings of a recipe's ``generation`` section."""
    g = generation_cfg
    return SamplingParams(temperature=g.temperature, top_p=g.top_p, max_new_tokens=g.max_new_tokens)


def make_backend(model, tokenizer, generation_cfg=None) -> GenerationBackend:
    """The generation backend for a recipe's ``generation`` section; the one place one is built.

    transformers (``HFBackend``) is the only backend so far; ``generation_cfg`` is where the
    choice of another will be read.
    """
    return HFBackend(model, tokenizer)


__all__ = ["Completion", "GenerationBackend", "HFBackend", "Rollout", "SamplingParams", "generate_all", "make_backend",
           "sampling_params"]
