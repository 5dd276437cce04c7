"""Per-GPU memory of an ``rlsp train`` recipe under each launch: what fits before anything runs.

What is counted, per process:
- trained networks (policy, and critic for GAE): under ZeRO, DeepSpeed's own estimators of
  model states (bf16 weights and gradients, fp32 master copy and Adam moments; 18 bytes per
  parameter sharded under ZeRO-3, plus the largest layer gathered in fp32); without ZeRO, rlsp's
  own layout (fp32 weights, gradients and Adam moments: 16 bytes per trained parameter, 4 per
  frozen LoRA base parameter);
- the reference: weights only (sharded under ZeRO-3; none for a LoRA policy, whose reference is
  the base with the adapters off);
- the update's activations at ``train.micro_batch_size`` x (prompt + ``generation.max_new_tokens``)
  tokens: per layer ``b*s*(8h + 2kv + 4I)`` values (layer inputs, q/k/v, attention output, MLP
  inputs and the three MLP intermediates; attention scores are not stored by SDPA/flash
  attention); all layers without gradient checkpointing, else each layer's input plus one
  layer; plus the policy's fp32 logits over the completion (logits, log-softmax, gradient), at
  most a 256 MiB chunk of them at a time except under ZeRO-3 (rlsp/training/forward.py);
- generation at ``generation.batch_size`` rows: KV cache, the last position's logits, one
  layer's prefill activations, and under ZeRO-3 with ``generation.zero3_gather: whole`` the whole
  policy gathered (with 'layer' only the largest layer is, which the ZeRO-3 estimate holds);
- with ``generation.backend: vllm`` instead, each process's engine: its copy of the weights in
  the compute dtype (a 1/t share under ``tensor_parallel_size`` t) and its KV cache
  (``generation.vllm.kv_cache_gb``, or vLLM's share of the GPU, ``gpu_memory_utilization``, when
  that is null), plus under ZeRO-3 the one module the weight sync gathers at a time
  (rlsp/generation/policy_weights.py). With ``generation.vllm.sleep_during_update`` the engine is
  released during the update; otherwise it stays beside it.
The peak is the resident states plus the larger of the update and generation. Not counted: the
CUDA context and allocator fragmentation (keep ~10% headroom), communication buckets, and the
critic's forward when it runs after the policy's (it reuses the freed activations).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from rlsp.config import Recipe
from rlsp.planning.model_size import ModelSize
from rlsp.training.advantage_step import value_heads
from rlsp.training.forward import LOGITS_BUDGET_BYTES

GIB = 2**30
STRATEGIES = {  # name: (ZeRO stage, optimizer offload, parameter offload)
    "DDP": (0, False, False),
    "ZeRO-2": (2, False, False),
    "ZeRO-2 + optimizer offload": (2, True, False),
    "ZeRO-3": (3, False, False),
    "ZeRO-3 + optimizer offload": (3, True, False),
    "ZeRO-3 + optimizer and parameter offload": (3, True, True),
}


@dataclass
class Plan:
    strategy: str
    trained: float  # bytes per process: policy + critic model states
    reference: float
    update: float  # activations of one micro-batch
    generation: float  # gathered weights + KV cache + logits (with vLLM: the engine and the sync's module)
    cpu_per_node: float  # host memory the offload needs on each machine
    engine_during_update: float = 0.0  # a vLLM engine that stays resident while the trainer updates

    @property
    def peak(self) -> float:
        return self.trained + self.reference + max(self.update + self.engine_during_update, self.generation)


def trainable_lora_params(size: ModelSize, recipe: Recipe) -> int:
    """Parameters the recipe's LoRA adapters add (built on an empty skeleton: no weights)."""
    from accelerate import init_empty_weights
    from peft import get_peft_model
    from transformers import AutoModelForCausalLM

    from rlsp.modeling.lora import peft_lora_config
    from rlsp.planning.model_size import load_config

    with init_empty_weights():
        skeleton = AutoModelForCausalLM.from_config(load_config(size.name))
        peft = get_peft_model(skeleton, peft_lora_config(recipe.model.lora))
    return sum(p.numel() for p in peft.parameters() if p.requires_grad)


def plan_memory(size: ModelSize, recipe: Recipe, strategy: str, gpus: int, prompt_tokens: int,
                gpus_per_node: int = 8, compute_bytes: int = 2, lora_params: int | None = None,
                gpu_gib: float | None = None) -> Plan:
    """One launch's per-process bytes. ``compute_bytes``: 2 for bf16 compute, 4 for fp32.
    ``gpu_gib``: the GPU's memory, which sizes a vLLM engine without ``kv_cache_gb``."""
    stage, offload_opt, offload_param = STRATEGIES[strategy]
    t, g = recipe.train, recipe.generation
    lora = recipe.model.lora.enabled
    per_node = min(gpus, gpus_per_node)
    nodes = math.ceil(gpus / per_node)
    policy_trained = (lora_params or 0) if lora else size.params
    policy_frozen = size.params if lora else 0
    networks = [(policy_trained, policy_frozen)]
    if value_heads(t):  # a critic to train
        networks.append((size.critic_params(value_heads(t)), 0))
    trained = cpu = 0.0
    for n_trained, n_frozen in networks:
        if stage == 0:
            trained += 16 * n_trained + 4 * n_frozen  # fp32 weights, gradients, Adam m and v
        else:
            on_gpu, on_cpu = _zero_states(stage, n_trained, size.largest_layer_params, per_node, nodes,
                                          offload_opt, offload_param)
            frozen = 0 if offload_param else 2 * n_frozen / (gpus if stage == 3 else 1)
            trained += on_gpu + frozen
            cpu += on_cpu + (2 * n_frozen if offload_param else 0)
    if lora:
        reference = 0.0
    elif stage == 0:
        reference = 4 * size.params
    elif stage == 3:
        reference = 0.0 if offload_param else 2 * size.params / gpus
        cpu += 2 * size.params if offload_param else 0
    else:
        reference = 2 * size.params
    s = prompt_tokens + g.max_new_tokens
    update = _activations(size, t.micro_batch_size, s, compute_bytes, t.gradient_checkpointing)
    logits = t.micro_batch_size * g.max_new_tokens * size.vocab * 4
    # Outside ZeRO-3 rlsp computes the log-probs over chunks of at most LOGITS_BUDGET_BYTES of logits.
    update += 3 * (logits if stage == 3 else min(logits, LOGITS_BUDGET_BYTES))
    if g.backend == "vllm":
        engine = _vllm_engine(size, g.vllm, compute_bytes, gpu_gib)
        # Under ZeRO-3 the sync gathers one module at a time: at most the largest (a layer's
        # matrices, or the embedding / LM head).
        streamed = compute_bytes * max(size.largest_layer_params, size.lm_head_params) if stage == 3 else 0
        resident = 0.0 if g.vllm.sleep_during_update else engine
        return Plan(strategy, trained, reference, update, engine + streamed, cpu, resident)
    rows = g.batch_size
    generation = rows * s * size.kv_bytes_per_token(compute_bytes) + 2 * rows * size.vocab * 4
    generation += _layer_activations(size, rows, prompt_tokens, compute_bytes)  # prefill, one layer live
    if stage == 3 and g.zero3_gather == "whole":
        generation += compute_bytes * size.params
    return Plan(strategy, trained, reference, update, generation, cpu)


def _vllm_engine(size: ModelSize, cfg, compute_bytes: int, gpu_gib: float | None) -> float:
    """One process's part of a vLLM engine: its weights (split over the tensor-parallel group) and
    KV cache, or the GPU share vLLM takes for both."""
    weights = compute_bytes * size.params / cfg.tensor_parallel_size
    if cfg.kv_cache_gb is not None:
        return weights + cfg.kv_cache_gb * GIB
    if gpu_gib is None:
        raise ValueError("a vLLM engine without generation.vllm.kv_cache_gb takes a share of the GPU: give gpu_gib")
    return max(weights, cfg.gpu_memory_utilization * gpu_gib * GIB)


def _zero_states(stage, params, largest, per_node, nodes, offload_opt, offload_param) -> tuple[float, float]:
    """(GPU bytes, CPU bytes per node) of one trained network, from DeepSpeed's own estimators."""
    if stage == 3:
        from deepspeed.runtime.zero.stage3 import estimate_zero3_model_states_mem_needs

        cpu, gpu, _ = estimate_zero3_model_states_mem_needs(params, largest, per_node, nodes, offload_opt,
                                                            offload_param, True, 1.5)
        return gpu, cpu if offload_opt else 0
    from deepspeed.runtime.zero.stage_1_and_2 import estimate_zero2_model_states_mem_needs

    cpu, gpu = estimate_zero2_model_states_mem_needs(params, per_node, nodes, offload_opt, 1.5)
    return gpu, cpu if offload_opt else 0


def _layer_activations(size: ModelSize, batch: int, tokens: int, nbytes: int) -> float:
    return batch * tokens * (8 * size.hidden + 2 * size.kv_dim + 4 * size.intermediate) * nbytes


def _activations(size: ModelSize, batch: int, tokens: int, nbytes: int, checkpointing: bool) -> float:
    one_layer = _layer_activations(size, batch, tokens, nbytes)
    if checkpointing:
        return size.layers * batch * tokens * size.hidden * nbytes + one_layer
    return size.layers * one_layer


def plan_table(plans: list[Plan], gpu_gib: float) -> list[dict]:
    """Rows for the terminal and README: GiB per process and whether it fits ``gpu_gib``."""
    rows = []
    for p in plans:
        rows.append({
            "launch": p.strategy,
            "policy+critic states": p.trained / GIB, "reference": p.reference / GIB,
            "update activations": p.update / GIB, "generation": p.generation / GIB,
            "peak per GPU": p.peak / GIB, "CPU per node": p.cpu_per_node / GIB,
            "fits": p.peak <= 0.9 * gpu_gib * GIB,
        })
    return rows
