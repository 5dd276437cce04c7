"""After every weight sync, check that the rollout engine now computes what the trainer's policy does.

A rollout engine that samples from stale or un-adapted weights (a layer the sync skipped, a LoRA
adapter never merged in, a sync that silently did nothing) leaves training running while the
policy it trains never generates. The check scores one fixed probe text with the engine and with
the trainer's policy, right after the sync, and compares each token's log-probability. Disagreeing
by more than the dtype allows stops the run (``SyncMismatchError``); the largest difference is
logged every step as ``sync/max_abs_logprob_diff``. For a LoRA policy, a failure also says
whether the engine matches the base weights instead, the sign of an adapter left out.

The probe is one forward pass of a few dozen tokens on each side, once per generation phase.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from rlsp.errors import RlspError

PROBE_TEXT = ("Question: what is 17 + 25? Let me think. 17 + 25 = 42. Wait, check it: 42 - 25 = 17, yes. "
              "So the answer is \\boxed{42}.")

class SyncMismatchError(RlspError):
    """The engine's log-probabilities disagree with the trainer's after a weight sync."""

    causes = ("Usual causes: a weight name the engine does not know (a model class vLLM maps differently), a "
              "LoRA adapter whose weights were not merged, an engine left out of the sync.")


def tolerance(dtype: torch.dtype) -> float:
    """The largest per-token log-probability difference two correct implementations of one forward
    pass may show in ``dtype``: 64 units in the last place of a number near 1 (so 0.5 nats in
    bf16, 0.06 in fp16) and never under 1e-3 nats (fp32: different kernels and summation orders
    across some 30 layers stay well inside it; an unsynced layer or a missing adapter moves
    log-probabilities by tenths of a nat or more)."""
    return max(1e-3, 64 * torch.finfo(dtype).eps)


def probe_ids(tokenizer) -> list[int]:
    return tokenizer(PROBE_TEXT, add_special_tokens=False)["input_ids"]


@torch.no_grad()
def policy_logprobs(policy: torch.nn.Module, ids: list[int]) -> torch.Tensor:
    """(n - 1,) log p of each probe token after the first under ``policy`` (temperature 1)."""
    device = next(policy.parameters()).device
    tokens = torch.tensor([ids], device=device)
    logits = policy(input_ids=tokens, attention_mask=torch.ones_like(tokens)).logits[0, :-1].float()
    return torch.log_softmax(logits, dim=-1).gather(1, tokens[0, 1:, None]).squeeze(1).cpu()


def compare(engine: torch.Tensor, policy: torch.nn.Module, ids: list[int], dtype: torch.dtype,
            largest: Callable[[float], float] = float) -> float:
    """The largest difference between the engine's probe log-probs and ``policy``'s, over every
    process (``largest`` takes the maximum across them; every process calls this together). Past
    the dtype's tolerance every process raises ``SyncMismatchError``, naming, for LoRA, a match
    with the base weights."""
    diff = largest(float((engine - policy_logprobs(policy, ids)).abs().max()))
    limit = tolerance(dtype)
    if diff <= limit:
        return diff
    message = (f"after the weight sync the engine's log-probabilities of a fixed probe text differ from the "
               f"trainer's by up to {diff:.3g} nats per token (at most {limit:.3g} expected in "
               f"{str(dtype).removeprefix('torch.')}): the engine is not sampling from the policy being trained")
    if hasattr(policy, "disable_adapter"):  # a PEFT model: does the engine hold the base weights instead?
        with policy.disable_adapter():
            base = largest(float((engine - policy_logprobs(policy, ids)).abs().max()))
        message += (f". It matches the base weights without the LoRA adapter (difference {base:.3g}): the "
                    f"adapter was not applied" if base <= limit else
                    f". It does not match the base weights without the adapter either (difference {base:.3g})")
    raise SyncMismatchError(message)


def largest_across_processes(device: torch.device) -> Callable[[float], float]:
    """A float's maximum over every process of the launch (itself where there is one process)."""
    import torch.distributed as dist

    if not (dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1):
        return float

    def largest(value: float) -> float:
        tensor = torch.tensor([value], dtype=torch.float64, device=device)
        dist.all_reduce(tensor, op=dist.ReduceOp.MAX)
        return float(tensor.item())

    return largest
