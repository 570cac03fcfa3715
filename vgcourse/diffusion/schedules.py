"""Noise schedules of the DDPM forward process and the closed forms built on them.

The forward process adds Gaussian noise in T steps, q(x_t | x_{t-1}) = N(√(1-β_t) x_{t-1}, β_t I)
(Ho et al. 2020, eq. (2)). Everything a sampler or a loss needs follows from the betas:
α_t = 1 - β_t, ᾱ_t = ∏_{s≤t} α_s, the marginal q(x_t | x_0) (eq. (4)) and the posterior
q(x_{t-1} | x_t, x_0) (eqs. (6)-(7)).

Timesteps are 0-indexed: ``t`` is an integer tensor (B,) in [0, T), and index ``t`` here is step t+1 in
the paper. Every method works for tensors of any shape (B, ...): coefficients broadcast over the rest.
"""

from __future__ import annotations

import math

import torch
from torch import nn


class NoiseSchedule(nn.Module):
    """A DDPM noise schedule: the betas and every coefficient derived from them, as buffers.

    Inputs:
        betas: (T,) noise variances β_t in (0, 1).
        name: a label for printing ("linear", "cosine", ...).

    It is an ``nn.Module`` only so that ``schedule.to(device)`` moves every coefficient; it has no
    parameters. Coefficients are computed in float64 and stored in float32.
    """

    def __init__(self, betas: torch.Tensor, name: str = "custom"):
        super().__init__()
        betas = torch.as_tensor(betas, dtype=torch.float64)
        if betas.ndim != 1 or len(betas) < 1:
            raise ValueError(f"expected betas of shape (T,), got {tuple(betas.shape)}")
        if not ((betas > 0) & (betas < 1)).all():
            raise ValueError(f"expected betas in (0, 1), got range [{betas.min():.3g}, {betas.max():.3g}]")
        self.name = name
        self.T = len(betas)
        # which betas, as stored (float32): schedules with equal keys define the same forward process, on any device
        self.key = hash(betas.float().cpu().numpy().tobytes())
        alphas = 1.0 - betas
        alphas_cumprod = torch.cumprod(alphas, 0)  # ᾱ_t = ∏ α_s
        alphas_cumprod_prev = torch.cat([alphas_cumprod.new_ones(1), alphas_cumprod[:-1]])  # ᾱ_{t-1}, ᾱ_{-1} = 1
        posterior_variance = betas * (1 - alphas_cumprod_prev) / (1 - alphas_cumprod)  # β̃_t, Ho 2020 eq. (7)
        # β̃ is 0 at the first step; the log uses β̃ of the second step there so that it stays finite.
        log_floor = posterior_variance[1] if self.T > 1 else betas[0]
        buffers = {
            "betas": betas,
            "alphas": alphas,
            "alphas_cumprod": alphas_cumprod,
            "alphas_cumprod_prev": alphas_cumprod_prev,
            "sqrt_alphas_cumprod": alphas_cumprod.sqrt(),
            "sqrt_one_minus_alphas_cumprod": (1 - alphas_cumprod).sqrt(),
            "sqrt_recip_alphas_cumprod": alphas_cumprod.rsqrt(),
            "sqrt_recipm1_alphas_cumprod": (1 / alphas_cumprod - 1).sqrt(),
            "posterior_variance": posterior_variance,
            "posterior_log_variance": torch.cat([log_floor[None], posterior_variance[1:]]).log(),
            "posterior_mean_coef_x0": alphas_cumprod_prev.sqrt() * betas / (1 - alphas_cumprod),  # eq. (7)
            "posterior_mean_coef_xt": alphas.sqrt() * (1 - alphas_cumprod_prev) / (1 - alphas_cumprod),  # eq. (7)
        }
        for key, value in buffers.items():
            self.register_buffer(key, value.float(), persistent=False)

    def extra_repr(self) -> str:
        return f"name={self.name!r}, T={self.T}"

    def _check_t(self, t: torch.Tensor, x: torch.Tensor) -> None:
        if not isinstance(t, torch.Tensor) or t.ndim != 1:
            shape = tuple(t.shape) if isinstance(t, torch.Tensor) else type(t).__name__
            raise ValueError(f"expected t as an integer tensor of shape (B,), got {shape}")
        if t.is_floating_point() or t.is_complex() or t.dtype == torch.bool:
            raise TypeError(f"expected t as an integer tensor (long) in [0, {self.T}), got dtype {t.dtype}")
        if x.ndim < 1 or t.shape[0] != x.shape[0]:
            raise ValueError(f"t has {t.shape[0]} timesteps but the tensor has shape {tuple(x.shape)}; "
                             "expected one timestep per batch element")
        if t.numel() and (t.min() < 0 or t.max() >= self.T):
            raise ValueError(f"expected t in [0, {self.T}), got range [{t.min().item()}, {t.max().item()}]")

    def _gather(self, coef: torch.Tensor, t: torch.Tensor, x: torch.Tensor, check: bool = True) -> torch.Tensor:
        """coef[t] reshaped to (B, 1, 1, ...) so that it broadcasts against x of shape (B, ...).

        ``check=False`` skips the range check (a device sync) where t was checked already or made by a sampler.
        """
        if check:
            self._check_t(t, x)
        return coef.to(x.device)[t.to(x.device)].reshape(-1, *([1] * (x.ndim - 1)))  # (B, 1, ..., 1)

    def q_sample(self, x0: torch.Tensor, t: torch.Tensor, noise: torch.Tensor | None = None) -> torch.Tensor:
        """Draw x_t ~ q(x_t | x_0) = N(√ᾱ_t x_0, (1-ᾱ_t) I) in one step (Ho et al. 2020, eq. (4)).

        Inputs:
            x0: (B, ...) clean data; t: (B,) long; noise: like x0 (drawn if None).
        Returns:
            x_t: like x0.
        """
        if noise is None:
            noise = torch.randn_like(x0)
        if noise.shape != x0.shape:
            raise ValueError(f"expected noise of shape {tuple(x0.shape)} like x0, got {tuple(noise.shape)}")
        return (self._gather(self.sqrt_alphas_cumprod, t, x0) * x0
                + self._gather(self.sqrt_one_minus_alphas_cumprod, t, x0) * noise)  # Ho et al. 2020, eq. (4)

    def predict_x0(self, x_t: torch.Tensor, t: torch.Tensor, eps: torch.Tensor) -> torch.Tensor:
        """Invert Ho et al. 2020, eq. (4) for x_0 given a noise estimate: x_0 = (x_t - √(1-ᾱ_t) ε) / √ᾱ_t.

        Inputs:
            x_t: (B, ...); t: (B,) long; eps: like x_t.
        Returns:
            x0: like x_t (not clamped).
        """
        return (self._gather(self.sqrt_recip_alphas_cumprod, t, x_t) * x_t
                - self._gather(self.sqrt_recipm1_alphas_cumprod, t, x_t) * eps)  # Ho et al. 2020, eq. (4) for x_0

    def predict_eps(self, x_t: torch.Tensor, t: torch.Tensor, x0: torch.Tensor) -> torch.Tensor:
        """The noise that takes x_0 to x_t: ε = (x_t - √ᾱ_t x_0) / √(1-ᾱ_t).

        Inputs:
            x_t: (B, ...); t: (B,) long; x0: like x_t.
        Returns:
            eps: like x_t.
        """
        return ((self._gather(self.sqrt_recip_alphas_cumprod, t, x_t) * x_t - x0)
                / self._gather(self.sqrt_recipm1_alphas_cumprod, t, x_t))

    def posterior(self, x0: torch.Tensor, x_t: torch.Tensor,
                  t: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """The forward-process posterior q(x_{t-1} | x_t, x_0) = N(μ̃_t, β̃_t I) (Ho et al. 2020, eqs. (6)–(7)).

        Inputs:
            x0, x_t: (B, ...); t: (B,) long.
        Returns:
            mean: like x_t; var, log_var: (B, 1, ..., 1). At t = 0, var is 0 and log_var uses β̃ of t = 1.
        """
        mean = (self._gather(self.posterior_mean_coef_x0, t, x_t) * x0
                + self._gather(self.posterior_mean_coef_xt, t, x_t) * x_t)  # Ho et al. 2020, eq. (7)
        var = self._gather(self.posterior_variance, t, x_t)  # β̃_t, eq. (7)
        log_var = self._gather(self.posterior_log_variance, t, x_t)
        return mean, var, log_var

    def snr(self, t: torch.Tensor) -> torch.Tensor:
        """Signal-to-noise ratio ᾱ_t / (1 - ᾱ_t) of x_t (Kingma et al. 2021). Inputs: t (B,) long. Returns (B,)."""
        self._check_t(t, t)
        a = self.alphas_cumprod.to(t.device)[t]
        return a / (1 - a)


def linear_schedule(T: int = 1000, beta_start: float = 1e-4, beta_end: float = 0.02) -> NoiseSchedule:
    """Betas rising linearly from ``beta_start`` to ``beta_end`` (Ho et al. 2020, §4: 1e-4 to 0.02, T = 1000)."""
    if T < 1:
        raise ValueError(f"expected T >= 1 steps, got {T}")
    return NoiseSchedule(torch.linspace(beta_start, beta_end, T, dtype=torch.float64), name="linear")


def cosine_schedule(T: int = 1000, s: float = 0.008, max_beta: float = 0.999) -> NoiseSchedule:
    """ᾱ_t = f(t)/f(0), f(t) = cos²((t/T + s)/(1 + s) · π/2) (Nichol & Dhariwal 2021, eq. (17)).

    Betas are 1 - ᾱ_t/ᾱ_{t-1}, clipped at ``max_beta`` = 0.999 so that the last step stays finite.
    """
    if T < 1:
        raise ValueError(f"expected T >= 1 steps, got {T}")
    steps = torch.arange(T + 1, dtype=torch.float64)
    f = torch.cos((steps / T + s) / (1 + s) * math.pi / 2) ** 2  # Nichol & Dhariwal 2021, eq. (17)
    alphas_cumprod = f / f[0]
    betas = (1 - alphas_cumprod[1:] / alphas_cumprod[:-1]).clamp(max=max_beta)
    return NoiseSchedule(betas, name="cosine")
