"""oneDNN-packed linear layers while sampling (rlsp/generation/packed_linear.py): the same numbers
as the plain layers, and the model left as it was."""

from __future__ import annotations

import pytest
import torch
from test_decode import CONVERSATIONS, encoded_prompts

from rlsp.generation import HFBackend, SamplingParams
from rlsp.generation.decode import decode
from rlsp.generation.packed_linear import can_pack, packed_linears, packing_dtype
from rlsp.modeling.causal_lm import load_causal_lm

pytestmark = pytest.mark.skipif(not torch.backends.mkldnn.is_available(), reason="this torch build has no oneDNN")


def _linears(model):
    return [m for m in model.modules() if isinstance(m, torch.nn.Linear)]


def test_packed_forward_equals_plain_and_is_undone(tiny_model_dir):
    model, tokenizer = load_causal_lm(str(tiny_model_dir), device="cpu")
    ids, mask = encoded_prompts(tokenizer, CONVERSATIONS)
    with torch.no_grad():
        plain = model(input_ids=ids, attention_mask=mask).logits
        with packed_linears(model):
            assert all("forward" in vars(m) for m in _linears(model))
            packed = model(input_ids=ids, attention_mask=mask).logits
    assert torch.allclose(plain, packed, atol=1e-5, rtol=1e-5)  # equal up to float summation order
    assert all("forward" not in vars(m) for m in _linears(model))
    with torch.no_grad():
        assert torch.equal(model(input_ids=ids, attention_mask=mask).logits, plain)


def test_packed_decoding_gives_the_plain_tokens_and_logprobs(tiny_model_dir):
    model, tokenizer = load_causal_lm(str(tiny_model_dir), device="cpu")
    ids, mask = encoded_prompts(tokenizer, CONVERSATIONS)
    backend = HFBackend(model, tokenizer)
    greedy = SamplingParams(temperature=0.0, max_new_tokens=12)
    plain_ids, plain_logp = decode(model, ids, mask, greedy, backend.stop_ids, tokenizer.pad_token_id, 2)
    with packed_linears(model):
        packed_ids, packed_logp = decode(model, ids, mask, greedy, backend.stop_ids, tokenizer.pad_token_id, 2)
    assert torch.equal(plain_ids, packed_ids)
    assert torch.allclose(plain_logp, packed_logp, atol=1e-5)

    sampled = SamplingParams(temperature=1.0, max_new_tokens=12)
    torch.manual_seed(5)
    plain_ids, plain_logp = decode(model, ids, mask, sampled, backend.stop_ids, tokenizer.pad_token_id, 3)
    torch.manual_seed(5)
    rollout = backend.generate(CONVERSATIONS, sampled, samples_per_prompt=3)  # packs on this CPU
    assert torch.equal(rollout.completion_ids, plain_ids)
    assert torch.allclose(rollout.logprobs, plain_logp, atol=1e-5)


BF16_KERNELS = torch.ops.mkldnn._is_mkldnn_bf16_supported()


def test_packing_follows_the_dtype_plain_layers_would_use(tiny_model_dir):
    model, _ = load_causal_lm(str(tiny_model_dir), device="cpu")
    assert packing_dtype(model) == torch.float32
    with torch.autocast("cpu", dtype=torch.bfloat16):  # autocast decides the matmul dtype
        assert packing_dtype(model) == (torch.bfloat16 if BF16_KERNELS else None)
    with torch.autocast("cpu", dtype=torch.float16):
        assert packing_dtype(model) is None
        with packed_linears(model):
            assert all("forward" not in vars(m) for m in _linears(model))
    with packed_linears(model, enabled=False):
        assert all("forward" not in vars(m) for m in _linears(model))
    next(model.parameters()).ds_id = 0  # a ZeRO-3 shard: the weight is gathered only in its own forward
    assert not can_pack(model)
    del next(model.parameters()).ds_id
    assert packing_dtype(model.to(torch.bfloat16)) == (torch.bfloat16 if BF16_KERNELS else None)


@pytest.mark.skipif(not BF16_KERNELS, reason="oneDNN has no bf16 kernels for this CPU")
def test_packed_products_under_bf16_autocast_equal_autocasts_own(tiny_model_dir):
    """Same bf16 inputs and weights, fp32 accumulation in both: at most a rounding of the bf16
    result apart (its unit roundoff, relative to the largest entry)."""
    model, _ = load_causal_lm(str(tiny_model_dir), device="cpu")
    x = torch.randn(5, 7, model.config.hidden_size)
    layers = [m for m in _linears(model) if m.in_features == model.config.hidden_size]
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        plain = [layer(x) for layer in layers]
        with packed_linears(model):
            packed = [layer(x) for layer in layers]
    unit_roundoff = torch.finfo(torch.bfloat16).eps / 2
    for p, q in zip(plain, packed, strict=True):
        assert p.dtype == q.dtype == torch.bfloat16
        scale = float(p.float().abs().max())
        assert float((p.float() - q.float()).abs().max()) <= 2 * unit_roundoff * scale


def test_a_layer_with_its_own_forward_keeps_it(tiny_model_dir):
    model, _ = load_causal_lm(str(tiny_model_dir), device="cpu")
    hooked = _linears(model)[0]
    own = hooked.forward.__func__.__get__(hooked)  # what accelerate's hooks install: an instance forward
    hooked.forward = own
    with packed_linears(model):
        assert vars(hooked)["forward"] is own
        assert all("forward" in vars(m) for m in _linears(model)[1:])
    assert vars(hooked)["forward"] is own
