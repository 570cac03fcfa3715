"""Tests of the forward SDEs (vgcourse.diffusion.sde) against closed forms: DDPM's ᾱ, the moment ODE of a linear
SDE, the priors, the reverse-time drift, the discretised chains and the errors for bad times."""

import math

import pytest
import torch

from vgcourse.diffusion.sde import SDE, VESDE, VPSDE, SubVPSDE

SDES = [VPSDE(), SubVPSDE(), VESDE()]
IDS = ["vp", "subvp", "ve"]


def test_vp_marginal_matches_ddpm_linear_schedule():
    # DDPM's linear schedule β_i from 1e-4 to 0.02 over N = 1000 steps is the VP SDE with β(t) ∈ [0.1, 20]:
    # at t_i = i / N the mean coefficient is sqrt(ᾱ_i) and the std sqrt(1 - ᾱ_i), up to O(1/N) differences.
    N = 1000
    betas = torch.linspace(1e-4, 0.02, N, dtype=torch.float64)
    alpha_bar = torch.cumprod(1 - betas, 0)                    # ᾱ_1 .. ᾱ_N
    t = torch.arange(1, N + 1, dtype=torch.float64) / N        # t_i = i / N
    mean, std = VPSDE(0.1, 20.0).marginal_prob(torch.ones(N, 1, dtype=torch.float64), t)
    assert (mean[:, 0] - alpha_bar.sqrt()).abs().max() < 2e-3
    assert (std - (1 - alpha_bar).sqrt()).abs().max() < 2e-3
    # ... and the match is not a coincidence of loose tolerances: a schedule ending at 0.04 is far off
    mean2, _ = VPSDE(0.1, 40.0).marginal_prob(torch.ones(N, 1, dtype=torch.float64), t)
    assert (mean2[:, 0] - alpha_bar.sqrt()).abs().max() > 0.1


@pytest.mark.parametrize("sde", SDES, ids=IDS)
def test_marginal_prob_solves_the_moment_ode(sde: SDE):
    # For dx = f(t) x dt + g(t) dw, the kernel's mean coefficient a and std obey a' = f a and (std²)' = 2 f std² + g².
    t = torch.linspace(0.05, 0.95, 19, dtype=torch.float64)
    h = 1e-5
    ones = torch.ones(19, 1, dtype=torch.float64)
    a_hi, s_hi = sde.marginal_prob(ones, t + h)
    a_lo, s_lo = sde.marginal_prob(ones, t - h)
    a, std = sde.marginal_prob(ones, t)
    drift, g = sde.sde(ones, t)                           # drift at x = 1 is the linear coefficient f(t)
    f = drift[:, 0]
    torch.testing.assert_close((a_hi - a_lo)[:, 0] / (2 * h), f * a[:, 0], rtol=1e-5, atol=1e-6)
    torch.testing.assert_close((s_hi ** 2 - s_lo ** 2) / (2 * h), 2 * f * std ** 2 + g ** 2, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("shape", [(3, 4), (3, 1, 2, 4, 4)])
@pytest.mark.parametrize("sde", SDES, ids=IDS)
def test_shapes_for_any_data_layout(sde: SDE, shape: tuple[int, ...]):
    x = torch.randn(shape)
    t = torch.tensor([0.1, 0.5, 1.0])
    drift, g = sde.sde(x, t)
    mean, std = sde.marginal_prob(x, t)
    f, G = sde.discretize(x, t, 1e-3)
    assert drift.shape == mean.shape == f.shape == x.shape
    assert g.shape == std.shape == G.shape == (3,)
    assert sde.prior_sampling(shape, torch.Generator().manual_seed(0)).shape == shape
    assert sde.prior_logp(x).shape == (3,)


def test_ve_prior_std_equals_sigma_max():
    sde = VESDE(sigma_min=0.01, sigma_max=50.0)
    _, std = sde.marginal_prob(torch.zeros(2, 3), torch.tensor([1.0, 0.0]))
    torch.testing.assert_close(std, torch.tensor([50.0, 0.01]))
    z = sde.prior_sampling((20000, 4), torch.Generator().manual_seed(0))
    # the std of 80,000 N(0, 50²) draws has a standard error of 50 / sqrt(2 · 80,000) ≈ 0.125
    assert abs(z.std().item() - 50.0) < 5 * 0.125


@pytest.mark.parametrize("sde,sigma", [(VPSDE(), 1.0), (SubVPSDE(), 1.0), (VESDE(), 50.0)], ids=IDS)
def test_prior_logp_is_the_gaussian_log_density(sde: SDE, sigma: float):
    z = torch.randn(5, 2, 3, dtype=torch.float64) * sigma
    expected = torch.distributions.Normal(0.0, sigma).log_prob(z).flatten(1).sum(1)
    torch.testing.assert_close(sde.prior_logp(z), expected)


@pytest.mark.parametrize("sde", SDES, ids=IDS)
def test_reverse_drift_and_probability_flow(sde: SDE):
    x = torch.randn(4, 3)
    t = torch.full((4,), 0.3)
    score_fn = lambda x, t: -2.0 * x  # noqa: E731, any function of (x, t) will do
    drift, g = sde.sde(x, t)
    rev_drift, rev_g = sde.reverse(score_fn).sde(x, t)
    ode_drift, ode_g = sde.reverse(score_fn, probability_flow=True).sde(x, t)
    torch.testing.assert_close(rev_drift, drift - g[:, None] ** 2 * (-2.0 * x))          # eq. (6)
    torch.testing.assert_close(ode_drift, drift - 0.5 * g[:, None] ** 2 * (-2.0 * x))    # eq. (13)
    torch.testing.assert_close(rev_g, g)
    assert (ode_g == 0).all()


@pytest.mark.parametrize("sde,t_end", [(VPSDE(), 1.0), (SubVPSDE(), 0.5), (VESDE(), 0.5), (VESDE(), 1.0)],
                         ids=["vp", "subvp", "ve-half", "ve"])
def test_discretized_chain_reaches_the_marginal(sde: SDE, t_end: float):
    # Run the forward chain x_t = x_{t-dt} + f + G z from Gaussian data N(μ, s²) and compare its mean and variance
    # at t_end with the kernel's: a μ and a² s² + std². n = 4000 samples: 5 standard errors.
    g = torch.Generator().manual_seed(0)
    n, N = 4000, 500
    mu, s = torch.tensor([1.0, -0.5]), torch.tensor([0.5, 1.0])
    x = mu + s * torch.randn(n, 2, generator=g)
    dt = t_end / N
    for i in range(1, N + 1):
        f, G = sde.discretize(x, torch.full((n,), i * dt), dt)
        x = x + f + G[:, None] * torch.randn(n, 2, generator=g)
    a, std = sde.marginal_prob(torch.ones(1, 2), torch.tensor([t_end]))
    var = a[0] ** 2 * s ** 2 + std ** 2
    assert ((x.mean(0) - a[0] * mu).abs() < 5 * var.sqrt() / math.sqrt(n)).all()
    assert ((x.var(0) / var - 1).abs() < 5 * math.sqrt(2 / n)).all()


def test_errors_for_bad_t():
    sde, x = VPSDE(), torch.zeros(4, 3)
    with pytest.raises(ValueError, match=r"expected t of shape \(B,\) = \(4,\).*got \(4, 1\)"):
        sde.marginal_prob(x, torch.zeros(4, 1))
    with pytest.raises(ValueError, match=r"expected t in \[0, 1.0\], got values in \[0.5, 1.5\]"):
        sde.sde(x, torch.tensor([0.5, 1.0, 1.5, 0.7]))
    with pytest.raises(TypeError, match="expected t to be a float tensor.*got dtype torch.int64"):
        VESDE().marginal_prob(x, torch.ones(4, dtype=torch.long))
    with pytest.raises(TypeError, match=r"expected t to be a float tensor of shape \(4,\), got float"):
        SubVPSDE().sde(x, 0.5)


@pytest.mark.parametrize("N", [2, 5, 10, 1000])
def test_vp_discretize_stays_a_valid_chain_for_any_step_count(N: int):
    # β(t) dt passes 1 below 20 steps (β_max = 20): sqrt(1 - β_i) was NaN, and reverse diffusion with it. With
    # β_i = 1 - ᾱ(t)/ᾱ(t - dt) every β_i is in (0, 1) and the chain's ∏ (1 - β_i) is the marginal's ᾱ(1) exactly.
    sde = VPSDE()
    t = torch.arange(1, N + 1, dtype=torch.float64) / N
    f, G = sde.discretize(torch.ones(N, 1, dtype=torch.float64), t, 1.0 / N)
    beta_i = G ** 2
    assert ((beta_i > 0) & (beta_i < 1)).all()
    torch.testing.assert_close(f[:, 0], torch.sqrt(1 - beta_i) - 1)                 # f_i = (sqrt(1 - β_i) - 1) x
    torch.testing.assert_close(torch.prod(1 - beta_i), sde.alpha_bar(torch.tensor([1.0], dtype=torch.float64))[0])
    if N == 1000:  # the paper's β_i = β(t) dt, up to O(dt²)
        assert (beta_i - sde.beta(t) / N).abs().max() < (sde.beta_max / N) ** 2
