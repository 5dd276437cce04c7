"""The sampling loop's preallocated KV cache (rlsp/generation/reserved_cache.py) holds what
transformers' own ``DynamicLayer`` holds after the same appends, row selections and repeats."""

from __future__ import annotations

import pytest
import torch
from transformers.cache_utils import DynamicLayer

from rlsp.generation.reserved_cache import ReservedLayer, reserved_cache
from rlsp.modeling.causal_lm import load_causal_lm


def _states(batch: int, length: int) -> tuple[torch.Tensor, torch.Tensor]:
    return torch.randn(batch, 2, length, 4), torch.randn(batch, 2, length, 4)


def test_reserved_layer_holds_what_dynamic_layer_holds():
    torch.manual_seed(0)
    ours, theirs = ReservedLayer(capacity=12), DynamicLayer()
    for step in [_states(3, 5), _states(3, 1)]:
        for layer in (ours, theirs):
            keys, values = layer.update(*step)
        assert torch.equal(keys, theirs.keys) and torch.equal(values, theirs.values)
        assert torch.equal(ours.keys, theirs.keys) and torch.equal(ours.values, theirs.values)
    for layer in (ours, theirs):
        layer.batch_repeat_interleave(2)
        layer.batch_select_indices(torch.tensor([0, 3, 5]))
    step = _states(3, 1)
    assert torch.equal(ours.update(*step)[0], theirs.update(*step)[0])
    assert torch.equal(ours.values, theirs.values)
    assert ours.get_seq_length() == theirs.get_seq_length() == 7


def test_reserved_layer_refuses_more_than_it_reserved():
    layer = ReservedLayer(capacity=4)
    layer.update(*_states(1, 3))
    with pytest.raises(RuntimeError, match="do not fit the 4 reserved"):
        layer.update(*_states(1, 2))


def test_reserved_cache_replaces_only_full_attention_layers(tiny_model_dir):
    model, _ = load_causal_lm(str(tiny_model_dir), device="cpu")
    cache = reserved_cache(model.config, capacity=16)
    assert cache.layers and all(isinstance(layer, ReservedLayer) for layer in cache.layers)
    model.config.layer_types = ["sliding_attention"] + ["full_attention"] * (model.config.num_hidden_layers - 1)
    model.config.sliding_window = 8
    cache = reserved_cache(model.config, capacity=16)
    assert not isinstance(cache.layers[0], ReservedLayer)
    assert all(isinstance(layer, ReservedLayer) for layer in cache.layers[1:])


def test_reserved_layer_crops_as_dynamic_layer_does():
    torch.manual_seed(1)
    ours, theirs = ReservedLayer(capacity=8), DynamicLayer()
    step = _states(2, 5)
    for layer in (ours, theirs):
        layer.update(*step)
        layer.crop(-2)
    assert ours.get_seq_length() == theirs.get_seq_length() == 3
    assert torch.equal(ours.keys, theirs.keys) and torch.equal(ours.values, theirs.values)
