"""Linear layers on oneDNN-packed weights while sampling on a CPU.

Decoding is a loop of small matrix products (a handful of rows against every weight matrix of
the model), bound by how fast the weights stream from memory rather than by arithmetic. oneDNN
(``torch.backends.mkldnn``) reorders a weight once into its blocked layout, and the products
then read it faster: on a 2-core AMD EPYC one decoding step of SmolLM2-135M with 16 rows took
31.0 ms of products against 56.0 ms with ``F.linear`` (``benchmarks/linear_shapes.py``,
docs/performance.md). The weights stay put during sampling, so packing them once per
``generate`` call pays for itself after a few tokens; the packed copies are dropped when it
returns.

The packed products equal ``F.linear`` up to the order of float additions (about 1e-6
relative, ``tests/test_packed_linear.py``).
"""

from __future__ import annotations

from contextlib import contextmanager

import torch


def packing_dtype(model: torch.nn.Module) -> torch.dtype | None:
    """The dtype the packed products run in, or None where packing does not apply.

    It applies to weights on the CPU with oneDNN present and no ZeRO-3 shards (whose weights are
    gathered only inside their own forward). The products run in the dtype plain layers would:
    autocast's where it is on (bf16 over fp32 weights), the weights' own otherwise; bf16 only
    where oneDNN has bf16 kernels for this CPU.
    """
    params = list(model.parameters())
    if not (torch.backends.mkldnn.is_available() and hasattr(torch.ops.mkldnn, "_linear_pointwise") and params):
        return None
    if any(p.device.type != "cpu" or hasattr(p, "ds_id") for p in params):
        return None
    weights = {p.dtype for p in params}
    if torch.is_autocast_enabled("cpu"):
        dtype = torch.get_autocast_dtype("cpu") if weights == {torch.float32} else None
    else:
        dtype = weights.pop() if len(weights) == 1 else None
    bf16_ok = torch.ops.mkldnn._is_mkldnn_bf16_supported()
    return dtype if dtype == torch.float32 or (dtype == torch.bfloat16 and bf16_ok) else None


def can_pack(model: torch.nn.Module) -> bool:
    return packing_dtype(model) is not None


def _packed_forward(layer: torch.nn.Linear, dtype: torch.dtype, rows_hint: int):
    # The weight is reordered once into oneDNN's blocked layout; the activations stay ordinary
    # tensors, so no per-call conversion into or out of oneDNN's own tensor type is paid (those
    # conversions took about a third of the sampling loop's time when the product ran on them).
    weight = torch.ops.mkldnn._reorder_linear_weight(layer.weight.detach().to(dtype), rows_hint)
    bias = None if layer.bias is None else layer.bias.detach().to(dtype)

    def forward(x: torch.Tensor) -> torch.Tensor:
        return torch.ops.mkldnn._linear_pointwise(x.to(dtype), weight, bias, "none", [], "")

    return forward


@contextmanager
def packed_linears(model: torch.nn.Module, enabled: bool = True, rows_hint: int = 16):
    """Within the block every ``nn.Linear`` of ``model`` multiplies with a packed copy of its
    weight (when ``can_pack``; otherwise nothing changes). For no-grad sampling only: the copies
    are detached, and an update inside the block would not reach them."""
    dtype = packing_dtype(model) if enabled else None
    if dtype is None:
        yield
        return
    # Layers whose forward is already replaced on the instance (accelerate's offload hooks) keep it.
    layers = [m for m in model.modules() if isinstance(m, torch.nn.Linear) and "forward" not in vars(m)]
    for layer in layers:
        layer.forward = _packed_forward(layer, dtype, rows_hint)  # an instance attribute shadows the class's method
    try:
        yield
    finally:
        for layer in layers:
            del layer.forward
