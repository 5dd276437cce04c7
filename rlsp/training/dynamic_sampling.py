"""Dynamic sampling (DAPO, arXiv 2503.14476): train on groups whose verifier scores differ.

A group whose samples all scored the same (all wrong, early on) has zero verifier advantage
under a critic-free estimator: the step spends it on the exploration channel alone. With
``train.dynamic_sampling`` a step draws ``ceil(prompts_per_step * dynamic_sampling_oversample)``
prompts in one generation call, keeps the first ``prompts_per_step`` groups with a verifier
signal, and fills up with uninformative groups (in drawing order) only when too few had one,
so the batch keeps its size. Every step logs the share of informative groups either way.
"""

from __future__ import annotations

import math
from dataclasses import replace

import torch

from rlsp.training.rollout import Generated, Scores


def informative_groups(verifier: torch.Tensor, group_ids: torch.Tensor) -> list[bool]:
    """Per group (in id order): whether its samples' verifier scores are not all equal."""
    return [bool(verifier[group_ids == g].unique().numel() > 1) for g in range(int(group_ids.max()) + 1)]


def keep_groups(generated: Generated, scores: Scores, groups: int) -> tuple[Generated, Scores, dict[str, float]]:
    """The batch restricted to ``groups`` groups: informative ones first (in drawing order), then
    uninformative ones if needed; group ids renumbered 0..groups-1."""
    informative = informative_groups(scores.verifier, generated.group_ids)
    ranked = [g for g, yes in enumerate(informative) if yes] + [g for g, yes in enumerate(informative) if not yes]
    chosen = sorted(ranked[:groups])
    rows = torch.cat([(generated.group_ids == g).nonzero().flatten() for g in chosen])
    renumber = {g: i for i, g in enumerate(chosen)}
    stats = {
        "dynamic/informative_groups_drawn": float(sum(informative)),
        "dynamic/groups_drawn": float(len(informative)),
        "dynamic/uninformative_groups_kept": float(sum(not informative[g] for g in chosen)),
    }
    return select(generated, rows, renumber), select_scores(scores, rows), stats


def select(generated: Generated, rows: torch.Tensor, renumber: dict[int, int]) -> Generated:
    picked = rows.tolist()
    return replace(
        generated,
        examples=[generated.examples[i] for i in picked],
        group_ids=torch.tensor([renumber[int(generated.group_ids[i])] for i in picked]),
        seqs=generated.seqs.index(rows),
        sampling_logprobs=generated.sampling_logprobs[rows],
        texts=[generated.texts[i] for i in picked],
        finish_reasons=[generated.finish_reasons[i] for i in picked],
        system_prompts=[generated.system_prompts[i] for i in picked],
    )


def select_scores(scores: Scores, rows: torch.Tensor) -> Scores:
    picked = rows.tolist()

    def pick(values):
        return None if values is None else [values[i] for i in picked]

    # n_errors keeps its count over every drawn sample: the errors happened, whichever rows are kept
    per_function = {
        name: replace(r, scores=r.scores[rows], applicable=r.applicable[rows], parsed=pick(r.parsed),
                      reasons=pick(r.reasons))
        for name, r in scores.per_function.items()
    }
    return Scores(per_function, scores.verifier[rows], scores.exploration[rows])


def prompts_to_draw(cfg) -> int:
    """Prompts a step generates for: ``prompts_per_step``, times the oversampling when dynamic."""
    if not cfg.dynamic_sampling:
        return cfg.prompts_per_step
    return math.ceil(cfg.prompts_per_step * cfg.dynamic_sampling_oversample)


def shape_batch(cfg, generated: Generated, scores: Scores) -> tuple[Generated, Scores, dict[str, float]]:
    """The step's training batch (dynamic sampling's choice of groups, or all) and its counts, to be
    added over the processes: dynamic sampling's, and the trained groups with a verifier signal out
    of all trained groups (``informative_group_share``, logged whether or not it is on)."""
    stats = {}
    if cfg.dynamic_sampling:
        generated, scores, stats = keep_groups(generated, scores, cfg.prompts_per_step)
    if cfg.samples_per_prompt > 1:
        flags = informative_groups(scores.verifier, generated.group_ids)
        stats["verifier/informative_groups"], stats["verifier/trained_groups"] = float(sum(flags)), float(len(flags))
    return generated, scores, stats


def informative_group_share(counts: dict[str, float]) -> dict[str, float]:
    """``counts`` (summed over the processes) with the two group counts turned into their share."""
    counts = dict(counts)
    if "verifier/trained_groups" in counts:
        counts["verifier/informative_group_share"] = (counts.pop("verifier/informative_groups")
                                                      / counts.pop("verifier/trained_groups"))
    return counts
