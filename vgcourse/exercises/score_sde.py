"""Exercises on score-based models and SDEs: the VE noise scale, a reverse-diffusion predictor step and
Hutchinson's divergence estimator (Song & Ermon 2019; Song et al. 2021)."""

from __future__ import annotations

import torch

from vgcourse.diffusion.samplers import reverse_diffusion_step
from vgcourse.diffusion.sde import SDE, VESDE, VPSDE, broadcast
from vgcourse.exercises import Wrong, exercise


def _shape(value: object) -> str:
    return str(tuple(value.shape)) if isinstance(value, torch.Tensor) else type(value).__name__


# ---- 1. the VE SDE's noise scale ------------------------------------------------------------------------------
def ve_marginal_std_solution(t: torch.Tensor, sigma_min: float, sigma_max: float) -> torch.Tensor:
    """σ(t) = σ_min (σ_max / σ_min)^t for t (B,) in [0, 1]: the std of the VE kernel p_0t
    (Song et al. 2021, eq. (9))."""
    return sigma_min * (sigma_max / sigma_min) ** t


@exercise("ve_marginal_std", "Write σ(t) of the variance-exploding SDE: the std of x(t) given x(0), geometric from "
          "σ_min at t = 0 to σ_max at t = 1 (NCSN's noise ladder in continuous time).", ve_marginal_std_solution)
def check_ve_marginal_std(answer) -> None:
    t = torch.tensor([0.0, 0.1, 0.25, 0.5, 0.9, 1.0], dtype=torch.float64)
    for sigma_min, sigma_max in [(0.01, 50.0), (0.1, 3.0)]:
        sde = VESDE(sigma_min, sigma_max)
        got = answer(t.clone(), sigma_min, sigma_max)
        if not isinstance(got, torch.Tensor) or got.shape != t.shape:
            raise Wrong(f"expected a tensor of shape {tuple(t.shape)} (one std per time), got {_shape(got)}")
        want = sde.sigma(t)
        if torch.allclose(got.double(), want, rtol=1e-6, atol=0):
            continue
        exact = torch.sqrt(want ** 2 - sigma_min ** 2)
        if torch.allclose(got.double(), exact, rtol=1e-6, atol=1e-12):
            raise Wrong("that is the exact kernel std sqrt(σ(t)² - σ_min²) of App. B; the exercise (like NCSN, the "
                        "paper's code and VESDE) asks for σ(t) itself, which counts the data as already perturbed "
                        "by σ_min")
        linear = sigma_min + t * (sigma_max - sigma_min)
        if torch.allclose(got.double(), linear, rtol=1e-6, atol=0):
            raise Wrong("σ(t) is geometric, not linear: equal ratios per unit time, σ_min (σ_max / σ_min)^t")
        i = int((got.double() - want).abs().argmax())
        raise Wrong(f"with σ_min={sigma_min}, σ_max={sigma_max}: at t={t[i].item():.2f} expected "
                    f"σ={want[i].item():.6g}, got {got[i].item():.6g}; check σ(0) = σ_min and σ(1) = σ_max")


# ---- 2. one reverse-diffusion predictor step -------------------------------------------------------------------
def reverse_diffusion_solution(sde: SDE, score_fn, x: torch.Tensor, t: torch.Tensor, dt: float,
                               z: torch.Tensor) -> torch.Tensor:
    """One reverse-diffusion step from t to t - dt with noise z (Song et al. 2021, App. E): (B, ...) -> (B, ...).

    The forward chain's step is x_t = x_{t-dt} + f_i + G_i z with (f_i, G_i) = sde.discretize(x, t, dt); run it
    backwards with the score: x_{t-dt} = x_t - f_i + G_i² s(x_t, t) + G_i z.
    """
    f, G = sde.discretize(x, t, dt)
    x_mean = x - f + broadcast(G ** 2, x) * score_fn(x, t)
    return x_mean + broadcast(G, x) * z


def _gaussian_score(sde: SDE, mu: torch.Tensor, s: torch.Tensor):
    """The exact score of p_t for data N(mu, diag(s²)): -(x - a mu) / (a² s² + std²)."""
    def score_fn(x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        a, std = sde.marginal_prob(torch.ones(x.shape[0], 1, dtype=x.dtype), t)  # (B, 1), (B,)
        return -(x - a * mu) / (a ** 2 * s ** 2 + std[:, None] ** 2)
    return score_fn


@exercise("reverse_diffusion_step", "Write one reverse-diffusion predictor step x_t -> x_{t-dt}: run the forward "
          "chain's step (f_i, G_i) = sde.discretize(x, t, dt) backwards with the score, using the given noise z.",
          reverse_diffusion_solution)
def check_reverse_diffusion_step(answer) -> None:
    g = torch.Generator().manual_seed(0)
    mu = torch.tensor([0.5, -1.0, 0.0], dtype=torch.float64)
    s = torch.tensor([0.5, 1.0, 0.3], dtype=torch.float64)
    for sde in (VPSDE(), VESDE()):
        name = type(sde).__name__
        score_fn = _gaussian_score(sde, mu, s)
        x = torch.randn(16, 3, generator=g, dtype=torch.float64) * 2
        t = torch.full((16,), 0.6, dtype=torch.float64)
        dt = 0.05
        seed = int(torch.randint(0, 2 ** 31, (1,), generator=g))
        z = torch.randn(x.shape, generator=torch.Generator().manual_seed(seed), dtype=x.dtype)
        want, _ = reverse_diffusion_step(sde, score_fn, x, t, dt, generator=torch.Generator().manual_seed(seed))
        got = answer(sde, score_fn, x.clone(), t.clone(), dt, z.clone())
        if not isinstance(got, torch.Tensor) or got.shape != x.shape:
            raise Wrong(f"expected a tensor of shape {tuple(x.shape)} like x, got {_shape(got)}")
        if torch.allclose(got, want, rtol=1e-9, atol=1e-9):
            continue
        f, G = sde.discretize(x, t, dt)
        G2s = broadcast(G ** 2, x) * score_fn(x, t)
        noise = broadcast(G, x) * z
        hints = {"x + f + G² s + G z (you stepped forwards: subtract f)": x + f + G2s + noise,
                 "x - f + G s + G z (the score is scaled by G², the step's variance)": x - f + broadcast(G, x) *
                 score_fn(x, t) + noise,
                 "x - f - G² s + G z (the score term points uphill: add it)": x - f - G2s + noise,
                 "x - f + G² s (the noise G z is missing)": x - f + G2s,
                 "x - f + G² s + G² z (noise std is G, not G²)": x - f + G2s + broadcast(G ** 2, x) * z}
        for text, value in hints.items():
            if torch.allclose(got, value, rtol=1e-9, atol=1e-9):
                raise Wrong(f"{name}: you computed {text}")
        err = (got - want).abs().max().item()
        raise Wrong(f"{name}: off by up to {err:.3g}; expected x - f_i + G_i² s(x, t) + G_i z with "
                    "(f_i, G_i) = sde.discretize(x, t, dt)")


# ---- 3. Hutchinson's divergence estimator ---------------------------------------------------------------------
def hutchinson_divergence_solution(fn, x: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """vᵀ (∂fn/∂x) v per sample, one vector-Jacobian product (Song et al. 2021, App. D.2, eq. (40)).

    Inputs: fn maps (B, D) -> (B, D) sample by sample; x (B, D); v (B, D) probe vectors. Returns (B,).
    """
    with torch.enable_grad():
        x = x.detach().requires_grad_(True)
        vjp = torch.autograd.grad((fn(x) * v).sum(), x)[0]  # vᵀ ∂f/∂x, (B, D)
    return (vjp * v).sum(1)


@exercise("hutchinson_divergence", "Estimate the divergence ∇·f(x) = tr(∂f/∂x) of a vector field with Hutchinson's "
          "trick: vᵀ (∂f/∂x) v for a random probe v (one vector-Jacobian product, never the full Jacobian).",
          hutchinson_divergence_solution)
def check_hutchinson_divergence(answer) -> None:
    g = torch.Generator().manual_seed(0)
    B, D = 6, 5
    W = torch.randn(D, D, generator=g, dtype=torch.float64)
    b = torch.randn(D, generator=g, dtype=torch.float64)
    def fn(x: torch.Tensor) -> torch.Tensor:  # a nonlinear field whose Jacobian is not symmetric
        return torch.tanh(x @ W.T + b) * x.roll(1, dims=1)

    x = torch.randn(B, D, generator=g, dtype=torch.float64)
    v = torch.randint(0, 2, (B, D), generator=g).double() * 2 - 1
    got = answer(fn, x.clone(), v.clone())
    if not isinstance(got, torch.Tensor) or got.shape != (B,):
        raise Wrong(f"expected one estimate per sample, a tensor of shape ({B},), got {_shape(got)}")
    jac = torch.stack([torch.autograd.functional.jacobian(lambda xi: fn(xi[None])[0], x[i]) for i in range(B)])
    want = torch.einsum("bi,bij,bj->b", v, jac, v)  # vᵀ J v with J[i, j] = ∂f_i/∂x_j
    if torch.allclose(got.double(), want, rtol=1e-8, atol=1e-10):
        return
    exact = jac.diagonal(dim1=1, dim2=2).sum(1)
    if torch.allclose(got.double(), exact, rtol=1e-8, atol=1e-10):
        raise Wrong("that is the exact divergence (the full Jacobian's trace): right, but it costs D backward passes; "
                    "use one vector-Jacobian product with the probe v and return vᵀ (∂f/∂x) v")
    if torch.allclose(got.double(), (v * v).sum(1), rtol=1e-8, atol=1e-10):
        raise Wrong("you returned vᵀv: the Jacobian is missing (take the gradient of (fn(x) · v).sum() w.r.t. x)")
    jvp_sum = torch.einsum("bij,bj->b", jac, v)  # 1ᵀ J v
    if torch.allclose(got.double(), jvp_sum, rtol=1e-8, atol=1e-10):
        raise Wrong("you returned 1ᵀ J v; multiply the vector-Jacobian product by v again: vᵀ J v")
    err = (got.double() - want).abs().max().item()
    raise Wrong(f"off by up to {err:.3g} from vᵀ (∂f/∂x) v; compute vjp = grad((fn(x) * v).sum(), x), then "
                "(vjp * v).sum(1)")
