"""A KV cache whose layers reserve room for the whole completion up front.

transformers' ``DynamicLayer`` appends each decoding step's keys and values with ``torch.cat``,
which copies the layer's whole cache every step: for 16 rows of SmolLM2-135M that was a tenth of
the sampling loop's time on a 2-core AMD EPYC, and it grows with the completion. Here each layer
allocates its keys and values once, for the prompt plus ``max_new_tokens``, writes each step's
states into the next free columns, and hands attention a view of the filled part. The numbers
are the ones ``DynamicLayer`` gives (same values, same order of operations in attention;
``tests/test_reserved_cache.py``).

Only plain full-attention layers are replaced; sliding-window and other special layers keep
transformers' own class.
"""

from __future__ import annotations

import torch
from transformers import DynamicCache
from transformers.cache_utils import DynamicLayer


class ReservedLayer(DynamicLayer):
    """A ``DynamicLayer`` that grows inside one allocation of ``capacity`` positions."""

    def __init__(self, capacity: int):
        super().__init__()
        self.capacity = capacity
        self.length = 0

    def update(self, key_states: torch.Tensor, value_states: torch.Tensor, *args, **kwargs):
        if not self.is_initialized:
            self.device, self.is_initialized = key_states.device, True
            batch, heads, _, dim = key_states.shape
            self._keys = key_states.new_empty(batch, heads, self.capacity, dim)
            self._values = value_states.new_empty(batch, heads, self.capacity, value_states.shape[-1])
        end = self.length + key_states.shape[-2]
        if end > self.capacity:
            raise RuntimeError(f"ReservedLayer: {end} positions do not fit the {self.capacity} reserved")
        self._keys[:, :, self.length : end] = key_states
        self._values[:, :, self.length : end] = value_states
        self.length = end
        self.keys, self.values = self._keys[:, :, :end], self._values[:, :, :end]
        return self.keys, self.values

    def get_seq_length(self) -> int:
        return self.length

    def batch_repeat_interleave(self, repeats: int) -> None:
        if self.is_initialized:
            self._reshape_batch(self._keys.repeat_interleave(repeats, dim=0),
                                self._values.repeat_interleave(repeats, dim=0))

    def batch_select_indices(self, indices: torch.Tensor) -> None:
        if self.is_initialized:
            self._reshape_batch(self._keys[indices], self._values[indices])

    def _reshape_batch(self, keys: torch.Tensor, values: torch.Tensor) -> None:
        self._keys, self._values = keys, values
        self.keys, self.values = keys[:, :, : self.length], values[:, :, : self.length]

    def reset(self) -> None:
        self.length = 0
        self.keys = self.values = None
        self.is_initialized = False

    def crop(self, tokens_to_remove: int) -> None:
        """Drop the last ``-tokens_to_remove`` positions (transformers' convention: a negative count)."""
        if tokens_to_remove > 0:
            raise ValueError(f"crop({tokens_to_remove}): pass a negative number of positions to remove")
        self.length = max(0, self.length + tokens_to_remove)
        if self.is_initialized:
            self._reshape_batch(self._keys, self._values)

    def reorder_cache(self, beam_idx: torch.LongTensor) -> None:
        self.batch_select_indices(beam_idx)


def reserved_cache(config, capacity: int) -> DynamicCache:
    """transformers' cache for ``config`` with its full-attention layers reserving ``capacity``."""
    cache = DynamicCache(config=config)
    cache.layers = [ReservedLayer(capacity) if type(layer) is DynamicLayer else layer for layer in cache.layers]
    return cache
