"""DDPM schedules, loss and samplers checked against closed forms (Ho et al. 2020; Song et al. 2021 DDIM)."""

import math

import pytest
import torch

from vgcourse.diffusion import (
    SamplingResult,
    cosine_schedule,
    ddim_sample,
    ddim_timesteps,
    ddpm_sample,
    diffusion_loss,
    guided_eps,
    linear_schedule,
)


def oracle(schedule, points: torch.Tensor):
    """The exact ε-model for data that is a uniform mixture of the given points (P, C, T, H, W)."""
    abar = schedule.alphas_cumprod.double()

    def model(x_t: torch.Tensor, t: torch.Tensor, cond=None) -> torch.Tensor:
        a = abar[t].reshape(-1, 1).to(x_t.device)  # (B, 1)
        x, p = x_t.double().flatten(1), points.double().flatten(1)  # (B, D), (P, D)
        logw = -((x[:, None] - a.sqrt()[:, None] * p[None]) ** 2).sum(-1) / (2 * (1 - a))  # (B, P)
        x0 = torch.softmax(logw, 1) @ p  # E[x_0 | x_t], (B, D)
        return ((x - a.sqrt() * x0) / (1 - a).sqrt()).reshape(x_t.shape).float()  # ε = (x_t - √ᾱ x_0)/√(1-ᾱ)
    return model


def linear_model(x_t: torch.Tensor, t: torch.Tensor, cond=None) -> torch.Tensor:
    """A fixed, non-trivial ε-model: enough to compare samplers step for step."""
    return 0.7 * x_t + 0.2 * torch.sin(x_t.roll(1, -1) + t.float().reshape(-1, 1, 1, 1, 1) / 7)


def test_linear_schedule_matches_ho_2020():
    s = linear_schedule(1000)
    assert s.betas[0].item() == pytest.approx(1e-4) and s.betas[-1].item() == pytest.approx(0.02)
    expected = torch.cumprod(1 - torch.linspace(1e-4, 0.02, 1000, dtype=torch.float64), 0)
    assert torch.allclose(s.alphas_cumprod.double(), expected, rtol=1e-5)


def test_cosine_schedule_endpoints_and_eq17():
    T, s_ = 1000, 0.008
    s = cosine_schedule(T, s=s_)
    f = lambda t: math.cos((t / T + s_) / (1 + s_) * math.pi / 2) ** 2  # noqa: E731
    for t in (0, 1, 500, 990):  # index t is step t + 1 of the paper
        assert s.alphas_cumprod[t].item() == pytest.approx(f(t + 1) / f(0), rel=1e-4, abs=1e-7)
    assert 1 - s.alphas_cumprod[0].item() < 1e-4  # almost no noise at the first step
    assert s.alphas_cumprod[-1].item() < 1e-6  # almost pure noise at the last
    assert s.betas.max().item() == pytest.approx(0.999)  # the clip of eq. (17)'s last beta
    assert (s.alphas_cumprod[1:] < s.alphas_cumprod[:-1]).all()


@pytest.mark.parametrize("make", [linear_schedule, cosine_schedule])
def test_q_sample_mean_and_variance(make):
    s = make(1000)
    n, g = 20_000, torch.Generator().manual_seed(0)
    x0 = torch.tensor([0.8, -0.5, 0.1]).reshape(1, 3, 1, 1, 1).expand(n, 3, 1, 1, 1)
    for step in (0, 250, 999):
        t = torch.full((n,), step)
        x_t = s.q_sample(x0, t, torch.randn(x0.shape, generator=g))
        abar = s.alphas_cumprod[step].item()
        assert torch.allclose(x_t.mean(0).flatten(), math.sqrt(abar) * x0[0].flatten(), atol=0.03)
        assert torch.allclose(x_t.var(0).flatten(), torch.full((3,), 1 - abar), atol=0.03 * (1 - abar) + 1e-6)


def test_predict_x0_inverts_q_sample_and_snr():
    s = linear_schedule(100)
    x0, noise = torch.rand(4, 2, 3, 4, 4) * 2 - 1, torch.randn(4, 2, 3, 4, 4)
    t = torch.tensor([0, 10, 50, 99])
    x_t = s.q_sample(x0, t, noise)
    assert torch.allclose(s.predict_x0(x_t, t, noise), x0, atol=1e-4)
    assert torch.allclose(s.predict_eps(x_t, t, x0), noise, atol=1e-3)
    abar = s.alphas_cumprod[t]
    assert torch.allclose(s.snr(t), abar / (1 - abar))
    assert (s.snr(t)[1:] < s.snr(t)[:-1]).all()


def test_posterior_matches_eq7_and_algorithm2():
    s = linear_schedule(50)
    betas = torch.linspace(1e-4, 0.02, 50, dtype=torch.float64)
    abar = torch.cumprod(1 - betas, 0)
    x0, x_t = torch.randn(3, 1, 2, 3, 3), torch.randn(3, 1, 2, 3, 3)
    t = torch.tensor([1, 17, 49])
    mean, var, log_var = s.posterior(x0, x_t, t)
    for i, step in enumerate(t.tolist()):
        a, a_prev, b = abar[step].item(), abar[step - 1].item(), betas[step].item()
        mu = math.sqrt(a_prev) * b / (1 - a) * x0[i] + math.sqrt(1 - b) * (1 - a_prev) / (1 - a) * x_t[i]
        assert torch.allclose(mean[i], mu, atol=1e-5)
        assert var[i].item() == pytest.approx((1 - a_prev) / (1 - a) * b, rel=1e-4)
        assert log_var[i].item() == pytest.approx(math.log((1 - a_prev) / (1 - a) * b), rel=1e-4)
    # With x_0 predicted from ε, the posterior mean is Algorithm 2's 1/√α_t (x_t - β_t/√(1-ᾱ_t) ε).
    eps = torch.randn_like(x_t)
    mean, _, _ = s.posterior(s.predict_x0(x_t, t, eps), x_t, t)
    a, b = abar[t].reshape(-1, 1, 1, 1, 1).float(), betas[t].reshape(-1, 1, 1, 1, 1).float()
    assert torch.allclose(mean, (x_t - b / (1 - a).sqrt() * eps) / (1 - b).sqrt(), atol=1e-4)
    _, var0, log_var0 = s.posterior(x0, x_t, torch.zeros(3, dtype=torch.long))
    assert (var0 == 0).all() and torch.isfinite(log_var0).all()


def test_schedule_errors_and_device_move():
    s = linear_schedule(10)
    x = torch.zeros(2, 1, 1, 2, 2)
    with pytest.raises(TypeError, match="integer tensor"):
        s.q_sample(x, torch.tensor([1.0, 2.0]))
    with pytest.raises(ValueError, match=r"expected t in \[0, 10\), got range \[0, 10\]"):
        s.q_sample(x, torch.tensor([0, 10]))
    with pytest.raises(ValueError, match="one timestep per batch element"):
        s.q_sample(x, torch.tensor([1, 2, 3]))
    with pytest.raises(ValueError, match="betas in"):
        linear_schedule(10, beta_end=1.5)
    assert s.to("meta").alphas_cumprod.device.type == "meta"


def test_diffusion_loss_reproduces_eq14_and_mask():
    s = linear_schedule(100)
    x0 = torch.rand(3, 1, 2, 4, 4) * 2 - 1
    zero = lambda x_t, t, cond=None: torch.zeros_like(x_t)  # noqa: E731
    loss = diffusion_loss(zero, x0, s, generator=torch.Generator().manual_seed(3))
    g = torch.Generator().manual_seed(3)
    torch.randint(0, 100, (3,), generator=g)
    noise = torch.randn(x0.shape, generator=g)
    assert loss.item() == pytest.approx(noise.pow(2).mean().item(), rel=1e-6)  # ||ε - 0||²
    masked = diffusion_loss(zero, x0, s, generator=torch.Generator().manual_seed(3), mask=torch.tensor([0., 1, 0]))
    assert masked.item() == pytest.approx(noise[1].pow(2).mean().item(), rel=1e-6)
    frames = torch.tensor([1., 0]).reshape(1, 1, 2, 1, 1)  # per-frame mask
    masked = diffusion_loss(zero, x0, s, generator=torch.Generator().manual_seed(3), mask=frames)
    assert masked.item() == pytest.approx(noise[:, :, 0].pow(2).mean().item(), rel=1e-6)
    # the exact ε for a known x_0 has zero loss
    exact = lambda x_t, t, cond=None: s.predict_eps(x_t, t, x0)  # noqa: E731
    assert diffusion_loss(exact, x0, s).item() < 1e-6
    with pytest.raises(ValueError, match=r"expected x0 of shape \(B, C, T, H, W\), got \(3, 4, 4\)"):
        diffusion_loss(zero, x0[:, 0, 0], s)
    with pytest.raises(ValueError, match="mask"):
        diffusion_loss(zero, x0, s, mask=torch.ones(2, 2))
    with pytest.raises(ValueError, match="return eps of shape"):
        diffusion_loss(lambda x_t, t: x_t[:, :, :1], x0, s)


def test_ddim_timesteps():
    ts = ddim_timesteps(1000, 50)
    assert len(ts) == 50 and ts[0] == 999 and ts[-1] == 0 and (ts[:-1] > ts[1:]).all()
    assert torch.equal(ddim_timesteps(10, 10), torch.arange(9, -1, -1))
    assert ddim_timesteps(10, 1).tolist() == [9]
    with pytest.raises(ValueError, match="steps <= T=10"):
        ddim_timesteps(10, 11)


@pytest.mark.parametrize("steps", [2, 10, 50, 100, 1000])
def test_quadratic_ddim_timesteps_keep_both_ends_and_grow_their_gaps(steps):
    ts = ddim_timesteps(1000, steps, "quadratic").flip(0)  # ascending
    gaps = ts.diff()
    assert len(ts) == steps and ts[0] == 0 and ts[-1] == 999 and (gaps >= 1).all()
    assert (gaps.diff() >= -1).all()  # the gaps grow with t, up to rounding
    if steps == 50:  # short steps near the data, long ones near the noise; linear spacing has 20 everywhere
        assert gaps[0] <= 2 and gaps[-1] >= 35
    with pytest.raises(ValueError, match="spacing"):
        ddim_timesteps(1000, steps, "cubic")


@pytest.mark.parametrize("clip", [False, True])
def test_oracle_on_one_point_returns_it(clip):
    s = cosine_schedule(50)
    point = torch.rand(1, 1, 2, 3, 3) * 1.6 - 0.8
    model, shape = oracle(s, point), (4, 1, 2, 3, 3)
    g = torch.Generator().manual_seed(0)
    x = ddim_sample(model, shape, s, steps=10, eta=0.0, generator=g, clip_x0=clip, progress=False)
    assert torch.allclose(x, point.expand(shape), atol=1e-4)
    x = ddpm_sample(model, shape, s, generator=g, clip_x0=clip, progress=False)
    assert torch.allclose(x, point.expand(shape), atol=1e-4)


@pytest.mark.parametrize("sampler", ["ddpm", "ddim"])
def test_oracle_on_two_points_samples_both_modes(sampler):
    s = cosine_schedule(100)
    points = torch.stack([torch.full((1, 1, 2, 2), 0.5), torch.full((1, 1, 2, 2), -0.5)])  # (2, 1, 1, 2, 2)
    n, g = 400, torch.Generator().manual_seed(1)
    if sampler == "ddpm":
        x = ddpm_sample(oracle(s, points), (n, 1, 1, 2, 2), s, generator=g, progress=False)
    else:
        x = ddim_sample(oracle(s, points), (n, 1, 1, 2, 2), s, steps=25, generator=g, progress=False)
    dist = (x.flatten(1)[:, None] - points.flatten(1)[None]).abs().amax(-1)  # (n, 2)
    assert (dist.amin(1) < 1e-2).all()  # every sample lands on a data point
    assert 0.4 < (dist[:, 0] < dist[:, 1]).float().mean().item() < 0.6  # and both modes are found equally


@pytest.mark.parametrize("clip", [False, True])
def test_ddim_eta1_all_steps_is_ancestral_sampling(clip):
    s = linear_schedule(20, beta_end=0.2)
    kw = dict(shape=(2, 1, 2, 4, 4), schedule=s, clip_x0=clip, progress=False)
    a = ddpm_sample(linear_model, generator=torch.Generator().manual_seed(5), **kw)
    b = ddim_sample(linear_model, steps=20, eta=1.0, generator=torch.Generator().manual_seed(5), **kw)
    c = ddim_sample(linear_model, steps=20, eta=0.0, generator=torch.Generator().manual_seed(5), **kw)
    assert torch.allclose(a, b, atol=1e-4)
    assert not torch.allclose(a, c, atol=1e-2)  # eta = 0 is a different (deterministic) sampler


def test_trajectories():
    s = linear_schedule(12)
    res = ddpm_sample(linear_model, (2, 1, 3, 4, 4), s, return_trajectory=True, progress=False, trajectory_every=5)
    assert isinstance(res, SamplingResult)
    assert res.timesteps.tolist() == [11, 6, 1, -1]  # every 5th state, and always the final one
    assert res.trajectory.shape == (4, 2, 1, 3, 4, 4) and res.trajectory.device.type == "cpu"
    assert torch.equal(res.trajectory[-1], res.sample)
    res = ddim_sample(linear_model, (2, 1, 3, 4, 4), s, steps=4, return_trajectory=True, progress=False)
    assert res.timesteps.tolist() == ddim_timesteps(12, 4).tolist() + [-1]
    assert res.trajectory.shape == (5, 2, 1, 3, 4, 4)
    assert res.trajectory[-1].abs().max() <= 1  # clip_x0 keeps the sample in range


def test_classifier_free_guidance():
    calls = []

    def model(x_t, t, cond=None):
        calls.append(cond)
        return torch.zeros_like(x_t) if cond is None else torch.full_like(x_t, float(cond))

    x, t = torch.zeros(2, 1, 1, 2, 2), torch.tensor([3, 3])
    guided = guided_eps(model, x, t, cond=2, guidance_scale=1.5)
    assert torch.allclose(guided, torch.full_like(x, 3.0))  # ε_u + s (ε_c - ε_u) = 0 + 1.5 · 2
    assert torch.allclose(guided_eps(model, x, t, cond=2), torch.full_like(x, 2.0))
    with pytest.raises(ValueError, match="needs a cond"):
        guided_eps(model, x, t, cond=None, guidance_scale=3.0)
    calls.clear()
    ddim_sample(model, (1, 1, 1, 2, 2), linear_schedule(10), steps=3, cond=1, guidance_scale=2.0, progress=False)
    assert calls == [1, None] * 3


def test_sampler_shape_errors():
    with pytest.raises(ValueError, match=r"expected shape \(B, C, T, H, W\)"):
        ddpm_sample(linear_model, (2, 4, 4), linear_schedule(5), progress=False)
    with pytest.raises(ValueError, match="variance"):
        ddpm_sample(linear_model, (1, 1, 1, 2, 2), linear_schedule(5), variance="large", progress=False)


def test_ddim_sample_walks_the_spacing_it_is_given():
    s = linear_schedule(100)
    res = ddim_sample(linear_model, (2, 1, 3, 4, 4), s, steps=10, spacing="quadratic", return_trajectory=True,
                      progress=False)
    assert res.timesteps.tolist() == ddim_timesteps(100, 10, "quadratic").tolist() + [-1]
    linear = ddim_sample(linear_model, (2, 1, 3, 4, 4), s, steps=10, generator=torch.Generator().manual_seed(0),
                         progress=False)
    quadratic = ddim_sample(linear_model, (2, 1, 3, 4, 4), s, steps=10, spacing="quadratic",
                            generator=torch.Generator().manual_seed(0), progress=False)
    assert not torch.allclose(linear, quadratic, atol=1e-3)  # the same x_T, another path
