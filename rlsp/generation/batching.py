"""Generating for a whole dataset in batches, with a progress bar."""

from __future__ import annotations

from dataclasses import dataclass

from tqdm.auto import tqdm

from rlsp.generation.backend import FinishReason, GenerationBackend, SamplingParams


@dataclass(frozen=True)
class Completion:
    text: str
    finish_reason: FinishReason
    length: int  # tokens, stop token included


def generate_all(
    backend: GenerationBackend,
    conversations: list[list[dict]],
    params: SamplingParams,
    batch_size: int,
    desc: str = "generate",
    show_progress: bool = True,
) -> list[Completion]:
    completions: list[Completion] = []
    with tqdm(total=len(conversations), desc=desc, unit="prompt", disable=not show_progress) as bar:
        for start in range(0, len(conversations), batch_size):
            rollout = backend.generate(conversations[start : start + batch_size], params)
            completions.extend(
                Completion(t, r, n)
                for t, r, n in zip(rollout.texts, rollout.finish_reasons, rollout.completion_lengths, strict=True)
            )
            bar.update(len(rollout.texts))
    return completions
