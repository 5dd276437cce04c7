"""Each advantage estimator under a recipe's defaults computes its paper's formula.

The whole of phase 4 of a training step runs (``compute_advantages`` with the recipe as loaded:
reward mixing, normalisation, KL penalty, the estimator, whitening) and is compared with the
paper's formula written out here in plain Python floats, one sample and one token at a time:

- GRPO (DeepSeekMath, arXiv 2402.03300): ``(r - mean_group) / std_group``, no batch whitening;
- Dr. GRPO (arXiv 2503.20783): ``r - mean_group``;
- RLOO (arXiv 2402.14740): ``R_i - mean_{j != i} R_j`` with ``R = r - beta * sum_t log(pi/ref)``;
- REINFORCE++ (arXiv 2501.03262): normalised reward on the last token minus ``beta * k1`` on every
  token, returns to go, whitened over every token of the batch;
- GAE with a critic (RLSP, arXiv 2502.06773, as PPO): the same token rewards, ``delta_t = r_t +
  V_{t+1} - V_t``, ``A_t = delta_t + gamma * lambda * A_{t+1}``, whitened over the batch;
- RLSP's decoupled channels: each channel normalised on its own, the exploration score counted
  only where the raw verifier score passes (the lowest exploration score elsewhere), the KL on the
  verifier channel scaled by 1/alpha, advantages mixed ``alpha * A_ver + (1 - alpha) * A_exp``.

rlsp computes in fp32, the references in float64, over sums of at most 12 terms: they agree to
1e-5 relative (12 x 2^-24 is 7e-7; the margin covers the square roots of the normalisations).
"""

from __future__ import annotations

import math
import re
from statistics import mean

import pytest
import torch

from rlsp.config import load_recipe
from rlsp.training.advantage_step import ChannelNormalizers, compute_advantages

MASK = [[1, 1, 1, 1], [1, 1, 0, 0], [1, 1, 1, 0], [1, 0, 0, 0], [1, 1, 1, 1], [1, 1, 0, 0]]
GROUPS = [0, 0, 1, 1, 2, 2]  # three prompts, two answers each
VERIFIER = [1.0, 0.0, 0.0, 0.0, 1.0, 1.0]  # a group with signal, one all wrong, one all right
EXPLORATION = [0.3, 0.9, 0.1, 0.4, 0.6, 0.2]
KL = [[0.05, -0.02, 0.10, 0.03], [0.20, 0.01, 0.0, 0.0], [-0.04, 0.02, 0.06, 0.0],
      [0.08, 0.0, 0.0, 0.0], [0.01, 0.01, 0.02, -0.03], [0.0, 0.12, 0.0, 0.0]]
VALUES = [[0.1, 0.2, 0.0, -0.1], [0.3, 0.1, 0.0, 0.0], [0.0, 0.0, 0.2, 0.0],
          [0.4, 0.0, 0.0, 0.0], [-0.2, 0.1, 0.1, 0.3], [0.2, 0.2, 0.0, 0.0]]
BETA, ALPHA = 0.05, 0.8


def recipe_train(tmp_path, *overrides: str):
    path = tmp_path / "r.yaml"
    path.write_text("train: {samples_per_prompt: 2, prompts_per_step: 3, minibatch_size: 6, micro_batch_size: 6}\n")
    return load_recipe(path, list(overrides)).train


def run_phase4(cfg, verifier=VERIFIER) -> list[list[float]]:
    in_reward = cfg.kl.placement == "reward"
    result = compute_advantages(
        cfg, alpha=ALPHA, verifier=torch.tensor(verifier), exploration=torch.tensor(EXPLORATION),
        kl=torch.tensor(KL) if in_reward else None, kl_coef=BETA,
        values=torch.tensor(VALUES)[..., None].expand(-1, -1, 2 if cfg.reward.mode == "decoupled" else 1)
        if cfg.advantage_estimator == "gae" else None,
        mask=torch.tensor(MASK), group_ids=torch.tensor(GROUPS), normalizers=ChannelNormalizers.create(cfg.reward.clip))
    return result.advantages.tolist()


# -- the references, by hand ----------------------------------------------------------------------------
def lengths() -> list[int]:
    return [sum(row) for row in MASK]


def normalised(xs: list[float], clip: float = 10.0) -> list[float]:
    """The first batch through running statistics: its own mean and population variance."""
    m = mean(xs)
    var = sum((x - m) ** 2 for x in xs) / len(xs)
    return [max(-clip, min(clip, (x - m) / math.sqrt(var + 1e-8))) for x in xs]


def kl_sum(i: int) -> float:
    return sum(KL[i][:lengths()[i]])


def on_tokens(per_sequence: list[float]) -> list[list[float]]:
    return [[per_sequence[i] if MASK[i][t] else 0.0 for t in range(4)] for i in range(len(MASK))]


def group_members(i: int) -> list[int]:
    return [j for j in range(len(GROUPS)) if GROUPS[j] == GROUPS[i]]


def grpo(scores: list[float], by_std: bool) -> list[float]:
    out = []
    for i, s in enumerate(scores):
        group = [scores[j] for j in group_members(i)]
        m = mean(group)
        std = math.sqrt(sum((x - m) ** 2 for x in group) / (len(group) - 1))
        out.append((s - m) / (std + 1e-6) if by_std else s - m)
    return out


def rloo(scores: list[float]) -> list[float]:
    return [s - mean(scores[j] for j in group_members(i) if j != i) for i, s in enumerate(scores)]


def token_rewards(sequence_rewards: list[float], kl_coef: float) -> list[list[float]]:
    return [[(sequence_rewards[i] if t == lengths()[i] - 1 else 0.0) - kl_coef * KL[i][t] if MASK[i][t] else 0.0
             for t in range(4)] for i in range(len(MASK))]


def whiten(rows: list[list[float]]) -> list[list[float]]:
    real = [x for i, row in enumerate(rows) for t, x in enumerate(row) if MASK[i][t]]
    m = mean(real)
    var = sum((x - m) ** 2 for x in real) / (len(real) - 1)
    return [[(x - m) / math.sqrt(var + 1e-8) if MASK[i][t] else 0.0 for t, x in enumerate(row)]
            for i, row in enumerate(rows)]


def returns_to_go(rewards: list[list[float]]) -> list[list[float]]:
    return [[sum(row[t:]) if MASK[i][t] else 0.0 for t in range(4)] for i, row in enumerate(rewards)]


def gae(rewards: list[list[float]], lam: float = 0.95) -> list[list[float]]:
    out = []
    for i, row in enumerate(rewards):
        n, adv, running = lengths()[i], [0.0] * 4, 0.0
        for t in reversed(range(n)):
            next_value = VALUES[i][t + 1] if t + 1 < n else 0.0
            running = row[t] + next_value - VALUES[i][t] + lam * running
            adv[t] = running
        out.append(adv)
    return out


def mixed() -> list[float]:
    return [ALPHA * v + (1 - ALPHA) * e for v, e in zip(VERIFIER, EXPLORATION, strict=True)]


REFERENCES = {
    "grpo": lambda: on_tokens(grpo(mixed(), by_std=True)),
    "dr_grpo": lambda: on_tokens(grpo(mixed(), by_std=False)),
    "rloo": lambda: on_tokens(rloo([r - BETA * kl_sum(i) for i, r in enumerate(mixed())])),
    "reinforce++": lambda: whiten(returns_to_go(token_rewards(normalised(mixed()), BETA))),
    "gae": lambda: whiten(gae(token_rewards(normalised(mixed()), BETA))),
}


@pytest.mark.parametrize("estimator", list(REFERENCES))
def test_each_estimator_under_its_defaults_is_its_papers_formula(tmp_path, estimator):
    cfg = recipe_train(tmp_path, f"train.advantage_estimator={estimator}")
    got, want = run_phase4(cfg), REFERENCES[estimator]()
    for row_got, row_want in zip(got, want, strict=True):
        assert row_got == pytest.approx(row_want, rel=1e-5, abs=1e-6)


def test_groups_without_signal_get_no_advantage_under_grpo(tmp_path):
    """The reviewer's batch: verifier scores [1, 0], [0, 0], [1, 1], verifier channel alone."""
    cfg = recipe_train(tmp_path, "train.advantage_estimator=grpo", "train.reward.alpha.start=1")
    adv = torch.tensor(compute_advantages(
        cfg, alpha=1.0, verifier=torch.tensor(VERIFIER), exploration=torch.zeros(6), kl=None, kl_coef=0.0,
        values=None, mask=torch.tensor(MASK), group_ids=torch.tensor(GROUPS),
        normalizers=ChannelNormalizers.create(10.0)).advantages.tolist())
    assert adv[2:].abs().max() == 0.0  # all wrong, all right: nothing to learn from
    assert adv[0, 0] == pytest.approx(0.5 / (math.sqrt(0.5) + 1e-6), rel=1e-6)  # (1 - 0.5) / std
    assert adv[1, 0] == -adv[0, 0]


def test_rlsp_decoupled_channels_gate_and_mix(tmp_path):
    cfg = recipe_train(tmp_path, "train.advantage_estimator=rloo", "train.reward.mode=decoupled",
                       "train.reward.gate_exploration=true")
    lowest = min(EXPLORATION)
    gated = [e if v >= 1.0 else lowest for e, v in zip(EXPLORATION, VERIFIER, strict=True)]
    verifier = [v - BETA / ALPHA * kl_sum(i) for i, v in enumerate(normalised(VERIFIER))]
    exploration = normalised(gated)
    want = on_tokens([ALPHA * a + (1 - ALPHA) * b for a, b in zip(rloo(verifier), rloo(exploration), strict=True)])
    for row_got, row_want in zip(run_phase4(cfg), want, strict=True):
        assert row_got == pytest.approx(row_want, rel=1e-5, abs=1e-6)


@pytest.mark.parametrize(("estimator", "why"), [
    ("grpo", "relative to the other answers of a prompt"), ("dr_grpo", "relative to the other answers of a prompt"),
    ("rloo", "relative to the other answers of a prompt"), ("reinforce++", "already whitens its returns"),
])
def test_batch_whitening_over_an_estimator_that_forbids_it_is_refused(tmp_path, estimator, why):
    from rlsp.errors import ConfigError

    refused = f"train.whiten_advantages: true does not go with '{re.escape(estimator)}': .*{why}"
    with pytest.raises(ConfigError, match=refused):
        recipe_train(tmp_path, f"train.advantage_estimator={estimator}", "train.whiten_advantages=true")
    assert recipe_train(tmp_path, "train.advantage_estimator=gae", "train.whiten_advantages=false").whiten_advantages \
        is False  # PPO's whitening may be turned off
