"""Phase 6 of a step: the scalars for TensorBoard and the rows for ``rollouts.jsonl``.

Each reward channel and each reward function is logged on its own (mean and std over the samples
where it applied), so a researcher can see which signal moved.
"""

from __future__ import annotations

import math

import torch

from rlsp.analysis.behaviours import MarkerDetector
from rlsp.analysis.markers import check_markers
from rlsp.analysis.rollout_schema import SCHEMA_VERSION
from rlsp.training.rollout import Generated, Scores


def _mean_std(values: list[float]) -> tuple[float, float]:
    if not values:
        return math.nan, math.nan
    t = torch.tensor(values, dtype=torch.float64)
    return t.mean().item(), (t.std(unbiased=False).item() if len(values) > 1 else 0.0)


def sample_scalars(rows: list[dict], function_names: list[str]) -> dict[str, float]:
    """Per-sample means over a step's ``rollouts.jsonl`` rows of every process: each channel and
    each reward function (mean and std over the samples where it applied), accuracy, lengths.
    Computed from the rows, the logged figures are those of the whole batch however many
    processes sampled it, and a reader can recompute them from the log."""
    out: dict[str, float] = {}
    for channel in ("verifier", "exploration"):
        out[f"reward/{channel}/mean"], out[f"reward/{channel}/std"] = _mean_std([r["rewards"][channel] for r in rows])
    for name in function_names:
        applied = [r["reward_functions"][name] for r in rows if r["reward_functions"][name] is not None]
        out[f"reward_fn/{name}/mean"], out[f"reward_fn/{name}/std"] = _mean_std(applied)
    lengths = [r["length"] for r in rows]
    out["verifier/accuracy"] = sum(r["correct"] for r in rows) / len(rows)
    out["response/length_mean"] = sum(lengths) / len(lengths)
    out["response/length_max"] = float(max(lengths))
    out["response/truncation_rate"] = sum(r["finish_reason"] == "length" for r in rows) / len(rows)
    return out


def behaviour_detector(cfg) -> MarkerDetector | None:
    """The marker detector of ``rlsp inspect`` with the recipe's markers, or None when not logging."""
    if not cfg.log_behaviours:
        return None
    return MarkerDetector(check_markers(cfg.behaviour_markers, "train.behaviour_markers")
                          if cfg.behaviour_markers else None)


def behaviour_scalars(rows: list[dict], detector: MarkerDetector) -> dict[str, float]:
    """Share of samples showing each behaviour and its sentences per 1k tokens (``rlsp inspect``'s
    detector), over a step's rollout rows."""
    profiles = detector.detect_all([r["completion"] for r in rows], [r["length"] for r in rows])
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


def critic_fit(values: torch.Tensor | None, returns: torch.Tensor | None, mask: torch.Tensor,
               dist=None) -> dict[str, float]:
    """Explained variance of the critic's pre-update values against this step's returns, per head
    (``value/explained_variance`` for one head; ``.../verifier`` and ``.../exploration`` when
    decoupled), ``1 - Var(returns - values) / Var(returns)`` over the real tokens of every process
    of ``dist`` (NaN when the returns are constant)."""
    if values is None or returns is None:
        return {}
    heads = [""] if values.shape[-1] == 1 else ["/verifier", "/exploration"]
    m = mask.to(torch.float64)
    sums = {"n": m.sum().item()}
    for h in range(len(heads)):
        r, d = returns[..., h].double() * m, (returns[..., h].double() - values[..., h].double()) * m
        sums.update({f"r{h}": r.sum().item(), f"rr{h}": (r * r).sum().item(), f"d{h}": d.sum().item(),
                     f"dd{h}": (d * d).sum().item()})
    sums = dist.sum_across(sums) if dist is not None else sums
    out = {}
    for h, name in enumerate(heads):
        n = sums["n"]
        var_r = sums[f"rr{h}"] / n - (sums[f"r{h}"] / n) ** 2
        var_d = sums[f"dd{h}"] / n - (sums[f"d{h}"] / n) ** 2
        out[f"value/explained_variance{name}"] = 1.0 - var_d / var_r if var_r > 0 else math.nan
    return out


def sampling_mismatch(sampling_logp: torch.Tensor, trainer_logp: torch.Tensor, mask: torch.Tensor,
                      dist=None) -> dict[str, float]:
    """How far the generator's log-probs of the sampled tokens are from the trainer's for the same
    tokens (before the update): the k3 KL(sampler || trainer) per token and the largest absolute
    difference, over the tokens of every process of ``dist``. Non-zero from kernels, batching and
    precision; large when another engine generates."""
    m = mask.to(torch.float64)
    diff = (trainer_logp.double() - sampling_logp.double()) * m
    k3 = (torch.exp(diff) - 1.0 - diff) * m
    sums = {"k3": k3.sum().item(), "tokens": m.sum().item()}
    largest = {"diff": diff.abs().max().item()}
    if dist is not None:
        sums, largest = dist.sum_across(sums), dist.max_across(largest)
    return {"mismatch/kl": sums["k3"] / max(sums["tokens"], 1.0), "mismatch/max_abs_logprob_diff": largest["diff"]}


def sync_check(backend, dist) -> dict[str, float]:
    """The rollout engine's probe difference after this step's weight sync, the largest over the
    processes (vLLM's sync check, rlsp/generation/sync_check.py; nothing for rlsp's own loop)."""
    diff = getattr(backend, "last_sync_diff", None)
    return {} if diff is None else {"sync/max_abs_logprob_diff": dist.max_across({"d": diff})["d"]}
