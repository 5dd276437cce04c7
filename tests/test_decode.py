"""The sampling loop (rlsp/generation/decode.py) against transformers' own ``generate``.

Each of its speed-ups (shared prefill, finished rows leaving the batch, no stored scores) must
give the numbers of the plain path.
"""

from __future__ import annotations

import torch
from transformers import GenerationConfig

from rlsp.generation import HFBackend, SamplingParams
from rlsp.generation.decode import decode, draw_from, nucleus_filter, pick_tokens, shared_prefix_length
from rlsp.generation.hf import render_prompts
from rlsp.modeling.causal_lm import load_causal_lm

CONVERSATIONS = [
    [{"role": "user", "content": "What is 12 + 7?"}],
    [{"role": "system", "content": "Check twice."}, {"role": "user", "content": "Let me verify the sum"}],
    [{"role": "user", "content": "Wait"}],
    [{"role": "user", "content": "Add 35 and 48, then check the result by subtracting."}],
]


def encoded_prompts(tokenizer, conversations):
    tokenizer.padding_side = "left"
    enc = tokenizer(render_prompts(tokenizer, conversations), return_tensors="pt", padding=True,
                    add_special_tokens=False)
    return enc["input_ids"], enc["attention_mask"]


def test_nucleus_filter_keeps_the_smallest_set_reaching_top_p():
    probs = torch.tensor([[0.5, 0.3, 0.15, 0.05]])
    kept = nucleus_filter(probs.log(), top_p=0.8).isfinite()
    assert kept.tolist() == [[True, True, False, False]]  # 0.5 + 0.3 reaches 0.8
    kept = nucleus_filter(probs.log(), top_p=0.81).isfinite()
    assert kept.tolist() == [[True, True, True, False]]
    assert nucleus_filter(torch.tensor([[0.0, -50.0]]), top_p=0.01).isfinite().tolist() == [[True, False]]


def test_pick_tokens_logprob_is_the_processed_distributions():
    logits = torch.tensor([[2.0, 1.0, 0.0, -1.0]])
    token, logprob = pick_tokens(logits, SamplingParams(temperature=0.0))
    assert token.item() == 0
    assert logprob.item() == torch.log_softmax(logits, -1)[0, 0].item()
    torch.manual_seed(0)
    params = SamplingParams(temperature=0.5, top_p=0.9)
    token, logprob = pick_tokens(logits, params)
    # At T=0.5 the probabilities are softmax([4, 2, 0, -2]) = .867, .117, .016, .002; top-p 0.9 keeps two.
    kept = torch.tensor([4.0, 2.0])
    assert token.item() in (0, 1)
    assert torch.isclose(logprob, torch.log_softmax(kept, -1)[token.item()], atol=1e-6).all()


def test_draw_from_inverts_the_cumulative_distribution_and_skips_empty_tokens():
    probs = torch.tensor([[0.0, 0.25, 0.0, 0.5, 0.25, 0.0]] * 4)
    below_one = 1 - torch.finfo(torch.float64).eps
    tokens = draw_from(probs, torch.tensor([0.0, 0.2499, 0.25, below_one], dtype=torch.float64))
    assert tokens.tolist() == [1, 1, 3, 4]  # never a token of probability zero, even at the ends


def test_draw_from_samples_each_token_at_its_probability():
    """Frequencies of 200k draws within 6 standard errors of the probabilities (a token off by
    one, or mass moved between neighbours, is hundreds of standard errors away)."""
    probs = torch.softmax(torch.tensor([2.0, -30.0, 1.0, 0.0, float("-inf"), -1.0]), dim=0)
    n = 200_000
    generator = torch.Generator().manual_seed(0)
    tokens = draw_from(probs.expand(n, -1), torch.rand(n, dtype=torch.float64, generator=generator))
    frequency = torch.bincount(tokens, minlength=len(probs)).double() / n
    standard_error = (probs.double() * (1 - probs.double()) / n).sqrt()
    assert ((frequency - probs.double()).abs() <= 6 * standard_error + 1e-12).all(), (frequency, probs)
    assert frequency[4] == 0


def test_greedy_tokens_equal_transformers_generate(tiny_model_dir):
    model, tokenizer = load_causal_lm(str(tiny_model_dir), device="cpu")
    ids, mask = encoded_prompts(tokenizer, CONVERSATIONS)
    backend = HFBackend(model, tokenizer)
    ours, _ = decode(model, ids, mask, SamplingParams(temperature=0.0, max_new_tokens=12), backend.stop_ids,
                     tokenizer.pad_token_id)
    config = GenerationConfig(do_sample=False, max_new_tokens=12, eos_token_id=backend.stop_ids,
                              pad_token_id=tokenizer.pad_token_id)
    theirs = model.generate(input_ids=ids, attention_mask=mask, generation_config=config)[:, ids.shape[1]:]
    assert ours.shape == theirs.shape
    assert torch.equal(ours, theirs)


def forward_logprobs(model, prompt_ids, prompt_mask, completion_ids, completion_mask):
    """(B, T) log p of each completion token from one plain forward pass over prompt + completion."""
    inputs = torch.cat([prompt_ids, completion_ids], 1)
    attention = torch.cat([prompt_mask, completion_mask], 1)
    with torch.no_grad():
        logits = model(input_ids=inputs, attention_mask=attention,
                       position_ids=(attention.cumsum(1) - 1).clamp(min=0)).logits
    P = prompt_ids.shape[1]
    logp = torch.log_softmax(logits[:, P - 1 : -1].float(), -1).gather(-1, completion_ids[..., None])[..., 0]
    return logp * completion_mask


def test_rows_leaving_the_batch_keep_their_own_cache(tiny_model_dir):
    """With many stop tokens rows finish at different steps and leave the batch; each remaining
    row's log-probs must still be those of its own prompt and prefix (a fresh forward pass)."""
    model, tokenizer = load_causal_lm(str(tiny_model_dir), device="cpu")
    backend = HFBackend(model, tokenizer)
    backend.stop_ids = backend.stop_ids + list(range(0, 300, 9))
    torch.manual_seed(3)
    rollout = backend.generate(CONVERSATIONS * 3, SamplingParams(temperature=1.0, max_new_tokens=12))
    lengths = rollout.completion_mask.sum(1)
    assert len(set(lengths.tolist())) > 3, "the test needs rows that stop at different steps"
    expected = forward_logprobs(model, rollout.prompt_ids, rollout.prompt_mask, rollout.completion_ids,
                                rollout.completion_mask)
    assert torch.allclose(rollout.logprobs, expected, atol=1e-4)
    after_stop = ~rollout.completion_mask.bool()
    assert (rollout.completion_ids[after_stop] == tokenizer.pad_token_id).all()


def test_shared_prefill_gives_each_sample_the_prompts_distribution(tiny_model_dir):
    """k samples from one prefill: greedy samples equal the single greedy answer, and sampled
    log-probs equal a fresh forward pass over the prompt and the sample."""
    model, tokenizer = load_causal_lm(str(tiny_model_dir), device="cpu")
    backend = HFBackend(model, tokenizer)
    greedy = SamplingParams(temperature=0.0, max_new_tokens=8)
    one = backend.generate(CONVERSATIONS, greedy)
    three = backend.generate(CONVERSATIONS, greedy, samples_per_prompt=3)
    assert three.texts == [t for t in one.texts for _ in range(3)]
    assert torch.equal(three.prompt_ids, one.prompt_ids.repeat_interleave(3, dim=0))

    torch.manual_seed(0)
    sampled = backend.generate(CONVERSATIONS[:2], SamplingParams(temperature=1.0, max_new_tokens=8),
                               samples_per_prompt=4)
    assert len(set(sampled.texts[:4])) > 1  # the 4 samples of a prompt are drawn independently
    expected = forward_logprobs(model, sampled.prompt_ids, sampled.prompt_mask, sampled.completion_ids,
                                sampled.completion_mask)
    assert torch.allclose(sampled.logprobs, expected, atol=1e-4)


def test_shared_prefix_length_counts_common_real_tokens():
    ids = torch.tensor([[0, 0, 7, 8, 9, 4], [7, 8, 9, 5, 6, 1], [0, 7, 8, 9, 5, 2]])
    mask = (ids != 0).long()
    assert shared_prefix_length(ids, mask) == 3
    # Never the whole of the shortest prompt: each row keeps a token to predict from.
    same = torch.tensor([[0, 7, 8, 9], [7, 8, 9, 5]])
    assert shared_prefix_length(same, (same != 0).long()) == 2


SYSTEM = "You are a careful assistant. Check the arithmetic twice and give the final answer in a box."


def test_shared_prefix_prefill_equals_transformers_generate(tiny_model_dir):
    """Prompts with a long common system turn: the prefix is prefilled once, the rest per row."""
    model, tokenizer = load_causal_lm(str(tiny_model_dir), device="cpu")
    conversations = [[{"role": "system", "content": SYSTEM}, *c[-1:]] for c in CONVERSATIONS]
    ids, mask = encoded_prompts(tokenizer, conversations)
    assert shared_prefix_length(ids, mask) >= 8
    backend = HFBackend(model, tokenizer)
    ours, logp = decode(model, ids, mask, SamplingParams(temperature=0.0, max_new_tokens=12), backend.stop_ids,
                        tokenizer.pad_token_id)
    config = GenerationConfig(do_sample=False, max_new_tokens=12, eos_token_id=backend.stop_ids,
                              pad_token_id=tokenizer.pad_token_id, return_dict_in_generate=True, output_scores=True)
    out = model.generate(input_ids=ids, attention_mask=mask, generation_config=config)
    assert torch.equal(ours, out.sequences[:, ids.shape[1]:])
    theirs = model.compute_transition_scores(out.sequences, out.scores, normalize_logits=True)
    assert torch.allclose(logp, theirs, atol=1e-4)


class FakeLockstep:
    """Stands in for the other processes: they keep generating ``extra`` steps after this one."""

    def __init__(self, extra: int):
        self.extra, self.idle = extra, 0

    def any(self, flag: bool) -> bool:
        if flag:
            return True
        self.extra -= 1
        return self.extra >= 0

    def idle_forward(self, model) -> None:
        self.idle += 1
        model(input_ids=torch.zeros((1, 1), dtype=torch.long), use_cache=False)


def test_lockstep_keeps_stepping_until_every_process_is_done_and_samples_the_same(tiny_model_dir):
    model, tokenizer = load_causal_lm(str(tiny_model_dir), device="cpu")
    ids, mask = encoded_prompts(tokenizer, CONVERSATIONS)
    stop_ids = HFBackend(model, tokenizer).stop_ids
    params = SamplingParams(temperature=0.0, max_new_tokens=5)
    alone = decode(model, ids, mask, params, stop_ids, tokenizer.pad_token_id)
    lockstep = FakeLockstep(extra=0)  # one prefill pass instead of the shared-prefix split, same samples
    stepped = decode(model, ids, mask, params, stop_ids, tokenizer.pad_token_id, lockstep=lockstep)
    assert torch.equal(stepped[0], alone[0]) and torch.allclose(stepped[1], alone[1], atol=1e-5)
    assert lockstep.idle == 0
    every_token_stops = list(range(tokenizer.vocab_size))  # every row stops after its first token
    lockstep = FakeLockstep(extra=3)
    tokens, _ = decode(model, ids, mask, SamplingParams(temperature=0.0, max_new_tokens=8), every_token_stops,
                       tokenizer.pad_token_id, lockstep=lockstep)
    assert tokens.shape[1] == 1 and lockstep.idle == 3
