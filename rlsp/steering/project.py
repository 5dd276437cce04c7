"""``rlsp steer project``: how far texts lie along a steering vector, layer by layer.

For each text (a prompt and its completion) the mean projection ``a . v / |v|`` of each layer's
output over the completion tokens; averaged over texts, and per training step when the texts
carry one (``rollouts.jsonl``). Reads ``rollouts.jsonl``, ``eval_samples.jsonl`` or any JSONL
with ``prompt`` and ``completion`` fields (the system prompt a rollout was generated with, if
logged, is put back).
"""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path

import torch

from rlsp.data.rows import read_rows
from rlsp.errors import DataError
from rlsp.steering.activations import chat, response_activations
from rlsp.steering.vectors import SteeringVectors


def read_texts(path: Path, prompt_field: str = "prompt", completion_field: str = "completion",
               limit: int | None = None) -> list[dict]:
    read = read_rows(str(path), split="train", field="texts")
    rows = []
    for number, row in read.rows:
        if not isinstance(row.get(prompt_field), str) or not isinstance(row.get(completion_field), str):
            raise DataError(f"{path}: line {number} lacks text fields {prompt_field!r} and {completion_field!r}; "
                            f"its fields are {sorted(row)}.")
        rows.append(row)
    if not rows:
        raise DataError(f"{path}: no texts.")
    return rows[:limit] if limit else rows


def project_texts(model, tokenizer, vectors: SteeringVectors, rows: list[dict], batch_size: int = 8,
                  prompt_field: str = "prompt", completion_field: str = "completion") -> torch.Tensor:
    """(N, n_layers): each text's mean projection on each layer's unit vector."""
    conversations = [chat(row[prompt_field], row.get("system_prompt")) for row in rows]
    activations = response_activations(model, tokenizer, conversations, [r[completion_field] for r in rows],
                                       batch_size, desc="projections")
    unit = vectors.vectors / vectors.vectors.norm(dim=-1, keepdim=True).clamp(min=1e-12)
    return torch.einsum("nlh,lh->nl", activations, unit)


def summarise_projections(rows: list[dict], projections: torch.Tensor) -> dict:
    """Mean projection per layer over all texts, and per step where the texts have one."""
    summary = {"texts": len(rows), "mean_by_layer": [round(float(x), 4) for x in projections.mean(0)]}
    by_step = defaultdict(list)
    for row, p in zip(rows, projections, strict=True):
        if "step" in row:
            by_step[row["step"]].append(p)
    if by_step:
        summary["mean_by_step_and_layer"] = {
            str(step): [round(float(x), 4) for x in torch.stack(ps).mean(0)] for step, ps in sorted(by_step.items())
        }
    return summary


def projection_by_step(model, tokenizer, vectors: torch.Tensor, samples, layer: int) -> dict[str, float]:
    """Mean projection of the completion tokens on the layer's unit vector, per training step.
    ``vectors``: (n_layers, hidden); ``samples``: ``rollout_loader.Sample``s (those without a step
    are left out)."""
    rows = [{"prompt": s.prompt, "completion": s.completion, "system_prompt": s.system_prompt} for s in samples]
    wrapped = SteeringVectors(vectors, "", {}, {})
    projections = project_texts(model, tokenizer, wrapped, rows)[:, layer]
    by_step = defaultdict(list)
    for sample, p in zip(samples, projections.tolist(), strict=True):
        if sample.step is not None:
            by_step[sample.step].append(p)
    return {str(step): round(sum(v) / len(v), 4) for step, v in sorted(by_step.items())}
