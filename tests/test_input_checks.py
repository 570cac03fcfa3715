"""Inputs that used to give a wrong answer, or an unclear error, now raise or warn saying what was expected and what
arrived: one test per mistake a newcomer makes."""

import warnings

import pytest
import torch

from vgcourse.data import BouncingBalls, CaptionedShapes, MovingDigits, caption
from vgcourse.diffusion import ddpm as ddpm_module
from vgcourse.diffusion import diffusion_loss, linear_schedule
from vgcourse.display import encode_video, show_video
from vgcourse.metrics import Evaluator
from vgcourse.metrics.suite import SmallSampleWarning, warn_if_unit_range


@pytest.fixture(scope="module")
def evaluator():
    return Evaluator(MovingDigits(32, frames=8), n_real=16)


def _quietly(fn, *args):
    """Call fn with every warning an error, except the small-sample one that tiny test sets always raise."""
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        warnings.filterwarnings("ignore", category=SmallSampleWarning)
        return fn(*args)


def test_evaluate_warns_on_clips_in_0_1_and_their_fd_is_far_off(evaluator):
    real = MovingDigits(32, frames=8).batch(16, seed=1).video  # (16, 1, 8, 32, 32) in [-1, 1]
    right = _quietly(evaluator, real)["fd"]
    with pytest.warns(UserWarning, match=r"expected videos in \[-1, 1\], got values in \[0, 1\], never below 0"):
        wrong = evaluator((real + 1) / 2)["fd"]
    assert wrong > 2 * right  # the silent wrong answer the warning is about
    with pytest.warns(UserWarning, match="never below 0"):
        evaluator.features((real + 1) / 2)


def test_real_clips_of_every_dataset_do_not_look_like_0_1_data():
    for dataset in (MovingDigits(32, frames=4), BouncingBalls(32, frames=4), CaptionedShapes(32, frames=4),
                    CaptionedShapes(32, frames=4, camera_pan=True)):
        for seed in range(3):
            _quietly(warn_if_unit_range, dataset.batch(8, seed=seed).video)


def test_fd_on_fewer_clips_than_features_warns_naming_the_minimum(evaluator):
    real = MovingDigits(32, frames=8).batch(2, seed=1).video
    assert evaluator.min_clips == 128
    with pytest.warns(SmallSampleWarning, match="fd on 2 generated clips against 16 real ones: expected at least 128"):
        evaluator(real)
    with pytest.raises(ValueError, match="at least 2 generated clips, got 1"):
        evaluator(real[:1])


class _Zero(torch.nn.Module):
    def forward(self, x, t):
        return torch.zeros_like(x)


def test_diffusion_loss_refuses_pixels_in_0_255_and_lets_latents_through():
    s = linear_schedule(50)
    clips = MovingDigits(16, frames=2).batch(2, seed=0).video  # [-1, 1]
    as_uint8_values = torch.arange(256.0).reshape(1, 1, 1, 16, 16).repeat(2, 1, 2, 1, 1)  # the mistake: [0, 255]
    with pytest.raises(ValueError, match=r"expected x0 as pixels in \[-1, 1\] or as latents, got values in \[0, 255\]"):
        diffusion_loss(_Zero(), as_uint8_values, s)
    with pytest.raises(ValueError, match=r"pixels=True\), got values in \[0, 255\]; frames in \[0, 255\]"):
        diffusion_loss(_Zero(), as_uint8_values, s, pixels=True)
    with pytest.raises(ValueError, match=r"pixels in \[-1, 1\] \(pixels=True\), got values in \[-3"):
        diffusion_loss(_Zero(), clips * 3, s, pixels=True)
    latents = 3 * torch.randn(2, 4, 2, 4, 4, generator=torch.Generator().manual_seed(0))  # unbounded
    assert diffusion_loss(_Zero(), latents, s).isfinite()  # default: only never-negative data beyond 1 refused
    assert diffusion_loss(_Zero(), latents.abs() + 2, s, pixels=False).isfinite()  # the caller says: latents
    assert diffusion_loss(_Zero(), clips, s, pixels=True).isfinite()


def test_diffusion_loss_range_check_is_sparse_on_an_accelerator(monkeypatch):
    """Reading the range syncs with the device: first call and every 100th there, every call on the CPU."""
    seen = []
    monkeypatch.setattr(ddpm_module, "_range_checks", 0)
    monkeypatch.setattr(ddpm_module.torch, "aminmax", lambda x: seen.append(1) or (x.min(), x.max()))

    class Meta(torch.Tensor):  # a CPU tensor that says it lives on another device
        @property
        def device(self):
            return torch.device("meta")

    x = torch.zeros(1, 1, 1, 2, 2).as_subclass(Meta)
    for _ in range(201):
        ddpm_module.check_x0_range(x, None)
    assert len(seen) == 3
    for _ in range(5):
        ddpm_module.check_x0_range(torch.zeros(1, 1, 1, 2, 2), None)
    assert len(seen) == 8


def test_show_video_says_how_an_ambiguous_layout_was_read():
    btchw = torch.zeros(2, 3, 1, 8, 8)  # meant as (B, T=3, C=1, H, W): three greyscale frames
    with pytest.warns(UserWarning, match=r"axis 1 as 3 colour channels \(RGB\), axis 2 as 1 frame; .*'b t c h w"):
        show_video(btchw)
    with pytest.warns(UserWarning, match=r"axis 1 as 1 channel \(greyscale\), axis 2 as 3 frames"):
        encode_video(torch.zeros(1, 1, 3, 8, 8))
    _quietly(show_video, torch.zeros(2, 1, 16, 8, 8))  # the course's layout, unambiguous: no warning
    _quietly(show_video, torch.zeros(2, 1, 1, 8, 8))  # one greyscale frame reads the same either way


def test_show_video_zero_frames_and_fps_zero_are_clear_errors():
    with pytest.raises(ValueError, match=r"at least one clip, one frame and one pixel, got shape \(1, 1, 0, 8, 8\)"):
        show_video(torch.zeros(1, 1, 0, 8, 8))
    for fps in (0, -2, float("nan")):
        with pytest.raises(ValueError, match="expected fps as a positive number of frames per second, got"):
            show_video(torch.zeros(1, 1, 4, 8, 8), fps=fps)


def test_caption_index_out_of_range_names_the_choices():
    assert caption(0, 0, 0) == "a red square moves left"
    assert caption(torch.tensor(1), 2, 3, pan=1) == "a green triangle moves down and the camera pans left"
    with pytest.raises(ValueError, match=r"expected colour as an index in 0..5 \(red, green, blue, .*\), got 9"):
        caption(9, 0, 0)
    with pytest.raises(ValueError, match=r"expected direction as an index in 0..3 \(left, right, up, down\), got -1"):
        caption(0, 0, -1)
    with pytest.raises(ValueError, match="expected pan as an index in 0..4"):
        caption(0, 0, 0, pan=5)


def test_mocogan_discriminators_name_the_layout_they_expect():
    """D_I judges frames and D_V judges clips of at least 13 frames; each said so only as a convolution's error."""
    from vgcourse.gan import MoCoGANConfig, build_mocogan

    model = build_mocogan(MoCoGANConfig(image_size=16, frames=16, gen_width=8, disc_width=8))
    clips = torch.zeros(2, 1, 16, 16, 16)
    assert model["D_V"](clips).shape == (2, 4) and model["D_I"](clips[:, :, 0]).shape == (2, 1)
    with pytest.raises(ValueError, match=r"expected frames of shape \(N, 1, H, W\).*clips\? take their frames first"):
        model["D_I"](clips)
    with pytest.raises(ValueError, match=r"T >= 13 \(each score judges 13 frames\).*got \(2, 1, 8, 16, 16\)"):
        model["D_V"](clips[:, :, :8])
    with pytest.raises(ValueError, match=r"expected clips of shape \(B, 1, T, H, W\)"):
        model["D_V"](clips.transpose(1, 2))  # frames before channels


def test_dvdgan_networks_name_the_layout_they_expect():
    from vgcourse.gan import DVDGANConfig, build_dvdgan

    model = build_dvdgan(DVDGANConfig(image_size=16, frames=8, latent_dim=8, gen_channels=(16, 8, 8), disc_width=8,
                                      k_frames=4))
    assert model["G"](torch.randn(2, 8)).shape == (2, 1, 8, 16, 16)
    with pytest.raises(ValueError, match=r"expected z of shape \(B, 8\), got \(2, 120\)"):
        model["G"](torch.randn(2, 120))  # the paper's latent size, not this config's
    with pytest.raises(ValueError, match=r"T >= 4 and H, W >= 8 .* got \(2, 1, 3, 16, 16\)"):
        model["D_T"](torch.zeros(2, 1, 3, 16, 16))  # time halves twice
    with pytest.raises(ValueError, match=r"expected clips of shape \(B, 1, T, H, W\)"):
        model["D_T"](torch.zeros(2, 8, 1, 16, 16))  # frames before channels
    with pytest.raises(ValueError, match=r"expected k frames of each clip, \(B, 1, k, H, W\)"):
        model["D_S"](torch.zeros(8, 1, 16, 16))  # frames as a batch of images


def test_an_odd_timestep_frequency_dim_is_refused_where_it_is_set():
    """sin and cos per frequency: an odd width gave one feature too few and a matrix-product error at the first call."""
    from vgcourse.dit.model import TimestepEmbedder

    assert TimestepEmbedder(8, frequency_dim=16)(torch.rand(3)).shape == (3, 8)
    with pytest.raises(ValueError, match="expected an even number, got 15"):
        TimestepEmbedder(8, frequency_dim=15)
