"""Loss values against hand-computed closed forms; the gradient penalty against autograd."""
import math

import pytest
import torch

from train import losses


def _t(*v: float) -> torch.Tensor:
    return torch.tensor(v, dtype=torch.float64)


def sig(x: float) -> float:
    return 1 / (1 + math.exp(-x))


def test_minimax_d_loss_closed_form():
    real, fake = _t(2.0, -1.0), _t(0.5, -3.0)
    want = -(math.log(sig(2)) + math.log(sig(-1))) / 2 - (math.log(1 - sig(0.5)) + math.log(1 - sig(-3))) / 2
    assert losses.minimax_d_loss(real, fake).item() == pytest.approx(want, rel=1e-12)


def test_generator_losses_closed_form():
    fake = _t(0.3, -2.0)
    assert losses.minimax_g_loss(fake).item() == pytest.approx(
        (math.log(1 - sig(0.3)) + math.log(1 - sig(-2))) / 2, rel=1e-12)
    assert losses.nonsaturating_g_loss(fake).item() == pytest.approx(
        -(math.log(sig(0.3)) + math.log(sig(-2))) / 2, rel=1e-12)


def test_minimax_is_stable_for_large_logits():
    # log(sigmoid(-100)) underflows when computed naively; softplus keeps it finite.
    assert losses.minimax_d_loss(_t(-100.0), _t(100.0)).item() == pytest.approx(200.0, rel=1e-9)


def test_wasserstein_and_hinge_closed_form():
    real, fake = _t(1.0, 3.0), _t(-2.0, 0.5)
    assert losses.wasserstein_d_loss(real, fake).item() == pytest.approx(-0.75 - 2.0)
    assert losses.wasserstein_g_loss(fake).item() == pytest.approx(0.75)
    # relu(1 - [1, 3]) = [0, 0]; relu(1 + [-2, 0.5]) = [0, 1.5]
    assert losses.hinge_d_loss(real, fake).item() == pytest.approx(0.75)
    assert losses.hinge_g_loss(fake).item() == pytest.approx(0.75)


def test_least_squares_closed_form():
    real, fake = _t(0.0, 2.0), _t(1.0, -1.0)
    # 0.5 * (mean([1, 1]) + mean([1, 1]))
    assert losses.least_squares_d_loss(real, fake).item() == pytest.approx(1.0)
    # mean([0, 4])
    assert losses.least_squares_g_loss(fake).item() == pytest.approx(2.0)


def test_gradient_penalty_matches_direct_autograd():
    torch.manual_seed(0)
    critic = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(12, 8), torch.nn.Tanh(), torch.nn.Linear(8, 1)).double()
    real, fake = torch.randn(5, 3, 2, 2, dtype=torch.float64), torch.randn(5, 3, 2, 2, dtype=torch.float64)
    state = torch.get_rng_state()
    gp = losses.gradient_penalty(critic, real, fake)
    torch.set_rng_state(state)  # the same interpolation weights
    eps = torch.rand(5, 1, 1, 1, dtype=torch.float64)
    want = 0.0
    for i in range(5):
        x = (eps[i] * real[i] + (1 - eps[i]) * fake[i]).unsqueeze(0).requires_grad_(True)
        (g,) = torch.autograd.grad(critic(x).sum(), x)
        want += (g.norm() - 1).item() ** 2 / 5
    assert gp.item() == pytest.approx(want, rel=1e-9)
    # The penalty must be differentiable with respect to the critic's weights (double backward).
    gp.backward()
    assert critic[1].weight.grad is not None and critic[1].weight.grad.abs().sum() > 0


def test_gradient_penalty_is_zero_for_a_unit_slope_critic():
    w = torch.zeros(4, 1, dtype=torch.float64)
    w[0] = 1.0  # gradient norm exactly 1 everywhere
    gp = losses.gradient_penalty(lambda x: x @ w, torch.randn(6, 4, dtype=torch.float64), torch.randn(6, 4, dtype=torch.float64))
    assert gp.item() == pytest.approx(0.0, abs=1e-12)


def test_every_objective_pair_is_registered():
    assert set(losses.ADVERSARIAL) == {"minimax", "nonsaturating", "wasserstein", "hinge", "least-squares"}
