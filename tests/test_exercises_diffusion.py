"""The DDPM exercises: every solution passes its check, untouched stubs are "not attempted", wrong answers fail."""

import math

import pytest
import torch

from vgcourse.diffusion import cosine_schedule, ddim_sample, linear_schedule
from vgcourse.exercises import FAIL, all_exercises, check, solution

NAMES = ["q_sample", "ddim_step", "cosine_betas"]



def test_registered():
    assert set(NAMES) <= set(all_exercises())



def _q_one_step(x0, t, noise, abar):  # uses α_t where ᾱ_t belongs
    alphas = torch.cat([abar[:1], abar[1:] / abar[:-1]])
    a = alphas[t].reshape(-1, 1, 1, 1, 1)
    return a.sqrt() * x0 + (1 - a).sqrt() * noise


def _q_no_sqrt(x0, t, noise, abar):
    a = abar[t].reshape(-1, 1, 1, 1, 1)
    return a * x0 + (1 - a) * noise


def _q_first_t(x0, t, noise, abar):  # one ᾱ for the whole batch
    a = abar[t[0]]
    return a.sqrt() * x0 + (1 - a).sqrt() * noise


@pytest.mark.parametrize("wrong, hint", [(_q_one_step, "product"), (_q_no_sqrt, "square roots"),
                                         (_q_first_t, "own t"), (lambda x0, t, n, a: x0[:, :, :1], "shape")])
def test_q_sample_wrong_answers_fail_with_a_hint(wrong, hint):
    result = check("q_sample", wrong)
    assert result.status == FAIL and hint in result.message


def _ddim_returns_x0(x_t, eps, a, a_prev):
    return (x_t - math.sqrt(1 - a) * eps) / math.sqrt(a)


def _ddim_swapped(x_t, eps, a, a_prev):  # √(1-ᾱ) and √ᾱ swapped in the x_0 estimate
    x0 = (x_t - math.sqrt(a) * eps) / math.sqrt(1 - a)
    return math.sqrt(a_prev) * x0 + math.sqrt(1 - a_prev) * eps


@pytest.mark.parametrize("wrong, hint", [(_ddim_returns_x0, "re-noise"), (_ddim_swapped, "off by"),
                                         (lambda x, e, a, p: x, "off by")])
def test_ddim_step_wrong_answers_fail_with_a_hint(wrong, hint):
    result = check("ddim_step", wrong)
    assert result.status == FAIL and hint in result.message


def test_ddim_step_solution_is_the_package_sampler():
    """Looping the exercise's step over the package's timesteps reproduces ddim_sample (η = 0, no clipping)."""
    schedule = linear_schedule(100)
    toy_eps = lambda x, t: torch.tanh(0.5 * x + t.float().view(-1, 1, 1, 1, 1) / 100)  # noqa: E731
    shape = (2, 1, 3, 4, 4)
    want = ddim_sample(toy_eps, shape, schedule, steps=5, clip_x0=False, progress=False,
                       generator=torch.Generator().manual_seed(0))
    step = solution("ddim_step")
    x = torch.randn(shape, generator=torch.Generator().manual_seed(0))
    ts = [99, 74, 50, 25, 0]
    abar = schedule.alphas_cumprod.double()
    for k, i in enumerate(ts):
        a_prev = abar[ts[k + 1]].item() if k + 1 < len(ts) else 1.0
        x = step(x, toy_eps(x, torch.full((2,), i)), abar[i].item(), a_prev)
    torch.testing.assert_close(x, want, rtol=1e-4, atol=1e-4)


def _cos_abar(T, s=0.008):
    steps = torch.arange(T + 1, dtype=torch.float64)
    f = torch.cos((steps / T + s) / (1 + s) * math.pi / 2) ** 2
    return (f / f[0])[1:]


def _cos_unclipped(T, s=0.008):
    steps = torch.arange(T + 1, dtype=torch.float64)
    f = torch.cos((steps / T + s) / (1 + s) * math.pi / 2) ** 2
    abar = f / f[0]
    return 1 - abar[1:] / abar[:-1]


def _cos_no_offset(T):
    return solution("cosine_betas")(T, s=0.0)


@pytest.mark.parametrize("wrong, hint", [(_cos_abar, "ᾱ_t"), (_cos_unclipped, "clip"), (_cos_no_offset, "differ"),
                                         (lambda T: torch.zeros(T + 1), "shape")])
def test_cosine_betas_wrong_answers_fail_with_a_hint(wrong, hint):
    result = check("cosine_betas", wrong)
    assert result.status == FAIL and hint in result.message


def test_cosine_solution_matches_the_package_schedule():
    torch.testing.assert_close(solution("cosine_betas")(50).float(), cosine_schedule(50).betas)
