"""Linear layers on oneDNN-packed weights while sampling on a CPU.

Decoding is a loop of small matrix products (a handful of rows against every weight matrix of
the model), bound by how fast the weights stream from memory rather than by arithmetic. oneDNN
(``torch.backends.mkldnn``) reorders a weight once into its blocked layout, and the products
then read it faster: on a 2-core AMD EPYC (AVX2, fp32) the generation phase of the benchmark
workload (SmolLM2-135M, 16 samples of up to 128 tokens) ran at 45.3 tokens/s against 38.4 with
``F.linear`` (``benchmarks/generation.py``). The weights
stay put during sampling, so packing them once per ``generate`` call pays for itself after a
few tokens; the packed copies are dropped when it returns.

The packed products equal ``F.linear`` up to the order of float additions (about 1e-6
relative, ``tests/test_packed_linear.py``).
"""

from __future__ import annotations

from contextlib import contextmanager

import torch


def can_pack(model: torch.nn.Module) -> bool:
    """fp32 weights on the CPU, oneDNN present, no autocast, and no ZeRO-3 shards (whose weights
    are gathered only inside their own forward)."""
    params = list(model.parameters())
    return (
        torch.backends.mkldnn.is_available()
        and bool(params)
        and all(p.device.type == "cpu" and p.dtype == torch.float32 and not hasattr(p, "ds_id") for p in params)
        and not torch.is_autocast_enabled("cpu")
    )


def _packed_forward(layer: torch.nn.Linear):
    weight = layer.weight.detach().to_mkldnn()
    bias = None if layer.bias is None else layer.bias.detach().to_mkldnn()

    def forward(x: torch.Tensor) -> torch.Tensor:
        flat = x.reshape(-1, x.shape[-1]).contiguous().to_mkldnn()
        return torch._C._nn.mkldnn_linear(flat, weight, bias).to_dense().reshape(*x.shape[:-1], -1)

    return forward


@contextmanager
def packed_linears(model: torch.nn.Module, enabled: bool = True):
    """Within the block every ``nn.Linear`` of ``model`` multiplies with a packed copy of its
    weight (when ``can_pack``; otherwise nothing changes). For no-grad sampling only: the copies
    are detached, and an update inside the block would not reach them."""
    if not (enabled and can_pack(model)):
        yield
        return
    # Layers whose forward is already replaced on the instance (accelerate's offload hooks) keep it.
    layers = [m for m in model.modules() if isinstance(m, torch.nn.Linear) and "forward" not in vars(m)]
    for layer in layers:
        layer.forward = _packed_forward(layer)  # an instance attribute shadows the class's method
    try:
        yield
    finally:
        for layer in layers:
            del layer.forward
