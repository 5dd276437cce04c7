"""The token-by-token sampling loop behind ``HFBackend``, built for CPUs and small batches.

``transformers.generate`` keeps every row of the batch in every decoding step until the last
one stops, prefills each of a prompt's k samples separately, and keeps the full-vocabulary
scores of every step to recover log-probabilities afterwards (B x T x V floats). This loop:

- prefills the token prefix all prompts share (a chat template's system turn) once;
- prefills each distinct prompt once and copies its KV cache to its k samples;
- drops finished rows from the batch (and the KV cache) as soon as they emit a stop token;
- keeps only the log-probability of each sampled token.

The sampling rule is ``generate``'s with a fresh ``GenerationConfig``: logits / temperature,
then nucleus (top-p) filtering, then one draw from the resulting distribution (through its
inverse cumulative distribution rather than ``torch.multinomial``, so the random stream differs);
greedy is the argmax of the raw logits. Returned log-probabilities are those of the processed
distribution the token was drawn from (what ``compute_transition_scores(..., normalize_logits=True)``
gives). Greedy tokens equal ``generate``'s (tests/test_decode.py).
"""

from __future__ import annotations

import torch

from rlsp.generation.backend import SamplingParams
from rlsp.generation.lockstep import Lockstep
from rlsp.generation.reserved_cache import reserved_cache


def nucleus_filter(logits: torch.Tensor, top_p: float) -> torch.Tensor:
    """(B, V) logits with everything outside the top-p mass set to -inf (at least one token kept)."""
    if top_p >= 1.0:
        return logits
    sorted_logits, order = torch.sort(logits, descending=False)
    cumulative = sorted_logits.softmax(dim=-1).cumsum(dim=-1)
    drop_sorted = cumulative <= (1 - top_p)
    drop_sorted[..., -1:] = False  # the most likely token always stays
    drop = drop_sorted.scatter(1, order, drop_sorted)
    return logits.masked_fill(drop, float("-inf"))


def draw_from(probs: torch.Tensor, uniforms: torch.Tensor) -> torch.Tensor:
    """(B,) tokens drawn by inverting each row's cumulative distribution at ``uniforms`` in [0, 1).

    One uniform per row instead of ``torch.multinomial``'s exponential variate per vocabulary entry
    (which cost 13 ms a step for 16 rows of a 49k vocabulary on a 2-core EPYC). The sums run in
    float64 so that rounding cannot move mass between tokens, and ``u * total < total`` holds
    exactly; a token of probability zero has an empty interval and is never drawn.
    """
    cdf = probs.double().cumsum(dim=-1)
    targets = uniforms.double()[:, None] * cdf[:, -1:]
    return torch.searchsorted(cdf, targets, right=True).squeeze(1)


def pick_tokens(logits: torch.Tensor, params: SamplingParams) -> tuple[torch.Tensor, torch.Tensor]:
    """(B,) next tokens and (B,) their log-probabilities under the distribution they came from."""
    if params.temperature > 0:
        log_probs = torch.log_softmax(nucleus_filter(logits / params.temperature, params.top_p), dim=-1)
        uniforms = torch.rand(logits.shape[0], dtype=torch.float64, device=logits.device)
        tokens = draw_from(log_probs.exp(), uniforms)
    else:
        log_probs = torch.log_softmax(logits, dim=-1)
        tokens = log_probs.argmax(dim=-1)
    return tokens, log_probs.gather(1, tokens[:, None]).squeeze(1)


def shared_prefix_length(prompt_ids: torch.Tensor, prompt_mask: torch.Tensor) -> int:
    """How many leading real tokens every left-padded prompt has in common, leaving each at least one."""
    lengths = prompt_mask.sum(dim=1)
    shortest = int(lengths.min())
    P = prompt_ids.shape[1]
    # Row r's real tokens start at column P - lengths[r]; gather the first `shortest` of each.
    columns = (P - lengths)[:, None] + torch.arange(shortest, device=prompt_ids.device)[None, :]
    starts = prompt_ids.gather(1, columns)
    same = (starts == starts[:1]).all(dim=0)
    differing = (~same).nonzero()
    common = int(differing[0]) if len(differing) else shortest
    return min(common, shortest - 1)


def _prefill(model, prompt_ids, prompt_mask, cache, min_shared: int = 8):
    """Run the prompts into ``cache``; returns (B, V) next-token logits, the (B, L) attention mask
    the cache now covers, and (B,) the position of the next token.

    The prefix every prompt shares is computed once (batch of one) and copied to every row; each
    row's remaining tokens follow it, left-padded among themselves, so the padding sits between
    prefix and suffix where the attention mask hides it, and positions count real tokens only.
    """
    B = prompt_ids.shape[0]
    shared = shared_prefix_length(prompt_ids, prompt_mask) if B > 1 else 0
    if shared < min_shared:
        positions = (prompt_mask.cumsum(dim=1) - 1).clamp(min=0)
        out = model(input_ids=prompt_ids, attention_mask=prompt_mask, position_ids=positions,
                    past_key_values=cache, use_cache=True, logits_to_keep=1)
        return out.logits[:, -1].float(), prompt_mask, positions[:, -1] + 1
    P = prompt_ids.shape[1]
    first_real = P - int(prompt_mask[0].sum())
    prefix = prompt_ids[:1, first_real : first_real + shared]
    model(input_ids=prefix, attention_mask=torch.ones_like(prefix), past_key_values=cache, use_cache=True,
          logits_to_keep=1)
    cache.batch_repeat_interleave(B)
    # The suffixes: each row's real tokens after the shared prefix, still left-padded.
    suffix_lengths = prompt_mask.sum(dim=1) - shared
    S = int(suffix_lengths.max())
    suffix_ids, suffix_mask = prompt_ids[:, P - S :], prompt_mask[:, P - S :].clone()
    suffix_mask[torch.arange(S, device=prompt_ids.device)[None, :] < (S - suffix_lengths)[:, None]] = 0
    attention = torch.cat([prompt_mask.new_ones(B, shared), suffix_mask], dim=1)
    positions = (shared + suffix_mask.cumsum(dim=1) - 1).clamp(min=shared)
    out = model(input_ids=suffix_ids, attention_mask=attention, position_ids=positions,
                past_key_values=cache, use_cache=True, logits_to_keep=1)
    return out.logits[:, -1].float(), attention, positions[:, -1] + 1


@torch.no_grad()
def decode(
    model,
    prompt_ids: torch.Tensor,
    prompt_mask: torch.Tensor,
    params: SamplingParams,
    stop_ids: list[int],
    pad_id: int,
    samples_per_prompt: int = 1,
    lockstep: Lockstep | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Sample ``samples_per_prompt`` completions for each of B left-padded prompts.

    Args:
        prompt_ids, prompt_mask: (B, P) left-padded prompts.
        lockstep: keep stepping with the other processes until all are done (ZeRO-3, layer mode).
    Returns:
        completion_ids: (B * k, T) long, a prompt's k samples adjacent; ``pad_id`` after the
            first stop token (which is kept). T is the longest completion, at most max_new_tokens.
        logprobs: (B * k, T) float32 log-probability of each sampled token; 0 after the stop.
    """
    k = samples_per_prompt
    cache = reserved_cache(model.config, capacity=prompt_ids.shape[1] + params.max_new_tokens)
    # In lockstep every process prefills in one pass (the shared-prefix split is a per-batch choice).
    logits, attention, next_position = _prefill(model, prompt_ids, prompt_mask, cache,
                                                min_shared=8 if lockstep is None else 1 << 62)
    if k > 1:
        cache.batch_repeat_interleave(k)
        logits, attention, next_position = (x.repeat_interleave(k, dim=0) for x in (logits, attention, next_position))

    rows = prompt_ids.shape[0] * k
    device = prompt_ids.device
    tokens_out = torch.full((rows, params.max_new_tokens), pad_id, dtype=torch.long, device=device)
    logprobs_out = torch.zeros((rows, params.max_new_tokens), dtype=torch.float32, device=device)
    active = torch.arange(rows, device=device)  # which output rows the batch still holds
    stops = torch.tensor(stop_ids, device=device)
    steps, mine_running = 0, True
    for t in range(params.max_new_tokens):
        if mine_running:
            tokens, logprobs = pick_tokens(logits, params)
            tokens_out[active, t], logprobs_out[active, t] = tokens, logprobs
            steps = t + 1
            running = ~torch.isin(tokens, stops)
            mine_running = t + 1 < params.max_new_tokens and bool(running.any())
        if not (lockstep.any(mine_running) if lockstep is not None else mine_running):
            break
        if not mine_running:  # done here, but another process still generates
            lockstep.idle_forward(model)
            continue
        if not running.all():  # finished rows leave the batch and the cache
            keep = running.nonzero().squeeze(1)
            cache.batch_select_indices(keep)
            active, tokens, attention, next_position = active[keep], tokens[keep], attention[keep], next_position[keep]
        attention = torch.cat([attention, attention.new_ones(attention.shape[0], 1)], dim=1)
        out = model(input_ids=tokens[:, None], attention_mask=attention, position_ids=next_position[:, None],
                    past_key_values=cache, use_cache=True)
        logits = out.logits[:, -1].float()
        next_position = next_position + 1
    return tokens_out[:, :steps], logprobs_out[:, :steps]
