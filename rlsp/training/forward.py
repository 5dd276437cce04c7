"""Forward passes over prompt + completion: per-token log-probabilities, entropy, values.

Prompts are left-padded and completions right-padded, so the sequence is
``[pad.. prompt | completion ..pad]``. Position ids count real tokens only, matching what
``generate`` used. The distribution over completion token t comes from the logits at the
position just before it: ``logits[:, P - 1 : P + T - 1]``.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from rlsp.algorithms import entropy_from_logits


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
        return Sequences(self.prompt_ids[rows], self.prompt_mask[rows], self.completion_ids[rows], self.completion_mask[rows])

    def trimmed(self) -> Sequences:
        """The same rows without the padding columns all of them share (left of the longest
        prompt, right of the longest completion): the forward pass gives the same numbers on
        fewer positions."""
        real = self.prompt_mask.any(dim=0).nonzero()
        first = int(real[0]) if len(real) else self.prompt_ids.shape[1] - 1
        last = int(self.completion_mask.any(dim=0).nonzero().max()) + 1 if self.completion_mask.any() else 1
        return Sequences(self.prompt_ids[:, first:], self.prompt_mask[:, first:],
                         self.completion_ids[:, :last], self.completion_mask[:, :last])


def completion_logprobs(
    model, seqs: Sequences, temperature: float, with_entropy: bool = False, entropy_grad: bool = False
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """(B, T) log p(token) at ``temperature``, and (B, T) entropy if asked; fp32.

    ``entropy_grad``: keep the entropy in the autograd graph (for an entropy bonus).
    """
    full_T = seqs.completion_ids.shape[1]
    seqs = seqs.trimmed()
    T = seqs.completion_ids.shape[1]
    # Only the last T + 1 positions predict completion tokens (the final one predicts nothing):
    # projecting the prompt positions onto the vocabulary would be wasted work.
    logits = model(**seqs.inputs(), use_cache=False, logits_to_keep=T + 1).logits[:, :-1].float()
    if temperature > 0 and temperature != 1.0:
        logits = logits / temperature
    log_probs = torch.log_softmax(logits, dim=-1)
    token_logprobs = log_probs.gather(-1, seqs.completion_ids.unsqueeze(-1)).squeeze(-1)
    entropy = None
    if with_entropy:
        # A softmax over the whole vocabulary per token: keep it out of the graph unless it trains.
        with torch.set_grad_enabled(torch.is_grad_enabled() and entropy_grad):
            entropy = entropy_from_logits(logits if entropy_grad else logits.detach())
    return _pad_right(token_logprobs, full_T), (None if entropy is None else _pad_right(entropy, full_T))


def completion_values(critic, seqs: Sequences) -> torch.Tensor:
    """(B, T, n_heads) value of the state before each completion token."""
    full_T = seqs.completion_ids.shape[1]
    seqs = seqs.trimmed()
    P, T = seqs.prompt_ids.shape[1], seqs.completion_ids.shape[1]
    values = critic(**seqs.inputs())[:, P - 1 : P + T - 1]
    return torch.nn.functional.pad(values, (0, 0, 0, full_T - T))


def _pad_right(x: torch.Tensor, width: int) -> torch.Tensor:
    """(B, t) -> (B, width) with zeros on the right: trimmed results back at the batch's width."""
    return torch.nn.functional.pad(x, (0, width - x.shape[1]))
