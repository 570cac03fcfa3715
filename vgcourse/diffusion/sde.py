"""Forward SDEs of score-based generative modelling and their reverse-time SDEs.

Song et al. 2021, "Score-Based Generative Modeling through Stochastic Differential Equations":
a forward SDE dx = f(x, t) dt + g(t) dw (eq. (5)) turns data at t = 0 into a simple prior at t = T,
and the reverse-time SDE dx = [f(x, t) - g(t)^2 ∇x log p_t(x)] dt + g(t) dw̄ (eq. (6)) turns it back.
The code follows the paper's objects: ``sde`` (f and g), ``marginal_prob`` (the perturbation kernel
p_0t(x(t) | x(0))), ``prior_sampling`` / ``prior_logp`` (p_T), ``discretize`` (one step of the
Markov chain that the SDE is the limit of) and ``reverse`` (eq. (6), or the probability-flow ODE (13)).
:func:`sde_loss` trains a network for any of them by denoising score matching (eq. (7)).

Conventions: ``x`` has any shape (B, ...); ``t`` is a float tensor of shape (B,) with values in [0, T]
(samplers use [eps, T]); per-sample scalars (``diffusion``, ``std``, log-probabilities) have shape (B,).
"""

from __future__ import annotations

import abc
import math
from typing import Callable

import torch
from einops import rearrange

ScoreFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]  # score_fn(x (B, ...), t (B,)) -> (B, ...)


def broadcast(v: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """Reshape a per-sample tensor (B,) to (B, 1, ..., 1) so that it broadcasts against x (B, ...)."""
    return rearrange(v, "b -> b " + " ".join(["1"] * (x.dim() - 1)))


def check_time(t: torch.Tensor, x: torch.Tensor, T: float = 1.0, name: str = "t") -> torch.Tensor:
    """Validate a time tensor: float, shape (B,) with B = x.shape[0], values in [0, T]."""
    if not isinstance(t, torch.Tensor):
        raise TypeError(f"expected {name} to be a float tensor of shape ({x.shape[0]},), got {type(t).__name__}")
    if not t.is_floating_point():
        raise TypeError(f"expected {name} to be a float tensor with values in [0, {T}], got dtype {t.dtype}")
    if t.dim() != 1 or t.shape[0] != x.shape[0]:
        raise ValueError(f"expected {name} of shape (B,) = ({x.shape[0]},) for x of shape {tuple(x.shape)}, "
                         f"got {tuple(t.shape)}")
    lo, hi = torch.stack(torch.aminmax(t)).tolist()  # one wait for the device, not two
    if lo < 0 or hi > T * (1 + 1e-6):
        raise ValueError(f"expected {name} in [0, {T}], got values in [{lo:.4g}, {hi:.4g}]")
    return t


def _std_normal_logp(z: torch.Tensor, sigma: float = 1.0) -> torch.Tensor:
    """log N(z; 0, sigma^2 I) per sample: (B, ...) -> (B,)."""
    d = z[0].numel()
    return -0.5 * d * math.log(2 * math.pi * sigma ** 2) - z.flatten(1).pow(2).sum(1) / (2 * sigma ** 2)


class SDE(abc.ABC):
    """A forward SDE dx = f(x, t) dt + g(t) dw on [0, T] (Song et al. 2021, eq. (5))."""

    T: float = 1.0

    @abc.abstractmethod
    def sde(self, x: torch.Tensor, t: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Drift f(x, t) (B, ...) and diffusion g(t) (B,).

        Inputs: x (B, ...), t (B,).
        """

    @abc.abstractmethod
    def marginal_prob(self, x0: torch.Tensor, t: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Mean (B, ...) and std (B,) of the Gaussian perturbation kernel p_0t(x(t) | x(0) = x0).

        Inputs: x0 (B, ...), t (B,).
        """

    @abc.abstractmethod
    def prior_sampling(self, shape: tuple[int, ...], generator: torch.Generator | None = None,
                       device: torch.device | str | None = None) -> torch.Tensor:
        """Samples of shape ``shape`` from the prior p_T."""

    @abc.abstractmethod
    def prior_logp(self, z: torch.Tensor) -> torch.Tensor:
        """log p_T(z) per sample: (B, ...) -> (B,)."""

    def discretize(self, x: torch.Tensor, t: torch.Tensor, dt: float) -> tuple[torch.Tensor, torch.Tensor]:
        """The step of the forward chain that ends at t, x_t = x_{t-dt} + f_i + G_i z: returns f_i (B, ...), G_i (B,).

        The default is Euler–Maruyama: f_i = f(x, t) dt, G_i = g(t) sqrt(dt). Inputs: x (B, ...), t (B,).
        """
        drift, diffusion = self.sde(x, t)
        return drift * dt, diffusion * math.sqrt(dt)

    def reverse(self, score_fn: ScoreFn, probability_flow: bool = False) -> "ReverseSDE":
        """The reverse-time SDE (eq. (6)) or, with probability_flow=True, the probability-flow ODE (eq. (13))."""
        return ReverseSDE(self, score_fn, probability_flow)

    def _prior_device(self, generator: torch.Generator | None, device: torch.device | str | None):
        return device if device is not None else (generator.device if generator is not None else "cpu")


class ReverseSDE:
    """The reverse-time SDE dx = [f - g^2 s(x, t)] dt + g dw̄ run from T down to 0 (Song et al. 2021, eq. (6)).

    With probability_flow=True it is the ODE dx = [f - ½ g^2 s(x, t)] dt with no noise (eq. (13)).
    Both methods return the drift with respect to forward time t; a sampler stepping from t to t - Δ
    computes x - drift Δ + diffusion sqrt(Δ) z.
    """

    def __init__(self, forward: SDE, score_fn: ScoreFn, probability_flow: bool = False):
        self.forward, self.score_fn, self.probability_flow = forward, score_fn, probability_flow
        self.T = forward.T

    def sde(self, x: torch.Tensor, t: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Drift (B, ...) and diffusion (B,) of the reverse SDE. Inputs: x (B, ...), t (B,)."""
        drift, diffusion = self.forward.sde(x, t)
        weight = 0.5 if self.probability_flow else 1.0
        drift = drift - broadcast(diffusion ** 2, x) * self.score_fn(x, t) * weight  # eq. (6) / eq. (13)
        return drift, (torch.zeros_like(diffusion) if self.probability_flow else diffusion)

    def discretize(self, x: torch.Tensor, t: torch.Tensor, dt: float) -> tuple[torch.Tensor, torch.Tensor]:
        """Reverse of the forward chain: x_{t-dt} = x_t - f_i + G_i z, returns f_i (B, ...) and G_i (B,).

        f_i = f_fwd - G_fwd^2 s(x, t) and G_i = G_fwd, with the forward discretisation's f_fwd and G_fwd
        (Song et al. 2021, App. E, "reverse diffusion samplers"); with probability_flow=True,
        f_i = f_fwd - ½ G_fwd^2 s(x, t) and G_i = 0.
        """
        f, G = self.forward.discretize(x, t, dt)
        weight = 0.5 if self.probability_flow else 1.0
        f = f - broadcast(G ** 2, x) * self.score_fn(x, t) * weight  # App. E: reverse of the forward chain
        return f, (torch.zeros_like(G) if self.probability_flow else G)


class _LinearBetaSDE(SDE):
    """Shared pieces of the VP and sub-VP SDEs: β(t) = β_min + t (β_max - β_min) and a N(0, I) prior."""

    def __init__(self, beta_min: float = 0.1, beta_max: float = 20.0):
        self.beta_min, self.beta_max = float(beta_min), float(beta_max)

    def beta(self, t: torch.Tensor) -> torch.Tensor:
        """β(t) (B,), the continuous limit of N β_i for DDPM's linear schedule (Song et al. 2021, App. B)."""
        return self.beta_min + t * (self.beta_max - self.beta_min)

    def log_mean_coeff(self, t: torch.Tensor) -> torch.Tensor:
        """log of the mean coefficient -½ ∫_0^t β(s) ds (B,) (Song et al. 2021, App. B)."""
        return -0.25 * t ** 2 * (self.beta_max - self.beta_min) - 0.5 * t * self.beta_min

    def alpha_bar(self, t: torch.Tensor) -> torch.Tensor:
        """ᾱ(t) = exp(-∫_0^t β(s) ds) (B,), the continuous counterpart of DDPM's ᾱ_i."""
        return torch.exp(2 * self.log_mean_coeff(t))

    def prior_sampling(self, shape: tuple[int, ...], generator: torch.Generator | None = None,
                       device: torch.device | str | None = None) -> torch.Tensor:
        return torch.randn(shape, generator=generator, device=self._prior_device(generator, device))

    def prior_logp(self, z: torch.Tensor) -> torch.Tensor:
        return _std_normal_logp(z)


class VPSDE(_LinearBetaSDE):
    """The variance-preserving SDE dx = -½ β(t) x dt + sqrt(β(t)) dw, DDPM's limit (Song et al. 2021, eq. (11))."""

    def sde(self, x: torch.Tensor, t: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        check_time(t, x, self.T)
        beta = self.beta(t)
        return -0.5 * broadcast(beta, x) * x, torch.sqrt(beta)  # eq. (11)

    def marginal_prob(self, x0: torch.Tensor, t: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        check_time(t, x0, self.T)
        lmc = self.log_mean_coeff(t)
        mean = broadcast(torch.exp(lmc), x0) * x0  # App. B: mean = e^{-½∫β} x(0)
        std = torch.sqrt(-torch.expm1(2 * lmc))   # App. B: var = 1 - e^{-∫β}
        return mean, std

    def discretize(self, x: torch.Tensor, t: torch.Tensor, dt: float) -> tuple[torch.Tensor, torch.Tensor]:
        """DDPM's step x_{i+1} = sqrt(1 - β_i) x_i + sqrt(β_i) z with β_i = 1 - ᾱ(t) / ᾱ(t - dt).

        Ho et al. 2020, eq. (2); Song et al. 2021, eq. (10). β_i = β(t) dt + O(dt²) as in the paper, but it stays
        in (0, 1) for any step count (β(t) dt exceeds 1 below 20 steps, and sqrt(1 - β_i) would be NaN), and the
        chain's marginals equal the SDE's at every step. Inputs: x (B, ...), t (B,).
        """
        check_time(t, x, self.T)
        # 1 - ᾱ(t)/ᾱ(t - dt) = 1 - exp(-∫_{t-dt}^{t} β(s) ds)
        beta_i = -torch.expm1(2 * (self.log_mean_coeff(t) - self.log_mean_coeff((t - dt).clamp(min=0.0))))
        f = broadcast(torch.sqrt(1 - beta_i) - 1, x) * x
        return f, torch.sqrt(beta_i)


class SubVPSDE(_LinearBetaSDE):
    """The sub-VP SDE dx = -½ β x dt + sqrt(β (1 - e^{-2∫β})) dw, variance below VP's (Song et al. 2021, eq. (12))."""

    def sde(self, x: torch.Tensor, t: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        check_time(t, x, self.T)
        beta = self.beta(t)
        discount = -torch.expm1(4 * self.log_mean_coeff(t))  # 1 - e^{-2 ∫_0^t β(s) ds}
        return -0.5 * broadcast(beta, x) * x, torch.sqrt(beta * discount)  # eq. (12)

    def marginal_prob(self, x0: torch.Tensor, t: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        check_time(t, x0, self.T)
        lmc = self.log_mean_coeff(t)
        mean = broadcast(torch.exp(lmc), x0) * x0  # App. B: same mean as VP
        std = -torch.expm1(2 * lmc)                # App. B: std = 1 - e^{-∫β} (VP's variance)
        return mean, std


class VESDE(SDE):
    """The variance-exploding SDE dx = sqrt(d[σ²(t)]/dt) dw with σ(t) = σ_min (σ_max/σ_min)^t, the limit of NCSN
    (Song et al. 2021, eq. (9)).

    The exact kernel std is sqrt(σ(t)² - σ_min²) (App. B); like NCSN and the paper's code we use σ(t), which
    treats the data at t = 0 as already perturbed by σ_min (a difference below σ_min² / (2σ(t))). The prior is
    N(0, σ_max² I).
    """

    def __init__(self, sigma_min: float = 0.01, sigma_max: float = 50.0):
        self.sigma_min, self.sigma_max = float(sigma_min), float(sigma_max)

    def sigma(self, t: torch.Tensor) -> torch.Tensor:
        """σ(t) = σ_min (σ_max / σ_min)^t (B,)."""
        return self.sigma_min * (self.sigma_max / self.sigma_min) ** t

    def sde(self, x: torch.Tensor, t: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        check_time(t, x, self.T)
        g = self.sigma(t) * math.sqrt(2 * math.log(self.sigma_max / self.sigma_min))  # sqrt(d σ²/dt)
        return torch.zeros_like(x), g

    def marginal_prob(self, x0: torch.Tensor, t: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        check_time(t, x0, self.T)
        return x0, self.sigma(t)

    def prior_sampling(self, shape: tuple[int, ...], generator: torch.Generator | None = None,
                       device: torch.device | str | None = None) -> torch.Tensor:
        device = self._prior_device(generator, device)
        return torch.randn(shape, generator=generator, device=device) * self.sigma_max

    def prior_logp(self, z: torch.Tensor) -> torch.Tensor:
        return _std_normal_logp(z, self.sigma_max)

    def discretize(self, x: torch.Tensor, t: torch.Tensor, dt: float) -> tuple[torch.Tensor, torch.Tensor]:
        """NCSN's chain x_i = x_{i-1} + sqrt(σ_i² - σ_{i-1}²) z with σ_{i-1} = σ(t - dt) (Song et al. 2021, eq. (8)).

        Inputs: x (B, ...), t (B,).
        """
        check_time(t, x, self.T)
        sigma, sigma_prev = self.sigma(t), self.sigma((t - dt).clamp(min=0.0))
        return torch.zeros_like(x), torch.sqrt(sigma ** 2 - sigma_prev ** 2)


def sde_loss(model: Callable[[torch.Tensor, torch.Tensor], torch.Tensor], x0: torch.Tensor, sde: SDE,
             eps: float = 1e-5, generator: torch.Generator | None = None) -> torch.Tensor:
    """Continuous-time denoising score matching, ε-parameterised (Song et al. 2021, eq. (7) with λ(t) = std(t)²).

    t ~ U(eps, T), z ~ N(0, I) and x_t = mean(x0, t) + std(t) z from the perturbation kernel p_0t(x_t | x0)
    (:meth:`SDE.marginal_prob`). The kernel's score is -z / std, and a network ε_θ(x_t, t) = -std · s_θ(x_t, t)
    (:func:`~vgcourse.diffusion.score_from_eps` turns it back into a score) makes the weighted loss
    λ(t) ||s_θ + z / std||² = ||z - ε_θ||²: the mean over batch and dimensions, a scalar. Its minimiser is
    ε*(x_t, t) = E[z | x_t] = -std · ∇x log p_t(x_t), the true score. Draws t then z from ``generator``.
    Inputs: x0 (B, ...); model(x_t (B, ...), t (B,) float) -> (B, ...).
    """
    if not 0 <= eps < sde.T:
        raise ValueError(f"expected 0 <= eps < T = {sde.T}, got eps={eps}")
    t = torch.rand(x0.shape[0], device=x0.device, dtype=x0.dtype, generator=generator) * (sde.T - eps) + eps  # (B,)
    z = torch.randn(x0.shape, device=x0.device, dtype=x0.dtype, generator=generator)
    mean, std = sde.marginal_prob(x0, t)                     # the kernel p_0t(x_t | x0): mean (B, ...), std (B,)
    x_t = mean + broadcast(std, x0) * z                      # (B, ...)
    return (model(x_t, t) - z).pow(2).mean()                 # ||std · s_θ + z||² with s_θ = -ε_θ / std
