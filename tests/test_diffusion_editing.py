"""Tests of vgcourse.diffusion.editing: DDIM from any state with replacement or clean context, SDEdit, and extension
chunk by chunk, with models that are not DiTs (the functions take any ε-model)."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from vgcourse.data import tokenize
from vgcourse.diffusion import (
    Continuation,
    ddim_from,
    ddim_sample,
    extend,
    linear_schedule,
    replace_known,
    sdedit,
    sdedit_timesteps,
)
from vgcourse.diffusion.ddpm import ddim_timesteps

SCHEDULE = linear_schedule(100)


class TinyEps(nn.Module):
    """An ε-model that is no DiT and no U-Net: a 3D convolution scaled by the timestep; ignores any condition."""

    def __init__(self, channels: int = 1):
        super().__init__()
        self.conv = nn.Conv3d(channels, channels, 3, padding=1)

    def forward(self, x: torch.Tensor, t: torch.Tensor, cond: object | None = None) -> torch.Tensor:
        return self.conv(x) * (1 + t.float() / 100).view(-1, 1, 1, 1, 1)  # (B, C, T, H, W)


def tiny_eps_model(channels: int = 1) -> TinyEps:
    torch.manual_seed(0)
    return TinyEps(channels).eval()


def test_sdedit_timesteps_closed_form() -> None:
    assert sdedit_timesteps(1000, 0.5, 5) == [500, 375, 250, 125, 0]
    assert sdedit_timesteps(1000, 1.0, 2) == [999, 0]
    assert sdedit_timesteps(1000, 0.0, 10) == []
    assert sdedit_timesteps(100, 0.03, 10) == [3, 2, 1, 0]
    with pytest.raises(ValueError, match="strength"):
        sdedit_timesteps(100, 1.5, 3)


def test_ddim_from_noise_equals_ddim_sample() -> None:
    model = tiny_eps_model()
    g = torch.Generator().manual_seed(3)
    want = ddim_sample(model, (2, 1, 4, 8, 8), SCHEDULE, steps=5, generator=g, progress=False)
    x = torch.randn((2, 1, 4, 8, 8), generator=torch.Generator().manual_seed(3))
    got = ddim_from(model, x, SCHEDULE, ddim_timesteps(100, 5).tolist())
    torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-5)


def test_replacement_keeps_known_frames() -> None:
    x, known, noise = torch.randn(3, 1, 1, 4, 8, 8).unbind(0)  # each (1, 1, 4, 8, 8)
    mask = torch.zeros(1, 1, 4, 1, 1)
    mask[:, :, :2] = 1
    out = replace_known(x, known, mask, 50, SCHEDULE, noise)
    abar = SCHEDULE.alphas_cumprod[50]
    torch.testing.assert_close(out[:, :, :2], (abar.sqrt() * known + (1 - abar).sqrt() * noise)[:, :, :2])
    assert torch.equal(out[:, :, 2:], x[:, :, 2:])
    model = tiny_eps_model()
    res = ddim_from(model, torch.randn(1, 1, 4, 8, 8), SCHEDULE, [60, 30, 0], known=known, mask=mask)
    assert torch.equal(res[:, :, :2], known[:, :, :2])


def test_sdedit_strength_zero_is_identity_and_extend_lengths() -> None:
    model = tiny_eps_model()
    src = torch.rand(2, 1, 4, 8, 8) * 2 - 1
    assert torch.equal(sdedit(model, src, SCHEDULE, 0.0, 5), src)
    edited = sdedit(model, src, SCHEDULE, 0.5, 3, generator=torch.Generator().manual_seed(0))
    assert edited.shape == src.shape and not torch.equal(edited, src)
    long, seams = extend(model, src, SCHEDULE, total_frames=9, context=2, steps=3)
    assert long.shape == (2, 1, 9, 8, 8) and seams == [4, 6, 8]
    assert torch.equal(long[:, :, :4], src)
    with pytest.raises(ValueError, match="context"):
        extend(model, src, SCHEDULE, total_frames=9, context=4, steps=3)


class HoldLastGiven(torch.nn.Module):
    """The exact ε for data that holds still, when the given frames are clean: x_0 = the last given frame,
    everywhere. Reads the mask it is passed, as a MaskedDiT does."""

    def __init__(self, schedule):
        super().__init__()
        self.abar = schedule.alphas_cumprod.double()

    def forward(self, x_t, t, mask=None):
        if isinstance(mask, Continuation):  # what extend passes: the frames, no caption
            assert mask.tokens is None
            mask = mask.mask
        a = self.abar[t].reshape(-1, 1, 1, 1, 1)
        last = int(mask[0, 0, :, 0, 0].sum().item()) - 1
        x0 = x_t[:, :, last:last + 1].double().expand_as(x_t)
        return ((x_t.double() - a.sqrt() * x0) / (1 - a).sqrt()).float()


def test_extend_with_clean_context_continues_the_given_frames_exactly():
    s = linear_schedule(100)
    still = torch.rand(2, 1, 1, 6, 6, generator=torch.Generator().manual_seed(0)).expand(2, 1, 8, 6, 6) * 2 - 1
    long_clip, seams = extend(HoldLastGiven(s), still.contiguous(), s, total_frames=20, context=3, steps=10,
                              generator=torch.Generator().manual_seed(1), clean_context=True)
    assert long_clip.shape == (2, 1, 20, 6, 6) and seams == [8, 13, 18]
    torch.testing.assert_close(long_clip, still[:, :, :1].expand(2, 1, 20, 6, 6), atol=1e-4, rtol=0)


class HoldLastGivenTexted(HoldLastGiven):
    """HoldLastGiven behind a Continuation condition; records the captions it is called with, and answers the
    caption's call with another clip's ε, so that guidance by the caption would move the sample."""

    def __init__(self, schedule):
        super().__init__(schedule)
        self.calls = []

    def forward(self, x_t, t, cond=None):
        assert isinstance(cond, Continuation)  # the frames reach both halves of guidance
        self.calls.append(cond.tokens)
        eps = super().forward(x_t, t, cond.mask)
        return eps if cond.tokens is None else eps + 0.01


def test_extend_with_clean_context_and_a_caption_guides_only_the_caption():
    s = linear_schedule(100)
    still = torch.rand(2, 1, 1, 6, 6, generator=torch.Generator().manual_seed(0)).expand(2, 1, 8, 6, 6) * 2 - 1
    tokens = tokenize(["a red square moves left", "a blue circle moves up"])
    model = HoldLastGivenTexted(s)
    long_clip, seams = extend(model, still.contiguous(), s, total_frames=13, context=3, steps=4, cond=tokens,
                              guidance_scale=3.0, generator=torch.Generator().manual_seed(1), clean_context=True)
    assert long_clip.shape == (2, 1, 13, 6, 6) and seams == [8]
    torch.testing.assert_close(long_clip[:, :, :3 + 5], still[:, :, :1].expand(2, 1, 8, 6, 6))  # context kept
    assert len(model.calls) == 2 * 4  # guided: the caption's call and the frames-only call at each of 4 steps
    assert sum(c is None for c in model.calls) == 4
    assert all(torch.equal(c, tokens) for c in model.calls if c is not None)
