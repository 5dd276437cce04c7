"""Sampling completions behind a small backend interface: rlsp's loop on transformers, or vLLM."""

from rlsp.generation.backend import GenerationBackend, Rollout, SamplingParams
from rlsp.generation.batching import Completion, generate_all
from rlsp.generation.hf import HFBackend


def sampling_params(generation_cfg) -> SamplingParams:
    """The sampling settings of a recipe's ``generation`` section."""
    g = generation_cfg
    return SamplingParams(temperature=g.temperature, top_p=g.top_p, max_new_tokens=g.max_new_tokens)


def make_backend(model, tokenizer, generation_cfg=None, seed: int = 0) -> GenerationBackend:
    """The generation backend for a recipe's ``generation`` section; the one place one is built.

    ``generation.backend: vllm`` builds a vLLM engine (once: callers keep the backend) holding a
    copy of ``model``'s weights; otherwise ``HFBackend`` samples with ``model`` itself.
    """
    if generation_cfg is not None and generation_cfg.backend == "vllm":
        from rlsp.generation.vllm_backend import VLLMBackend

        return VLLMBackend(model, tokenizer, generation_cfg, seed)
    return HFBackend(model, tokenizer)


__all__ = ["Completion", "GenerationBackend", "HFBackend", "Rollout", "SamplingParams", "generate_all", "make_backend",
           "sampling_params"]
