"""RLSP reward combination against hand-computed values."""

import pytest
import torch

from rlsp.algorithms.advantages import compute_gae
from rlsp.algorithms.combine import (
    channel_sequence_rewards,
    combine_advantages,
    decoupled_token_rewards,
    gate_exploration,
    mix_channels,
    terminal_token_rewards,
)

VER = torch.tensor([1.0, 0.0])
EXP = torch.tensor([-0.5, 0.2])
MASK = torch.tensor([[1.0, 1.0, 1.0], [1.0, 1.0, 0.0]])


def kl(pad: float) -> torch.Tensor:
    return torch.tensor([[0.1, 0.2, 0.3], [0.4, 0.5, pad]])


def test_paper_mode_by_hand():
    rewards = terminal_token_rewards(mix_channels(VER, EXP, 0.8), kl(pad=9.0), 0.05, MASK)
    # R = 0.8 * ver + 0.2 * exp = [0.8 - 0.1, 0 + 0.04] = [0.7, 0.04] on the last real token
    # minus 0.05 * KL: row 0 [-0.005, -0.01, 0.7 - 0.015]; row 1 [-0.02, 0.04 - 0.025, 0 (pad)]
    expected = torch.tensor([[-0.005, -0.01, 0.685], [-0.02, 0.015, 0.0]])
    torch.testing.assert_close(rewards, expected)
    other_padding = terminal_token_rewards(mix_channels(VER, EXP, 0.8), kl(pad=-4.0), 0.05, MASK)
    torch.testing.assert_close(other_padding, expected)
    no_kl = terminal_token_rewards(mix_channels(VER, EXP, 0.8), None, 0.05, MASK)
    torch.testing.assert_close(no_kl, torch.tensor([[0.0, 0.0, 0.7], [0.0, 0.04, 0.0]]))


def test_decoupled_mode_kl_goes_to_verifier_only_scaled_by_one_over_alpha():
    # alpha 0.5: the verifier channel carries 0.05 / 0.5 = 0.1 x KL, which weighs 0.05 after the mix
    rewards_ver, rewards_exp = decoupled_token_rewards(VER, EXP, 0.5, kl(pad=9.0), 0.05, MASK)
    torch.testing.assert_close(
        rewards_ver, torch.tensor([[-0.01, -0.02, 0.97], [-0.04, -0.05, 0.0]])
    )
    torch.testing.assert_close(rewards_exp, torch.tensor([[0.0, 0.0, -0.5], [0.0, 0.2, 0.0]]))
    mixed_kl = combine_advantages(rewards_ver, rewards_exp, 0.5) - combine_advantages(
        *decoupled_token_rewards(VER, EXP, 0.5, None, 0.05, MASK), 0.5
    )
    torch.testing.assert_close(mixed_kl, -0.05 * kl(pad=0.0))  # as paper mode's penalty
    # alpha 0 (exploration only): no channel carries the KL
    rewards_ver, _ = decoupled_token_rewards(VER, EXP, 0.0, kl(pad=9.0), 0.05, MASK)
    torch.testing.assert_close(rewards_ver, torch.tensor([[0.0, 0.0, 1.0], [0.0, 0.0, 0.0]]))


def test_combine_advantages_by_hand_and_bad_alpha():
    # 0.8 * [1, 2] + 0.2 * [3, 0] = [1.4, 1.6]
    out = combine_advantages(torch.tensor([1.0, 2.0]), torch.tensor([3.0, 0.0]), 0.8)
    torch.testing.assert_close(out, torch.tensor([1.4, 1.6]))
    with pytest.raises(ValueError, match="alpha"):
        combine_advantages(torch.zeros(2), torch.zeros(2), 1.2)


def test_decoupled_equals_paper_mode_without_kl():
    # GAE is linear in (rewards, values): with V = alpha V_ver + (1 - alpha) V_exp and no KL,
    # mixing the two channels' advantages gives the paper mode's advantages.
    alpha = 0.7
    v_ver = torch.tensor([[0.3, -0.2, 0.9], [0.1, 0.4, 0.0]])
    v_exp = torch.tensor([[-1.0, 0.5, 0.2], [0.6, -0.3, 0.0]])
    rewards_ver, rewards_exp = decoupled_token_rewards(VER, EXP, alpha, None, 0.0, MASK)
    adv_ver, _ = compute_gae(rewards_ver, v_ver, MASK, gamma=1.0, lam=0.95)
    adv_exp, _ = compute_gae(rewards_exp, v_exp, MASK, gamma=1.0, lam=0.95)
    paper = terminal_token_rewards(mix_channels(VER, EXP, alpha), None, 0.0, MASK)
    adv_paper, _ = compute_gae(paper, alpha * v_ver + (1 - alpha) * v_exp, MASK, 1.0, 0.95)
    torch.testing.assert_close(combine_advantages(adv_ver, adv_exp, alpha), adv_paper)


def test_gate_exploration():
    exp = torch.tensor([0.5, 0.7, 0.9])
    ver = torch.tensor([1.0, 0.0, 0.5])
    # verifier 0.0 < 0.5 fails; 0.5 >= 0.5 passes. The failed sample gets the batch's lowest
    # exploration score (0.5), never more than a passing sample could get.
    torch.testing.assert_close(gate_exploration(exp, ver, 0.5), torch.tensor([0.5, 0.5, 0.9]))
    filled = gate_exploration(exp, ver, 0.5, fill_value=-1000.0)
    torch.testing.assert_close(filled, torch.tensor([0.5, -1000.0, 0.9]))
    # the paper's -C/|o| is negative: 0 would have been the best score; the fill is the worst
    negative = gate_exploration(torch.tensor([-0.2, -0.1, -0.4]), ver, 0.5)
    torch.testing.assert_close(negative, torch.tensor([-0.2, -0.4, -0.4]))


def halve(name: str, scores: torch.Tensor) -> torch.Tensor:
    """A stand-in normaliser whose effect is easy to follow by hand: it records what it saw."""
    halve.seen.append((name, [round(x, 6) for x in scores.tolist()]))
    return scores / 2


def test_channel_sequence_rewards_gate_then_normalise_then_mix():
    ver = torch.tensor([1.0, 0.0, 1.0])
    exp = torch.tensor([0.4, 0.8, 0.2])
    halve.seen = []
    v, e, trained = channel_sequence_rewards(ver, exp, 0.75, "decoupled", gate_threshold=1.0, normalize=halve)
    # gated on the raw verifier score: sample 1 failed and gets the lowest exploration score 0.2;
    # then each channel is normalised on its own: halved here
    assert halve.seen == [("verifier", [1.0, 0.0, 1.0]), ("exploration", [0.4, 0.2, 0.2])]
    torch.testing.assert_close(v, torch.tensor([0.5, 0.0, 0.5]))
    torch.testing.assert_close(e, torch.tensor([0.2, 0.1, 0.1]))
    # trained = 0.75 * v + 0.25 * e = [0.425, 0.025, 0.4]
    torch.testing.assert_close(trained, torch.tensor([0.425, 0.025, 0.4]))


def test_channel_sequence_rewards_paper_mode_normalises_the_mix():
    ver = torch.tensor([1.0, 0.0])
    exp = torch.tensor([0.4, 0.8])
    halve.seen = []
    v, e, trained = channel_sequence_rewards(ver, exp, 0.5, "paper", normalize=halve)
    # mix first: 0.5 * [1, 0] + 0.5 * [0.4, 0.8] = [0.7, 0.4]; then the mix is normalised
    assert halve.seen == [("total", [0.7, 0.4])]
    torch.testing.assert_close(trained, torch.tensor([0.35, 0.2]))
    torch.testing.assert_close(v, ver)  # the channels themselves are left as scored
    torch.testing.assert_close(e, exp)
    _, _, unnormalised = channel_sequence_rewards(ver, exp, 0.5, "paper")
    torch.testing.assert_close(unnormalised, torch.tensor([0.7, 0.4]))
    with pytest.raises(ValueError, match="mode must be one of"):
        channel_sequence_rewards(ver, exp, 0.5, "mixed")


def test_empty_response_is_an_error():
    with pytest.raises(ValueError, match="all-padding"):
        terminal_token_rewards(VER, None, 0.0, torch.tensor([[1.0, 0.0], [0.0, 0.0]]))
