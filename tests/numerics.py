"""Tolerances for "these two runs computed the same thing", derived from the dtype and the
operations rather than measured on one CPU.

Two runs that differ only in how they split a batch (one process or two, one micro-batch or
several) add the same terms in another order. Reordering a floating-point sum of ``n`` terms
changes it by at most about ``2 (n - 1) u`` times the sum of the terms' magnitudes, where ``u``
is the unit roundoff of the dtype (Higham, *Accuracy and Stability of Numerical Algorithms*,
2nd ed., section 4.2). Every check here is therefore relative to the size of what was computed,
and the ``n`` is the longest chain of reductions the computation goes through, stated by the test.

Weights are compared normwise against how far the update moved them: Adam divides each element
by the root of its own squared gradients, so an element whose gradient is a cancellation close
to zero can differ by more than the rest, while the update as a whole keeps the gradients'
relative accuracy. A bug that leaves out a shard, a rank or a micro-batch moves the whole
update by far more than this (of the order of 1).
"""

from __future__ import annotations

import torch


def unit_roundoff(dtype: torch.dtype) -> float:
    """``u``: half the distance from 1 to the next number (2^-24 for fp32, 2^-8 for bf16)."""
    return torch.finfo(dtype).eps / 2


def reordered_sum_rtol(terms: int, dtype: torch.dtype = torch.float32) -> float:
    """Relative difference two summation orders of ``terms`` terms can produce: ``2 (n - 1) u``."""
    return 2 * (terms - 1) * unit_roundoff(dtype)


def relative_difference(a: torch.Tensor, b: torch.Tensor, scale: torch.Tensor) -> float:
    """``||a - b|| / ||scale||`` over every element (e.g. ``scale`` = the update one run made)."""
    return ((a.double() - b.double()).norm() / scale.double().norm().clamp(min=1e-300)).item()
