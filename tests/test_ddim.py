"""The one DDIM step (Song et al. 2021, eq. (12)) and the one loop that every DDIM sampler calls.

The samplers before the step was factored out (commit 25672fd) are copied below as references, with the x̂_0 edit
they had (the clamp of ``clip_x0``) generalised to any hook at the same place; the new samplers must give their
samples up to float32 rounding: the step takes ᾱ as numbers, so 1/√ᾱ is rounded from ᾱ in float32 rather than
read from the schedule's float32 table (computed from ᾱ in float64); a last-bit change at one step moves a
sample by up to about 2e-6 after 10 to 25 steps of a small DiT.
"""

from __future__ import annotations

import math

import pytest
import torch

from vgcourse.diffusion import (
    Continuation,
    cosine_schedule,
    ddim_from,
    ddim_loop,
    ddim_sample,
    ddim_sigma,
    ddim_step,
    linear_schedule,
    replace_known,
)
from vgcourse.diffusion.clean_context import leading_frames_context
from vgcourse.diffusion.ddpm import ddim_timesteps, guided_eps
from vgcourse.dit import DiTConfig
from vgcourse.dit.generation import TextDiT
from vgcourse.exercises.diffusion_basics import check_ddim_step

ROUNDING = dict(rtol=1e-5, atol=1e-5)  # float32 rounding over a whole sampling run (measured: up to ~2e-6 at |x| ≤ 1)
SHAPE = (2, 1, 4, 8, 8)


def tiny_dit(cond_channels: int = 0) -> TextDiT:
    """A small caption-conditioned DiT with fixed random weights (not zero-initialised, so every input matters)."""
    torch.manual_seed(0)
    cfg = DiTConfig(input_size=8, frames=4, in_channels=1, num_classes=0, patch_size=4, temporal_patch=2, depth=2,
                    hidden_size=32, num_heads=2, attention_layout="factorised", cond_channels=cond_channels)
    model = TextDiT(cfg, text_dim=16, text_layers=0)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.05 * torch.randn_like(p))
    return model.eval()


TOKENS = torch.randint(1, 20, (2, 5), generator=torch.Generator().manual_seed(9))  # (B, L) captions


# ---- references: the DDIM updates of commit 25672fd ------------------------------------------------------------
@torch.no_grad()
def reference_ddim_sample(model, shape, schedule, steps, eta=0.0, cond=None, generator=None, guidance_scale=1.0,
                          edit=None, context=None):
    """``vgcourse.diffusion.ddim_sample`` at 25672fd (clip_x0 = (edit is the clamp)), CPU, no trajectory."""
    abar = schedule.alphas_cumprod.double().cpu()
    ts = ddim_timesteps(schedule.T, steps).tolist()
    x = torch.randn(shape, generator=generator)
    for k, i in enumerate(ts):
        prev = ts[k + 1] if k + 1 < len(ts) else -1
        a, a_prev = abar[i].item(), (abar[prev].item() if prev >= 0 else 1.0)
        t = torch.full((shape[0],), i, dtype=torch.long)
        x = context.apply(x) if context is not None else x
        eps = guided_eps(model, x, t, cond, guidance_scale)
        x0 = schedule.predict_x0(x, t, eps)
        if edit is not None:
            x0 = edit(x0)
            eps = schedule.predict_eps(x, t, x0)
        sigma = eta * ((1 - a_prev) / (1 - a) * (1 - a / a_prev)) ** 0.5
        x = a_prev ** 0.5 * x0 + max(1 - a_prev - sigma ** 2, 0.0) ** 0.5 * eps
        if sigma > 0:
            x = x + sigma * torch.randn(shape, generator=generator)
        if prev == -1 and context is not None:
            x = context.apply(x)
    return x


@torch.no_grad()
def reference_ddim_from(model, x, schedule, timesteps, cond=None, guidance_scale=1.0, known=None, mask=None,
                        generator=None, edit=None, context=None):
    """``ddim_from`` (then in vgcourse.dit.generation) at 25672fd (clip_x0 = (edit is the clamp))."""
    abar = schedule.alphas_cumprod.double().cpu()
    x = x.float()
    for k, i in enumerate(timesteps):
        if known is not None:
            noise = torch.randn(x.shape, generator=generator)
            x = replace_known(x, known, mask, i, schedule, noise)
        if context is not None:
            x = context.apply(x)
        prev = timesteps[k + 1] if k + 1 < len(timesteps) else -1
        a_prev = abar[prev].item() if prev >= 0 else 1.0
        t = torch.full((x.shape[0],), i, dtype=torch.long)
        eps = guided_eps(model, x, t, cond, guidance_scale)
        x0 = schedule.predict_x0(x, t, eps)
        if edit is not None:
            x0 = edit(x0)
            eps = schedule.predict_eps(x, t, x0)
        x = a_prev ** 0.5 * x0 + (1 - a_prev) ** 0.5 * eps
    if known is not None:
        x = mask * known.to(x.dtype) + (1 - mask) * x
    return context.apply(x) if context is not None else x


def clamp(x0: torch.Tensor) -> torch.Tensor:
    return x0.clamp(-1, 1)


def shrink_first_frame(x0: torch.Tensor) -> torch.Tensor:
    """A hook that is not a clamp: halve x̂_0 on frame 0 and squash it elsewhere."""
    out = torch.tanh(x0)
    out[:, :, 0] = 0.5 * x0[:, :, 0]
    return out


# ---- the loop gives the samples of the code it replaced ----------------------------------------------------------
@pytest.mark.parametrize("eta", [0.0, 0.5, 1.0])
@pytest.mark.parametrize("conditioned", [False, True])
@pytest.mark.parametrize("clip", [True, False])
def test_ddim_sample_equals_the_update_it_replaced(eta, conditioned, clip):
    model, s = tiny_dit(), cosine_schedule(1000)
    cond, scale = (TOKENS, 2.0) if conditioned else (None, 1.0)
    got = ddim_sample(model, SHAPE, s, 10, eta, cond=cond, guidance_scale=scale, clip_x0=clip,
                      generator=torch.Generator().manual_seed(1), progress=False)
    want = reference_ddim_sample(model, SHAPE, s, 10, eta, cond=cond, guidance_scale=scale,
                                 edit=clamp if clip else None, generator=torch.Generator().manual_seed(1))
    torch.testing.assert_close(got, want, **ROUNDING)
    if not clip:  # unclipped, an untrained model's x̂_0 is huge at high noise: the samples are far from [-1, 1]
        assert want.abs().max() > 10


@pytest.mark.parametrize("eta", [0.0, 1.0])
def test_ddim_sample_with_a_denoised_fn_equals_the_update_with_that_edit(eta):
    model, s = tiny_dit(), linear_schedule(1000)
    for clip_x0, edit in [(False, shrink_first_frame), (True, lambda x0: shrink_first_frame(x0).clamp(-1, 1))]:
        got = ddim_sample(model, SHAPE, s, 10, eta, cond=TOKENS, guidance_scale=3.0, clip_x0=clip_x0,
                          denoised_fn=shrink_first_frame, generator=torch.Generator().manual_seed(2), progress=False)
        want = reference_ddim_sample(model, SHAPE, s, 10, eta, cond=TOKENS, guidance_scale=3.0, edit=edit,
                                     generator=torch.Generator().manual_seed(2))
        torch.testing.assert_close(got, want, **ROUNDING)
    plain = ddim_sample(model, SHAPE, s, 10, eta, cond=TOKENS, guidance_scale=3.0, clip_x0=False,
                        generator=torch.Generator().manual_seed(2), progress=False)
    assert (plain - want).abs().max() > 0.1  # the hook changes the sample


def test_ddim_sample_with_a_clean_context_equals_the_update_it_replaced():
    model, s = tiny_dit(), linear_schedule(100)
    known = torch.rand(SHAPE, generator=torch.Generator().manual_seed(3)) * 2 - 1
    context = leading_frames_context(known, 2)
    got = ddim_sample(model, SHAPE, s, 8, 0.7, generator=torch.Generator().manual_seed(4), progress=False,
                      context=context)
    want = reference_ddim_sample(model, SHAPE, s, 8, 0.7, edit=clamp, generator=torch.Generator().manual_seed(4),
                                 context=context)
    torch.testing.assert_close(got, want, **ROUNDING)
    assert torch.equal(got[:, :, :2], known[:, :, :2])


@pytest.mark.parametrize("case", ["guided", "known", "clean context", "hook"])
def test_ddim_from_equals_the_update_it_replaced(case):
    s = linear_schedule(1000)
    g = torch.Generator().manual_seed(5)
    x = torch.randn(SHAPE, generator=g)
    known = torch.rand(SHAPE, generator=g) * 2 - 1
    mask = torch.zeros(1, 1, 4, 1, 1)
    mask[:, :, :2] = 1
    ts = ddim_timesteps(s.T, 6).tolist()
    model, kw, edit = tiny_dit(), {}, clamp
    if case == "guided":
        kw = dict(cond=TOKENS, guidance_scale=3.0)
    elif case == "known":
        kw = dict(known=known, mask=mask)
    elif case == "clean context":
        context = leading_frames_context(known, 2)
        model, kw = tiny_dit(cond_channels=1), dict(cond=Continuation(TOKENS, context.mask), guidance_scale=2.0,
                                                    context=context)
    else:
        kw, edit = dict(cond=TOKENS, clip_x0=False, denoised_fn=shrink_first_frame), shrink_first_frame
    got = ddim_from(model, x, s, ts, generator=torch.Generator().manual_seed(6), **kw)
    kw.pop("clip_x0", None)
    kw.pop("denoised_fn", None)
    want = reference_ddim_from(model, x, s, ts, generator=torch.Generator().manual_seed(6), edit=edit, **kw)
    torch.testing.assert_close(got, want, **ROUNDING)
    if case in ("known", "clean context"):
        assert torch.equal(got[:, :, :2], known[:, :, :2])


def test_ddim_sample_is_ddim_loop_from_its_noise():
    model, s = tiny_dit(), linear_schedule(100)
    got = ddim_sample(model, SHAPE, s, 5, 1.0, cond=TOKENS, generator=torch.Generator().manual_seed(7),
                      progress=False, return_trajectory=True)
    g = torch.Generator().manual_seed(7)
    x = torch.randn(SHAPE, generator=g)
    states = list(ddim_loop(model, x, s, ddim_timesteps(100, 5).tolist(), 1.0, cond=TOKENS, denoised_fn=clamp,
                            generator=g))
    assert [t for t, _ in states] == ddim_timesteps(100, 5).tolist()[1:] + [-1]
    assert torch.equal(got.trajectory[1:], torch.stack([x for _, x in states]))  # one code path: bit for bit
    assert torch.equal(got.sample, states[-1][1])


def test_model_kwargs_reach_every_model_call():
    calls = []

    def model(x_t, t, cond=None, *, scale):
        calls.append((cond, scale))
        return scale * torch.tanh(x_t) + (0.0 if cond is None else 0.1 * cond.float().reshape(-1, 1, 1, 1, 1))

    s = linear_schedule(50)
    kw = dict(cond=torch.tensor([1, 2]), guidance_scale=2.0, progress=False)
    got = ddim_sample(model, SHAPE, s, 4, generator=torch.Generator().manual_seed(0), model_kwargs={"scale": 0.3},
                      **kw)
    assert len(calls) == 8 and all(scale == 0.3 for _, scale in calls)  # both halves of the guidance, every step
    assert sum(c is None for c, _ in calls) == 4
    bound = ddim_sample(lambda x, t, *c: model(x, t, *c, scale=0.3), SHAPE, s, 4,
                        generator=torch.Generator().manual_seed(0), **kw)
    assert torch.equal(got, bound)
    x = torch.randn(SHAPE, generator=torch.Generator().manual_seed(1))
    assert not torch.equal(ddim_from(model, x, s, [40, 20, 0], model_kwargs={"scale": 0.3}),
                           ddim_from(model, x, s, [40, 20, 0], model_kwargs={"scale": 0.9}))


# ---- the step ---------------------------------------------------------------------------------------------------
def test_step_with_eta_zero_is_deterministic_and_ignores_noise():
    g = torch.Generator().manual_seed(0)
    x_t, eps, z = torch.randn(3, *SHAPE, generator=g).unbind(0)
    first = ddim_step(x_t, eps, 0.3, 0.6)
    assert torch.equal(first, ddim_step(x_t.clone(), eps.clone(), 0.3, 0.6))
    assert torch.equal(first, ddim_step(x_t, eps, 0.3, 0.6, eta=0.0, noise=z))  # σ = 0: z plays no part
    x0 = (x_t - math.sqrt(0.7) * eps) / math.sqrt(0.3)
    torch.testing.assert_close(first, math.sqrt(0.6) * x0 + math.sqrt(0.4) * eps)  # eq. (12), σ = 0


def test_step_to_abar_prev_one_returns_the_predicted_x0_exactly():
    g = torch.Generator().manual_seed(1)
    x0 = torch.rand(SHAPE, generator=g) * 2 - 1
    eps = torch.randn(SHAPE, generator=g)
    for abar_t in (0.999, 0.5, 0.02):
        x_t = math.sqrt(abar_t) * x0 + math.sqrt(1 - abar_t) * eps  # ε and x_0 explain x_t exactly
        seen = []
        out = ddim_step(x_t, eps, abar_t, 1.0, denoised_fn=lambda p: seen.append(p) or p)
        assert torch.equal(out, seen[0])  # x_prev = 1 · x̂_0 + 0 · ε, bit for bit
        torch.testing.assert_close(out, x0, rtol=0, atol=1e-5)
        noisy = ddim_step(x_t, eps, abar_t, 1.0, eta=1.0, noise=torch.randn(SHAPE, generator=g))
        assert torch.equal(noisy, ddim_step(x_t, eps, abar_t, 1.0))  # σ = 0 at ᾱ_prev = 1, even with η = 1
    target = torch.zeros(SHAPE)
    assert torch.equal(ddim_step(x_t, eps, 0.3, 1.0, denoised_fn=lambda p: target), target)  # the hook's x̂_0


def test_step_sigma_is_eq16_and_eta_one_is_the_ddpm_posterior():
    s = linear_schedule(100)
    abar = torch.cumprod(1 - torch.linspace(1e-4, 0.02, 100, dtype=torch.float64), 0)  # ᾱ in float64, as s built it
    for t in (1, 50, 99):
        sigma = ddim_sigma(abar[t].item(), abar[t - 1].item(), 1.0)  # consecutive steps
        assert sigma ** 2 == pytest.approx(s.posterior_variance[t].item(), rel=1e-5)  # σ² = β̃_t, Ho et al. eq. (7)
    assert ddim_sigma(0.2, 0.8, 0.0) == 0.0 and ddim_sigma(0.2, 1.0, 1.0) == 0.0
    g = torch.Generator().manual_seed(2)
    x_t, eps, z = torch.randn(3, *SHAPE, generator=g).unbind(0)
    sigma = ddim_sigma(0.2, 0.8, 0.5)
    with_z = ddim_step(x_t, eps, 0.2, 0.8, 0.5, z)
    torch.testing.assert_close(with_z - ddim_step(x_t, eps, 0.2, 0.8, 0.5, torch.zeros_like(z)), sigma * z)
    with pytest.raises(ValueError, match="noise"):
        ddim_step(x_t, eps, 0.2, 0.8, 0.5)
    with pytest.raises(ValueError, match="abar_prev"):
        ddim_step(x_t, eps, 0.2, 1.5)
    with pytest.raises(ValueError, match="eta"):
        ddim_step(x_t, eps, 0.2, 0.8, -1.0, z)


def test_step_passes_the_courses_ddim_exercise():
    check_ddim_step(ddim_step)  # the learner's η = 0 step (chapter 08) and the package's are the same function


def test_loop_checks_its_timesteps():
    model, s = tiny_dit(), linear_schedule(100)
    x = torch.randn(SHAPE)
    with pytest.raises(ValueError, match="descending"):
        list(ddim_loop(model, x, s, [10, 20, 0]))
    with pytest.raises(ValueError, match="descending"):
        list(ddim_loop(model, x, s, [100, 0]))
    assert [(t, torch.equal(y, x)) for t, y in ddim_loop(model, x, s, [])] == [(-1, True)]  # no steps: x is x_0
