"""Noise-conditional score networks (NCSN): denoising score matching over a geometric ladder of noise levels and
annealed Langevin dynamics (Song & Ermon 2019, "Generative Modeling by Estimating Gradients of the Data
Distribution").

Convention: ``sigmas`` is a float tensor (L,) in decreasing order, σ_1 > ... > σ_L (the paper's order), and a
score model is called as ``score_model(x, idx)`` with idx a long tensor (B,) of indices into ``sigmas``
(0 = the largest noise). It returns s(x, σ_idx) ≈ ∇x log q_σ(x) with the shape of x. A network that takes a
timestep, such as the video U-Net ``model(x, t, cond)``, can use idx as its timestep directly;
:class:`NoiseConditionalScore` makes such a network a score model.
"""

from __future__ import annotations

import math
from typing import Callable

import torch
from torch import nn

from vgcourse.progress import progress_bar

from .sde import broadcast

ScoreModel = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]  # (x (B, ...), idx (B,) long) -> (B, ...)


def geometric_sigmas(sigma_min: float = 0.01, sigma_max: float = 1.0, n: int = 10) -> torch.Tensor:
    """Geometric noise levels σ_1 = sigma_max > ... > σ_n = sigma_min (Song & Ermon 2019, Sec. 4.2): (n,)."""
    if not 0 < sigma_min < sigma_max or n < 2:
        raise ValueError(f"expected 0 < sigma_min < sigma_max and n >= 2, got sigma_min={sigma_min}, "
                         f"sigma_max={sigma_max}, n={n}")
    return torch.exp(torch.linspace(math.log(sigma_max), math.log(sigma_min), n))


def _check_sigmas(sigmas: torch.Tensor) -> torch.Tensor:
    if not isinstance(sigmas, torch.Tensor) or sigmas.dim() != 1 or sigmas.numel() < 1:
        got = tuple(sigmas.shape) if isinstance(sigmas, torch.Tensor) else type(sigmas).__name__
        raise ValueError(f"expected sigmas as a 1-D tensor (L,), got {got}")
    if sigmas.numel() > 1 and not bool((sigmas[1:] < sigmas[:-1]).all()):
        raise ValueError(f"expected sigmas in decreasing order (σ_1 > ... > σ_L), got {sigmas.tolist()}")
    return sigmas


class NoiseConditionalScore(nn.Module):
    """s_θ(x, i) = -net(x, i) / σ_i: a timestep network used as a noise-conditional score model.

    NCSN (Song & Ermon 2019) conditions one network on the noise level; here the level's index i is the network's
    timestep, and the output is divided by σ_i, as NCSNv2 does (Song & Ermon 2020, "Improved Techniques for Training
    Score-Based Generative Models", technique 3): the true score of q_σ has a norm ∝ 1/σ, so net only has to predict
    something of unit scale, -σ_i s(x, σ_i) (the noise z of x̃ = x + σ_i z, the target of :func:`dsm_loss`).
    ``sigmas`` (L,) decreasing is kept as a buffer (it moves and saves with the model).

    Inputs: x (B, ...) such as (B, C, T, H, W); idx (B,) long indices into sigmas (0 = the largest noise).
    Returns the score (B, ...) like x.
    """

    def __init__(self, net: nn.Module, sigmas: torch.Tensor):
        super().__init__()
        self.net = net
        self.register_buffer("sigmas", _check_sigmas(sigmas).clone())  # (L,)

    def forward(self, x: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
        if idx.shape != (x.shape[0],) or idx.dtype != torch.long:
            raise ValueError(f"expected idx as a long tensor ({x.shape[0]},) of noise-level indices, got "
                             f"{tuple(idx.shape)} {idx.dtype}")
        sigma = broadcast(self.sigmas[idx], x)                     # (B, 1, ..., 1): σ_i of each sample
        return -self.net(x, idx) / sigma                           # (B, ...): s_θ(x, i) = -net(x, i) / σ_i


def dsm_loss(score_model: ScoreModel, x: torch.Tensor, sigmas: torch.Tensor,
             generator: torch.Generator | None = None) -> torch.Tensor:
    """Denoising score matching over all noise levels with λ(σ) = σ² (Song & Ermon 2019, eq. (5)-(6)), a scalar.

    Each sample draws a level i uniformly and x̃ = x + σ_i z; the target score is -(x̃ - x) / σ_i² = -z / σ_i, so
    λ(σ_i) · ½ ||s(x̃, i) + z / σ_i||² = ½ ||σ_i s(x̃, i) + z||². Summed over dimensions, averaged over the batch.
    Inputs: x (B, ...), sigmas (L,).
    """
    sigmas = _check_sigmas(sigmas).to(x.device, x.dtype)
    idx = torch.randint(0, sigmas.numel(), (x.shape[0],), generator=generator, device=x.device)  # (B,)
    sigma = broadcast(sigmas[idx], x)                                                            # (B, 1, ...)
    z = torch.randn(x.shape, generator=generator, device=x.device, dtype=x.dtype)
    x_tilde = x + sigma * z                                          # a sample of q_σ(x̃ | x) = N(x, σ² I)
    residual = sigma * score_model(x_tilde, idx) + z                  # σ (s - target), eq. (5)
    return 0.5 * residual.pow(2).flatten(1).sum(1).mean()            # eq. (6) with λ(σ) = σ²


@torch.no_grad()
def annealed_langevin(score_model: ScoreModel, shape: tuple[int, ...], sigmas: torch.Tensor,
                      n_steps_each: int = 100, step_lr: float = 2e-5, generator: torch.Generator | None = None,
                      progress: bool = False, x_init: torch.Tensor | None = None, denoise: bool = False,
                      device: torch.device | str | None = None) -> torch.Tensor:
    """Annealed Langevin dynamics (Song & Ermon 2019, Algorithm 1): samples of ``shape``.

    For each level i, α_i = ε σ_i² / σ_L² and T steps of x ← x + (α_i / 2) s(x, i) + sqrt(α_i) z, with
    ε = step_lr and T = n_steps_each. x starts uniform in [-1, 1] (our data range) unless x_init is given.
    denoise=True adds the final step x + σ_L² s(x, L) (Tweedie's formula, as in NCSNv2), which is not in Alg. 1.
    """
    sigmas = _check_sigmas(sigmas)
    device = device if device is not None else (generator.device if generator is not None else sigmas.device)
    if x_init is None:
        x = torch.rand(shape, generator=generator, device=device) * 2 - 1
    else:
        x = x_init.to(device)
    sigmas = sigmas.to(x.device, x.dtype)
    levels = range(sigmas.numel())
    if progress:
        levels = progress_bar(levels, desc="annealed_langevin")
    for i in levels:
        idx = torch.full((x.shape[0],), i, device=x.device, dtype=torch.long)  # (B,)
        alpha = step_lr * (sigmas[i] / sigmas[-1]) ** 2                       # Alg. 1: α_i = ε σ_i² / σ_L²
        for _ in range(n_steps_each):
            z = torch.randn(x.shape, generator=generator, device=x.device, dtype=x.dtype)
            x = x + 0.5 * alpha * score_model(x, idx) + torch.sqrt(alpha) * z  # Alg. 1, inner update
    if denoise:
        idx = torch.full((x.shape[0],), sigmas.numel() - 1, device=x.device, dtype=torch.long)
        x = x + sigmas[-1] ** 2 * score_model(x, idx)
    return x
