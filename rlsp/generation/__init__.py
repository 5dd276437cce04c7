"""Sampling completions behind a small backend interface: rlsp's loop on transformers, or vLLM."""

import os

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

        if generation_cfg.backend == "auto":
            print("generation: vLLM (generation.backend=auto on a CPU where vllm is installed; 'hf' for rlsp's "
                  "own loop, which holds no second copy of the weights)")
        return VLLMBackend(model, tokenizer, generation_cfg, seed)
    return HFBackend(model, tokenizer)


def resolve_backend(recipe, hooks: bool = False) -> str:
    """'hf' or 'vllm': ``generation.backend`` as this process runs it, decided once before any model
    loads; every caller (the backend, ZeRO-3's gathering, lockstep) uses the answer.

    ``auto`` takes vLLM where it generated faster and runs unattended: vLLM installed, a CPU (the
    only place it was measured: benchmarks/generation.py), one process, no DeepSpeed, a model
    folder with a config.json for the engine, no hooks (vLLM does not run the module's forward
    hooks). Everywhere else rlsp's own loop."""
    generation = recipe.generation
    if generation.backend != "auto":
        return generation.backend
    from rlsp.generation.vllm_backend import vllm_available
    from rlsp.launch_env import launched_with_deepspeed, launched_world_size
    from rlsp.modeling.causal_lm import pick_device, resolve_model_path

    fits = (
        vllm_available()
        and launched_world_size() == 1
        and not launched_with_deepspeed()
        and not hooks
        and pick_device(recipe.model.device).type == "cpu"
        and os.path.isfile(os.path.join(resolve_model_path(recipe.model.name_or_path), "config.json"))
    )
    return "vllm" if fits else "hf"


__all__ = ["Completion", "GenerationBackend", "HFBackend", "Rollout", "SamplingParams", "generate_all",
           "make_backend", "resolve_backend", "sampling_params"]
