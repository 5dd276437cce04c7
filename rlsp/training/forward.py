"""Forward passes over prompt + completion: per-token log-probabilities, entropy, values.

Prompts are left-padded and completions right-padded, so the sequence is
``[pad.. prompt | completion ..pad]``. Position ids count real tokens only, matching what
``generate`` used. The distribution over completion token t comes from the logits at the
position just before it: ``logits[:, P - 1 : P + T - 1]``.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import torch

from rlsp.algorithms import entropy_from_logits
from rlsp.training.packing import pack_by_prompt, supports_packing


@dataclass
class Sequences:
    """Token batch for a forward pass. B sequences, P prompt tokens, T completion tokens."""

    prompt_ids: torch.Tensor  # (B, P)
    prompt_mask: torch.Tensor  # (B, P)
    completion_ids: torch.Tensor  # (B, T)
    completion_mask: torch.Tensor  # (B, T)

    def inputs(self) -> dict[str, torch.Tensor]:
        ids = torch.cat([self.prompt_ids, self.completion_ids], dim=1)
        attention = torch.cat([self.prompt_mask, self.completion_mask], dim=1)
        positions = (attention.cumsum(dim=1) - 1).clamp(min=0)
        return {"input_ids": ids, "attention_mask": attention, "position_ids": positions}

    def index(self, rows) -> Sequences:
        return Sequences(
            self.prompt_ids[rows], self.prompt_mask[rows], self.completion_ids[rows], self.completion_mask[rows]
        )

    def trimmed(self) -> Sequences:
        """The same rows without the padding columns all of them share (left of the longest
        prompt, right of the longest completion): the forward pass gives the same numbers on
        fewer positions."""
        real = self.prompt_mask.any(dim=0).nonzero()
        first = int(real[0]) if len(real) else self.prompt_ids.shape[1] - 1
        last = int(self.completion_mask.any(dim=0).nonzero().max()) + 1 if self.completion_mask.any() else 1
        return Sequences(self.prompt_ids[:, first:], self.prompt_mask[:, first:],
                         self.completion_ids[:, :last], self.completion_mask[:, :last])


# The most fp32 logits one log-prob chunk holds at once. Above it the completion tokens are split
# into chunks: the full (B, T, vocabulary) tensor of an 8B model at 8 x 4,096 tokens is
# 16 GiB, and its log-softmax and gradient as much again. Below it (the CPU demo: 0.2 GiB) one
# chunk is the whole completion, as before. Not under ZeRO-3 (see completion_logprobs).
LOGITS_BUDGET_BYTES = 256 * 2**20


def completion_logprobs(
    model, seqs: Sequences, temperature: float, with_entropy: bool = False, entropy_grad: bool = False,
    padding_free: bool = False,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """(B, T) log p(token) at ``temperature``, and (B, T) entropy if asked; fp32.

    ``entropy_grad``: keep the entropy in the autograd graph (for an entropy bonus).
    ``padding_free``: each distinct prompt once, its samples packed behind it (packing.py), where
    the model supports it and agreed with the plain pass on its first batch.
    Positions after a completion's end are 0.

    The model returns its last hidden states; the output head and log-softmax then run over
    chunks of the completion tokens (see LOGITS_BUDGET_BYTES). With gradients each chunk is
    checkpointed: its logits are recomputed in the backward pass instead of kept, one at a time.
    """
    full_T = seqs.completion_ids.shape[1]
    seqs = seqs.trimmed()
    T = seqs.completion_ids.shape[1]
    # Only the positions before each completion token predict it; projecting the prompt positions
    # onto the vocabulary would be wasted work. logits_to_keep=1 keeps the model's own projection
    # to one position; the head runs here, chunk by chunk.
    packed = padding_free and _packing_agrees(
        model, seqs, lambda free: completion_logprobs(model, seqs, temperature, padding_free=free)[0])
    if packed:
        rows = pack_by_prompt(seqs.prompt_ids, seqs.prompt_mask, seqs.completion_ids, seqs.completion_mask)
        hidden = _final_hidden_states(model, rows.inputs)[rows.source_row, rows.source_col]
    else:
        hidden = _final_hidden_states(model, seqs.inputs())[:, -(T + 1) : -1]
    # The head runs on the completion's real tokens only: the padding after a completion's end
    # (up to the longest in the micro-batch) would cost a full-vocabulary projection per position.
    real = seqs.completion_mask.bool()
    hidden, targets = hidden[real], seqs.completion_ids[real]  # (N, H), (N,)
    head = _unwrapped(model).get_output_embeddings()
    vocab = head.out_features  # not weight.shape: under ZeRO-3 the weight is an empty shard here
    n = len(targets)
    width = max(1, LOGITS_BUDGET_BYTES // (4 * vocab))
    if hasattr(head.weight, "ds_id"):
        # ZeRO-3 shards the head: every chunk (and every recomputed chunk in the backward pass)
        # would gather it anew, a collective whose count would differ between processes whose
        # completions differ in length. One chunk there.
        width = max(n, 1)
    pieces = []
    for start in range(0, max(n, 1), width):
        args = (head, hidden[start : start + width], targets[start : start + width], temperature, with_entropy,
                entropy_grad)
        if torch.is_grad_enabled() and n > width:
            pieces.append(torch.utils.checkpoint.checkpoint(_chunk_logprobs, *args, use_reentrant=False))
        else:
            pieces.append(_chunk_logprobs(*args))
    token_logprobs = _scatter(torch.cat([lp for lp, _ in pieces]), real)
    entropy = _scatter(torch.cat([e for _, e in pieces]), real) if with_entropy else None
    return _pad_right(token_logprobs, full_T), (None if entropy is None else _pad_right(entropy, full_T))


def _chunk_logprobs(head, hidden, token_ids, temperature, with_entropy, entropy_grad):
    logits = head(hidden).float()
    if temperature > 0 and temperature != 1.0:
        logits = logits / temperature
    token_logprobs = torch.log_softmax(logits, dim=-1).gather(-1, token_ids.unsqueeze(-1)).squeeze(-1)
    entropy = None
    if with_entropy:
        # A softmax over the whole vocabulary per token: keep it out of the graph unless it trains.
        with torch.set_grad_enabled(torch.is_grad_enabled() and entropy_grad):
            entropy = entropy_from_logits(logits if entropy_grad else logits.detach())
    return token_logprobs, entropy


def _packing_agrees(model, seqs: Sequences, passes) -> bool:
    """Whether ``model`` takes the padding-free pass: it supports it, and on its first batch the
    packed pass matched the plain one (checked once per model, without gradients).

    ``passes(padding_free)`` runs the pass in question (log-probs or values) on ``seqs``.
    """
    lm = _unwrapped(model)
    verdict = getattr(lm, "_rlsp_packing_agrees", None)
    if verdict is None:
        verdict = supports_packing(lm)
        if verdict:
            mask = seqs.completion_mask.bool()
            lm._rlsp_packing_agrees = False  # the plain pass first
            with torch.no_grad():
                plain = passes(False)[mask]
                lm._rlsp_packing_agrees = True
                packed = passes(True)[mask]
            # fp32 agrees to ~1e-6; half precision to its rounding. A wrong mask is off by O(1).
            half = (torch.is_autocast_enabled(seqs.prompt_ids.device.type)
                    or next(lm.parameters()).dtype != torch.float32)
            gap = float((plain - packed).abs().max()) if plain.numel() else 0.0
            verdict = gap < (5e-2 if half else 1e-3)
            if not verdict:
                warnings.warn(f"the padding-free pass of {type(lm).__name__} differs from the plain pass by {gap:.3g} "
                              "(its attention may not honour a 4D mask); using the plain pass", stacklevel=3)
        lm._rlsp_packing_agrees = verdict
    return verdict


def _unwrapped(model) -> torch.nn.Module:
    """The causal LM under a DDP or DeepSpeed wrapper (PEFT passes the calls below through)."""
    return getattr(model, "module", model)


def _final_hidden_states(model, inputs: dict) -> torch.Tensor:
    """(B, L, H) the decoder's output (after its final norm), from one forward pass through
    ``model`` itself, so DDP and ZeRO hooks run as usual. Read with a hook on the decoder rather
    than ``output_hidden_states=True``, which would keep every layer's states until the end of
    the pass (for an 8B model at 4 x 4,608 tokens, 4.8 GiB more in the no-grad passes)."""
    captured = []
    decoder = _unwrapped(model).get_decoder()
    handle = decoder.register_forward_hook(lambda module, args, out: captured.append(out[0]))
    try:
        model(**inputs, use_cache=False, logits_to_keep=1)
    finally:
        handle.remove()
    return captured[0]


def completion_values(critic, seqs: Sequences, padding_free: bool = False) -> torch.Tensor:
    """(B, T, n_heads) value of the state before each completion token; ``padding_free`` as in
    ``completion_logprobs`` (values after a completion's end are then 0)."""
    full_T = seqs.completion_ids.shape[1]
    seqs = seqs.trimmed()
    P, T = seqs.prompt_ids.shape[1], seqs.completion_ids.shape[1]
    if padding_free and _packing_agrees(critic, seqs, lambda free: completion_values(critic, seqs, free)):
        rows = pack_by_prompt(seqs.prompt_ids, seqs.prompt_mask, seqs.completion_ids, seqs.completion_mask)
        values = critic(**rows.inputs)[rows.source_row, rows.source_col] * seqs.completion_mask[..., None]
    else:
        values = critic(**seqs.inputs())[:, P - 1 : P + T - 1]
    return torch.nn.functional.pad(values, (0, 0, 0, full_T - T))


def _scatter(values: torch.Tensor, where: torch.Tensor) -> torch.Tensor:
    """(N,) values back into a zero (B, T) tensor at the N True places of ``where``."""
    out = values.new_zeros(where.shape)
    out[where] = values
    return out


def _pad_right(x: torch.Tensor, width: int) -> torch.Tensor:
    """(B, t) -> (B, width) with zeros on the right: trimmed results back at the batch's width."""
    return torch.nn.functional.pad(x, (0, width - x.shape[1]))
