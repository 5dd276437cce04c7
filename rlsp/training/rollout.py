"""Phases 1-2 of a step: draw prompts, generate completions, score both reward channels."""

from __future__ import annotations

import random
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from rlsp.data import Example
from rlsp.generation import GenerationBackend, Rollout, SamplingParams
from rlsp.training.forward import Sequences


class PromptSampler:
    """Epoch-wise seeded shuffles of the training prompts, addressable by position.

    The position is all a checkpoint needs to resume on exactly the same prompts.
    """

    def __init__(self, n_examples: int, seed: int):
        self.n, self.seed = n_examples, seed
        self._epoch, self._order = -1, []

    def indices(self, position: int, count: int) -> list[int]:
        out = []
        for p in range(position, position + count):
            epoch, offset = divmod(p, self.n)
            out.append(self._order_of(epoch)[offset])
        return out

    def _order_of(self, epoch: int) -> list[int]:
        """The shuffled order of one epoch, computed once and kept until the next epoch."""
        if epoch != self._epoch:
            self._order = list(range(self.n))
            random.Random(f"{self.seed}-{epoch}").shuffle(self._order)
            self._epoch = epoch
        return self._order


@dataclass
class Generated:
    """A step's samples; each prompt repeated ``samples_per_prompt`` times, adjacent."""

    examples: list[Example]  # (B,)
    group_ids: torch.Tensor  # (B,) index of the prompt within the step
    seqs: Sequences
    sampling_logprobs: torch.Tensor  # (B, T) from the generator (diagnostic only)
    texts: list[str]
    finish_reasons: list[str]
    system_prompts: list[str | None]  # (B,) the system prompt each sample was generated with

    @property
    def lengths(self) -> list[int]:
        return self.seqs.completion_mask.sum(1).tolist()


def generate_step(
    backend: GenerationBackend,
    examples: list[Example],
    conversations: list[list[dict]],
    samples_per_prompt: int,
    params: SamplingParams,
    batch_size: int,
) -> Generated:
    """``samples_per_prompt`` samples of each example, at most ``batch_size`` rows per backend call.

    A prompt's samples go to the backend together, so it can prefill the prompt once for all.
    """
    prompts_per_call = max(1, batch_size // samples_per_prompt)
    chunks: list[Rollout] = []
    for start in range(0, len(examples), prompts_per_call):
        chunks.append(backend.generate(conversations[start : start + prompts_per_call], params, samples_per_prompt))
    repeated = [i for i in range(len(examples)) for _ in range(samples_per_prompt)]
    pad = backend.tokenizer.pad_token_id
    seqs, logprobs = _concatenate(chunks, pad)
    return Generated(
        examples=[examples[i] for i in repeated],
        group_ids=torch.tensor(repeated),
        seqs=seqs,
        sampling_logprobs=logprobs,
        texts=[t for c in chunks for t in c.texts],
        finish_reasons=[r for c in chunks for r in c.finish_reasons],
        system_prompts=[_system_prompt(conversations[i]) for i in repeated],
    )


def _system_prompt(messages: list[dict]) -> str | None:
    return next((m["content"] for m in messages if m["role"] == "system"), None)


def _concatenate(chunks: list[Rollout], pad_id: int) -> tuple[Sequences, torch.Tensor]:
    """Stack generate() batches: prompts padded on the left, completions on the right."""
    P = max(c.prompt_ids.shape[1] for c in chunks)
    T = max(c.completion_ids.shape[1] for c in chunks)

    def left(x, value):
        return F.pad(x, (P - x.shape[1], 0), value=value)

    def right(x, value):
        return F.pad(x, (0, T - x.shape[1]), value=value)

    seqs = Sequences(
        prompt_ids=torch.cat([left(c.prompt_ids, pad_id) for c in chunks]),
        prompt_mask=torch.cat([left(c.prompt_mask, 0) for c in chunks]),
        completion_ids=torch.cat([right(c.completion_ids, pad_id) for c in chunks]),
        completion_mask=torch.cat([right(c.completion_mask, 0) for c in chunks]),
    )
    return seqs, torch.cat([right(c.logprobs, 0.0) for c in chunks])


@dataclass
class Scores:
    """Phase 2 output: each reward function's result and the two channel totals."""

    per_function: dict  # name -> RewardResult (scores, applicable, parsed, n_errors)
    verifier: torch.Tensor  # (B,) weighted sum of the verifier channel's functions
    exploration: torch.Tensor  # (B,) weighted sum of the exploration channel's functions


def score_step(reward_functions, generated: Generated) -> Scores:
    from rlsp.scoring.channels import channel_totals, reward_columns, score_all

    examples = generated.examples
    columns = reward_columns(examples, generated.lengths, generated.finish_reasons)
    results = score_all(
        reward_functions, [e.prompt for e in examples], generated.texts, [e.reference for e in examples], columns
    )
    totals = channel_totals(reward_functions, results)
    return Scores(
        per_function=results,
        verifier=torch.as_tensor(totals["verifier"], dtype=torch.float32),
        exploration=torch.as_tensor(totals["exploration"], dtype=torch.float32),
    )
