"""Which gradient each KL estimator gives where it stands, against the analytic KL gradient.

A 5-token categorical policy ``pi = softmax(theta)`` and a fixed reference. The exact gradients of
``KL(pi || ref)`` and ``KL(ref || pi)`` come from autograd on the closed-form sums. The estimators
(``rlsp.algorithms.kl``) are then used as rlsp uses them, on 400,000 samples of ``pi``:

- in the loss: ``kl_loss`` over the samples, differentiated through the policy's log-probs;
- in the reward: a per-sample penalty whose policy-gradient (score function) estimate is
  ``mean(k * grad log pi)``, with ``k`` held constant, as an advantage holds it.

Expected (Schulman's estimators; e.g. "On a few pitfalls in KL divergence gradient estimation for
RL", 2025): k1 in the reward and k2 in the loss give ``grad KL(pi || ref)``; k3 in the loss
(GRPO) gives ``grad KL(ref || pi)``; k1 in the loss gives nothing (its mean under the policy's own
samples does not depend on the policy); k2 and k3 in the reward are biased. rlsp refuses the
combinations that do not give a KL gradient (``rlsp.config.algorithm_defaults``).

Tolerance: a Monte Carlo mean of N = 400,000 samples of per-sample gradients whose norm is below
3 here has a standard error of about 3 / sqrt(N) = 0.005; 0.03 is six of them.
"""

from __future__ import annotations

import pytest
import torch

from rlsp.algorithms.kl import kl_estimate
from rlsp.algorithms.losses import kl_loss
from rlsp.config import load_recipe
from rlsp.errors import ConfigError

N, TOLERANCE = 400_000, 0.03


@pytest.fixture(scope="module")
def setting():
    g = torch.Generator().manual_seed(0)
    theta = torch.randn(5, generator=g).requires_grad_(True)
    ref = torch.log_softmax(torch.randn(5, generator=g), -1)

    def grad(loss_of) -> torch.Tensor:
        theta.grad = None
        loss_of(torch.log_softmax(theta, -1)).backward()
        return theta.grad.clone()

    forward = grad(lambda logp: (logp.exp() * (logp - ref)).sum())  # KL(pi || ref)
    reverse = grad(lambda logp: (ref.exp() * (ref - logp)).sum())  # KL(ref || pi)
    with torch.no_grad():
        samples = torch.multinomial(torch.softmax(theta, -1), N, replacement=True, generator=g)
    return theta, ref, samples, grad, {"forward": forward, "reverse": reverse}


def estimated_gradient(setting, estimator: str, placement: str) -> torch.Tensor:
    _, ref, samples, grad, _ = setting

    def loss(logp):
        sampled, sampled_ref = logp[samples][None], ref[samples][None]  # (1, N): one row of N tokens
        if placement == "loss":
            return kl_loss(sampled, sampled_ref, torch.ones_like(sampled), estimator, "token-mean")
        penalty = kl_estimate(sampled, sampled_ref, estimator).detach()
        return (penalty * sampled).mean()  # the score-function estimate of grad E[penalty]

    return grad(loss)


@pytest.mark.parametrize(("estimator", "placement", "target"), [
    ("k1", "reward", "forward"),
    ("k2", "loss", "forward"),
    ("k3", "loss", "reverse"),
])
def test_the_kl_gradient_each_allowed_estimator_gives(setting, estimator, placement, target):
    exact = setting[4][target]
    assert (estimated_gradient(setting, estimator, placement) - exact).norm() < TOLERANCE


@pytest.mark.parametrize(("estimator", "placement"), [("k1", "loss"), ("k2", "reward"), ("k3", "reward")])
def test_the_refused_combinations_do_not_give_the_kl_gradient(setting, estimator, placement, tmp_path):
    forward = setting[4]["forward"]
    assert (estimated_gradient(setting, estimator, placement) - forward).norm() > 5 * TOLERANCE
    recipe = tmp_path / "r.yaml"
    recipe.write_text("train: {advantage_estimator: gae}\n")
    with pytest.raises(ConfigError, match=f"train.kl.estimator: {estimator}"):
        load_recipe(recipe, [f"train.kl.estimator={estimator}", f"train.kl.placement={placement}"])


@pytest.mark.parametrize(("placement", "estimator"), [("reward", "k1"), ("loss", "k3")])
def test_the_default_estimator_follows_the_placement(tmp_path, placement, estimator):
    recipe = tmp_path / "r.yaml"
    recipe.write_text("train: {advantage_estimator: gae}\n")
    assert load_recipe(recipe, [f"train.kl.placement={placement}"]).train.kl.estimator == estimator
