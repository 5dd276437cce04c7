"""Whitening and running reward normalisation against hand values and numpy."""

import numpy as np
import pytest
import torch

from rlsp.algorithms.normalization import RewardNormalizer, RunningMeanStd, masked_whiten


def test_masked_whiten_by_hand():
    x = torch.tensor([[1.0, 3.0], [5.0, 1000.0]])
    mask = torch.tensor([[1.0, 1.0], [1.0, 0.0]])
    # real tokens 1, 3, 5: mean 3, unbiased var (4 + 0 + 4) / 2 = 4, std 2; padding -> 0
    torch.testing.assert_close(masked_whiten(x, mask), torch.tensor([[-1.0, 0.0], [1.0, 0.0]]))
    # shift_mean=False adds the mean back: [2, 3, 4]
    torch.testing.assert_close(
        masked_whiten(x, mask, shift_mean=False), torch.tensor([[2.0, 3.0], [4.0, 0.0]])
    )


BATCHES = [np.array([1.0, 2.0, 4.0]), np.array([10.0]), np.array([-3.0, 0.5, 7.0, 2.0, 2.0])]


def test_running_mean_std_equals_numpy_over_concatenation():
    rms = RunningMeanStd()
    for batch in BATCHES:
        rms.update(torch.tensor(batch, dtype=torch.float32))
    everything = np.concatenate(BATCHES)
    assert rms.count == 9
    assert rms.mean == pytest.approx(everything.mean(), rel=1e-12)
    assert rms.var == pytest.approx(everything.var(), rel=1e-12)
    restored = RunningMeanStd()
    restored.load_state_dict(rms.state_dict())
    assert restored.state_dict() == rms.state_dict()


def test_reward_normalizer_exact_and_independent_per_channel():
    verifier, exploration = RewardNormalizer(), RewardNormalizer()
    seen: list[np.ndarray] = []
    for batch in BATCHES:
        out = verifier(torch.tensor(batch))
        exploration(torch.tensor(batch * 100.0 + 5.0))
        seen.append(batch)
        everything = np.concatenate(seen)
        expected = (batch - everything.mean()) / np.sqrt(everything.var() + 1e-8)
        np.testing.assert_allclose(out.numpy(), expected, rtol=1e-10)
    assert verifier.stats.mean == pytest.approx(np.concatenate(BATCHES).mean())
    assert exploration.stats.mean == pytest.approx(np.concatenate(BATCHES).mean() * 100.0 + 5.0)


def test_reward_normalizer_clips_and_restores():
    norm = RewardNormalizer(clip=1.0)
    out = norm(torch.tensor([0.0, 0.0, 0.0, 10.0]))
    # mean 2.5, population std sqrt(25 - 6.25) = 4.3301; z(10) = 1.732 -> 1; z(0) = -0.57735
    torch.testing.assert_close(out, torch.tensor([-0.57735, -0.57735, -0.57735, 1.0]))
    restored = RewardNormalizer(clip=1.0)
    restored.load_state_dict(norm.state_dict())
    x = torch.tensor([1.0, 4.0])
    torch.testing.assert_close(restored(x, update=False), norm(x, update=False))
    assert restored.stats.count == 4  # update=False left the statistics alone
