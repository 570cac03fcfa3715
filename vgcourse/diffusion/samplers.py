"""Samplers and likelihoods written once against the ``SDE`` interface (Song et al. 2021, Sec. 4 and App. D-G).

- predictors (one step of the reverse-time SDE from t to t - dt): ``euler_maruyama_step``, ``reverse_diffusion_step``;
- corrector (one step of Langevin MCMC at fixed t): ``langevin_step``, step size set by a signal-to-noise ratio;
- ``pc_sample``: predictor-corrector sampling (Algorithms 1-3); ``ode_sample`` / ``ode_encode``: the
  probability-flow ODE solved with an adaptive Dormand–Prince RK45 (``dopri5``) in either direction;
- ``log_likelihood`` / ``likelihood_bpd``: exact likelihood of the ODE model by the instantaneous change of
  variables with a Hutchinson trace estimator (App. D.2, eq. (39)-(40)).

Conventions: ``score_fn(x (B, ...), t (B,)) -> (B, ...)``; samplers return ``(samples, nfe)`` where NFE counts
score-function evaluations (one per call, whatever the batch size).

Bits/dim convention: data are 8-bit values k in {0..255} stored as x = k / 127.5 - 1 in [-1, 1] (see
``vgcourse.video.from_uint8``), so a bin has width 2/255. ``dequantize`` adds uniform noise over each bin,
and the discrete model's bits/dim is at most -log2 p(x) / D + log2(127.5) (``OFFSET_8BIT_BITS`` ≈ 6.994).
"""

from __future__ import annotations

import math
from typing import Callable

import torch
from torch import nn

from vgcourse.progress import progress_bar

from .sde import SDE, VPSDE, ScoreFn, SubVPSDE, broadcast

OFFSET_8BIT_BITS = math.log2(127.5)  # -log2 of the bin width 2/255 of 8-bit data mapped to [-1, 1]


def _noise(x: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
    return torch.randn(x.shape, generator=generator, device=x.device, dtype=x.dtype)


def _times(x: torch.Tensor, t: float) -> torch.Tensor:
    """t as a (B,) tensor, float32 at least (bf16 would round 0.999 to 1.0)."""
    dtype = torch.float64 if x.dtype == torch.float64 else torch.float32
    return torch.full((x.shape[0],), float(t), device=x.device, dtype=dtype)


# ----------------------------------------------------------------------------------------------- predictors
def euler_maruyama_step(sde: SDE, score_fn: ScoreFn, x: torch.Tensor, t: torch.Tensor, dt: float,
                        generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """One Euler–Maruyama step of the reverse-time SDE from t to t - dt: returns (x, x_mean), each (B, ...).

    x_mean = x - [f - g² s] dt, x = x_mean + g sqrt(dt) z (Song et al. 2021, eq. (6) discretised).
    Inputs: x (B, ...), t (B,), dt > 0.
    """
    drift, diffusion = sde.reverse(score_fn).sde(x, t)
    x_mean = x - drift * dt
    return x_mean + broadcast(diffusion, x) * math.sqrt(dt) * _noise(x, generator), x_mean


def reverse_diffusion_step(sde: SDE, score_fn: ScoreFn, x: torch.Tensor, t: torch.Tensor, dt: float,
                           generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """One reverse-diffusion step: the forward chain's discretisation run backwards (Song et al. 2021, App. E).

    x_mean = x - f_i + G_i² s(x, t), x = x_mean + G_i z. For the VP SDE this is DDPM-like ancestral sampling.
    Inputs: x (B, ...), t (B,), dt > 0. Returns (x, x_mean).
    """
    f, G = sde.reverse(score_fn).discretize(x, t, dt)
    x_mean = x - f
    return x_mean + broadcast(G, x) * _noise(x, generator), x_mean


# ------------------------------------------------------------------------------------------------ corrector
def langevin_step(sde: SDE, score_fn: ScoreFn, x: torch.Tensor, t: torch.Tensor, dt: float, snr: float = 0.16,
                  generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """One step of Langevin MCMC at fixed t with step ε = 2 α (r ||z|| / ||s||)² (Song et al. 2021, Alg. 4-5).

    r = snr; α = 1 - β_i = ᾱ(t) / ᾱ(t - dt) for the VP and sub-VP SDEs (Alg. 5; ≈ 1 - β(t) dt, but never below 0
    for coarse steps), α = 1 for the VE SDE (Alg. 4). The norms are
    per-sample norms averaged over the batch (as in the authors' code): per-sample ratios are heavy-tailed in low
    dimension, where ||s|| can be near 0. x_mean = x + ε s(x, t), x = x_mean + sqrt(2ε) z.
    Inputs: x (B, ...), t (B,). Returns (x, x_mean).
    """
    score = score_fn(x, t)
    z = _noise(x, generator)
    if isinstance(sde, (VPSDE, SubVPSDE)):  # α_i = 1 - β_i of the VP chain (VPSDE.discretize), (B,)
        alpha = torch.exp(2 * (sde.log_mean_coeff(t) - sde.log_mean_coeff((t - dt).clamp(min=0.0))))
    else:
        alpha = torch.ones_like(t)
    grad_norm = score.flatten(1).norm(dim=1).mean().clamp_min(1e-12)
    noise_norm = z.flatten(1).norm(dim=1).mean()
    step = 2 * alpha * (snr * noise_norm / grad_norm) ** 2  # Alg. 4, 5: ε_i, (B,)
    x_mean = x + broadcast(step, x) * score
    return x_mean + broadcast(torch.sqrt(2 * step), x) * z, x_mean


PREDICTORS: dict[str, Callable] = {"euler_maruyama": euler_maruyama_step, "reverse_diffusion": reverse_diffusion_step}
CORRECTORS: dict[str, Callable] = {"langevin": langevin_step}


class _Counted:
    """A score function that counts its evaluations (NFE)."""

    def __init__(self, score_fn: ScoreFn):
        self.score_fn, self.nfe = score_fn, 0

    def __call__(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        self.nfe += 1
        return self.score_fn(x, t)


def _resolve(step: str | Callable | None, table: dict[str, Callable], kind: str) -> Callable | None:
    if step is None or callable(step):
        return step
    if step not in table:
        raise ValueError(f"expected {kind} to be one of {sorted(table)}, a callable or None, got {step!r}")
    return table[step]


@torch.no_grad()
def pc_sample(sde: SDE, score_fn: ScoreFn, shape: tuple[int, ...], steps: int = 1000,
              predictor: str | Callable | None = "reverse_diffusion", corrector: str | Callable | None = "langevin",
              snr: float = 0.16, n_corrector: int = 1, generator: torch.Generator | None = None,
              progress: bool = False, eps: float = 1e-3, device: torch.device | str | None = None,
              x_init: torch.Tensor | None = None) -> tuple[torch.Tensor, int]:
    """Predictor-corrector sampling from the prior at T down to eps (Song et al. 2021, Alg. 1).

    At each of ``steps`` times t_0 = T > ... > t_{steps-1} (t_steps = eps): ``n_corrector`` corrector steps at
    t_i, then one predictor step to t_{i+1}. The last step returns its noise-free mean. predictor=None gives
    corrector-only sampling, corrector=None predictor-only. Returns samples (shape) and NFE.
    """
    if steps < 1:
        raise ValueError(f"expected steps >= 1, got {steps}")
    predictor, corrector = _resolve(predictor, PREDICTORS, "predictor"), _resolve(corrector, CORRECTORS, "corrector")
    counted = _Counted(score_fn)
    x = sde.prior_sampling(shape, generator, device) if x_init is None else x_init
    grid = torch.linspace(sde.T, eps, steps + 1).tolist()
    loop = range(steps)
    if progress:
        loop = progress_bar(loop, desc="pc_sample")
    x_mean = x
    for i in loop:
        t, dt = _times(x, grid[i]), grid[i] - grid[i + 1]
        for _ in range(n_corrector if corrector is not None else 0):
            x, x_mean = corrector(sde, counted, x, t, dt, snr=snr, generator=generator)
        if predictor is not None:
            x, x_mean = predictor(sde, counted, x, t, dt, generator=generator)
    return x_mean, counted.nfe


# ----------------------------------------------------------------------------------- Dormand–Prince RK45
# Butcher tableau of Dormand & Prince (1980): nodes c, stages a, 5th-order weights b5 and embedded 4th-order b4.
_C = [0.0, 1 / 5, 3 / 10, 4 / 5, 8 / 9, 1.0, 1.0]
_A = [[], [1 / 5], [3 / 40, 9 / 40], [44 / 45, -56 / 15, 32 / 9],
      [19372 / 6561, -25360 / 2187, 64448 / 6561, -212 / 729],
      [9017 / 3168, -355 / 33, 46732 / 5247, 49 / 176, -5103 / 18656],
      [35 / 384, 0.0, 500 / 1113, 125 / 192, -2187 / 6784, 11 / 84]]
_B5 = [35 / 384, 0.0, 500 / 1113, 125 / 192, -2187 / 6784, 11 / 84, 0.0]
_B4 = [5179 / 57600, 0.0, 7571 / 16695, 393 / 640, -92097 / 339200, 187 / 2100, 1 / 40]
_E = [b5 - b4 for b5, b4 in zip(_B5, _B4)]


def _rms(v: torch.Tensor) -> float:
    return v.pow(2).mean().sqrt().item()


def dopri5(func: Callable[[float, torch.Tensor], torch.Tensor], y0: torch.Tensor, t0: float, t1: float,
           rtol: float = 1e-5, atol: float = 1e-5, max_steps: int = 100_000) -> tuple[torch.Tensor, int]:
    """Solve dy/dt = func(t, y) from t0 to t1 (either direction) with adaptive Dormand–Prince RK45.

    The whole tensor is one system: the error is the RMS over all entries of err / (atol + rtol max(|y|, |y_new|)),
    a step is accepted when it is <= 1, and the next step is h · clip(0.9 err^(-1/5), 0.2, 10) (Hairer et al.,
    "Solving ODEs I", II.4). The initial step follows Hairer's heuristic. Returns y(t1) and the number of calls.
    """
    direction = 1.0 if t1 >= t0 else -1.0
    span = abs(t1 - t0)
    nfe = 0

    def f(t: float, y: torch.Tensor) -> torch.Tensor:
        nonlocal nfe
        nfe += 1
        return func(t, y)

    if span == 0:
        return y0, 0
    k1 = f(t0, y0)
    scale = atol + rtol * y0.abs()
    d0, d1 = _rms(y0 / scale), _rms(k1 / scale)
    h0 = 1e-6 if d0 < 1e-5 or d1 < 1e-5 else 0.01 * d0 / d1
    h0 = min(h0, span)
    d2 = _rms((f(t0 + direction * h0, y0 + direction * h0 * k1) - k1) / scale) / h0
    h1 = max(1e-6, h0 * 1e-3) if max(d1, d2) <= 1e-15 else (0.01 / max(d1, d2)) ** (1 / 5)
    h = min(100 * h0, h1, span)

    t, y = t0, y0
    for _ in range(max_steps):
        remaining = abs(t1 - t)
        if remaining <= 1e-12 * max(1.0, span):
            return y, nfe
        h = min(h, remaining)
        hs = direction * h
        ks = [k1]
        for i in range(1, 7):
            y_stage = y + hs * sum(a * k for a, k in zip(_A[i], ks) if a != 0.0)
            ks.append(f(t + _C[i] * hs, y_stage))
        y_new = y_stage  # the 7th stage is evaluated at the 5th-order solution (first same as last)
        err = hs * sum(e * k for e, k in zip(_E, ks) if e != 0.0)
        err_norm = _rms(err / (atol + rtol * torch.maximum(y.abs(), y_new.abs())))
        if err_norm <= 1.0:
            t, y, k1 = t + hs, y_new, ks[6]
            factor = 10.0 if err_norm == 0 else min(10.0, max(0.2, 0.9 * err_norm ** (-1 / 5)))
        else:
            factor = max(0.2, 0.9 * err_norm ** (-1 / 5))
        h = h * factor
    raise RuntimeError(f"dopri5 did not reach t1={t1} in {max_steps} steps (stopped at t={t:.6g}, step {h:.3g})")


# ------------------------------------------------------------------------------------ probability-flow ODE
def _ode_drift(sde: SDE, score_fn: ScoreFn) -> Callable[[float, torch.Tensor], torch.Tensor]:
    rsde = sde.reverse(score_fn, probability_flow=True)
    return lambda t, x: rsde.sde(x, _times(x, t))[0]  # dx/dt = f - ½ g² s (eq. (13))


@torch.no_grad()
def ode_sample(sde: SDE, score_fn: ScoreFn, shape: tuple[int, ...], rtol: float = 1e-5, atol: float = 1e-5,
               eps: float = 1e-3, generator: torch.Generator | None = None, device: torch.device | str | None = None,
               z: torch.Tensor | None = None) -> tuple[torch.Tensor, int]:
    """Sample by solving the probability-flow ODE (Song et al. 2021, eq. (13)) from T to eps with RK45.

    z: optional prior samples (the latents); otherwise drawn from the prior. Returns samples (shape) and NFE.
    """
    x = sde.prior_sampling(shape, generator, device) if z is None else z
    return dopri5(_ode_drift(sde, score_fn), x, sde.T, eps, rtol, atol)


@torch.no_grad()
def ode_encode(sde: SDE, score_fn: ScoreFn, x: torch.Tensor, rtol: float = 1e-5, atol: float = 1e-5,
               eps: float = 1e-3) -> tuple[torch.Tensor, int]:
    """Encode data into the prior's latent space by solving the probability-flow ODE forwards, eps to T.

    Inputs: x (B, ...). Returns latents z (B, ...) and NFE; ``ode_sample(..., z=z, eps=eps)`` decodes them.
    """
    return dopri5(_ode_drift(sde, score_fn), x, eps, sde.T, rtol, atol)


# ------------------------------------------------------------------------------------------------ likelihood
def log_likelihood(sde: SDE, score_fn: ScoreFn, x: torch.Tensor, hutchinson: str | None = "rademacher",
                   generator: torch.Generator | None = None, eps: float = 1e-5, rtol: float = 1e-5,
                   atol: float = 1e-5) -> tuple[torch.Tensor, torch.Tensor, int]:
    """log p_eps(x) of the probability-flow ODE model by the instantaneous change of variables (App. D.2).

    log p_0(x(0)) = log p_T(x(T)) + ∫_0^T ∇·f̃(x(t), t) dt with f̃ = f - ½ g² s (eq. (39)); the divergence is
    estimated as E[vᵀ (∂f̃/∂x) v] (eq. (40)) with one fixed v per sample, 'rademacher' or 'gaussian'; None
    computes it exactly with D backward passes (small D only). Inputs: x (B, ...). Returns log p (B,) in nats,
    the latents z (B, ...) and NFE.
    """
    if hutchinson not in ("rademacher", "gaussian", None):
        raise ValueError(f"expected hutchinson in ('rademacher', 'gaussian', None), got {hutchinson!r}")
    B, D = x.shape[0], x[0].numel()
    drift_fn = _ode_drift(sde, score_fn)
    if hutchinson == "gaussian":
        v = _noise(x, generator)
    elif hutchinson == "rademacher":
        v = torch.randint(0, 2, x.shape, generator=generator, device=x.device).to(x.dtype) * 2 - 1

    def augmented(t: float, y: torch.Tensor) -> torch.Tensor:
        with torch.enable_grad():
            xt = y[:, :D].reshape(x.shape).detach().requires_grad_(True)  # (B, ...)
            drift = drift_fn(t, xt)                                       # (B, ...)
            if hutchinson is None:
                flat = drift.flatten(1)                                   # (B, D)
                div = sum(torch.autograd.grad(flat[:, j].sum(), xt, retain_graph=True)[0].flatten(1)[:, j]
                          for j in range(D))
            else:
                vjp = torch.autograd.grad((drift * v).sum(), xt)[0]       # vᵀ ∂f̃/∂x, (B, ...)
                div = (vjp * v).flatten(1).sum(1)                         # eq. (40)
        return torch.cat([drift.detach().flatten(1), div.detach()[:, None]], dim=1)  # (B, D + 1)

    y0 = torch.cat([x.detach().flatten(1), x.new_zeros(B, 1)], dim=1)  # (B, D + 1): state and ∫ div
    y1, nfe = dopri5(augmented, y0, eps, sde.T, rtol, atol)
    z = y1[:, :D].reshape(x.shape)
    return sde.prior_logp(z) + y1[:, D], z, nfe  # eq. (39)


def likelihood_bpd(sde: SDE, score_fn: ScoreFn, x: torch.Tensor, hutchinson: str | None = "rademacher",
                   generator: torch.Generator | None = None, offset_bits: float = OFFSET_8BIT_BITS,
                   eps: float = 1e-5, rtol: float = 1e-5, atol: float = 1e-5) -> torch.Tensor:
    """Bits per dimension of x (B, ...) under the probability-flow ODE model: -log2 p(x) / D + offset_bits, (B,).

    offset_bits = log2(127.5) for 8-bit data in [-1, 1], dequantised with ``dequantize`` (module docstring);
    pass 0.0 for the continuous density's bits/dim.
    """
    logp, _, _ = log_likelihood(sde, score_fn, x, hutchinson, generator, eps, rtol, atol)
    return -logp / (x[0].numel() * math.log(2)) + offset_bits


def dequantize(x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    """Spread 8-bit values k/127.5 - 1 uniformly over their bins of width 2/255: x + U(-1/255, 1/255), same shape."""
    u = torch.rand(x.shape, generator=generator, device=x.device, dtype=x.dtype)
    return x + (u - 0.5) * (2 / 255)


# --------------------------------------------------------------------------------- networks -> score_fn
def score_from_eps(eps_model: Callable[[torch.Tensor, torch.Tensor], torch.Tensor], sde: SDE) -> ScoreFn:
    """Turn an ε-prediction network ``eps_model(x, t)`` (continuous t (B,)) into a score: s = -ε / std(t).

    From x_t = mean + std ε, the score of the kernel is -(x_t - mean) / std² = -ε / std (Song et al. 2021, App. B).
    """
    def score_fn(x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        _, std = sde.marginal_prob(x, t)
        return -eps_model(x, t) / broadcast(std, x)
    return score_fn


class ContinuousTimeWrapper(nn.Module):
    """A network with a discrete-timestep input used as a model of continuous t ∈ [0, 1]: calls net(x, t·scale, ...).

    With scale=999 a DDPM U-Net trained on indices 0..999 sees index ≈ t·999 (index i has ᾱ_i ≈ ᾱ((i + 1)/1000) of
    the VP SDE). The U-Net's timestep embedding must accept float timesteps. Extra arguments (cond) pass through.
    Inputs: x (B, ...), t (B,) in [0, 1].
    """

    def __init__(self, net: nn.Module, scale: float = 999.0):
        super().__init__()
        self.net, self.scale = net, float(scale)

    def forward(self, x: torch.Tensor, t: torch.Tensor, *args, **kwargs) -> torch.Tensor:
        return self.net(x, t * self.scale, *args, **kwargs)
