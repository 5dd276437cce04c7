"""Generation: masks, finish reasons, log-probabilities and padding on a tiny model."""

from __future__ import annotations

import torch

from rlsp.generation import HFBackend, SamplingParams, generate_all
from rlsp.generation.hf import completion_mask_from_ids, render_prompts, stop_token_ids
from rlsp.modeling.causal_lm import load_causal_lm

CONVERSATIONS = [
    [{"role": "user", "content": "What is 12 + 7?"}],
    [{"role": "system", "content": "Check twice."}, {"role": "user", "content": "Let me verify the sum"}],
    [{"role": "user", "content": "Wait"}],
]


def test_completion_mask_stops_after_first_stop_token():
    ids = torch.tensor([[5, 6, 2, 2, 2], [5, 6, 7, 8, 9], [2, 0, 0, 0, 0]])
    mask, stopped = completion_mask_from_ids(ids, stop_ids=[0, 2])
    assert mask.tolist() == [[1, 1, 1, 0, 0], [1, 1, 1, 1, 1], [1, 0, 0, 0, 0]]
    assert stopped.tolist() == [True, False, True]


def test_stop_ids_include_chat_end_token(tiny_model_dir):
    model, tokenizer = load_causal_lm(str(tiny_model_dir), device="cpu")
    ids = stop_token_ids(tokenizer, model)
    assert tokenizer.convert_tokens_to_ids("<|im_end|>") in ids
    assert tokenizer.convert_tokens_to_ids("<|endoftext|>") in ids


def test_chat_template_opens_the_assistant_turn(tiny_model_dir):
    _, tokenizer = load_causal_lm(str(tiny_model_dir), device="cpu")
    text = render_prompts(tokenizer, CONVERSATIONS[1:2])[0]
    assert text.startswith("<|im_start|>system\nCheck twice.<|im_end|>")
    assert text.endswith("<|im_start|>assistant\n")


def recomputed_logprobs(model, rollout, temperature: float) -> torch.Tensor:
    """log p(token) from one forward pass over prompt + completion, at ``temperature``."""
    ids = torch.cat([rollout.prompt_ids, rollout.completion_ids], dim=1)
    attention = torch.cat([rollout.prompt_mask, rollout.completion_mask], dim=1)
    positions = (attention.cumsum(1) - 1).clamp(min=0)
    with torch.no_grad():
        logits = model(input_ids=ids, attention_mask=attention, position_ids=positions).logits
    P = rollout.prompt_ids.shape[1]
    logits = logits[:, P - 1 : -1] / temperature
    return torch.log_softmax(logits.float(), -1).gather(-1, rollout.completion_ids.unsqueeze(-1)).squeeze(-1)


def test_sampled_logprobs_match_a_forward_pass(tiny_model_dir):
    model, tokenizer = load_causal_lm(str(tiny_model_dir), device="cpu")
    torch.manual_seed(0)
    rollout = HFBackend(model, tokenizer).generate(CONVERSATIONS, SamplingParams(temperature=0.7, max_new_tokens=10))
    expected = recomputed_logprobs(model, rollout, 0.7) * rollout.completion_mask
    assert torch.allclose(rollout.logprobs, expected, atol=1e-4)
    assert (rollout.logprobs[rollout.completion_mask.bool()] < 0).all()


def test_greedy_batch_equals_one_at_a_time(tiny_model_dir):
    model, tokenizer = load_causal_lm(str(tiny_model_dir), device="cpu")
    backend = HFBackend(model, tokenizer)
    params = SamplingParams(temperature=0.0, max_new_tokens=8)
    batched = backend.generate(CONVERSATIONS, params)
    for i, conversation in enumerate(CONVERSATIONS):
        single = backend.generate([conversation], params)
        assert single.texts[0] == batched.texts[i]
        assert torch.allclose(single.logprobs[0], batched.logprobs[i], atol=1e-4)
    assert batched.prompt_mask[:, 0].tolist().count(0) >= 1  # left padding on the shorter prompts


def test_masks_and_finish_reasons_agree(tiny_model_dir):
    model, tokenizer = load_causal_lm(str(tiny_model_dir), device="cpu")
    torch.manual_seed(1)
    rollout = HFBackend(model, tokenizer).generate(CONVERSATIONS * 4, SamplingParams(temperature=5.0, max_new_tokens=6))
    stop_ids = set(stop_token_ids(tokenizer, model))
    rows = zip(rollout.completion_ids.tolist(), rollout.completion_mask.tolist(), rollout.finish_reasons, strict=True)
    for ids, mask, reason in rows:
        n = sum(mask)
        if reason == "stop":
            assert ids[n - 1] in stop_ids and not stop_ids & set(ids[: n - 1])
        else:
            assert n == 6 and not stop_ids & set(ids)
    assert rollout.completion_lengths == rollout.completion_mask.sum(1).tolist()


def test_generate_all_keeps_order_across_batches(tiny_model_dir):
    model, tokenizer = load_causal_lm(str(tiny_model_dir), device="cpu")
    backend = HFBackend(model, tokenizer)
    params = SamplingParams(temperature=0.0, max_new_tokens=5)
    whole = backend.generate(CONVERSATIONS, params)
    pieces = generate_all(backend, CONVERSATIONS, params, batch_size=2, show_progress=False)
    assert [c.text for c in pieces] == whole.texts
    assert [c.finish_reason for c in pieces] == whole.finish_reasons
