"""Exercises on DDPM: the forward process in closed form, one DDIM step, the cosine schedule."""

from __future__ import annotations

import math

import torch

from vgcourse.diffusion import cosine_schedule, linear_schedule
from vgcourse.exercises import Wrong, exercise


def _shape(x: object) -> str:
    return str(tuple(x.shape)) if isinstance(x, torch.Tensor) else type(x).__name__


# ---- 1. q_sample ----------------------------------------------------------------------------------------------
def q_sample_solution(x0: torch.Tensor, t: torch.Tensor, noise: torch.Tensor,
                      alphas_cumprod: torch.Tensor) -> torch.Tensor:
    """x_t = √ᾱ_t x_0 + √(1-ᾱ_t) ε for videos x0 (B, C, T, H, W), timesteps t (B,) and ᾱ (T_diffusion,)."""
    abar = alphas_cumprod[t].reshape(-1, 1, 1, 1, 1)  # (B, 1, 1, 1, 1)
    return abar.sqrt() * x0 + (1 - abar).sqrt() * noise  # Ho et al. 2020, eq. (4)


@exercise("q_sample", "Noise clean videos x0 to step t in one go: x_t = √ᾱ_t x_0 + √(1-ᾱ_t) ε (Ho et al. 2020, "
          "eq. (4)), given alphas_cumprod = ᾱ of shape (T_diffusion,).", q_sample_solution)
def check_q_sample(answer) -> None:
    g = torch.Generator().manual_seed(0)
    schedule = linear_schedule(1000)
    x0 = torch.rand(4, 1, 3, 8, 8, generator=g) * 2 - 1
    noise = torch.randn(x0.shape, generator=g)
    t = torch.tensor([0, 10, 500, 999])
    out = answer(x0.clone(), t.clone(), noise.clone(), schedule.alphas_cumprod.clone())
    want = schedule.q_sample(x0, t, noise)
    if not isinstance(out, torch.Tensor) or out.shape != x0.shape:
        raise Wrong(f"expected x_t of shape {tuple(x0.shape)} like x0, got {_shape(out)}")
    if torch.allclose(out, want, atol=1e-5):
        return
    abar = schedule.alphas_cumprod[t].reshape(-1, 1, 1, 1, 1)
    alpha = schedule.alphas[t].reshape(-1, 1, 1, 1, 1)
    if torch.allclose(out, alpha.sqrt() * x0 + (1 - alpha).sqrt() * noise, atol=1e-5):
        raise Wrong("that is one noising step with α_t; the closed form uses the product ᾱ_t = α_1 ⋯ α_t")
    if torch.allclose(out, abar * x0 + (1 - abar) * noise, atol=1e-5):
        raise Wrong("the coefficients are square roots: √ᾱ_t for x_0 and √(1-ᾱ_t) for ε, so that Var(x_t) stays 1")
    if torch.allclose(out[0], want[0], atol=1e-5) and not torch.allclose(out[1:], want[1:], atol=1e-5):
        raise Wrong("clip 0 is right, the others are not: use ᾱ at each clip's own t, shaped (B, 1, 1, 1, 1)")
    err = (out - want).abs().max().item()
    raise Wrong(f"x_t differs from √ᾱ_t x_0 + √(1-ᾱ_t) ε by up to {err:.3g}")


# ---- 2. one DDIM step -----------------------------------------------------------------------------------------
def ddim_step_solution(x_t: torch.Tensor, eps: torch.Tensor, abar_t: float, abar_prev: float) -> torch.Tensor:
    """One deterministic DDIM step (η = 0) from noise level ᾱ_t to ᾱ_prev, given the model's ε (Song et al. 2021)."""
    x0 = (x_t - math.sqrt(1 - abar_t) * eps) / math.sqrt(abar_t)  # the "predicted x_0" of eq. (12)
    return math.sqrt(abar_prev) * x0 + math.sqrt(1 - abar_prev) * eps  # eq. (12) with σ_t = 0


@exercise("ddim_step", "One DDIM step with η = 0 (Song et al. 2021, eq. (12)): predict x_0 from x_t and ε, then "
          "re-noise it to level ᾱ_prev along the same ε.", ddim_step_solution)
def check_ddim_step(answer) -> None:
    g = torch.Generator().manual_seed(1)
    x0 = torch.rand(2, 1, 4, 8, 8, generator=g) * 2 - 1
    eps = torch.randn(x0.shape, generator=g)
    for abar_t, abar_prev in [(0.3, 0.7), (0.01, 0.2), (0.5, 1.0)]:
        x_t = math.sqrt(abar_t) * x0 + math.sqrt(1 - abar_t) * eps  # a point that ε and x0 explain exactly
        want = math.sqrt(abar_prev) * x0 + math.sqrt(1 - abar_prev) * eps
        out = answer(x_t.clone(), eps.clone(), abar_t, abar_prev)
        if not isinstance(out, torch.Tensor) or out.shape != x_t.shape:
            raise Wrong(f"expected x_prev of shape {tuple(x_t.shape)} like x_t, got {_shape(out)}")
        if torch.allclose(out, want, atol=1e-4):
            continue
        if abar_prev == 1.0:
            raise Wrong("at ᾱ_prev = 1 (the last step) a DDIM step must return the predicted x_0 itself")
        if torch.allclose(out, x0, atol=1e-4):
            raise Wrong("you returned the predicted x_0; re-noise it: √ᾱ_prev x̂_0 + √(1-ᾱ_prev) ε")
        raise Wrong(f"for ᾱ_t={abar_t}, ᾱ_prev={abar_prev} the step is off by up to "
                    f"{(out - want).abs().max().item():.3g}: x̂_0 = (x_t - √(1-ᾱ_t) ε) / √ᾱ_t, "
                    "then x_prev = √ᾱ_prev x̂_0 + √(1-ᾱ_prev) ε")


# ---- 3. the cosine schedule -----------------------------------------------------------------------------------
def cosine_betas_solution(T: int, s: float = 0.008, max_beta: float = 0.999) -> torch.Tensor:
    """Betas (T,) of the cosine schedule: ᾱ_t = f(t)/f(0), f(t) = cos²((t/T + s)/(1 + s) · π/2), clipped."""
    steps = torch.arange(T + 1, dtype=torch.float64)
    f = torch.cos((steps / T + s) / (1 + s) * math.pi / 2) ** 2  # Nichol & Dhariwal 2021, eq. (17)
    abar = f / f[0]
    return (1 - abar[1:] / abar[:-1]).clamp(max=max_beta)  # β_t = 1 - ᾱ_t / ᾱ_{t-1}


@exercise("cosine_betas", "The betas (T,) of the cosine schedule (Nichol & Dhariwal 2021, eq. (17)): "
          "ᾱ_t = f(t)/f(0), f(t) = cos²((t/T + s)/(1 + s) · π/2), β_t = 1 - ᾱ_t/ᾱ_{t-1} clipped at 0.999.",
          cosine_betas_solution)
def check_cosine_betas(answer) -> None:
    for T in (10, 1000):
        out = torch.as_tensor(answer(T), dtype=torch.float64)
        want = cosine_schedule(T).betas.double()
        if out.shape != (T,):
            raise Wrong(f"expected betas of shape ({T},) for T={T}, got {tuple(out.shape)}")
        if torch.allclose(out, want, rtol=1e-4, atol=1e-6):
            continue
        if out[0] > 0.5 and out[-1] < 0.5:
            raise Wrong("those fall from 1 to 0 like ᾱ_t; the betas are β_t = 1 - ᾱ_t / ᾱ_{t-1}")
        if out.max() > 0.9991:
            raise Wrong(f"the last beta is {out.max().item():.4f}: clip the betas at max_beta = 0.999, "
                        "or the last step divides by ᾱ = 0")
        if torch.allclose(out[:-1], want[:-1], rtol=1e-3, atol=1e-6):
            raise Wrong("all betas but the last match: check the clipping at 0.999")
        raise Wrong(f"for T={T} the betas differ by up to {(out - want).abs().max().item():.3g}; f(t) uses "
                    "(t/T + s)/(1 + s) · π/2 with s = 0.008, and ᾱ_t = f(t)/f(0) for t = 0..T")
