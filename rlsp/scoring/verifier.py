"""The outcome verifier used for accuracy in ``rlsp eval`` and the trainer's held-out checks.

It is a reward function like any other (so a user's own verifier plugs in the same way), called
through the safe caller in ``rlsp.scoring.reward_function``; here its per-sample results are turned into
``Verdict``s (score plus what it parsed) for the per-sample log.
"""

from __future__ import annotations

from pathlib import Path

from rlsp_verifiers.answer_extraction import last_boxed
from rlsp_verifiers.verdict import Verdict

from rlsp.config.schema import VerifierConfig
from rlsp.config.train_schema import RewardSpec
from rlsp.data import Example
from rlsp.errors import RlspError
from rlsp.generation import Completion
from rlsp.scoring.channels import reward_columns
from rlsp.scoring.reward_function import RewardFunction


class Verifier:
    def __init__(self, cfg: VerifierConfig, base_dir: Path | None):
        try:
            spec = RewardSpec(function=cfg.function, channel="verifier", kwargs=dict(cfg.kwargs), name="verifier",
                              timeout_s=cfg.timeout_s)
            self.function = RewardFunction(spec, base_dir=base_dir)
        except RlspError as e:
            raise type(e)(f"verifier.function: {e}") from None

    def verify(self, examples: list[Example], completions: list[Completion]) -> list[Verdict]:
        columns = reward_columns(examples, [c.length for c in completions], [c.finish_reason for c in completions])
        result = self.function(
            [e.prompt for e in examples], [c.text for c in completions], [e.reference for e in examples], columns
        )
        parsed = result.parsed or [None] * len(examples)
        # A sample the verifier marks "not applicable" cannot be counted correct.
        return [
            Verdict(float(score) if applicable else 0.0, p)
            for score, applicable, p in zip(result.scores.tolist(), result.applicable.tolist(), parsed, strict=True)
        ]


def build_verifier(cfg: VerifierConfig, base_dir: Path | None) -> Verifier:
    """Resolve the verifier now, so a wrong name fails before any model is loaded."""
    return Verifier(cfg, base_dir)


def is_boxed_answer(text: str) -> bool:
    return last_boxed(text) is not None
