"""Padding-free forward passes: each prompt once, its samples packed behind it.

A step samples k completions per prompt, and the plain pass runs B rows of ``[prompt |
completion]``, each padded to the longest in its micro-batch: the prompt is computed k times
and the padding costs as much as real tokens. On the CPU benchmark (SmolLM2-135M, 4 prompts x
4 samples, prompts of about 55 tokens, completions of about 65) the prompts are almost half of
the tokens. Packed, a micro-batch holds one row per distinct prompt:

    [prompt | sample 1 | sample 2 | ... ]      positions 0..P-1, then P.. again for each sample

with a block mask: the prompt attends causally to itself, every sample to the prompt and
causally to itself, never to another sample. Each completion token then sees exactly the
context it sees in the plain pass, so the log-probs are the same up to float summation order
(``tests/test_packing.py``), on about half the tokens.

The mask is a 4D boolean one, which transformers passes through untouched to its ``sdpa``
attention; other attention implementations, and models that attend within a sliding window,
take the plain pass. ``packing_agrees`` checks a model once against the plain pass.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass
class PackedRows:
    """R packed rows of S columns for B original rows of at most T completion tokens."""

    inputs: dict[str, torch.Tensor]  # input_ids (R, S), position_ids (R, S), attention_mask (R, 1, S, S) bool
    # The column whose output predicts completion token t of row b: (B, T) packed row and column.
    source_row: torch.Tensor
    source_col: torch.Tensor


def supports_packing(model: torch.nn.Module) -> bool:
    """``sdpa`` attention without a sliding window: the 4D mask reaches attention as it is."""
    config = getattr(model, "config", None)
    if config is None:  # the critic: its backbone has the config
        config = getattr(getattr(model, "backbone", None), "config", None)
    if config is None or getattr(config, "_attn_implementation", None) != "sdpa":
        return False
    window = getattr(config, "sliding_window", None)
    return window is None or getattr(config, "use_sliding_window", True) is False


def prompt_groups(prompt_ids: torch.Tensor, prompt_mask: torch.Tensor) -> list[int]:
    """For each row, the index of its distinct prompt (by real tokens), in order of first appearance."""
    seen: dict[tuple, int] = {}
    return [seen.setdefault(tuple(ids[mask.bool()].tolist()), len(seen))
            for ids, mask in zip(prompt_ids, prompt_mask, strict=True)]


def micro_batch_order(prompt_ids, prompt_mask, completion_mask, by_prompt: bool) -> torch.Tensor:
    """Row order for slicing micro-batches. Plain: by completion length (the least padding).
    Packed: a prompt's rows together (they share one packed row), prompts by their samples' total length."""
    lengths = completion_mask.sum(1)
    if not by_prompt:
        return lengths.argsort()
    groups = torch.tensor(prompt_groups(prompt_ids, prompt_mask))
    totals = torch.zeros(int(groups.max()) + 1, dtype=lengths.dtype).index_add_(0, groups, lengths)
    # stable sorts, least significant key first: the row's length, its group, the group's total
    order = lengths.argsort(stable=True)
    order = order[groups[order].argsort(stable=True)]
    return order[totals[groups[order]].argsort(stable=True)]


def pack_by_prompt(prompt_ids, prompt_mask, completion_ids, completion_mask) -> PackedRows:
    """Pack left-padded prompts and right-padded completions (see the module docstring)."""
    groups = prompt_groups(prompt_ids, prompt_mask)
    B, T = completion_ids.shape
    lengths = completion_mask.sum(1).tolist()
    rows: list[dict] = []  # per distinct prompt: token ids, positions, segments
    source_row = torch.zeros(B, T, dtype=torch.long)
    source_col = torch.zeros(B, T, dtype=torch.long)
    for b, g in enumerate(groups):
        if g == len(rows):
            prompt = prompt_ids[b][prompt_mask[b].bool()].tolist()
            rows.append({"ids": prompt, "pos": list(range(len(prompt))), "seg": [0] * len(prompt)})
        row = rows[g]
        P, start, n = row["seg"].count(0), len(row["ids"]), int(lengths[b])
        row["ids"] += completion_ids[b, :n].tolist()
        row["pos"] += range(P, P + n)
        row["seg"] += [b + 1] * n
        # token 0 is predicted at the prompt's last column, token t at sample token t - 1's
        source_row[b] = g
        source_col[b, 0] = P - 1
        source_col[b, 1:n] = torch.arange(start, start + n - 1)
    S = max(len(r["ids"]) for r in rows)
    device = prompt_ids.device
    pad = lambda values, fill: torch.tensor([v + [fill] * (S - len(v)) for v in values], device=device)
    ids = pad([r["ids"] for r in rows], 0)
    positions = pad([r["pos"] for r in rows], 0)
    segments = pad([r["seg"] for r in rows], -1)  # -1: padding after the row's last sample
    query, key = segments[:, :, None], segments[:, None, :]
    causal = torch.ones(S, S, dtype=torch.bool, device=device).tril()
    mask = causal & ((key == 0) | (key == query)) & (key >= 0)
    mask |= torch.eye(S, dtype=torch.bool, device=device)  # every column sees itself: no empty softmax rows
    return PackedRows({"input_ids": ids, "position_ids": positions, "attention_mask": mask[:, None]},
                      source_row.to(device), source_col.to(device))
