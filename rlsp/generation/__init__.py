"""Sampling completions behind a small backend interface: rlsp's loop on transformers, or vLLM."""

import os

from rlsp.generation.backend import GenerationBackend, Rollout, SamplingParams
from rlsp.generation.batching import Completion, generate_all
from rlsp.generation.hf import HFBackend


def sampling_params(generation_cfg) -> SamplingParams:
    """The sampling settings of a recipe's ``generation`` section."""
    g = generation_cfg
    return SamplingParams(temperature=g.temperature, top_p=g.top_p, max_new_tokens=g.max_new_tokens)


def make_backend(model, tokenizer, generation_cfg=None, seed: int = 0, hooks: bool = False) -> GenerationBackend:
    """The generation backend for a recipe's ``generation`` section; the one place one is built.

    vLLM (``choose_backend``) builds an engine (once: callers keep the backend) holding a copy of
    ``model``'s weights; otherwise ``HFBackend`` samples with ``model`` itself. ``hooks``: the run
    has hooks, which act on ``model``'s own forward passes.
    """
    if generation_cfg is not None and choose_backend(generation_cfg, model, hooks) == "vllm":
        from rlsp.generation.vllm_backend import VLLMBackend

        if generation_cfg.backend == "auto":
            print("generation: vLLM (generation.backend=auto on a CPU where vllm is installed; 'hf' for rlsp's "
                  "own loop, which holds no second copy of the weights)")
        return VLLMBackend(model, tokenizer, generation_cfg, seed)
    return HFBackend(model, tokenizer)


def choose_backend(generation_cfg, model, hooks: bool = False) -> str:
    """'hf' or 'vllm'. ``generation.backend: auto`` takes vLLM where it generated faster and runs
    unattended: vLLM installed, a CPU (the only place it was measured: benchmarks/generation.py),
    one process, a model folder with a config.json, no ZeRO-3 shards, no hooks (vLLM does not run
    the module's forward hooks). Everywhere else rlsp's own loop."""
    if generation_cfg.backend != "auto":
        return generation_cfg.backend
    from rlsp.generation.vllm_backend import vllm_available

    params = list(model.parameters())
    folder = getattr(getattr(model, "config", None), "_name_or_path", "") or ""
    fits = (
        vllm_available()
        and int(os.environ.get("WORLD_SIZE", "1")) == 1
        and not hooks
        and bool(params)
        and all(p.device.type == "cpu" and not hasattr(p, "ds_id") for p in params)
        and os.path.isfile(os.path.join(folder, "config.json"))
    )
    return "vllm" if fits else "hf"


__all__ = ["Completion", "GenerationBackend", "HFBackend", "Rollout", "SamplingParams", "choose_backend", "generate_all",
           "make_backend", "sampling_params"]
