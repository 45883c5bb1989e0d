"""GAN objectives as small functions of discriminator outputs (logits, not probabilities).

D losses take (real, fake) outputs and are minimised by the discriminator/critic; G losses
take the outputs on generated samples and are minimised by the generator. Working on logits
keeps log(sigmoid(.)) numerically stable through softplus: log D = -softplus(-l) and
log(1 - D) = -softplus(l).
"""
from __future__ import annotations

from typing import Callable, NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor


def minimax_d_loss(real: Tensor, fake: Tensor) -> Tensor:
    """-E[log D(x)] - E[log(1 - D(G(z)))] (Goodfellow et al. 2014, eq. 1)."""
    return F.softplus(-real).mean() + F.softplus(fake).mean()


def minimax_g_loss(fake: Tensor) -> Tensor:
    """E[log(1 - D(G(z)))]: the original, saturating generator objective."""
    return -F.softplus(fake).mean()


def nonsaturating_g_loss(fake: Tensor) -> Tensor:
    """-E[log D(G(z))]: the generator objective used in practice (Goodfellow et al. 2014, sec. 3)."""
    return F.softplus(-fake).mean()


def wasserstein_d_loss(real: Tensor, fake: Tensor) -> Tensor:
    """E[C(G(z))] - E[C(x)]: the critic's side of the Wasserstein-1 estimate (Arjovsky et al. 2017)."""
    return fake.mean() - real.mean()


def wasserstein_g_loss(fake: Tensor) -> Tensor:
    """-E[C(G(z))]."""
    return -fake.mean()


def hinge_d_loss(real: Tensor, fake: Tensor) -> Tensor:
    """E[max(0, 1 - D(x))] + E[max(0, 1 + D(G(z)))] (Lim & Ye 2017; Miyato et al. 2018)."""
    return F.relu(1 - real).mean() + F.relu(1 + fake).mean()


def hinge_g_loss(fake: Tensor) -> Tensor:
    """-E[D(G(z))]."""
    return -fake.mean()


def least_squares_d_loss(real: Tensor, fake: Tensor) -> Tensor:
    """1/2 E[(D(x) - 1)^2] + 1/2 E[D(G(z))^2] (Mao et al. 2017, a=0, b=c=1; CycleGAN's D loss)."""
    return 0.5 * ((real - 1).pow(2).mean() + fake.pow(2).mean())


def least_squares_g_loss(fake: Tensor) -> Tensor:
    """E[(D(G(z)) - 1)^2] (CycleGAN's adversarial term for G, without the 1/2)."""
    return (fake - 1).pow(2).mean()


def gradient_penalty(critic: Callable[..., Tensor], real: Tensor, fake: Tensor, *cond: Tensor) -> Tensor:
    """E[(||grad_x^ C(x^)||_2 - 1)^2] at x^ = eps x + (1 - eps) G(z) (Gulrajani et al. 2017, eq. 3).

    Returned without the lambda weight. `cond` is passed to the critic unchanged (labels).
    """
    eps = torch.rand((real.shape[0],) + (1,) * (real.dim() - 1), device=real.device, dtype=real.dtype)
    mixed = (eps * real.detach() + (1 - eps) * fake.detach()).requires_grad_(True)
    out = critic(mixed, *cond)
    (grad,) = torch.autograd.grad(out.sum(), mixed, create_graph=True)
    return (grad.flatten(1).norm(2, dim=1) - 1).pow(2).mean()


class Adversarial(NamedTuple):
    """A matched pair of discriminator and generator objectives."""

    d_loss: Callable[[Tensor, Tensor], Tensor]
    g_loss: Callable[[Tensor], Tensor]


ADVERSARIAL: dict[str, Adversarial] = {
    "minimax": Adversarial(minimax_d_loss, minimax_g_loss),
    "nonsaturating": Adversarial(minimax_d_loss, nonsaturating_g_loss),
    "wasserstein": Adversarial(wasserstein_d_loss, wasserstein_g_loss),
    "hinge": Adversarial(hinge_d_loss, hinge_g_loss),
    "least-squares": Adversarial(least_squares_d_loss, least_squares_g_loss),
}
