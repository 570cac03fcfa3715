# %% [markdown]
# # 09 · Score-based models and SDEs
#
# **What this chapter builds.** A second road to diffusion, through the *score* ∇ₓ log p(x), the direction in
# which the data density rises:
#
# 1. **Score-based generative modelling (SGM)**: a noise-conditional score trained by *denoising score matching*
#    over a geometric ladder of noise levels, sampled by *annealed Langevin dynamics*; every piece checked first on
#    a 2-D Gaussian whose score is known exactly.
# 2. **Score SDEs**: one abstraction (a forward SDE with its drift and diffusion, its Gaussian marginal, its prior,
#    its reverse-time SDE and its discretisation) with the variance-exploding (VE), variance-preserving (VP) and
#    sub-VP SDEs; Euler–Maruyama and reverse-diffusion *predictors*, a Langevin *corrector*; the
#    *probability-flow ODE* solved with an adaptive Runge–Kutta solver; and *likelihoods* in bits/dim by the
#    instantaneous change of variables with Hutchinson's trace estimator, each checked in closed form.
# 3. **A score SDE for video**: the loss and the training step written out and checked against the package, then
#    chapter 08's space-time U-Net trained under the VP SDE on moving digits. Its samplers are compared at the
#    course's protocol (quality against network evaluations, NFE); the ODE's round trip from clips to noise and
#    back is measured against the solver's tolerance; its bits/dim are set beside what a general-purpose
#    compressor needs for the same clips, with what each of the two numbers measures.
# 4. **NCSN on video**: Song & Ermon's recipe on the same U-Net, trained for the minutes left, shown level by level,
#    with what the recipe would need for clips of 16,384 pixels.
#
# **Where it sits in the history.** Song & Ermon (2019, *Generative Modeling by Estimating Gradients of the Data
# Distribution*, "NCSN") generated images with a score network and Langevin dynamics, a year before DDPM
# (Ho et al. 2020, chapter 08) reached the same quality with a variational view; NCSNv2 (Song & Ermon 2020) gave
# the rules for choosing the noise levels. Song, Sohl-Dickstein, Kingma, Kumar, Ermon & Poole (2021, *Score-Based
# Generative Modeling through Stochastic Differential Equations*) showed both are discretisations of SDEs (NCSN
# of the VE SDE, DDPM of the VP SDE) and gave the tools that the video diffusion systems after them inherit:
# samplers as numerical solvers, the deterministic ODE sampler behind DDIM-style fast sampling, and a likelihood
# for a diffusion model. The package pieces used here live in `vgcourse/diffusion/sde.py`, `samplers.py` and
# `ncsn.py`.
#
# **Time per profile.** The same code runs in every profile; only the sizes change (chosen below with `pick`).
#
# | profile | data | models | training | time |
# |---|---|---|---|---|
# | `smoke` | 16×16, 8 frames | tiny U-Net (0.2M) | 2 steps each | < 1 min on 2 CPU cores (checks only) |
# | `cpu` | 16×16, 8 frames | U-Net 0.3M, the same for NCSN | 3 + 0.75 min | ≈ 8 min on 2 CPU cores |
# | `gpu` | 32×32, 16 frames (protocol) | U-Net 5.2M, also for NCSN | 3.4 (compiled) + 0.4 min | ≈ 7 min, one GPU |
#
# In the `gpu` profile, besides training: the sampler comparison at 384 clips each ≈ 2 min (compiling once for that
# batch included), round trips and likelihoods ≈ 1 min, the analytic sections seconds. The smoke and cpu profiles work
# at 16×16 with 8 frames; their video numbers only show that the code runs.

# %%
import copy
import math
import time
import zlib
from dataclasses import asdict

import torch
from torch import nn

from vgcourse.profiles import exact_fp32, pick, setup

STARTED = time.time()
S = setup(seed=0)          # prints profile, device, precision, compile, torch version

# %%
from vgcourse import results
from vgcourse.data import MovingDigits
from vgcourse.diffusion import (
    ContinuousTimeWrapper,
    NoiseConditionalScore,
    VideoUNet,
    dequantize,
    score_from_eps,
    sde_loss,
    video_unet_small,
    video_unet_tiny,
)
from vgcourse.diffusion.sde import broadcast
from vgcourse.display import filmstrip, plot_curves, side_by_side
from vgcourse.exercises import check, solution
from vgcourse.metrics import PROTOCOL, Evaluator
from vgcourse.metrics.corruptions import freeze_frames, shuffle_frames
from vgcourse.metrics.protocol import floor_fd, format_rows, headline, mean_se, reference_rows, score, verdict
from vgcourse.nn import count_parameters, randomised
from vgcourse.results import PartTimer, num, timed
from vgcourse.train import make_trainer

timer = PartTimer(STARTED)  # minutes of each part of the chapter, printed as it goes

# %% [markdown]
# ## Sizes for this profile
#
# Everything that changes between profiles is chosen here, in plain view. Sections 1 and 2 work on a 2-D Gaussian
# and are the same in every profile. The gpu profile trains on the course's protocol data (moving digits, 32×32,
# 16 frames, two digits) and scores every sampler on 384 generated clips against the 512-clip held-out reference;
# training is bounded by minutes (compilation included), so `steps` is only a cap there.

# %%
data = pick(smoke=MovingDigits(size=16, frames=8), cpu=MovingDigits(size=16, frames=8), gpu=PROTOCOL.dataset())
unet_configs = dict(  # chapter 08's factorised space-time U-Net, one size per profile
    smoke=video_unet_tiny(),                                                        # 16×16, 8 frames
    cpu=video_unet_small(image_size=16, frames=8, base_channels=16, heads=2, norm_groups=8,
                         attention_resolutions=(4,), temporal_attention_resolutions=(8, 4)),
    gpu=video_unet_small(base_channels=64, norm_groups=32),                         # 32×32, 16 frames, levels 32/16/8
)
config = pick(**unet_configs)
steps = pick(smoke=2, cpu=100_000, gpu=100_000)          # a cap: on cpu and gpu the minutes decide
train_minutes = pick(smoke=None, cpu=3.0, gpu=3.4)       # the VP-SDE model (the chapter's headline)
batch = pick(smoke=4, cpu=16, gpu=64)                    # clips per step
lr, warmup = pick(smoke=1e-3, cpu=1e-3, gpu=5e-4), pick(smoke=1, cpu=30, gpu=250)
ema_decay = pick(smoke=0.9, cpu=0.99, gpu=0.998)         # EMA horizon ~1/(1-decay) steps: shorter for short runs
n_gen = pick(smoke=4, cpu=64, gpu=PROTOCOL.n_gen)        # generated clips per sampler, scored ...
n_real = pick(smoke=32, cpu=256, gpu=PROTOCOL.n_real)    # ... against this many held-out clips
sde_steps = pick(smoke=[2, 4], cpu=[20, 50], gpu=[50, 200])   # NFE of the SDE samplers (PC: half the steps)
ode_tols = pick(smoke=[1e-1], cpu=[1e-2, 1e-3], gpu=[1e-2, 1e-3])
rt_clips = pick(smoke=2, cpu=4, gpu=8)                   # held-out clips for the ODE round trip ...
rt_tols = pick(smoke=[3e-1, 1e-1], cpu=[1e-3, 1e-4], gpu=[1e-3, 1e-4, 1e-5])   # ... at these tolerances
bpd_clips, bpd_tol = pick(smoke=2, cpu=4, gpu=16), pick(smoke=3e-1, cpu=1e-3, gpu=1e-4)
ncsn_minutes = pick(smoke=None, cpu=0.75, gpu=0.4)       # NCSN, the same U-Net, the minutes left
ncsn_levels, ncsn_steps_each = pick(smoke=3, cpu=10, gpu=10), pick(smoke=1, cpu=5, gpu=5)
n_stats = pick(smoke=32, cpu=256, gpu=512)               # training clips for pixel statistics and distances
print(f"data: {data}")
print(f"VP-SDE U-Net: {count_parameters(VideoUNet(config)) / 1e6:.2f}M parameters, "
      f"{f'{train_minutes} min' if train_minutes else f'{steps} steps'} at batch {batch}, lr {lr:g}; NCSN "
      f"{f'{ncsn_minutes} min' if ncsn_minutes else f'{steps} steps'}; {n_gen} clips per sampler against {n_real}")

# %% [markdown]
# ## 1 · Scores, Langevin dynamics and score matching (SGM, Song & Ermon 2019)
#
# If we knew the score s(x) = ∇ₓ log p(x), **Langevin dynamics** would sample p without ever evaluating p itself:
#
# $$x_{k+1} = x_k + \tfrac{\epsilon}{2}\, \nabla_x \log p(x_k) + \sqrt{\epsilon}\, z_k, \quad z_k \sim \mathcal N(0, I)
# \qquad\text{(Song \& Ermon 2019, eq. (4))}$$
#
# which tends to samples of p as ε → 0 and the number of steps → ∞. Two obstacles: data lie near a
# low-dimensional manifold where the score is undefined, and in low-density regions there are no samples to learn
# it from. Song & Ermon's fix is to perturb the data with Gaussian noise at levels σ₁ > … > σ_L, learn one
# *noise-conditional* score s_θ(x̃, σ) for all of them by **denoising score matching** (Vincent 2011) — the score
# of the perturbation kernel N(x̃; x, σ²I) is −(x̃ − x)/σ², a target we can compute —
#
# $$\ell(\theta; \sigma) = \tfrac12\, \mathbb E\, \big\| s_\theta(\tilde x, \sigma) + (\tilde x - x)/\sigma^2 \big\|^2
# \quad\text{(eq. (5))}, \qquad \mathcal L = \tfrac1L \sum_i \sigma_i^2\, \ell(\theta; \sigma_i)\quad\text{(eq. (6))},$$
#
# and to sample by **annealed Langevin dynamics**: a few Langevin steps at each level, largest noise first, with step
# α_i = ε σ_i²/σ_L² (Algorithm 1).
#
# We check every piece first where the answer is known in closed form: 2-D Gaussian data N(μ, Σ). Perturbed by
# noise, any of this chapter's kernels leaves it Gaussian, N(a μ, a²Σ + s²I), so its score is exact.

# %%
# NBVAL_CHECK_OUTPUT
torch.set_num_threads(1)  # tiny 2-D tensors until section 3: one thread beats several (hand-offs cost more than sums)
MU = torch.tensor([1.0, -0.5], dtype=torch.float64)
COV = torch.tensor([[0.50, 0.30], [0.30, 0.40]], dtype=torch.float64)  # a correlated 2-D Gaussian: our "data"
LAM, Q = torch.linalg.eigh(COV)                                        # COV = Q diag(LAM) Qᵀ


def gaussian_score(x: torch.Tensor, a: torch.Tensor, s: torch.Tensor) -> torch.Tensor:
    """∇x log N(x; a μ, a² Σ + s² I) for per-sample a, s (B,): x (B, 2) -> (B, 2)."""
    y = (x - a[:, None] * MU) @ Q                              # coordinates along Σ's eigenvectors
    return -(y / (a[:, None] ** 2 * LAM + s[:, None] ** 2)) @ Q.T


def data_samples(n: int, seed: int) -> torch.Tensor:
    """n samples (n, 2) of N(MU, COV) from a fixed seed."""
    white = torch.randn(n, 2, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
    return MU + white @ torch.linalg.cholesky(COV).T


def moments_ok(x: torch.Tensor, slack: float = 0.0) -> bool:
    """Mean and covariance of samples x (n, 2) within 5 standard errors of MU and COV (plus a relative slack)."""
    n = x.shape[0]
    se_mean = (COV.diagonal() / n).sqrt()
    se_cov = ((COV.diagonal()[:, None] * COV.diagonal()[None] + COV ** 2) / n).sqrt()
    return bool(((x.mean(0) - MU).abs() < 5 * se_mean).all()
                and ((x.T.cov() - COV).abs() < 5 * se_cov + slack * COV.abs().max()).all())


print("data: N(μ, Σ) with μ =", MU.tolist(), "and Σ =", COV.tolist())
print("a fresh sample passes the moment check:", moments_ok(data_samples(4000, seed=1)))

# %% [markdown]
# **Denoising score matching in plain view**, with λ(σ) = σ² folded in: σ_i · s_θ(x̃, i) + z, where
# x̃ = x + σ_i z. We check it equals `vgcourse.diffusion.dsm_loss` (same random draws), and that the true score
# scores lower than a wrong one.

# %%
# NBVAL_CHECK_OUTPUT
from vgcourse.diffusion import annealed_langevin, dsm_loss, geometric_sigmas


def my_dsm_loss(score_model, x: torch.Tensor, sigmas: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    idx = torch.randint(0, len(sigmas), (x.shape[0],), generator=generator)   # a noise level per sample
    sigma = sigmas[idx][:, None]                                             # (B, 1)
    z = torch.randn(x.shape, generator=generator, dtype=x.dtype)
    x_tilde = x + sigma * z                                                  # x̃ ~ N(x, σ² I)
    residual = sigma * score_model(x_tilde, idx) + z                         # σ (s_θ - target), eq. (5)
    return 0.5 * residual.pow(2).sum(1).mean()                               # eq. (6), λ(σ) = σ²


sigmas = geometric_sigmas(sigma_min=0.01, sigma_max=3.0, n=10).double()    # σ_1 = 3 > ... > σ_10 = 0.01
true_score = lambda x, idx: gaussian_score(x, torch.ones(len(x), dtype=x.dtype), sigmas[idx])  # noqa: E731
x = data_samples(4000, seed=2)
mine = my_dsm_loss(true_score, x, sigmas, torch.Generator().manual_seed(0))
torch.testing.assert_close(mine, dsm_loss(true_score, x, sigmas, torch.Generator().manual_seed(0)))
print("my_dsm_loss matches vgcourse.diffusion.dsm_loss")
worse = my_dsm_loss(lambda x, idx: 0.8 * true_score(x, idx), x, sigmas, torch.Generator().manual_seed(0))
print("the true score has the lower loss than 0.8 × the score:", bool(mine < worse))

# %% [markdown]
# **Annealed Langevin dynamics in plain view** (Algorithm 1), checked step for step against the package, then
# run on 4,000 chains with the exact score: the samples must have the data's mean and covariance.

# %%
# NBVAL_CHECK_OUTPUT
def my_annealed_langevin(score_model, x: torch.Tensor, sigmas: torch.Tensor, n_steps_each: int, step_lr: float,
                         generator: torch.Generator) -> torch.Tensor:
    for i in range(len(sigmas)):
        idx = torch.full((x.shape[0],), i)
        alpha = step_lr * (sigmas[i] / sigmas[-1]) ** 2                        # Alg. 1: α_i = ε σ_i² / σ_L²
        for _ in range(n_steps_each):
            z = torch.randn(x.shape, generator=generator, dtype=x.dtype)
            x = x + 0.5 * alpha * score_model(x, idx) + alpha.sqrt() * z         # eq. (4) at level i
    return x


x_init = torch.rand(16, 2, generator=torch.Generator().manual_seed(3), dtype=torch.float64) * 2 - 1
mine = my_annealed_langevin(true_score, x_init, sigmas, 10, 1e-4, torch.Generator().manual_seed(4))
theirs = annealed_langevin(true_score, x_init.shape, sigmas, n_steps_each=10, step_lr=1e-4, x_init=x_init,
                           generator=torch.Generator().manual_seed(4))
torch.testing.assert_close(mine, theirs)
print("my_annealed_langevin matches vgcourse.diffusion.annealed_langevin")
# step_lr = 1e-4 (the paper's 2e-5 mixes too slowly at the small levels in 2-D with 100 steps per level)
x_sgm = annealed_langevin(true_score, (4000, 2), sigmas, n_steps_each=100, step_lr=1e-4,
                          generator=torch.Generator().manual_seed(5)).double()
print("annealed Langevin with the exact score reproduces mean and covariance:", moments_ok(x_sgm))

# %% [markdown]
# ## 2 · Score SDEs (Song et al. 2021)
#
# Let the number of noise levels go to infinity and the perturbation becomes a diffusion process, a **forward SDE**
# on t ∈ [0, 1]:
#
# $$dx = f(x, t)\,dt + g(t)\,dw \quad\text{(eq. (5))}, \qquad
# dx = \big[f(x, t) - g(t)^2 \nabla_x \log p_t(x)\big]\,dt + g(t)\,d\bar w \quad\text{(eq. (6), reverse time)}.$$
#
# The reverse SDE needs only the score of each marginal p_t, learned by score matching in continuous time (eq. (7)).
# Three SDEs, each the limit of a known chain:
#
# | SDE | f(x, t) | g(t) | marginal mean, std | prior | limit of |
# |---|---|---|---|---|---|
# | VE (eq. (9)) | 0 | σ(t)·√(2 log(σ_max/σ_min)) | x₀, σ(t) = σ_min (σ_max/σ_min)^t | N(0, σ_max² I) | NCSN |
# | VP (eq. (11)) | −½β(t) x | √β(t) | e^{−½∫β} x₀, √(1 − e^{−∫β}) | N(0, I) | DDPM |
# | sub-VP (eq. (12)) | −½β(t) x | √(β(t)(1 − e^{−2∫β})) | e^{−½∫β} x₀, 1 − e^{−∫β} | N(0, I) | — (new) |
#
# with β(t) = β_min + t(β_max − β_min), β ∈ [0.1, 20]. In code (`vgcourse/diffusion/sde.py`) each SDE is a class
# with the paper's objects as methods: `sde` (f, g), `marginal_prob`, `prior_sampling`, `prior_logp`, `discretize`
# and `reverse`; samplers are written once against that interface.
#
# **The VP marginal in plain view**, checked against `VPSDE.marginal_prob`, and against DDPM's closed form
# √ᾱ_i, √(1 − ᾱ_i) for the linear schedule (β from 10⁻⁴ to 0.02 over N = 1000 steps) at the matching times
# t_i = (i + 1)/N: the VP SDE *is* DDPM with its steps made infinitely small.

# %%
# NBVAL_CHECK_OUTPUT
from vgcourse.diffusion import VESDE, VPSDE, SubVPSDE, linear_schedule


def vp_marginal(x0: torch.Tensor, t: torch.Tensor, beta_min: float = 0.1, beta_max: float = 20.0):
    """Mean (B, ...) and std (B,) of x(t) | x(0) = x0 under the VP SDE (Song et al. 2021, App. B)."""
    integral = beta_min * t + 0.5 * (beta_max - beta_min) * t ** 2               # ∫_0^t β(s) ds
    mean = torch.exp(-0.5 * integral).reshape(-1, *[1] * (x0.dim() - 1)) * x0
    return mean, torch.sqrt(1 - torch.exp(-integral))


vp = VPSDE(beta_min=0.1, beta_max=20.0)
x0, t = data_samples(7, seed=6), torch.linspace(0.0, 1.0, 7, dtype=torch.float64)
for mine, theirs in zip(vp_marginal(x0, t), vp.marginal_prob(x0, t)):
    torch.testing.assert_close(mine, theirs)
print("vp_marginal matches VPSDE.marginal_prob")

ddpm = linear_schedule(T=1000)                                  # Ho et al. 2020: β_i from 1e-4 to 0.02
t_i = (torch.arange(1000, dtype=torch.float64) + 1) / 1000        # index i of DDPM <-> t = (i + 1) / N
mean_coef, std = vp_marginal(torch.ones(1000, dtype=torch.float64), t_i)
gap_mean = (mean_coef - ddpm.sqrt_alphas_cumprod.double()).abs().max().item()
gap_std = (std - ddpm.sqrt_one_minus_alphas_cumprod.double()).abs().max().item()
print("VP SDE vs DDPM's closed form, largest gap below 2e-3 (mean coefficient, std):", gap_mean < 2e-3,
      gap_std < 2e-3)

# %% [markdown]
# How the three SDEs move data to noise: VP and sub-VP shrink the signal and add noise up to std 1 (sub-VP's
# variance stays below VP's at every t), while VE keeps the signal and lets the noise explode to σ_max = 50.

# %%
from matplotlib.figure import Figure

from vgcourse.display import plot_xy

sdes = {"VP": VPSDE(), "sub-VP": SubVPSDE(), "VE": VESDE(sigma_min=0.01, sigma_max=50.0)}
tt = torch.linspace(1e-3, 1.0, 200, dtype=torch.float64)
fig = Figure(figsize=(10, 3.5), layout="constrained")
ax_mean, ax_std = fig.subplots(1, 2)
coefs = {name: sde.marginal_prob(torch.ones_like(tt), tt) for name, sde in sdes.items()}
plot_xy({name: (tt, a) for name, (a, s) in coefs.items()}, xlabel="t", ylabel="mean coefficient of x(0)",
        ax=ax_mean)
plot_xy({name: (tt, s) for name, (a, s) in coefs.items()}, xlabel="t", ylabel="std of the noise", logy=True,
        ax=ax_std)
for ax in (ax_mean, ax_std):
    for line in ax.lines:
        line.set_marker("")
    ax.legend()
fig

# %% [markdown]
# **One Euler–Maruyama step of the reverse SDE in plain view.** Going from t to t − Δt, eq. (6) gives
#
# $$x_{t-\Delta t} = x_t - \big[f(x_t, t) - g(t)^2 s_\theta(x_t, t)\big]\,\Delta t + g(t)\sqrt{\Delta t}\, z.$$
#
# **One Langevin corrector step in plain view** (Algorithms 4–5): at fixed t, x ← x + ε s + √(2ε) z, with the step
# ε = 2α (r‖z‖/‖s‖)² set by a target signal-to-noise ratio r; α = 1 − β_i for VP and sub-VP, the discrete chain's
# α_i = ᾱ(t)/ᾱ(t − Δt) ≈ 1 − β(t)Δt, and α = 1 for VE. Norms are per sample, averaged over the batch, as in the
# authors' code. We check both against the package with the same noise.

# %%
# NBVAL_CHECK_OUTPUT
from vgcourse.diffusion import euler_maruyama_step, langevin_step


def sde_score(sde):
    """The exact score of p_t for our Gaussian data under ``sde``: score_fn(x (B, 2), t (B,)) -> (B, 2)."""
    def score_fn(x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        a, std = sde.marginal_prob(torch.ones_like(t), t)          # p_t = N(a μ, a² Σ + std² I)
        return gaussian_score(x, a, std)
    return score_fn


def my_em_step(sde, score_fn, x: torch.Tensor, t: torch.Tensor, dt: float, z: torch.Tensor) -> torch.Tensor:
    f, g = sde.sde(x, t)                                           # forward drift (B, 2) and diffusion (B,)
    drift = f - g[:, None] ** 2 * score_fn(x, t)                   # reverse-time drift, eq. (6)
    return x - drift * dt + g[:, None] * math.sqrt(dt) * z         # one step backwards in time


def my_langevin_step(sde, score_fn, x: torch.Tensor, t: torch.Tensor, dt: float, z: torch.Tensor,
                     snr: float = 0.16) -> torch.Tensor:
    s = score_fn(x, t)
    alpha = sde.alpha_bar(t) / sde.alpha_bar(t - dt) if hasattr(sde, "alpha_bar") else torch.ones_like(t)  # Alg. 5 / 4
    step = 2 * alpha * (snr * z.norm(dim=1).mean() / s.norm(dim=1).mean()) ** 2        # ε_i from the target snr
    return x + step[:, None] * s + torch.sqrt(2 * step)[:, None] * z


x, t = data_samples(64, seed=7) * 3, torch.full((64,), 0.4, dtype=torch.float64)
for name, sde in sdes.items():
    score_fn = sde_score(sde)
    z = torch.randn(x.shape, generator=torch.Generator().manual_seed(8), dtype=x.dtype)
    step_pkg, _ = euler_maruyama_step(sde, score_fn, x, t, 0.01, generator=torch.Generator().manual_seed(8))
    torch.testing.assert_close(my_em_step(sde, score_fn, x, t, 0.01, z), step_pkg)
    corr_pkg, _ = langevin_step(sde, score_fn, x, t, 0.01, generator=torch.Generator().manual_seed(8))
    torch.testing.assert_close(my_langevin_step(sde, score_fn, x, t, 0.01, z), corr_pkg)
print("my_em_step matches euler_maruyama_step, my_langevin_step matches langevin_step (VP, sub-VP, VE)")

# %% [markdown]
# **Samplers driven by the closed-form score.** `pc_sample` runs a predictor — Euler–Maruyama, or *reverse diffusion*
# (the forward chain's own step run backwards, App. E: for VP it agrees with DDPM's ancestral sampler to first order
# in β_i; for VE it runs SMLD's noise chain backwards, which NCSN sampled with annealed Langevin instead) — optionally
# followed at every time by a Langevin corrector (predictor–corrector, Algorithm 1 of Song et al.). With the exact
# score every sampler must give back N(μ, Σ).

# %%
from vgcourse.diffusion import ode_encode, ode_sample, pc_sample

samplers = {"Euler–Maruyama": ("euler_maruyama", None), "reverse diffusion": ("reverse_diffusion", None),
            "PC (reverse diffusion + Langevin)": ("reverse_diffusion", "langevin")}
analytic = {}
for name, sde in sdes.items():
    for label, (predictor, corrector) in samplers.items():
        xs, nfe = pc_sample(sde, sde_score(sde), (4000, 2), steps=200, predictor=predictor, corrector=corrector,
                            snr=0.1, generator=torch.Generator().manual_seed(9))
        analytic[name, label] = xs.double()
        print(f"{name:7s} {label:34s} NFE {nfe:5d}   mean {[round(v, 3) for v in xs.mean(0).tolist()]}   "
              f"cov {[round(v, 3) for v in xs.T.cov().flatten().tolist()]}")
print(f"{'data':50s}             mean {MU.tolist()}   cov {COV.flatten().tolist()}")

# %%
# NBVAL_CHECK_OUTPUT
for (name, label), xs in analytic.items():
    assert moments_ok(xs, slack=0.03), f"{name} / {label}: mean {xs.mean(0)}, cov {xs.T.cov()}"
print("every SDE × sampler reproduces the data's mean and covariance (within 5 standard errors + 3%)")

# %% [markdown]
# **The probability-flow ODE.** Every SDE has a deterministic twin with the same marginals p_t:
#
# $$dx = \big[f(x, t) - \tfrac12 g(t)^2 \nabla_x \log p_t(x)\big]\,dt \qquad\text{(eq. (13))}.$$
#
# Solved forwards it *encodes* data into the prior's noise; solved backwards it decodes. `ode_sample` and
# `ode_encode` solve it with an adaptive Dormand–Prince RK45 (`dopri5`): the solver, not us, chooses the step, and
# the tolerance sets the cost. With the exact score, decode(encode(x)) = x, and the latents are N(0, I) for VP.

# %%
# NBVAL_CHECK_OUTPUT
x_data = data_samples(2000, seed=10)
z_vp, nfe_enc = ode_encode(vp, sde_score(vp), x_data, rtol=1e-7, atol=1e-7)
x_back, nfe_dec = ode_sample(vp, sde_score(vp), x_data.shape, rtol=1e-7, atol=1e-7, z=z_vp)
print("decode(encode(x)) = x to 1e-5:", bool((x_back - x_data).abs().max() < 1e-5))
print("latents have mean ≈ 0 and covariance ≈ I:", bool(z_vp.mean(0).abs().max() < 0.1),
      bool((z_vp.T.cov() - torch.eye(2, dtype=torch.float64)).abs().max() < 0.1))
x_ode, _ = ode_sample(vp, sde_score(vp), (4000, 2), rtol=1e-5, atol=1e-5,
                      generator=torch.Generator().manual_seed(11))
print("ODE samples from fresh noise reproduce mean and covariance:", moments_ok(x_ode.double()))

# %%
fig = Figure(figsize=(12, 3.2), layout="constrained")
panels = {"data N(μ, Σ)": x_data[:1000], "annealed Langevin (NCSN)": x_sgm[:1000],
          "VP, PC sampler": analytic["VP", "PC (reverse diffusion + Langevin)"][:1000], "VP, ODE sampler": x_ode[:1000]}
axes = fig.subplots(1, 5, sharex=True, sharey=True)
for ax, (title, pts) in zip(axes, panels.items()):
    ax.scatter(pts[:, 0], pts[:, 1], s=1, alpha=0.4)
    ax.set_title(title, fontsize=9)
axes[-1].scatter(z_vp[:1000, 0], z_vp[:1000, 1], s=1, c=x_data[:1000, 0], cmap="viridis")
axes[-1].set_title(f"ODE latents of the data\n(colour = x₀'s first coordinate; NFE {nfe_enc})", fontsize=9)
for ax in axes:
    ax.set_aspect("equal")
fig

# %% [markdown]
# **Exact likelihood, and Hutchinson's trace estimator.** Along the ODE, the log-density changes by minus the
# divergence of the drift f̃ = f − ½g²s (the instantaneous change of variables):
#
# $$\log p_0(x(0)) = \log p_T(x(T)) + \int_0^T \nabla\cdot \tilde f(x(t), t)\,dt \qquad\text{(eq. (39))}.$$
#
# The divergence tr(∂f̃/∂x) would cost one backward pass per dimension; **Hutchinson's estimator** needs one:
# tr(A) = E[vᵀAv] for any random v with E[vvᵀ] = I (eq. (40)) — Rademacher ±1 or Gaussian. In plain view, on a
# known matrix:

# %%
g = torch.Generator().manual_seed(12)
A = torch.randn(6, 6, generator=g, dtype=torch.float64)
n_probes = 100_000
probes = {"Rademacher": torch.randint(0, 2, (n_probes, 6), generator=g).double() * 2 - 1,
          "Gaussian": torch.randn(n_probes, 6, generator=g, dtype=torch.float64)}
sym = (A + A.T) / 2                                                            # vᵀAv only sees A's symmetric part
theory = {"Rademacher": 2 * ((sym ** 2).sum() - (sym.diagonal() ** 2).sum()),  # Var[vᵀAv] = 2 Σ_{i≠j} sym_ij²
          "Gaussian": 2 * (sym ** 2).sum()}                                    # Var[vᵀAv] = 2 ||sym||_F²
hutchinson = {}
for name, v in probes.items():
    est = ((v @ A.T) * v).sum(1)                                               # vᵀ A v, one per probe
    hutchinson[name] = est
    print(f"{name:10s}: mean {est.mean().item():+.3f} ± {est.std().item() / math.sqrt(n_probes):.3f}   "
          f"variance {est.var().item():6.2f} (theory {theory[name].item():6.2f})")
print(f"tr(A) = {A.trace().item():+.3f}")

# %%
# NBVAL_CHECK_OUTPUT
for name, est in hutchinson.items():
    assert abs(est.mean() - A.trace()) < 5 * est.std() / math.sqrt(n_probes), name
    assert abs(est.var() / theory[name] - 1) < 0.05, name
print("both estimators are unbiased, with the variance theory predicts (Rademacher's is the smaller)")

# %% [markdown]
# Now the package's `log_likelihood` on the Gaussian: with the exact divergence (`hutchinson=None`, D backward
# passes) it reproduces the closed-form log-density of p_ε, up to the small mismatch between the true p_T and the
# prior N(0, I); with one Rademacher probe per sample each estimate is noisy, but the average is right.

# %%
from vgcourse.diffusion import OFFSET_8BIT_BITS, likelihood_bpd, log_likelihood

x_lik = data_samples(1000, seed=13)
eps_lik = 1e-5
a_eps, s_eps = vp.marginal_prob(torch.ones(1, dtype=torch.float64), torch.tensor([eps_lik], dtype=torch.float64))
closed_form = torch.distributions.MultivariateNormal(a_eps * MU, a_eps ** 2 * COV + s_eps ** 2 * torch.eye(2))
logp_true = closed_form.log_prob(x_lik)
logp_exact, _, nfe_exact = log_likelihood(vp, sde_score(vp), x_lik, hutchinson=None, eps=eps_lik)
logp_hutch, _, nfe_hutch = log_likelihood(vp, sde_score(vp), x_lik, hutchinson="rademacher", eps=eps_lik,
                                          generator=torch.Generator().manual_seed(14))
print(f"closed form              : mean log p = {logp_true.mean().item():.4f} nats")
print(f"ODE, exact divergence    : mean log p = {logp_exact.mean().item():.4f} nats "
      f"(max per-sample gap {(logp_exact - logp_true).abs().max().item():.4f}, NFE {nfe_exact})")
print(f"ODE, Hutchinson estimate : mean log p = {logp_hutch.mean().item():.4f} nats "
      f"(per-sample spread {(logp_hutch - logp_true).std().item():.3f}, NFE {nfe_hutch})")

# %%
# NBVAL_CHECK_OUTPUT
assert (logp_exact - logp_true).abs().max() < 0.05
assert abs((logp_hutch - logp_true).mean()) < 5 * (logp_hutch - logp_true).std() / math.sqrt(len(x_lik)) + 0.01
bpd = likelihood_bpd(vp, sde_score(vp), x_lik, hutchinson=None, offset_bits=0.0, eps=eps_lik)
torch.testing.assert_close(bpd, -logp_exact / (2 * math.log(2)))
print("the ODE likelihood matches the closed form; Hutchinson's estimate is unbiased; bits/dim = -log p / (D ln 2)")


# %% [markdown]
# ## 3 · A score SDE for video
#
# Now the same machinery on moving digits. The network is the factorised space-time U-Net of chapter 08, and we
# parameterise it as in DDPM: it predicts the noise ε in x_t = mean + std·ε, and the score is s = −ε/std
# (`score_from_eps`). `ContinuousTimeWrapper` feeds it 999·t, so its timestep embedding sees the same range as a
# 1000-step DDPM. The loss is denoising score matching in continuous time (eq. (7)) with the weighting λ(t) = std²,
# which in the ε-parameterisation is DDPM's simple loss with t drawn uniformly from [10⁻⁵, 1]:
#
# $$\mathcal L = \mathbb E_{t, x_0, z}\, \big\| \epsilon_\theta(\mathrm{mean}(x_0, t) + \mathrm{std}(t)\, z,\; t) - z
# \big\|^2 .$$
#
# We train on *dequantised* clips (uniform noise over each 8-bit bin, ±1/255), so that the bits/dim we measure
# later is a bound for 8-bit video (Song et al. 2021 report likelihoods on dequantised data too). The loss in plain
# view, with the kernel of section 2, checked against `vgcourse.diffusion.sde_loss` on the same random draws:

# %%
# NBVAL_CHECK_OUTPUT
# back to every core for the networks (smoke is a CI check on shared cores: one thread avoids oversubscription)
torch.set_num_threads(pick(smoke=1, cpu=S.threads, gpu=S.threads))
sde = VPSDE(beta_min=0.1, beta_max=20.0)                              # the SDE of the rest of the chapter


def my_sde_loss(model, x0: torch.Tensor, sde, eps: float = 1e-5, generator=None) -> torch.Tensor:
    t = torch.rand(x0.shape[0], generator=generator, device=x0.device) * (sde.T - eps) + eps  # t ~ U(eps, T), (B,)
    z = torch.randn(x0.shape, generator=generator, device=x0.device)                         # (B, C, T, H, W)
    mean, std = sde.marginal_prob(x0, t)                          # the kernel p_0t(x_t | x_0) of section 2
    x_t = mean + std.view(-1, 1, 1, 1, 1) * z
    return (model(x_t, t) - z).pow(2).mean()                      # ||std · s_θ + z||² with s_θ = -ε_θ / std


torch.manual_seed(0)
toy = ContinuousTimeWrapper(randomised(VideoUNet(video_unet_tiny())), scale=999)   # on the CPU, for the checks
x_check = MovingDigits(size=16, frames=8).batch(2, seed=3).video                    # (2, 1, 8, 16, 16)
with torch.no_grad():
    mine = my_sde_loss(toy, x_check, sde, generator=torch.Generator().manual_seed(0))
    theirs = sde_loss(toy, x_check, sde, generator=torch.Generator().manual_seed(0))
torch.testing.assert_close(mine, theirs)
print("my_sde_loss matches vgcourse.diffusion.sde_loss")

# %% [markdown]
# **The training step in plain view**: the loss on a dequantised batch, its gradient by `.backward()`, the
# gradient clipped to norm 1 and one AdamW step. Two such steps must leave the same weights as two steps of the
# package's trainer (`make_trainer`, which the chapter trains with below) from the same start and the same random
# draws.

# %%
# NBVAL_CHECK_OUTPUT
def my_train_step(model, optimizer, x0: torch.Tensor, sde, max_norm: float = 1.0) -> torch.Tensor:
    loss = my_sde_loss(model, dequantize(x0), sde)                 # eq. (7) on dequantised clips
    optimizer.zero_grad(set_to_none=True)
    loss.backward()                                                # ∂loss/∂θ for every weight
    torch.nn.utils.clip_grad_norm_(model.parameters(), max_norm)   # rescale the whole gradient to norm <= 1
    optimizer.step()                                               # θ ← AdamW(θ, ∂loss/∂θ)
    return loss.detach()


check_stream = MovingDigits(size=16, frames=8).stream(2, seed=3)   # batch i for step i
weights = {}
for name in ("mine", "package"):
    torch.manual_seed(0)
    twin = ContinuousTimeWrapper(randomised(VideoUNet(video_unet_tiny())), scale=999).train()
    torch.manual_seed(1)                                           # the same draws (dequantisation, t, z) in both
    if name == "mine":
        optimizer = torch.optim.AdamW(twin.parameters(), lr=1e-3, weight_decay=0.0)
        for step in range(2):
            my_train_step(twin, optimizer, check_stream(step).video, sde)
    else:
        make_trainer(twin, check_stream, 2, lambda m, b: sde_loss(m, dequantize(b.video), sde), lr=1e-3,
                     progress=False, measure_flops=False, log_every=1).fit()
    weights[name] = twin.state_dict()
for key in weights["mine"]:
    torch.testing.assert_close(weights["mine"][key], weights["package"][key], rtol=1e-5, atol=1e-6)
print("two steps of my_train_step leave the same weights as two steps of make_trainer with sde_loss")

# %% [markdown]
# **Training.** The package's trainer runs that step, compiled on the GPU, in bf16 autocast, for `train_minutes`
# (compilation included): a linear warm-up, then a cosine decay to a tenth of the peak that ends where the minutes
# do, and an exponential moving average (EMA) of the weights for sampling. The data stream also keeps a copy of
# the EMA weights when the run is half done (half the steps the loop plans for its minutes), so that the
# likelihood below can be read at two points of training.

# %%
class HalfwayCopy:
    """The training stream; on the way, a copy of the EMA weights at the first step past half the planned steps.

    A run bounded by time plans its last step from its measured seconds per step (``Trainer.planned_end``) and
    moves the cosine schedule's end there.
    """

    def __init__(self, stream):
        self.stream, self.trainer, self.model, self.step = stream, None, None, None

    def __call__(self, step: int):
        planned = self.trainer.planned_end                                  # the step the loop plans to end at
        if self.model is None and self.trainer.ema is not None and step >= planned // 2:
            self.model, self.step = copy.deepcopy(self.trainer.ema.model).eval(), step
        return self.stream(step)


torch.manual_seed(0)
model = ContinuousTimeWrapper(VideoUNet(config), scale=999).to(S.device)   # model(x, t) = U-Net(x, 999 t)
halfway = HalfwayCopy(data.stream(batch, seed=0, device=S.device))
trainer = make_trainer(model, halfway, steps, lambda m, b: sde_loss(m, dequantize(b.video), sde), lr=lr,
                       warmup=warmup, decay_to=0.1, ema_decay=ema_decay, minutes=train_minutes, compile=S.compile,
                       desc="vp-sde", log_every=pick(smoke=1, cpu=25, gpu=50),
                       model_config={"unet": asdict(config), "sde": "VPSDE(0.1, 20)", "time_scale": 999})
halfway.trainer = trainer
timer.start()
summary = trainer.fit()
train_minutes_measured = summary.wall_time_s / 60
print(f"{summary.steps} steps in {train_minutes_measured:.2f} min (compilation included) on {summary.device}: "
      f"{num(summary.samples_per_s, '.0f')} clips/s, MFU {num(summary.mfu, '.1%')}, "
      f"{num(summary.train_flops, '.3g')} training FLOPs; EMA copied at step {halfway.step}")
timer.lap("VP-SDE training")

# %%
plot_curves(trainer.history, keys=["loss"], smooth=0.6, logy=True, title="VP-SDE U-Net: training loss")

# %% [markdown]
# ### Samplers at the protocol: quality against network evaluations
#
# The EMA weights become a score function, s_θ(x, t) = −ε_θ(x, t)/std(t). Every sampler below uses the same network
# and the same prior noise (seed). Euler–Maruyama and reverse diffusion cost one network evaluation (NFE) per
# step; predictor–corrector costs two (one predictor, one Langevin corrector), so it gets half the steps, to
# compare at equal NFE; the ODE's cost is chosen by the solver for a given tolerance. On the GPU the network is
# compiled once for the one batch shape every sampler calls it with, in bf16 autocast.
#
# Each set of `n_gen` samples is scored with the course's metrics against the held-out reference, beside the
# reference rows of one `reference_rows` call at the same n: real clips, shuffled frames, frozen frames, pure noise
# and the mean video. A model's samples are shown only if their Fréchet distance (fd) is below **the floor**, twice
# the shuffled-frame row, by at least one standard error.

# %%
ema = trainer.ema.model.eval()


def make_eps_model(net: nn.Module, amp: bool):
    """ε_θ(x, t) in fp32, computed in bf16 autocast when ``amp`` (and on CUDA)."""
    def eps_model(x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        with torch.autocast(S.device.type, dtype=S.amp_dtype, enabled=amp and S.amp_dtype is not None):
            return net(x, t).float()
    return eps_model


sampler_net = torch.compile(ema) if S.compile else ema
score_fn = score_from_eps(make_eps_model(sampler_net, amp=True), sde)      # s_θ(x, t) = -ε_θ(x, t) / std(t)
shape = (n_gen, 1, data.frames, data.size, data.size)
if S.compile:
    with torch.no_grad():
        _, compile_s = timed(lambda: score_fn(torch.zeros(shape, device=S.device),
                                              torch.full((n_gen,), 0.5, device=S.device)))
    print(f"compiled the EMA U-Net for batch {n_gen} in {compile_s:.0f} s (not counted in the sampler times)")

evaluator = Evaluator(data, n_real=n_real, device=S.device)
rows = reference_rows(evaluator, n=n_gen)          # real, shuffled frames, frozen frames, noise, mean video
floor = floor_fd(rows)
print(format_rows(rows, ("fd", "frame_quality", "identity_consistency", "motion_consistency")))
print(f"the floor (twice the shuffled-frame row): fd {floor:.1f}")

# %%
runs = ([("Euler–Maruyama", "euler_maruyama", None, s) for s in sde_steps]
        + [("reverse diffusion", "reverse_diffusion", None, s) for s in sde_steps]
        + [("PC (RD + Langevin)", "reverse_diffusion", "langevin", max(1, s // 2)) for s in sde_steps]
        + [("probability-flow ODE", "ode", None, tol) for tol in ode_tols])


def cleaned(x: torch.Tensor) -> tuple[torch.Tensor, int]:
    """Samples clipped to [-1, 1], and how many clips held a NaN or inf (a sampler that diverged; scored as grey)."""
    diverged = int((~torch.isfinite(x.flatten(1)).all(1)).sum())
    return torch.nan_to_num(x.float(), nan=0.0, posinf=1.0, neginf=-1.0).clamp(-1, 1), diverged


samples, table = {}, []
for family, predictor, corrector, knob in runs:
    g = torch.Generator(S.device).manual_seed(0)                    # the same prior noise for every sampler
    if predictor == "ode":
        (x, nfe), seconds = timed(lambda: ode_sample(sde, score_fn, shape, rtol=knob, atol=knob, generator=g,
                                                     device=S.device))
        setting, note = f"tol {knob:g}", f"{knob:g}"
    else:
        (x, nfe), seconds = timed(lambda: pc_sample(sde, score_fn, shape, steps=knob, predictor=predictor,
                                                    corrector=corrector, snr=0.16, generator=g, device=S.device))
        setting, note = f"{knob} step" + "s" * (knob != 1), str(knob)
    x, diverged = cleaned(x)
    samples[family, setting] = x[:8].cpu()
    table.append({"family": family, "setting": setting, "note": note, "nfe": nfe, "seconds": seconds,
                  "diverged": diverged} | score(evaluator, x))

metrics = ["frame_quality", "identity_consistency", "motion_consistency"]
print(f"{'sampler':22s} {'setting':10s} {'NFE':>5s} {'s':>6s} {'fd':>16s} "
      + " ".join(f"{m[:14]:>14s}" for m in metrics))
for row in table:
    print(f"{row['family']:22s} {row['setting']:10s} {row['nfe']:5d} {row['seconds']:6.1f} "
          f"{row['fd']:8.2f} ± {row['fd_se']:5.2f} " + " ".join(f"{row[m]:14.3f}" for m in metrics)
          + (f"   ({row['diverged']} clips diverged)" if row["diverged"] else ""))
for name in ("real", "shuffled frames", "frozen frames"):
    print(f"{name:22s} {'':10s} {'':5s} {'':6s} {rows[name]['fd']:8.2f} ± {rows[name]['fd_se']:5.2f} "
          + " ".join(f"{rows[name][m]:14.3f}" for m in metrics))
timer.lap("samplers")

# %%
fig = Figure(figsize=(11, 3.8), layout="constrained")
ax_fd, ax_q = fig.subplots(1, 2)
families = list(dict.fromkeys(r["family"] for r in table))
plot_xy({f: ([r["nfe"] for r in table if r["family"] == f], [r["fd"] for r in table if r["family"] == f])
         for f in families}, xlabel="network evaluations (NFE)", ylabel="fd ↓", logx=True, logy=True,
        annotate={f: [r["note"] for r in table if r["family"] == f] for f in families}, ax=ax_fd)
for name, style in [("real", ":"), ("frozen frames", "-."), ("shuffled frames", "--")]:
    ax_fd.axhline(rows[name]["fd"], color="grey", linestyle=style, linewidth=1, label=name)
ax_fd.axhline(floor, color="C3", linestyle="--", linewidth=1, label="floor (2 × shuffled)")
ax_fd.legend(fontsize=7)
plot_xy({f: ([r["nfe"] for r in table if r["family"] == f],
             [r["frame_quality"] for r in table if r["family"] == f]) for f in families},
        xlabel="network evaluations (NFE)", ylabel="frame quality ↑", logx=True, ax=ax_q)
ax_q.axhline(rows["real"]["frame_quality"], color="grey", linestyle=":", linewidth=1, label="real")
ax_q.legend(fontsize=7)
fig

# %% [markdown]
# The samples of each sampler family at its most expensive setting, where that setting is past the floor (the
# others are listed, not shown), first as looping GIFs:

# %%
# NBVAL_IGNORE_OUTPUT
best = {}
for row in table:  # the most expensive setting of each sampler family
    if row["family"] not in best or row["nfe"] > best[row["family"]]["nfe"]:
        best[row["family"]] = row
shown = {f: r for f, r in best.items() if verdict(r["fd"], floor, r["fd_se"]) == "met"}
for f, r in best.items():
    if f not in shown:
        print(f"not shown: {f} ({r['setting']}), fd {r['fd']:.1f} ± {r['fd_se']:.1f} is not below the floor "
              f"{floor:.1f} by one standard error")
clips = {"real": data.batch(4, seed=123).video}
clips |= {f"{f} ({r['setting']}, NFE {r['nfe']})": samples[f, r["setting"]][:4] for f, r in shown.items()}
side_by_side(clips, nrow=2, scale=2)

# %% [markdown]
# The same clips as a static filmstrip, every other frame:

# %%
strip = {f"real {i}": data.batch(2, seed=123).video[i] for i in range(2)}
for f, r in shown.items():
    strip |= {f"{f}, {r['setting']}: {i}": samples[f, r["setting"]][i] for i in range(2)}
filmstrip(strip)

# %% [markdown]
# ### The ODE maps clips to noise and back
#
# The probability-flow ODE is deterministic, so it can be run both ways: forwards from a clip at t = ε to a latent
# at t = 1 (`ode_encode`), backwards from the latent to a clip (`ode_sample` with `z=`). The exact flow is a
# bijection: decode(encode(x)) = x, as section 2 saw on the Gaussian with its exact score (to 10⁻⁵ at a tolerance
# of 10⁻⁷). A solver only follows the flow approximately: `dopri5` picks its steps so that the estimated error of
# each step, measured as the root mean square (RMS) over *every pixel of every clip at once*, stays below the
# tolerance. A round trip's error is then made of the two solves' errors, carried through the flow; a single pixel
# can be off by much more than the tolerance while the RMS stays small.
#
# So we measure, on `rt_clips` held-out clips quantised to 8 bits, at several tolerances: the network evaluations
# of each solve, the RMS, mean and largest pixel error of decode(encode(x)), and the fraction of pixels that come
# back within half an 8-bit level (|error| < 1/255, so that rounding to 8 bits gives the pixel back exactly). If
# the error is the solver's, it falls as the tolerance tightens. The solves run in fp32 with TF32 off, because an
# adaptive solver at a tight tolerance reads bf16 rounding as error, and uncompiled (a new batch shape).

# %%
tf32 = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False
score_fp32 = score_from_eps(make_eps_model(ema, amp=False), sde)


def quantise(video: torch.Tensor) -> torch.Tensor:
    """8-bit values k / 127.5 - 1, k in 0..255."""
    return ((video + 1) * 127.5).round().clamp(0, 255) / 127.5 - 1


rt_x = quantise(data.heldout(rt_clips, device=S.device).video)
round_trips, latents, decoded = [], {}, {}
for tol in rt_tols:
    (z, nfe_enc), s_enc = timed(lambda: ode_encode(sde, score_fp32, rt_x, rtol=tol, atol=tol))
    (back, nfe_dec), s_dec = timed(lambda: ode_sample(sde, score_fp32, rt_x.shape, rtol=tol, atol=tol, z=z))
    err = (back - rt_x).abs()
    back_frac = (err < 1 / 255).flatten(1).float().mean(1)                # per clip
    round_trips.append({"tol": tol, "nfe_encode": nfe_enc, "nfe_decode": nfe_dec, "seconds": s_enc + s_dec,
                        "rms": err.pow(2).mean().sqrt().item(), "mean": err.mean().item(), "max": err.max().item(),
                        "pixels_back": mean_se(back_frac)[0], "pixels_back_se": mean_se(back_frac)[1]})
    latents[tol], decoded[tol] = z, back
tight = rt_tols[-1]
for r in round_trips:  # how far each tolerance's latent is from the tightest one's
    r["latent_rms_vs_tightest"] = (latents[r["tol"]] - latents[tight]).pow(2).mean().sqrt().item()
# How much the decoder magnifies a small change of the latent: decode the tightest latent nudged at random.
nudge = 1e-3
delta = nudge * torch.randn(rt_x.shape, generator=torch.Generator(S.device).manual_seed(3), device=S.device)
(nudged, _), _ = timed(lambda: ode_sample(sde, score_fp32, rt_x.shape, rtol=tight, atol=tight,
                                          z=latents[tight] + delta))
change = (nudged - decoded[tight]).abs()
magnification = change.pow(2).mean().sqrt().item() / delta.pow(2).mean().sqrt().item()

z_stats = latents[tight]
print(f"latents at tol {tight:g}: mean {z_stats.mean().item():+.3f}, std {z_stats.std().item():.3f} "
      "(the prior is N(0, I))")
print(f"{'tolerance':>9s} {'NFE enc':>8s} {'NFE dec':>8s} {'s':>5s} {'RMS err':>9s} {'mean err':>9s} {'max err':>8s} "
      f"{'pixels back':>14s} {'latent RMS vs tightest':>23s}")
for r in round_trips:
    print(f"{r['tol']:9.0e} {r['nfe_encode']:8d} {r['nfe_decode']:8d} {r['seconds']:5.1f} {r['rms']:9.5f} "
          f"{r['mean']:9.5f} {r['max']:8.4f} {r['pixels_back']:8.4f} ± {r['pixels_back_se']:.4f} "
          f"{r['latent_rms_vs_tightest']:23.2e}")
print(f"(8-bit levels are 2/255 = {2 / 255:.4f} apart; a pixel is back when its error is below half of that)")
print(f"a random nudge of RMS {nudge:g} to the latent moves the decoded clip by RMS "
      f"{change.pow(2).mean().sqrt().item():.2e} ({magnification:.2f}× the nudge), at most {change.max().item():.3f}")

# %%
strip = {"held-out clip": rt_x[0]}
strip |= {f"round trip, tol {tol:g}": decoded[tol][0].clamp(-1, 1) for tol in rt_tols}
strip |= {f"|error|, tol {tol:g} (black 0, white 2)": (decoded[tol][0] - rt_x[0]).abs().clamp(0, 2) - 1
          for tol in (rt_tols[0], tight)}
filmstrip(strip)

# %% [markdown]
# Reading the round trip, from the numbers above:

# %%
first, last = round_trips[0], round_trips[-1]
decades = math.log10(first["tol"] / last["tol"])
shrink = first["mean"] / max(last["mean"], 1e-12)
print(f"tolerance {first['tol']:g} -> {last['tol']:g} ({decades:.0f} decade(s)): NFE of a round trip "
      f"{first['nfe_encode'] + first['nfe_decode']} -> {last['nfe_encode'] + last['nfe_decode']}, mean error "
      f"{first['mean']:.2e} -> {last['mean']:.2e} ({shrink:.1f}× smaller), pixels back {first['pixels_back']:.4f} -> "
      f"{last['pixels_back']:.4f}")
if shrink >= 3 ** decades:
    print("-> the error follows the tolerance: it is the solver's. decode(encode(x)) gives the clips back as "
          "closely as one pays for in network evaluations; the flow itself is invertible.")
else:
    print("-> the error does not shrink with the tolerance as a solver's error would: at these tolerances it is "
          "set by something the tolerance does not control (the RMS error norm lets single pixels stray, and the "
          "learned flow magnifies small differences; see the nudge above).")
print(f"largest single-pixel error at the tightest tolerance: {last['max']:.3f} (RMS {last['rms']:.2e}): the "
      "tolerance bounds the RMS over all pixels of all clips, not each pixel")
timer.lap("ODE round trip")

# %% [markdown]
# ### Bits per dimension, and what a compressor measures
#
# **The model's number.** The ODE gives a density p(x) for a continuous clip (eq. (39), with one Rademacher probe
# per clip for the divergence). For 8-bit clips we add uniform noise inside each bin (dequantisation), and
#
# $$\text{bits/dim} = \frac{-\log_2 p(x + u)}{D} + \log_2 127.5 ,$$
#
# the second term (6.994) being the bits of a bin of width 2/255 in [−1, 1]. It is an upper bound on what a code
# built from the model would need per pixel (Theis et al. 2016): to reach a few tenths of a bit, the density part
# must be nearly −7 bits/dim, i.e. the model must put almost all the probability of a pixel inside its one bin.
#
# **The compressor's number.** zlib (level 9: LZ77 matching of repeated byte strings within the last 32 KB, then
# Huffman codes) compresses each clip's 16,384 bytes losslessly; 8 × its bytes / pixels is an *achieved* code
# length, not a bound. Beside it, a code that knows only how often each grey level occurs (the entropy of the
# pixel histogram of training clips) and nothing about where pixels sit.
#
# We measure all three on the same held-out clips, on the same clips with their frames shuffled (the same pixels, the
# motion scrambled) and, for the codes, with their first frame frozen; and the model's bits also with the EMA copy
# from halfway through training (the same clips, dequantisation noise and probes, so the difference is paired).

# %%
bpd_x = quantise(data.heldout(bpd_clips, device=S.device).video)             # (B, 1, T, H, W), 8-bit values
variants = {"held-out": bpd_x, "shuffled frames": shuffle_frames(bpd_x, torch.Generator().manual_seed(5)),
            "frozen frames": freeze_frames(bpd_x)}
D = bpd_x[0].numel()


def model_bits(net: nn.Module, clips: torch.Tensor) -> tuple[torch.Tensor, int]:
    """Bits/dim (B,) of 8-bit clips under the ODE model of ``net``, and the NFE of the solve."""
    x_deq = dequantize(clips, generator=torch.Generator(S.device).manual_seed(1))   # the same u for every call
    logp, _, nfe = log_likelihood(sde, score_from_eps(make_eps_model(net, amp=False), sde), x_deq,
                                  hutchinson="rademacher", rtol=bpd_tol, atol=bpd_tol,
                                  generator=torch.Generator(S.device).manual_seed(2))  # the same probes
    return (-logp / (D * math.log(2)) + OFFSET_8BIT_BITS).cpu(), nfe


def zlib_bits(clips: torch.Tensor) -> torch.Tensor:
    """Bits/dim (B,) of each clip's 8-bit bytes compressed by zlib at level 9."""
    levels = ((clips + 1) * 127.5).round().to(torch.uint8).cpu()
    return torch.tensor([8 * len(zlib.compress(c.numpy().tobytes(), 9)) / c.numel() for c in levels])


train_levels = ((quantise(data.batch(n_stats, seed=7).video) + 1) * 127.5).round().long()
counts = torch.bincount(train_levels.flatten(), minlength=256).double() + 1        # add-one: no level is impossible
p_level = counts / counts.sum()
histogram_entropy = -(p_level * p_level.log2()).sum().item()
background = (train_levels == 0).double().mean().item()


def histogram_bits(clips: torch.Tensor) -> torch.Tensor:
    """Bits/dim (B,) of a code that gives each grey level -log2 of its frequency in training clips."""
    levels = ((clips + 1) * 127.5).round().long().cpu()
    return -p_level.log2()[levels].flatten(1).mean(1)


bits = {("zlib", v): zlib_bits(c) for v, c in variants.items()}
bits |= {("grey-level histogram", v): histogram_bits(c) for v, c in variants.items()}
(bits["model", "held-out"], nfe_lik), seconds_lik = timed(lambda: model_bits(ema, bpd_x))
bits["model", "shuffled frames"], _ = model_bits(ema, variants["shuffled frames"])
if halfway.model is not None:
    bits["model at half its steps", "held-out"], _ = model_bits(halfway.model, bpd_x)
torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = tf32

print(f"bits/dim, mean ± standard error over {bpd_clips} clips")
print(f"{'':36s}" + "".join(f"{v:>22s}" for v in variants))
for code in ("zlib", "grey-level histogram", "model", "model at half its steps"):
    cells = [(f"{mean_se(bits[code, v])[0]:.3f} ± {mean_se(bits[code, v])[1]:.3f}" if (code, v) in bits else "—")
             for v in variants]
    print(f"{code:36s}" + "".join(f"{c:>22s}" for c in cells))
density_part = mean_se(bits["model", "held-out"])[0] - OFFSET_8BIT_BITS
print(f"the model's bits/dim = density part {density_part:+.3f} + bin width {OFFSET_8BIT_BITS:.3f} "
      f"(NFE {nfe_lik}, tolerance {bpd_tol:g}, {seconds_lik:.0f} s for {bpd_clips} clips)")
print(f"pixel statistics of training clips: {background:.1%} of pixels are exactly black (level 0); the grey-level "
      f"histogram's entropy is {histogram_entropy:.3f} bits/dim")
timer.lap("likelihood")

# %% [markdown]
# **Where the likelihood is decided.** The training loss draws t uniformly and weighs the noise-prediction error
# equally at every t. The likelihood weighs it by ½β(t)/std(t)² (the weighting under which the loss becomes a bound
# on −log p; Song, Durkan, Murray & Ermon 2021, "Maximum likelihood training of score-based
# diffusion models"; Kingma et al. 2021),
# which grows like 1/t as t → 0, where the noise is a few 8-bit levels and less. The table: for each decade of t,
# the noise it adds (in 8-bit levels), the share of training draws that fall in it, the share of the likelihood's
# weight it carries, and the measured noise-prediction error E‖ε_θ − z‖²/D of the final and the halfway weights on
# held-out clips (where the noise is a fraction of one 8-bit level, comparable to the dequantisation noise, the
# network can tell its noise z from that noise only near a bin's edges, so even a perfect model's error stays a
# large fraction of 1).

# %%
decade_edges = [1e-5, 1e-4, 1e-3, 1e-2, 1e-1, 1.0]
fine = torch.logspace(-5, 0, 2001, dtype=torch.float64)
integrand = 0.5 * sde.beta(fine) / sde.marginal_prob(torch.ones_like(fine), fine)[1] ** 2    # ½β/std² per unit t
total_weight = torch.trapezoid(integrand, fine).item()
mse_x = dequantize(quantise(data.heldout(pick(smoke=4, cpu=32, gpu=64), device=S.device).video),
                   generator=torch.Generator(S.device).manual_seed(4))


@torch.no_grad()
def eps_error(net: nn.Module, t_value: float) -> float:
    """E||ε_θ(x_t, t) - z||² / D at one time t on the held-out clips mse_x."""
    t = torch.full((mse_x.shape[0],), t_value, device=S.device)
    z = torch.randn(mse_x.shape, generator=torch.Generator(S.device).manual_seed(5), device=S.device)
    mean, std = sde.marginal_prob(mse_x, t)
    return (net(mean + broadcast(std, mse_x) * z, t).float() - z).pow(2).mean().item()


weighting = []
print(f"{'t from':>8s} {'to':>8s} {'noise (levels)':>16s} {'training draws':>15s} {'likelihood weight':>18s} "
      f"{'error, final':>13s} {'error, halfway':>15s}")
for lo, hi in zip(decade_edges[:-1], decade_edges[1:]):
    inside = (fine >= lo) & (fine <= hi)
    share = torch.trapezoid(integrand[inside], fine[inside]).item() / total_weight
    mid = math.sqrt(lo * hi)
    std_lo, std_hi = (sde.marginal_prob(torch.ones(1, dtype=torch.float64), torch.tensor([v], dtype=torch.float64))[1]
                      .item() * 127.5 for v in (lo, hi))
    row = {"t_from": lo, "t_to": hi, "noise_levels": [std_lo, std_hi], "training_share": (hi - lo) / (1 - 1e-5),
           "likelihood_share": share, "error_final": eps_error(ema, mid),
           "error_halfway": eps_error(halfway.model, mid) if halfway.model is not None else None}
    weighting.append(row)
    print(f"{lo:8.0e} {hi:8.0e} {std_lo:7.2f}–{std_hi:<8.1f} {row['training_share']:15.2%} {share:18.1%} "
          f"{row['error_final']:13.4f} {num(row['error_halfway'], '15.4f')}")

# %% [markdown]
# Reading the bits, from the numbers above:

# %%
def above_zero(v: torch.Tensor) -> bool:
    """Is the mean of per-clip bits/dim v above 0 by one standard error, and by at least a thousandth of a bit?"""
    m, se = mean_se(v)
    return m >= 1e-3 and verdict(m, 0.0, se, lower_is_better=False) == "met"


model_b, model_se = mean_se(bits["model", "held-out"])
zlib_b, zlib_se = mean_se(bits["zlib", "held-out"])
hist_b = mean_se(bits["grey-level histogram", "held-out"])[0]
motion = bits["model", "shuffled frames"] - bits["model", "held-out"]            # paired, clip by clip
zlib_motion = bits["zlib", "shuffled frames"] - bits["zlib", "held-out"]
print(f"model {model_b:.3f} ± {model_se:.3f} bits/dim, zlib {zlib_b:.3f} ± {zlib_se:.3f}, grey-level histogram "
      f"{hist_b:.3f}: the model needs {model_b / zlib_b:.1f}× zlib's bits"
      + (f" and {'more' if model_b > hist_b else 'fewer'} than a code that knows only the grey-level histogram"))
print(f"shuffling the frames costs the model {mean_se(motion)[0]:+.3f} ± {mean_se(motion)[1]:.3f} bits/dim and zlib "
      f"{mean_se(zlib_motion)[0]:+.3f} ± {mean_se(zlib_motion)[1]:.3f}: "
      + ("the model's likelihood prefers real motion" if above_zero(motion)
         else "the model's likelihood does not tell real motion from shuffled frames by one standard error"))
if halfway.model is not None:
    gain = bits["model at half its steps", "held-out"] - bits["model", "held-out"]
    print(f"from the halfway weights (step {halfway.step}) to the final ones (step {summary.steps}) the model's "
          f"bits/dim fell by {mean_se(gain)[0]:+.3f} ± {mean_se(gain)[1]:.3f}: "
          + ("still falling at the end of training" if above_zero(gain)
             else "no longer falling by one standard error"))
small_t = sum(r["likelihood_share"] for r in weighting if r["t_to"] <= 1e-2)
small_draws = sum(r["training_share"] for r in weighting if r["t_to"] <= 1e-2)
print(f"t below 1e-2 (noise under about {weighting[2]['noise_levels'][1]:.0f} levels) carries {small_t:.0%} of the "
      f"likelihood's weight and gets {small_draws:.1%} of the training draws")

# %% [markdown]
# **Why a short-trained model can need more bits than zlib.** The two numbers measure different things, on data
# that suits zlib unusually well. Most pixels of moving digits are exactly black, so a clip is mostly long runs of
# zero bytes, which LZ77 codes by reference almost for free (exact repeats cost almost nothing: see the
# frozen-frame column), and its number is a real file size. The model's number is the price of its
# density at the exact clip, and that price is decided where the noise is a few 8-bit levels or less: there the
# density must squeeze each pixel into its own bin. The table shows how little of the training the loss spends
# there (it draws t uniformly, for good samples, not for likelihood), and the halfway row shows what more
# training buys. On natural images the order is the other way round: trained for about a million steps, diffusion
# models reach about 3 bits/dim on CIFAR-10 (Song et al. 2021), well below what PNG and other lossless codecs need
# there (compared in Hoogeboom et al. 2019).
#
# ## 4 · NCSN on video: a ladder of noise levels
#
# Song & Ermon's own recipe: one network s_θ(x, i) conditioned on the index i of a noise level σ₁ > … > σ_L,
# trained with `dsm_loss` (section 1's `my_dsm_loss`), sampled with annealed Langevin dynamics. As in NCSNv2
# (Song & Ermon 2020, technique 3), the network's output is divided by σ_i, so that it predicts the noise z of
# x̃ = x + σ_i z and the score's scale 1/σ comes for free: s_θ(x, i) = −net(x, i)/σ_i. In plain view, checked
# against `vgcourse.diffusion.NoiseConditionalScore`:

# %%
# NBVAL_CHECK_OUTPUT
def my_ncsn_score(net: nn.Module, sigmas: torch.Tensor, x: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
    """s_θ(x, i) = -net(x, i) / σ_i for x (B, C, T, H, W) and level indices idx (B,), 0 = the largest noise."""
    sigma = sigmas[idx].view(-1, *[1] * (x.dim() - 1))        # (B, 1, 1, 1, 1): σ_i of each clip
    return -net(x, idx) / sigma


torch.manual_seed(0)
check_net = randomised(VideoUNet(video_unet_tiny())).eval()
check_sigmas = geometric_sigmas(sigma_min=0.02, sigma_max=2.0, n=4)
idx_check = torch.tensor([0, 3])
with torch.no_grad():
    torch.testing.assert_close(my_ncsn_score(check_net, check_sigmas, x_check, idx_check),
                               NoiseConditionalScore(check_net, check_sigmas)(x_check, idx_check))
print("my_ncsn_score matches vgcourse.diffusion.NoiseConditionalScore")

# %% [markdown]
# The same U-Net, a ladder of `ncsn_levels` levels from σ₁ = 2 to σ_L = 0.02 (the paper's 1 to 0.01 for images in
# [0, 1], doubled for our [−1, 1]), trained for `ncsn_minutes` with the package's trainer. `dsm_loss` sums over
# the pixels; we divide it by their number, so that its gradients have the scale of the VP model's (a mean), and
# the clipping to norm 1 means the same for both.

# %%
ncsn_sigmas = geometric_sigmas(sigma_min=0.02, sigma_max=2.0, n=ncsn_levels)
dims = data.frames * data.size * data.size
torch.manual_seed(0)
ncsn = NoiseConditionalScore(VideoUNet(config), ncsn_sigmas).to(S.device)
ncsn_trainer = make_trainer(ncsn, data.stream(batch, seed=1, device=S.device), steps,
                            lambda m, b: dsm_loss(m, b.video, m.sigmas) / dims, lr=lr, warmup=min(warmup, 50),
                            decay_to=0.1, ema_decay=pick(smoke=0.9, cpu=0.95, gpu=0.98), minutes=ncsn_minutes,
                            desc="ncsn", log_every=pick(smoke=1, cpu=25, gpu=25))
ncsn_summary = ncsn_trainer.fit()
ncsn_ema = ncsn_trainer.ema.model.eval()
print(f"NCSN: {ncsn_summary.steps} steps in {ncsn_summary.wall_time_s / 60:.2f} min (the VP model: "
      f"{summary.steps} steps in {train_minutes_measured:.2f} min)")
timer.lap("NCSN training")

# %% [markdown]
# **Level by level.** Each level of the ladder is a denoising problem: from x̃ = x + σ_i z, guess z. The VP model
# solves the same problems, since its time t with std(t)/mean coefficient(t) = σ sees a scaled copy of x̃:
# x_t = a(t)·x̃ (Song et al. 2021: NCSN and DDPM learn the same scores under two SDEs). So we can ask both networks
# the same questions on held-out clips. Then Algorithm 1 runs level by level (section 1's `my_annealed_langevin`,
# keeping the chain's state after each level), checked against `annealed_langevin`, and the package's sampler
# draws `n_gen` clips, scored at the protocol, with NCSNv2's final denoising step x + σ_L² s(x, L) (one more network
# evaluation, hence the + 1 in the NFE).

# %%
def vp_time_for_sigma(sigma: torch.Tensor) -> torch.Tensor:
    """The VP time t at which std(t) / mean coefficient(t) = σ: ᾱ(t) = 1 / (1 + σ²), i.e. ∫β = log(1 + σ²)."""
    b0, b1 = sde.beta_min, sde.beta_max - sde.beta_min
    return (-b0 + torch.sqrt(b0 ** 2 + 2 * b1 * torch.log1p(sigma ** 2))) / b1


@torch.no_grad()
def level_errors(x0: torch.Tensor) -> list[dict]:
    """Per level: E||guess - z||² / D of the NCSN and of the VP model, and one denoised clip of each."""
    out = []
    for i, sigma in enumerate(ncsn_sigmas.tolist()):
        z = torch.randn(x0.shape, generator=torch.Generator(S.device).manual_seed(10 + i), device=S.device)
        x_tilde = x0 + sigma * z                                                   # level i's input
        idx = torch.full((len(x0),), i, device=S.device)
        z_ncsn = -sigma * ncsn_ema(x_tilde, idx)                                  # the NCSN's guess of z
        t = vp_time_for_sigma(torch.full((len(x0),), sigma, device=S.device))
        a, std = sde.marginal_prob(torch.ones_like(t), t)
        assert torch.allclose(std / a, torch.full_like(t, sigma), rtol=1e-3)
        z_vp = ema(broadcast(a, x_tilde) * x_tilde, t).float()                   # the VP model's guess of z
        out.append({"sigma": sigma, "vp_time": t[0].item(), "noisy": x_tilde[0].cpu(),
                    "ncsn_error": (z_ncsn - z).pow(2).mean().item(), "vp_error": (z_vp - z).pow(2).mean().item(),
                    "ncsn_denoised": (x_tilde - sigma * z_ncsn)[0].cpu(),
                    "vp_denoised": (x_tilde - sigma * z_vp)[0].cpu()})
    return out


@torch.no_grad()
def langevin_ladder(score_model, x: torch.Tensor, sigmas: torch.Tensor, n_steps_each: int, step_lr: float,
                    generator: torch.Generator) -> list[torch.Tensor]:
    """Algorithm 1 (as my_annealed_langevin), keeping the chain's state after every level."""
    states = []
    for i in range(len(sigmas)):
        idx = torch.full((x.shape[0],), i, device=x.device)
        alpha = step_lr * (sigmas[i] / sigmas[-1]) ** 2                        # α_i = ε σ_i² / σ_L²
        for _ in range(n_steps_each):
            z = torch.randn(x.shape, generator=generator, device=x.device)
            x = x + 0.5 * alpha * score_model(x, idx) + alpha.sqrt() * z
        states.append(x)
    return states


levels = level_errors(data.heldout(pick(smoke=4, cpu=32, gpu=64), device=S.device).video)
step_lr = 0.2 * ncsn_sigmas[-1].item() ** 2      # α_L = 0.2 σ_L², the paper's ratio (2e-5 / 0.01²)
sigmas_dev = ncsn_sigmas.to(S.device)
x_start = torch.rand((2, *shape[1:]), generator=torch.Generator(S.device).manual_seed(6), device=S.device) * 2 - 1
with exact_fp32():                                 # both chains in full fp32, so only their maths can differ
    chain = langevin_ladder(ncsn_ema, x_start, sigmas_dev, ncsn_steps_each, step_lr,
                            torch.Generator(S.device).manual_seed(7))
    package_chain = annealed_langevin(ncsn_ema, x_start.shape, sigmas_dev, n_steps_each=ncsn_steps_each,
                                      step_lr=step_lr, x_init=x_start,
                                      generator=torch.Generator(S.device).manual_seed(7))
torch.testing.assert_close(chain[-1], package_chain, rtol=1e-3, atol=1e-3)
print("langevin_ladder's last state matches vgcourse.diffusion.annealed_langevin")


def ncsn_score(x: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
    with torch.autocast(S.device.type, dtype=S.amp_dtype, enabled=S.amp_dtype is not None):
        return ncsn_ema(x, idx).float()


x_ncsn, ncsn_seconds = timed(lambda: annealed_langevin(ncsn_score, shape, sigmas_dev, n_steps_each=ncsn_steps_each,
                                                       step_lr=step_lr, denoise=True, device=S.device,
                                                       generator=torch.Generator(S.device).manual_seed(0)))
x_ncsn, ncsn_diverged = cleaned(x_ncsn)
ncsn_scores = score(evaluator, x_ncsn) | {"nfe": ncsn_levels * ncsn_steps_each + 1, "seconds": ncsn_seconds,
                                          "diverged": ncsn_diverged}
ncsn_verdict = verdict(ncsn_scores["fd"], floor, ncsn_scores["fd_se"])
print(f"{'level':>5s} {'σ':>7s} {'VP time':>8s} {'noise-guess error: NCSN':>24s} {'VP model':>9s}")
for i, lv in enumerate(levels):
    print(f"{i + 1:5d} {lv['sigma']:7.3f} {lv['vp_time']:8.4f} {lv['ncsn_error']:24.4f} {lv['vp_error']:9.4f}")
print(f"annealed Langevin, {ncsn_levels} levels × {ncsn_steps_each} steps (NFE {ncsn_scores['nfe']}): fd "
      f"{ncsn_scores['fd']:.1f} ± {ncsn_scores['fd_se']:.1f}, frame quality {ncsn_scores['frame_quality']:.3f}; "
      f"floor {floor:.1f}: {'past the floor' if ncsn_verdict == 'met' else 'not past the floor'}")
timer.lap("NCSN sampling")

# %% [markdown]
# The ladder for one held-out clip (its middle frame): what level i trains on, the denoised guess x̃ − σ_i·ẑ of
# each network, and the state of an annealed Langevin chain (started from uniform noise) after level i.

# %%
mid = data.frames // 2
columns = ["x + σᵢ z", "NCSN's denoised guess", "VP model's denoised guess", "Langevin chain after level i"]
fig = Figure(figsize=(0.95 * len(columns) + 1.0, 0.95 * len(levels) + 0.5), layout="constrained")
axes = fig.subplots(len(levels), len(columns), squeeze=False)
for i, lv in enumerate(levels):
    images = [lv["noisy"], lv["ncsn_denoised"], lv["vp_denoised"], chain[i][0].cpu()]
    for j, image in enumerate(images):
        ax = axes[i, j]
        ax.imshow(image[0, mid].float().clamp(-1, 1), cmap="gray", vmin=-1, vmax=1)
        ax.set_xticks([]), ax.set_yticks([])
        if i == 0:
            ax.set_title(columns[j], fontsize=7)
    axes[i, 0].set_ylabel(f"σ = {lv['sigma']:.3g}", rotation=0, ha="right", va="center", fontsize=7)
fig

# %% [markdown]
# **What NCSN's recipe asks for at this size.** NCSNv2 gives two rules for the ladder (Song & Ermon 2020): σ₁ as
# large as the largest distance between two training examples, so that the first level mixes the whole data set
# (technique 1); and a ratio γ = σ_{i−1}/σ_i between levels small enough that neighbouring levels overlap, which in
# D dimensions means Φ(√(2D)(γ−1) + 3γ) − Φ(√(2D)(γ−1) − 3γ) ≈ ½ (technique 2), with about five Langevin steps per
# level. Computed for our clips, and priced at the cost per network evaluation that the samplers above measured:

# %%
flat = data.batch(n_stats, seed=8, device=S.device).video.flatten(1)
max_distance = torch.cdist(flat, flat).max().item()


def normal_cdf(v: float) -> float:
    return 0.5 * math.erfc(-v / math.sqrt(2))


def ncsnv2_ratio(dims: int) -> float:
    """γ with Φ(√(2D)(γ-1) + 3γ) - Φ(√(2D)(γ-1) - 3γ) = 0.5, by bisection (the left side falls as γ grows)."""
    lo, hi = 1.0, 2.0
    for _ in range(60):
        gamma = (lo + hi) / 2
        c = math.sqrt(2 * dims) * (gamma - 1)
        lo, hi = (gamma, hi) if normal_cdf(c + 3 * gamma) - normal_cdf(c - 3 * gamma) > 0.5 else (lo, gamma)
    return (lo + hi) / 2


gamma = ncsnv2_ratio(dims)
levels_needed = 1 + math.ceil(math.log(max_distance / ncsn_sigmas[-1].item()) / math.log(gamma))
nfe_needed = 5 * levels_needed
pc_rows = [r for r in table if r["family"] == "PC (RD + Langevin)"]
seconds_per_nfe = max(pc_rows, key=lambda r: r["nfe"])["seconds"] / max(pc_rows, key=lambda r: r["nfe"])["nfe"]
print(f"our ladder: {ncsn_levels} levels, σ₁ = {ncsn_sigmas[0].item():g} to σ_L = {ncsn_sigmas[-1].item():g}, ratio "
      f"{(ncsn_sigmas[0] / ncsn_sigmas[1]).item():.3f}; {ncsn_summary.steps} training steps, NFE {ncsn_scores['nfe']}")
print(f"NCSNv2's rules for D = {dims:,}: σ₁ ≈ {max_distance:.1f} (the largest distance between {n_stats} training "
      f"clips), γ = {gamma:.4f} -> {levels_needed} levels, × 5 steps = {nfe_needed:,} network evaluations per sample: "
      f"about {nfe_needed * seconds_per_nfe / 60:.1f} min for {n_gen} clips at the {seconds_per_nfe:.3f} s per "
      f"evaluation measured above, and {levels_needed} denoising problems to train instead of {ncsn_levels}")
worse = sum(lv["ncsn_error"] > lv["vp_error"] for lv in levels)
print(f"the NCSN's noise guesses are worse than the VP model's at {worse} of {len(levels)} levels")
if ncsn_verdict == "met":
    print(f"-> the NCSN's samples are past the floor (fd {ncsn_scores['fd']:.1f} ± {ncsn_scores['fd_se']:.1f} < "
          f"{floor:.1f})")
else:
    print(f"-> the NCSN, at fd {ncsn_scores['fd']:.1f} ± {ncsn_scores['fd_se']:.1f}, is not a working model in these "
          f"minutes (the floor is {floor:.1f}); the ladder above is what it has learned. The reasons, measured: "
          f"{ncsn_summary.steps / summary.steps:.0%} of the VP model's training steps, and a ladder of "
          f"{ncsn_levels} levels where its recipe asks for {levels_needed} on clips of this size. The VP model of "
          f"section 3 learns the same scores on a continuum of levels.")

# %% [markdown]
# ## Claim check
#
# The survey credits the SDE view with two things about sampling: **samplers are numerical solvers that trade
# quality for function evaluations** (more steps buy better samples), and **predictor–corrector beats a predictor
# alone at the same cost** (Song et al. 2021, Table 1). And the probability-flow ODE, being a bijection, should
# **give the clips back** from their latents. Stated before measuring, each read with one standard error:
#
# - *More NFE, better samples*: for each SDE sampler family, its fd at the most NFE against its fd at the fewest,
#   with the standard error of the difference (the two jackknife errors combined). **Supported** if every family
#   improves by at least one standard error, **not supported** if any family gets worse by more than one,
#   **not resolved** otherwise.
# - *PC beats reverse diffusion alone*: at the largest equal NFE, PC's fd against reverse diffusion's, the same way.
# - *The ODE gives the clips back*: at the tightest tolerance, the fraction of pixels that come back to their 8-bit
#   level, against 0.99, with its standard error over clips: **supported** if above by one standard error, **not
#   supported** if below by more than one, **not resolved** otherwise.

# %%
OUTCOME = {"met": "supported", "not met": "not supported", "not resolved": "not resolved"}


def fd_claim(better: dict, worse: dict) -> tuple[str, float, float]:
    """Is better['fd'] below worse['fd'] by one standard error of the difference? (outcome, difference, se)."""
    se = math.hypot(better["fd_se"], worse["fd_se"])
    return OUTCOME[verdict(better["fd"], worse["fd"], se)], better["fd"] - worse["fd"], se


claims = {"more NFE, better samples": {}}
for family in ("Euler–Maruyama", "reverse diffusion", "PC (RD + Langevin)"):
    fam = sorted((r for r in table if r["family"] == family), key=lambda r: r["nfe"])
    claims["more NFE, better samples"][family] = fd_claim(fam[-1], fam[0])
    outcome, diff, se = claims["more NFE, better samples"][family]
    print(f"{family:20s}: fd {fam[0]['fd']:7.2f} at NFE {fam[0]['nfe']:4d} -> {fam[-1]['fd']:7.2f} at NFE "
          f"{fam[-1]['nfe']:4d} (difference {diff:+.2f} ± {se:.2f}): {outcome}")
per_family = [o for o, _, _ in claims["more NFE, better samples"].values()]
claim_nfe = ("supported" if all(o == "supported" for o in per_family) else
             "not supported" if "not supported" in per_family else "not resolved")
ode_rows = sorted((r for r in table if r["family"] == "probability-flow ODE"), key=lambda r: r["nfe"])
print("probability-flow ODE (reported, not part of the claim): "
      + ", ".join(f"fd {r['fd']:.2f} ± {r['fd_se']:.2f} at NFE {r['nfe']} ({r['setting']})" for r in ode_rows))
print(f"-> more NFE, better samples: {claim_nfe}")

rd_top = max((r for r in table if r["family"] == "reverse diffusion"), key=lambda r: r["nfe"])
pc_top = max((r for r in table if r["family"] == "PC (RD + Langevin)"), key=lambda r: r["nfe"])
claim_pc, diff_pc, se_pc = fd_claim(pc_top, rd_top)
print(f"-> PC beats reverse diffusion alone at NFE {pc_top['nfe']}: PC fd {pc_top['fd']:.2f}, reverse diffusion "
      f"{rd_top['fd']:.2f} (difference {diff_pc:+.2f} ± {se_pc:.2f}): {claim_pc}")

claim_ode = OUTCOME[verdict(last["pixels_back"], 0.99, last["pixels_back_se"], lower_is_better=False)]
print(f"-> the ODE gives the clips back: {last['pixels_back']:.4f} ± {last['pixels_back_se']:.4f} of pixels back at "
      f"tolerance {last['tol']:g} (NFE {last['nfe_encode']} + {last['nfe_decode']}): {claim_ode}")
claims |= {"more NFE, better samples (all families)": claim_nfe, "PC beats reverse diffusion": claim_pc,
           "ODE round trip gives the clips back": claim_ode}

# %% [markdown]
# ## Results
#
# The headline is the VP-SDE model with the predictor–corrector sampler at its most NFE, scored at the protocol;
# beside it the bits/dim, the round trip at the tightest tolerance and the NCSN.

# %%
by_setting = {f"{r['family']} ({r['setting']})": {k: v for k, v in r.items() if k not in ("family", "setting", "note")}
              for r in table}
results.record(
    "09_score_sde",
    {"headline": headline(pc_top, n_real=n_real, minutes=train_minutes_measured, sampler=f"PC, {pc_top['setting']}",
                          nfe=pc_top["nfe"], bits_per_dim=model_b, bits_per_dim_se=model_se,
                          zlib_bits_per_dim=zlib_b, histogram_bits_per_dim=hist_b,
                          round_trip_tol=last["tol"], round_trip_pixels_back=last["pixels_back"],
                          round_trip_mean_error=last["mean"], round_trip_max_error=last["max"],
                          ncsn_fd=ncsn_scores["fd"], ncsn_fd_se=ncsn_scores["fd_se"], floor=floor,
                          samples_per_s=summary.samples_per_s, mfu=summary.mfu),
     "samplers": by_setting, "reference_rows": rows,
     "round_trip": {"rows": round_trips, "nudge": nudge, "magnification": magnification},
     "likelihood": {"bits": {f"{code} / {v}": mean_se(b) for (code, v), b in bits.items()}, "nfe": nfe_lik,
                    "tol": bpd_tol, "clips": bpd_clips, "halfway_step": halfway.step,
                    "background_fraction": background, "histogram_entropy": histogram_entropy,
                    "weighting": weighting},
     "ncsn": ncsn_scores | {"levels": [{k: v for k, v in lv.items() if not isinstance(v, torch.Tensor)}
                                       for lv in levels],
                            "ncsnv2_sigma_1": max_distance, "ncsnv2_gamma": gamma, "ncsnv2_levels": levels_needed},
     "claims": claims, "parts_minutes": timer.minutes},
    started=STARTED, train=summary.as_dict(), ncsn_train=ncsn_summary.as_dict(),
    config={"data": repr(data), "unet": asdict(config), "train_minutes": train_minutes, "steps_cap": steps,
            "batch": batch, "lr": lr, "warmup": warmup, "ema_decay": ema_decay,
            "sde": "VPSDE(beta_min=0.1, beta_max=20)",
            "n_gen": n_gen, "n_real": n_real, "sde_steps": sde_steps, "ode_tols": ode_tols, "rt_tols": rt_tols,
            "bpd_tol": bpd_tol, "ncsn": {"sigmas": ncsn_sigmas.tolist(), "n_steps_each": ncsn_steps_each,
                                         "step_lr": step_lr, "minutes": ncsn_minutes}})
print(f"headline: PC sampler ({pc_top['setting']}, NFE {pc_top['nfe']}) fd {pc_top['fd']:.2f} ± {pc_top['fd_se']:.2f} "
      f"(real {rows['real']['fd']:.2f}, frozen {rows['frozen frames']['fd']:.2f}, floor {floor:.1f}); below the frozen-"
      f"frame row: {verdict(pc_top['fd'], rows['frozen frames']['fd'], pc_top['fd_se'])}; bits/dim {model_b:.3f} "
      f"(zlib {zlib_b:.3f})")

# %% [markdown]
# ## Exercises
#
# Each exercise has a stub to fill and a check from the package; run the check cell after editing. Untouched, a
# check says *not attempted yet*.
#
# **1. The VE SDE's noise scale.** Write σ(t) = σ_min (σ_max/σ_min)^t, the noise scale of the variance-exploding SDE:
# the std of x(t) given x(0) when the data count as already perturbed by σ_min, as NCSN, the paper's code and `VESDE`
# take it (the exact kernel's std is √(σ(t)² − σ_min²)). NCSN's geometric ladder made continuous.

# %%
def ve_marginal_std(t: torch.Tensor, sigma_min: float, sigma_max: float) -> torch.Tensor:
    """t (B,) in [0, 1] -> σ(t) (B,)."""
    # YOUR CODE HERE
    raise NotImplementedError


# %%
# NBVAL_CHECK_OUTPUT
check("ve_marginal_std", ve_marginal_std)

# %% [markdown]
# <details><summary>Hint</summary>
#
# `log σ(t)` is linear in t, from `log σ_min` at t = 0 to `log σ_max` at t = 1. The reference answer:
# `solution("ve_marginal_std")`; compare with `VESDE.sigma`.
# </details>

# %%
# NBVAL_CHECK_OUTPUT
check("ve_marginal_std", solution("ve_marginal_std"))   # the reference answer, through the same check

# %% [markdown]
# **2. A reverse-diffusion predictor step.** The forward chain's step is x_t = x_{t−Δt} + f_i + G_i z with
# `(f_i, G_i) = sde.discretize(x, t, dt)`. Run it backwards with the score (Song et al. 2021, App. E): return
# x_{t−Δt} for the given noise z. For the VP SDE it agrees with DDPM's ancestral step to first order in β_i.

# %%
def reverse_diffusion_step(sde, score_fn, x: torch.Tensor, t: torch.Tensor, dt: float,
                           z: torch.Tensor) -> torch.Tensor:
    """x (B, ...) at time t -> x (B, ...) at time t - dt."""
    # YOUR CODE HERE
    raise NotImplementedError


# %%
# NBVAL_CHECK_OUTPUT
check("reverse_diffusion_step", reverse_diffusion_step)

# %% [markdown]
# <details><summary>Hint</summary>
#
# x_mean = x − f_i + G_i² s(x, t), then add G_i z; G_i has shape (B,), so broadcast it
# (`vgcourse.diffusion.sde.broadcast`). The reference answer: `solution("reverse_diffusion_step")`.
# </details>

# %%
# NBVAL_CHECK_OUTPUT
check("reverse_diffusion_step", solution("reverse_diffusion_step"))   # the reference answer, through the same check

# %% [markdown]
# **Predict, then see: the corrector's step size.** The Langevin corrector's step is set by a signal-to-noise ratio
# r, ε = 2α (r‖z‖/‖s‖)²: its step along the score is about r times the size of the noise it adds. The sampler table
# used r = 0.16 (Song et al.'s choice for their images). Below, your reverse-diffusion step (or the reference
# answer, while yours does not pass) is the predictor of a PC sampler at the table's cheapest PC setting, once with
# r = 0.04 and once with r = 0.5. *Predict first*: at so few steps, does a larger corrector step help the chain
# reach the data, or push it along a score that is least accurate where the noise is small? Then run:

# %%
step_answer = (reverse_diffusion_step if check("reverse_diffusion_step", reverse_diffusion_step).passed
               else solution("reverse_diffusion_step"))


def as_predictor(step_fn):
    """A pc_sample predictor (returns x and its noise-free mean) from a step that takes its noise z."""
    def predictor(sde_, score_fn_, x, t, dt, generator=None):
        z = torch.randn(x.shape, generator=generator, device=x.device, dtype=x.dtype)
        x_new = step_fn(sde_, score_fn_, x, t, dt, z)
        return x_new, x_new - broadcast(sde_.discretize(x, t, dt)[1], x) * z
    return predictor


pc_cheap = min((r for r in table if r["family"] == "PC (RD + Langevin)"), key=lambda r: r["nfe"])
pc_steps = max(1, sde_steps[0] // 2)
snr_scores = {0.16: pc_cheap}
for r in (0.04, 0.5):
    x, _ = pc_sample(sde, score_fn, shape, steps=pc_steps, predictor=as_predictor(step_answer), corrector="langevin",
                     snr=r, generator=torch.Generator(S.device).manual_seed(0), device=S.device)
    snr_scores[r] = score(evaluator, cleaned(x)[0])
for r in sorted(snr_scores):
    print(f"PC, {pc_steps} steps (NFE {2 * pc_steps}), r = {r:<5g}: fd {snr_scores[r]['fd']:7.2f} ± "
          f"{snr_scores[r]['fd_se']:.2f}, frame quality {snr_scores[r]['frame_quality']:.3f}"
          + ("   (the table's run)" if r == 0.16 else ""))
rd_cheap = min((r for r in table if r["family"] == "reverse diffusion"), key=lambda r: r["nfe"])
print(f"reverse diffusion alone, NFE {rd_cheap['nfe']}: fd {rd_cheap['fd']:.2f} ± {rd_cheap['fd_se']:.2f}")

# %% [markdown]
# <details><summary>What to look for</summary>
#
# The corrector's step size ε scales with r²: at r = 0.5 it is about 156 times that at r = 0.04, so the chain moves
# about 156 times as far along the score per step, with about 12 times the noise. Two effects pull against each
# other: with few predictor steps each leaves the chain off p_t, and a larger corrector step pulls it back further;
# but it also follows the network's score further at small noise, where a short-trained network is least accurate.
# The rows above say which won here: read them in order of r, and against reverse diffusion alone at the same NFE;
# the corrector earns its half of the evaluations only where its row is lower by more than the standard errors.
# </details>
#
# **3. Hutchinson's divergence estimator.** `log_likelihood` needs ∇·f̃ = tr(∂f̃/∂x) at every solver stage.
# Estimate it for a field `fn` mapping (B, D) → (B, D) sample by sample as vᵀ (∂fn/∂x) v, with one vector-Jacobian
# product (one backward pass), never the full Jacobian.

# %%
def hutchinson_divergence(fn, x: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """fn: (B, D) -> (B, D); x, v: (B, D) -> estimates (B,)."""
    # YOUR CODE HERE
    raise NotImplementedError


# %%
# NBVAL_CHECK_OUTPUT
check("hutchinson_divergence", hutchinson_divergence)

# %% [markdown]
# <details><summary>Hint</summary>
#
# With `x.requires_grad_(True)`, `torch.autograd.grad((fn(x) * v).sum(), x)[0]` is vᵀ ∂fn/∂x for every sample at
# once; multiply by v and sum over D. The reference answer: `solution("hutchinson_divergence")`.
# </details>

# %%
# NBVAL_CHECK_OUTPUT
check("hutchinson_divergence", solution("hutchinson_divergence"))   # the reference answer, through the same check

# %%
print(f"chapter wall time: {(time.time() - STARTED) / 60:.1f} min in the {S.profile} profile; parts (min): "
      f"{timer.minutes}")
