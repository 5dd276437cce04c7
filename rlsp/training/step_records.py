"""Phase 6 of a step: the scalars for TensorBoard and the rows for ``rollouts.jsonl``.

Each reward channel and each reward function is logged on its own (mean and std over the samples
where it applied), so a researcher can see which signal moved.
"""

from __future__ import annotations

import math

import torch

from rlsp.algorithms import explained_variance
from rlsp.analysis.behaviours import MarkerDetector
from rlsp.analysis.markers import check_markers
from rlsp.analysis.rollout_schema import SCHEMA_VERSION
from rlsp.training.rollout import Generated, Scores


def _mean_std(values: list[float]) -> tuple[float, float]:
    if not values:
        return math.nan, math.nan
    t = torch.tensor(values, dtype=torch.float64)
    return t.mean().item(), (t.std(unbiased=False).item() if len(values) > 1 else 0.0)


def reward_scalars(scores: Scores, reward_functions, pass_threshold: float) -> dict[str, float]:
    out: dict[str, float] = {}
    for channel in ("verifier", "exploration"):
        mean, std = _mean_std(getattr(scores, channel).tolist())
        out[f"reward/{channel}/mean"], out[f"reward/{channel}/std"] = mean, std
    for fn in reward_functions:
        result = scores.per_function[fn.name]
        applied = [s for s, ok in zip(result.scores.tolist(), result.applicable.tolist()) if ok]
        mean, std = _mean_std(applied)
        out[f"reward_fn/{fn.name}/mean"], out[f"reward_fn/{fn.name}/std"] = mean, std
        out[f"reward_fn/{fn.name}/errors"] = float(result.n_errors)
    out["verifier/accuracy"] = (scores.verifier >= pass_threshold).float().mean().item()
    return out


def response_scalars(generated: Generated) -> dict[str, float]:
    lengths = generated.lengths
    return {
        "response/length_mean": sum(lengths) / len(lengths),
        "response/length_max": float(max(lengths)),
        "response/truncation_rate": sum(r == "length" for r in generated.finish_reasons) / len(lengths),
    }


def behaviour_detector(cfg) -> MarkerDetector | None:
    """The marker detector of ``rlsp inspect`` with the recipe's markers, or None when not logging."""
    if not cfg.log_behaviours:
        return None
    return MarkerDetector(check_markers(cfg.behaviour_markers, "train.behaviour_markers")
                          if cfg.behaviour_markers else None)


def behaviour_scalars(generated: Generated, detector: MarkerDetector) -> dict[str, float]:
    """Share of samples showing each behaviour and its sentences per 1k tokens (``rlsp inspect``'s detector)."""
    profiles = detector.detect_all(generated.texts, list(generated.lengths))
    out = {}
    for b in detector.behaviours:
        out[f"behaviour/{b}/share"] = sum(p.has(b) for p in profiles) / len(profiles)
        out[f"behaviour/{b}/per_1k"] = sum(p.rate_per_1k(b) for p in profiles) / len(profiles)
    return out


def rollout_records(step: int, generated: Generated, scores: Scores, reward_functions,
                    trained_rewards: torch.Tensor, pass_threshold: float, hooks: list[str]) -> list[dict]:
    """One JSON-ready row per sample: the rollout schema (``rlsp.analysis.rollout_schema``; README)."""
    records = []
    for i, example in enumerate(generated.examples):
        functions, parsed = {}, {}
        for fn in reward_functions:
            result = scores.per_function[fn.name]
            functions[fn.name] = result.scores[i].item() if result.applicable[i] else None
            if result.parsed is not None and result.parsed[i] is not None:
                parsed[fn.name] = result.parsed[i]
        records.append(
            {
                "schema_version": SCHEMA_VERSION,
                "step": step,
                "prompt": example.prompt,
                "completion": generated.texts[i],
                "reference": example.reference,
                "rewards": {"verifier": scores.verifier[i].item(), "exploration": scores.exploration[i].item()},
                "reward_functions": functions,
                "parsed": parsed,
                "trained_reward": trained_rewards[i].item(),
                "correct": scores.verifier[i].item() >= pass_threshold,
                "length": generated.lengths[i],
                "finish_reason": generated.finish_reasons[i],
                "group": int(generated.group_ids[i]),
                "system_prompt": generated.system_prompts[i],
                "hooks": hooks,
            }
        )
    return records


def critic_fit(values: torch.Tensor | None, returns: torch.Tensor | None, mask: torch.Tensor) -> dict[str, float]:
    """Explained variance of the critic's pre-update values against this step's returns, per head
    (``value/explained_variance`` for one head; ``.../verifier`` and ``.../exploration`` when decoupled)."""
    if values is None or returns is None:
        return {}
    heads = [""] if values.shape[-1] == 1 else ["/verifier", "/exploration"]
    return {f"value/explained_variance{name}": explained_variance(values[..., h], returns[..., h], mask).item()
            for h, name in enumerate(heads)}


def sampling_mismatch(sampling_logp: torch.Tensor, trainer_logp: torch.Tensor, mask: torch.Tensor) -> dict[str, float]:
    """How far the generator's log-probs of the sampled tokens are from the trainer's for the same
    tokens (before the update): the k3 KL(sampler || trainer) per token and the largest absolute
    difference. Non-zero from kernels, batching and precision; large when another engine generates."""
    m = mask.to(torch.float64)
    diff = (trainer_logp.double() - sampling_logp.double()) * m
    k3 = (torch.exp(diff) - 1.0 - diff) * m
    return {"mismatch/kl": (k3.sum() / m.sum().clamp(min=1.0)).item(),
            "mismatch/max_abs_logprob_diff": diff.abs().max().item()}
