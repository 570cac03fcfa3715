"""Exercises of the video GAN chapters: solutions pass, untouched stubs read "not attempted yet", and known-wrong
answers fail with a message that says what is wrong."""

from dataclasses import replace

import pytest
import torch
import torch.nn.functional as F

from vgcourse.exercises import FAIL, NOT_ATTEMPTED, PASS, all_exercises, check, solution
from vgcourse.gan.losses import d_nonsaturating, g_nonsaturating
from vgcourse.gan.mocogan import sample_frames
from vgcourse.gan.video_prediction import MODES

NAMES = ["motion_codes", "centred_correlation", "image_only_step", "downsample_space", "kl_to_prior",
         "hybrid_without_kl"]


def stub(*args, **kwargs):
    raise NotImplementedError


@pytest.mark.parametrize("name", NAMES)
def test_solution_passes_and_stub_is_not_attempted(name):
    assert name in all_exercises()
    assert check(name, solution(name)).status == PASS, check(name, solution(name))
    assert check(name, stub).status == NOT_ATTEMPTED


def codes_with_h0(cell, h0, noise):  # h_0..h_{T−1}: one step late
    h, codes = h0, []
    for t in range(noise.shape[1]):
        codes.append(h)
        h = cell(noise[:, t], h)
    return torch.stack(codes, 1)


def codes_without_recurrence(cell, h0, noise):  # every step from h_0
    return torch.stack([cell(noise[:, t], h0) for t in range(noise.shape[1])], 1)


def uncentred_correlation(a, b):
    return (a * b).sum((1, 2)) / (a.flatten(1).norm(dim=1) * b.flatten(1).norm(dim=1))


def step_with_both_discriminators(trainer, batch):  # the full MoCoGAN step: D_V learns too
    m = trainer.forward_model
    real = batch
    fake = m["G"].sample(real.shape[0])
    d = d_nonsaturating(m["D_I"](sample_frames(real, 1)), m["D_I"](sample_frames(fake.detach(), 1))) \
        + d_nonsaturating(m["D_V"](real), m["D_V"](fake.detach()))
    trainer.optimize(d, "disc")
    trainer.optimize(g_nonsaturating(m["D_I"](sample_frames(fake, 1))), "gen")
    return {}


def step_without_generator_update(trainer, batch):
    m = trainer.forward_model
    fake = m["G"].sample(batch.shape[0])
    trainer.optimize(d_nonsaturating(m["D_I"](sample_frames(batch, 1)), m["D_I"](sample_frames(fake.detach(), 1))),
                     "disc")
    return {}


@pytest.mark.parametrize("name, wrong, says", [
    ("motion_codes", codes_with_h0, "h_1 = GRU(ε_1, h_0)"),
    ("motion_codes", codes_without_recurrence, "previous step"),
    ("motion_codes", lambda cell, h0, noise: noise, "expected z_M of shape"),
    ("centred_correlation", uncentred_correlation, "Centre each track"),
    ("centred_correlation", lambda a, b: torch.ones(3), "one correlation per pair"),
    ("image_only_step", step_with_both_discriminators, "D_V must take no part"),
    ("image_only_step", step_without_generator_update, "generator did not learn"),
    ("downsample_space", lambda v, f: F.avg_pool3d(v, f), "pools space only"),
    ("downsample_space", lambda v, f: v[:, :, :, ::f, ::f], "average"),
    ("kl_to_prior", lambda m, lv: 0.5 * (m ** 2 + lv.exp() - 1 - lv).mean(), "sum them"),
    ("kl_to_prior", lambda m, lv: (m ** 2 + lv.exp() - 1 - lv).sum(-1).mean(), "factor ½"),
    ("kl_to_prior", lambda m, lv: 0.5 * (m ** 2 + lv - 1 - lv.log1p()).sum(-1).mean(), "KL must be 0"),
    ("kl_to_prior", lambda m, lv: 0.5 * (m ** 2 + (0.5 * lv).exp() - 1 - lv).sum(-1).mean(), "σ² = exp(log_var)"),
    ("hybrid_without_kl", lambda: MODES["vae"], "KL weight is still"),
    ("hybrid_without_kl", lambda: replace(MODES["hybrid"], kl_weight=0.0, gan_weight=0.5), "change only"),
    ("hybrid_without_kl", lambda: replace(MODES["hybrid"], kl_weight=0.0,
                                          teacher_forcing=not MODES["hybrid"].teacher_forcing), "teacher_forcing"),
    ("hybrid_without_kl", lambda: "hybrid", "expected a PredictionRecipe"),
])
def test_wrong_answers_fail_with_a_message(name, wrong, says):
    result = check(name, wrong)
    assert result.status == FAIL and says in result.message, str(result)
