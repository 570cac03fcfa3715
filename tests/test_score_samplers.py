"""Tests of the score-based samplers, likelihood and NCSN pieces driven by ANALYTIC scores (no training).

Data are Gaussian N(μ, Σ) in d = 4. Under each SDE the marginal at time t is N(a(t) μ, a(t)² Σ + std(t)² I) with
(a, std) from ``marginal_prob``, so the true score is -(a² Σ + std² I)^{-1} (x - a μ) in closed form.

Tolerances from the sample size: with n samples, a mean has standard error s/√n and a variance ratio
v̂/s² has standard error √(2/n); we allow 5 standard errors (n = 10,000: 5% of s for means, 7% for variances).
Seeds are fixed, so the tests are deterministic.
"""

import math

import pytest
import torch

from vgcourse.diffusion.ncsn import annealed_langevin, dsm_loss, geometric_sigmas
from vgcourse.diffusion.samplers import (
    OFFSET_8BIT_BITS,
    ContinuousTimeWrapper,
    dopri5,
    likelihood_bpd,
    log_likelihood,
    ode_encode,
    ode_sample,
    pc_sample,
    score_from_eps,
)
from vgcourse.diffusion.sde import SDE, VESDE, VPSDE, SubVPSDE

MU = torch.tensor([0.5, -1.0, 0.0, 1.5], dtype=torch.float64)
S = torch.tensor([0.5, 1.0, 0.3, 0.8], dtype=torch.float64)   # per-dimension standard deviations (Σ diagonal)
N_SAMPLES = 10_000
SDES = [VPSDE(), SubVPSDE(), VESDE()]
IDS = ["vp", "subvp", "ve"]


def coefficients(sde: SDE, t: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean coefficient a(t) and noise std(t), each (B, 1)."""
    a, std = sde.marginal_prob(torch.ones(t.shape[0], 1, dtype=t.dtype), t)
    return a, std[:, None]


def gaussian_score(sde: SDE, cov: torch.Tensor | None = None):
    """The exact score of p_t for data N(MU, cov); cov=None means diag(S²) (computed elementwise, faster)."""
    def score_fn(x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        a, std = coefficients(sde, t)                                     # (B, 1), (B, 1)
        mu, s = MU.to(x.dtype), S.to(x.dtype)
        if cov is None:
            return -(x - a * mu) / (a ** 2 * s ** 2 + std ** 2)           # (B, 4)
        V = a[:, :, None] ** 2 * cov + std[:, :, None] ** 2 * torch.eye(4, dtype=x.dtype)  # (B, 4, 4)
        return -torch.linalg.solve(V, (x - a * mu)[..., None])[..., 0]   # (B, 4)
    return score_fn


def assert_moments(x: torch.Tensor, var_slack: float = 0.0):
    n = x.shape[0]
    z_mean = (x.mean(0) - MU) / (S / math.sqrt(n))
    assert (z_mean.abs() < 5).all(), f"means off by {z_mean.tolist()} standard errors"
    ratio = x.var(0) / S ** 2
    assert ((ratio - 1).abs() < 5 * math.sqrt(2 / n) + var_slack).all(), f"variance ratios {ratio.tolist()}"


@pytest.mark.parametrize("predictor,corrector", [("euler_maruyama", None), ("reverse_diffusion", None),
                                                 ("reverse_diffusion", "langevin")], ids=["em", "rd", "pc"])
@pytest.mark.parametrize("sde", SDES, ids=IDS)
def test_sde_samplers_reproduce_gaussian_data(sde: SDE, predictor: str, corrector: str | None):
    # snr = 0.05: in d = 4 Langevin's discretisation bias on the variance is about ε / (2 v) ≈ r² d / Σ(v/v_j) < 1%
    steps = 500
    x, nfe = pc_sample(sde, gaussian_score(sde), (N_SAMPLES, 4), steps=steps, predictor=predictor,
                       corrector=corrector, snr=0.05, generator=torch.Generator().manual_seed(0))
    assert nfe == steps * (2 if corrector else 1)
    assert_moments(x.double())


@pytest.mark.parametrize("corrector", [None, "langevin"])
def test_vp_reverse_diffusion_with_few_steps_is_finite_and_improves(corrector: str | None):
    # Below 20 steps β(t) dt > 1: the VP chain's step and the corrector's α = 1 - β_i used to give NaN. Now coarse
    # steps give coarse but finite samples, and the error shrinks as the steps grow.
    sde, errors = VPSDE(), []
    for steps in (5, 10, 50):
        x, nfe = pc_sample(sde, gaussian_score(sde), (4000, 4), steps=steps, predictor="reverse_diffusion",
                           corrector=corrector, generator=torch.Generator().manual_seed(0))
        assert torch.isfinite(x).all()
        errors.append(((x.double().mean(0) - MU).abs().max() + (x.double().std(0) / S - 1).abs().max()).item())
    assert errors[0] > errors[1] > errors[2] and errors[2] < 0.1, errors


def test_pc_sample_rejects_unknown_predictor():
    with pytest.raises(ValueError, match=r"expected predictor to be one of \['euler_maruyama', 'reverse_diffusion'\]"):
        pc_sample(VPSDE(), gaussian_score(VPSDE()), (2, 4), steps=2, predictor="heun")


@pytest.mark.parametrize("sde", SDES, ids=IDS)
def test_ode_sample_follows_the_analytic_flow(sde: SDE):
    # For diagonal Gaussian data the probability-flow ODE keeps (x - a μ) / sqrt(a² s² + std²) constant per dimension,
    # so each latent z maps to a known sample: a tight per-sample check of the RK45 solver and of eq. (13).
    eps = 1e-3
    z = sde.prior_sampling((N_SAMPLES, 4), torch.Generator().manual_seed(0)).double()
    x, nfe = ode_sample(sde, gaussian_score(sde), (N_SAMPLES, 4), z=z, eps=eps)
    (a1, s1), (a0, s0) = [coefficients(sde, torch.tensor([t], dtype=torch.float64)) for t in (1.0, eps)]
    expected = a0 * MU + (z - a1 * MU) * torch.sqrt((a0 ** 2 * S ** 2 + s0 ** 2) / (a1 ** 2 * S ** 2 + s1 ** 2))
    torch.testing.assert_close(x, expected, rtol=0, atol=1e-3)
    assert 20 < nfe < 500
    if not isinstance(sde, VESDE):  # VE: the N(0, σ_max²) prior ignores μ, a bias of μ s / σ_max in the mean
        assert_moments(x)


@pytest.mark.parametrize("sde", SDES, ids=IDS)
def test_ode_encode_decode_round_trip(sde: SDE):
    x = (MU + S * torch.randn(1000, 4, generator=torch.Generator().manual_seed(1), dtype=torch.float64))
    score_fn = gaussian_score(sde)
    z, nfe_enc = ode_encode(sde, score_fn, x, rtol=1e-7, atol=1e-7)
    x_back, nfe_dec = ode_sample(sde, score_fn, x.shape, rtol=1e-7, atol=1e-7, z=z)
    torch.testing.assert_close(x_back, x, rtol=0, atol=1e-5)
    assert z.std().item() > (40 if isinstance(sde, VESDE) else 0.9)  # z really is in the prior's scale
    assert nfe_enc > 20 and nfe_dec > 20


def test_dopri5_solves_a_known_ode_both_ways():
    y0 = torch.tensor([1.0, 2.0], dtype=torch.float64)
    func = lambda t, y: -y * torch.tensor([1.0, 3.0], dtype=torch.float64) * math.cos(t)  # noqa: E731
    y1, nfe = dopri5(func, y0, 0.0, 2.0, rtol=1e-8, atol=1e-8)
    torch.testing.assert_close(y1, y0 * torch.exp(-torch.tensor([1.0, 3.0], dtype=torch.float64) * math.sin(2.0)),
                               rtol=1e-6, atol=0)
    y_back, _ = dopri5(func, y1, 2.0, 0.0, rtol=1e-8, atol=1e-8)
    torch.testing.assert_close(y_back, y0, rtol=1e-6, atol=0)
    assert nfe < 1000


def rotated_cov() -> torch.Tensor:
    """A full covariance R diag(S²) Rᵀ, so that the Jacobian of the ODE drift is not diagonal."""
    q, _ = torch.linalg.qr(torch.randn(4, 4, generator=torch.Generator().manual_seed(3), dtype=torch.float64))
    return q @ torch.diag(S ** 2) @ q.T


def correlated_data(cov: torch.Tensor, n: int) -> torch.Tensor:
    """n samples of N(MU, cov), from a fixed seed."""
    white = torch.randn(n, 4, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    return MU + white @ torch.linalg.cholesky(cov).T


def analytic_bpd(sde: SDE, x: torch.Tensor, cov: torch.Tensor, eps: float) -> torch.Tensor:
    a, std = coefficients(sde, torch.tensor([eps], dtype=torch.float64))
    dist = torch.distributions.MultivariateNormal(a[0] * MU, a[0] ** 2 * cov + std[0] ** 2 * torch.eye(4))
    return -dist.log_prob(x) / (4 * math.log(2))


def prior_mismatch(sde: SDE, z: torch.Tensor, cov: torch.Tensor) -> torch.Tensor:
    """log p_T(z) - log prior(z): the true marginal at T is not exactly the model's prior N(0, I) or N(0, σ_max² I)."""
    a, std = coefficients(sde, torch.tensor([sde.T], dtype=torch.float64))
    p_T = torch.distributions.MultivariateNormal(a[0] * MU, a[0] ** 2 * cov + std[0] ** 2 * torch.eye(4))
    return p_T.log_prob(z) - sde.prior_logp(z)


@pytest.mark.parametrize("sde", SDES, ids=IDS)
def test_likelihood_with_exact_divergence_matches_analytic(sde: SDE):
    cov, eps = rotated_cov(), 1e-5
    x = correlated_data(cov, 200)
    logp, z, nfe = log_likelihood(sde, gaussian_score(sde, cov), x, hutchinson=None, eps=eps)
    exact = -analytic_bpd(sde, x, cov, eps) * 4 * math.log(2)
    # eq. (39) with the true p_T in place of the prior is exact up to the solver's tolerance (rtol = atol = 1e-5);
    # the prior mismatch itself is a few hundredths of a nat (up to 0.1 for VE).
    torch.testing.assert_close(logp + prior_mismatch(sde, z, cov), exact, rtol=0, atol=1e-3)
    bpd = likelihood_bpd(sde, gaussian_score(sde, cov), x, hutchinson=None, offset_bits=0.0, eps=eps)
    torch.testing.assert_close(bpd, -logp / (4 * math.log(2)))
    assert nfe < 500


@pytest.mark.parametrize("estimator", ["rademacher", "gaussian"])
def test_likelihood_hutchinson_is_unbiased(estimator: str):
    sde, cov, eps, n = VPSDE(), rotated_cov(), 1e-5, 1000
    x = correlated_data(cov, n)
    g = torch.Generator().manual_seed(0)
    logp, z, _ = log_likelihood(sde, gaussian_score(sde, cov), x, hutchinson=estimator, generator=g, eps=eps)
    error = logp + prior_mismatch(sde, z, cov) + analytic_bpd(sde, x, cov, eps) * 4 * math.log(2)
    assert error.std() > 1e-2                                   # a genuinely stochastic estimate ...
    assert abs(error.mean()) < 5 * error.std() / math.sqrt(n)   # ... whose average is right
    # the default offset is 8-bit data in [-1, 1]: + log2(127.5) bits per dimension
    bpd = likelihood_bpd(sde, gaussian_score(sde, cov), x, hutchinson=estimator, generator=g, eps=eps)
    expected = analytic_bpd(sde, x, cov, eps).mean() + OFFSET_8BIT_BITS
    assert abs(bpd.mean() - expected) < (5 * error.std() / math.sqrt(n) + 0.05) / (4 * math.log(2))


def test_score_from_eps_and_continuous_time_wrapper():
    sde = VPSDE()
    score_fn = gaussian_score(sde)
    x, t = torch.randn(8, 4, dtype=torch.float64), torch.linspace(0.01, 1.0, 8, dtype=torch.float64)
    eps_model = lambda x, t: -coefficients(sde, t)[1] * score_fn(x, t)  # noqa: E731, ε = -std · score
    torch.testing.assert_close(score_from_eps(eps_model, sde)(x, t), score_fn(x, t))

    class Recorder(torch.nn.Module):
        def forward(self, x, t, cond=None):
            self.t, self.cond = t, cond
            return x
    net = Recorder()
    ContinuousTimeWrapper(net, scale=999)(x, t, "label")
    torch.testing.assert_close(net.t, t * 999)
    assert net.cond == "label"


# --------------------------------------------------------------------------------------------------------- NCSN
def test_geometric_sigmas():
    sigmas = geometric_sigmas(0.01, 1.0, 10)
    torch.testing.assert_close(sigmas[[0, -1]], torch.tensor([1.0, 0.01]))
    ratios = sigmas[1:] / sigmas[:-1]
    torch.testing.assert_close(ratios, torch.full((9,), 0.01 ** (1 / 9)))
    with pytest.raises(ValueError, match="expected 0 < sigma_min < sigma_max"):
        geometric_sigmas(1.0, 0.1, 10)


def ncsn_score(sigmas: torch.Tensor):
    """Exact score of Gaussian data perturbed by N(0, σ_i² I): -(x - μ) / (s² + σ_i²)."""
    return lambda x, idx: -(x - MU.to(x.dtype)) / (S.to(x.dtype) ** 2 + sigmas[idx].to(x.dtype)[:, None] ** 2)


def test_dsm_loss_is_minimised_by_the_true_score():
    # With the exact score the loss is its minimum ½ mean_i Σ_j s_j² / (s_j² + σ_i²) (the irreducible part of eq. (5)).
    sigmas = geometric_sigmas(0.01, 3.0, 10).double()
    x = MU + S * torch.randn(N_SAMPLES, 4, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    g = torch.Generator().manual_seed(1)
    loss = dsm_loss(ncsn_score(sigmas), x, sigmas, g)
    minimum = 0.5 * (S ** 2 / (S ** 2 + sigmas[:, None] ** 2)).sum(1).mean()
    assert abs(loss.item() - minimum.item()) < 0.05 * minimum.item()  # per-sample terms: std ≈ mean, n = 10,000
    # a score scaled by 0.8 costs ½ (0.2)² E[σ² ||s||²] = ½ · 0.04 · mean_i Σ_j σ_i² / (s_j² + σ_i²) more (same noise)
    worse = dsm_loss(lambda x, idx: 0.8 * ncsn_score(sigmas)(x, idx), x, sigmas, torch.Generator().manual_seed(1))
    excess = 0.5 * 0.04 * (sigmas[:, None] ** 2 / (S ** 2 + sigmas[:, None] ** 2)).sum(1).mean()
    assert abs((worse - loss).item() - excess.item()) < 0.1 * excess.item()
    with pytest.raises(ValueError, match="expected sigmas in decreasing order"):
        dsm_loss(ncsn_score(sigmas), x, sigmas.flip(0))


def test_annealed_langevin_reproduces_gaussian_data():
    # step_lr = 1e-4 (stable below 2 σ_L² = 2e-4): with the paper's 2e-5 the small levels mix too slowly in d = 4.
    sigmas = geometric_sigmas(0.01, 3.0, 10).double()
    x = annealed_langevin(ncsn_score(sigmas), (N_SAMPLES, 4), sigmas, n_steps_each=100, step_lr=1e-4,
                          generator=torch.Generator().manual_seed(0))
    assert_moments(x.double())
