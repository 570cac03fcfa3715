"""Tests of vgcourse.dit.generation: text-conditioned DiT, cropped canvases and buckets, DDIM from any start with
replacement, SDEdit, extension and seam jumps."""

from __future__ import annotations

import pytest
import torch

from vgcourse.data import MovingDigits, tokenize
from vgcourse.diffusion import ddim_sample, linear_schedule
from vgcourse.diffusion.ddpm import ddim_timesteps
from vgcourse.dit import DiT, DiTConfig
from vgcourse.dit.generation import (
    CroppedDigits,
    TextDiT,
    bucket_stream,
    ddim_from,
    extend,
    replace_known,
    sdedit,
    sdedit_timesteps,
    seam_jumps,
)

SCHEDULE = linear_schedule(100)


def tiny_text_dit(channels: int = 3) -> TextDiT:
    torch.manual_seed(0)
    cfg = DiTConfig(input_size=8, frames=4, in_channels=channels, num_classes=0, patch_size=4, temporal_patch=2,
                    depth=2, hidden_size=32, num_heads=2, attention_layout="factorised")
    return TextDiT(cfg, text_dim=16, text_layers=0)


def perturbed(model: torch.nn.Module) -> torch.nn.Module:
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.05 * torch.randn_like(p))
    return model.eval()


def test_text_dit_is_zero_at_init_and_listens_to_captions() -> None:
    model = tiny_text_dit()
    x, t = torch.randn(2, 3, 4, 8, 8), torch.tensor([3, 90])
    tokens = tokenize(["a red square moves left", "a blue circle moves up"])
    assert torch.equal(model(x, t, tokens), torch.zeros_like(x))
    model = perturbed(model)
    with_caption, without = model(x, t, tokens), model(x, t)
    assert with_caption.shape == x.shape
    assert not torch.allclose(with_caption, without)
    assert torch.equal(model(x, t, tokens), with_caption)  # eval: no caption dropout
    other = model(x, t, tokenize(["a green triangle moves right"] * 2))
    assert not torch.allclose(other, with_caption)
    # another grid (T=2, 8×12) gets its positions on the fly
    assert model(torch.randn(1, 3, 2, 8, 12), torch.tensor([5]), tokens[:1]).shape == (1, 3, 2, 8, 12)


def test_text_dit_rejects_labels_and_bad_tokens() -> None:
    with pytest.raises(ValueError, match="num_classes=0"):
        TextDiT(DiTConfig(input_size=8, frames=2, in_channels=1, num_classes=10, hidden_size=32, num_heads=2))
    with pytest.raises(ValueError, match="caption tokens"):
        tiny_text_dit()(torch.randn(2, 3, 4, 8, 8), torch.tensor([1, 2]), tokenize(["a red square moves left"]))


def test_cropped_digits_square_equals_moving_digits_and_wide_shape() -> None:
    a = CroppedDigits(32, 32, frames=6).batch(3, seed=4)
    b = MovingDigits(size=32, frames=6).batch(3, seed=4)
    torch.testing.assert_close(a.video, b.video)
    wide = CroppedDigits(32, 48, frames=5).batch(4, seed=1)
    assert wide.video.shape == (4, 1, 5, 32, 48)
    assert wide.video.min() >= -1 and wide.video.max() <= 1
    d = CroppedDigits(32, 48).digit_size
    pos = wide.labels["positions"]
    assert pos[..., 0].max() <= 32 - d + 1e-4 and pos[..., 1].max() <= 48 - d + 1e-4
    assert pos[..., 1].max() > 32 - d  # the wide canvas is used


def test_bucket_stream_one_shape_per_batch_deterministic_images() -> None:
    buckets = [(CroppedDigits(16, 16, frames=4), 3, False), (CroppedDigits(16, 24, frames=8), 2, False),
               (CroppedDigits(16, 16, frames=4), 5, True)]
    stream = bucket_stream(buckets, seed=0)
    shapes = {tuple(stream(i).video.shape) for i in range(24)}
    assert shapes == {(3, 1, 4, 16, 16), (2, 1, 8, 16, 24), (5, 1, 1, 16, 16)}
    torch.testing.assert_close(stream(7).video, bucket_stream(buckets, seed=0)(7).video)


def test_sdedit_timesteps_closed_form() -> None:
    assert sdedit_timesteps(1000, 0.5, 5) == [500, 375, 250, 125, 0]
    assert sdedit_timesteps(1000, 1.0, 2) == [999, 0]
    assert sdedit_timesteps(1000, 0.0, 10) == []
    assert sdedit_timesteps(100, 0.03, 10) == [3, 2, 1, 0]
    with pytest.raises(ValueError, match="strength"):
        sdedit_timesteps(100, 1.5, 3)


def test_ddim_from_noise_equals_ddim_sample() -> None:
    model = perturbed(tiny_text_dit(1))
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
    model = perturbed(tiny_text_dit(1))
    res = ddim_from(model, torch.randn(1, 1, 4, 8, 8), SCHEDULE, [60, 30, 0], known=known, mask=mask)
    assert torch.equal(res[:, :, :2], known[:, :, :2])


def test_sdedit_strength_zero_is_identity_and_extend_lengths() -> None:
    model = perturbed(tiny_text_dit(1))
    src = torch.rand(2, 1, 4, 8, 8) * 2 - 1
    assert torch.equal(sdedit(model, src, SCHEDULE, 0.0, 5), src)
    edited = sdedit(model, src, SCHEDULE, 0.5, 3, generator=torch.Generator().manual_seed(0))
    assert edited.shape == src.shape and not torch.equal(edited, src)
    long, seams = extend(model, src, SCHEDULE, total_frames=9, context=2, steps=3)
    assert long.shape == (2, 1, 9, 8, 8) and seams == [4, 6, 8]
    assert torch.equal(long[:, :, :4], src)
    with pytest.raises(ValueError, match="context"):
        extend(model, src, SCHEDULE, total_frames=9, context=4, steps=3)


def test_seam_jumps() -> None:
    video = torch.zeros(1, 1, 6, 4, 4)
    video[:, :, 3:] = 1.0  # one jump into frame 3
    out = seam_jumps(video, [3])
    assert out["seam_change"] == 1.0 and out["within_change"] == 0.0
    ramp = torch.linspace(-1, 1, 6).view(1, 1, 6, 1, 1).expand(2, 1, 6, 4, 4)
    assert seam_jumps(ramp, [2, 4])["seam_ratio"] == pytest.approx(1.0)


# ---- continuation with clean context (MaskedDiT) ------------------------------------------------------------
def test_dit_cond_channels_enter_the_patches_and_are_not_predicted():
    from vgcourse.dit import flops_per_forward, measured_flops_per_forward
    cfg = DiTConfig(input_size=8, frames=4, in_channels=2, patch_size=2, hidden_size=32, depth=1, num_heads=2,
                    num_classes=0, cond_channels=1)
    model = DiT(cfg)
    x = torch.randn(3, 2, 4, 8, 8)
    assert model(x, torch.zeros(3, dtype=torch.long)).shape == x.shape  # C out, not C + 1
    assert model.x_embedder.proj.in_channels == 3
    torch.nn.init.normal_(model.final_layer.linear.weight, std=0.1)
    torch.nn.init.normal_(model.final_layer.adaLN_modulation[-1].weight, std=0.1)
    for block in model.blocks:
        torch.nn.init.normal_(block.adaLN_modulation[-1].weight, std=0.1)
    t = torch.full((3,), 10)
    ones = torch.ones(3, 1, 4, 8, 8)
    assert not torch.allclose(model(x, t, concat=ones), model(x, t))  # the channel is read
    torch.testing.assert_close(model(x, t, concat=torch.zeros_like(ones)), model(x, t))  # None = zeros
    with pytest.raises(ValueError, match="cond_channels"):
        model(x, t, concat=torch.ones(3, 2, 4, 8, 8))
    plain = DiTConfig(**{**vars(cfg), "cond_channels": 0})
    assert flops_per_forward(cfg) > flops_per_forward(plain)
    assert flops_per_forward(cfg) == pytest.approx(measured_flops_per_forward(cfg), rel=0.05)


def test_random_context_gives_leading_frames_to_some_clips():
    from vgcourse.dit.generation import random_context
    mask = random_context(4000, 8, 3, p_context=0.3, generator=torch.Generator().manual_seed(0))
    m = mask[:, 0, :, 0, 0]  # (B, T)
    k = m.sum(1)
    assert set(k.unique().tolist()) == {0, 1, 2, 3}
    assert abs((k > 0).float().mean().item() - 0.3) < 0.03
    assert torch.equal(m, (torch.arange(8)[None] < k[:, None]).float())  # always the leading frames
    with pytest.raises(ValueError, match="max_context"):
        random_context(2, 4, 4)


class HoldLastGiven(torch.nn.Module):
    """The exact ε for data that holds still, when the given frames are clean: x_0 = the last given frame,
    everywhere. Reads the mask it is passed, as a MaskedDiT does."""

    def __init__(self, schedule):
        super().__init__()
        self.abar = schedule.alphas_cumprod.double()

    def forward(self, x_t, t, mask=None):
        from vgcourse.dit.generation import Continuation
        if isinstance(mask, Continuation):  # what extend passes: the frames, no caption
            assert mask.tokens is None
            mask = mask.mask
        a = self.abar[t].reshape(-1, 1, 1, 1, 1)
        last = int(mask[0, 0, :, 0, 0].sum().item()) - 1
        x0 = x_t[:, :, last:last + 1].double().expand_as(x_t)
        return ((x_t.double() - a.sqrt() * x0) / (1 - a).sqrt()).float()


def test_extend_with_clean_context_continues_the_given_frames_exactly():
    from vgcourse.diffusion import linear_schedule
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
        from vgcourse.dit.generation import Continuation
        assert isinstance(cond, Continuation)  # the frames reach both halves of guidance
        self.calls.append(cond.tokens)
        eps = super().forward(x_t, t, cond.mask)
        return eps if cond.tokens is None else eps + 0.01


def test_extend_with_clean_context_and_a_caption_guides_only_the_caption():
    from vgcourse.diffusion import linear_schedule
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


def test_text_dit_with_a_mask_channel_reads_caption_and_frames():
    from vgcourse.dit.generation import Continuation
    torch.manual_seed(0)
    cfg = DiTConfig(input_size=8, frames=4, in_channels=3, num_classes=0, patch_size=4, temporal_patch=2, depth=2,
                    hidden_size=32, num_heads=2, cond_channels=1)
    model = perturbed(TextDiT(cfg, text_dim=16, text_layers=0))
    x, t = torch.randn(2, 3, 4, 8, 8), torch.tensor([3, 90])
    tokens = tokenize(["a red square moves left", "a blue circle moves up"])
    mask = torch.zeros(2, 1, 4, 1, 1)
    mask[:, :, :2] = 1
    both = model(x, t, Continuation(tokens, mask))
    assert not torch.allclose(both, model(x, t, tokens))  # the mask is read
    assert not torch.allclose(both, model(x, t, Continuation(None, mask)))  # and the caption
    torch.testing.assert_close(model(x, t, Continuation(tokens, torch.zeros_like(mask))), model(x, t, tokens))
    half = Continuation(tokens, mask)[1:]
    torch.testing.assert_close(model(x[1:], t[1:], half), both[1:])
    assert Continuation(tokens, mask).unconditional().tokens is None
    with pytest.raises(ValueError, match="frame mask"):
        model(x, t, Continuation(tokens, torch.zeros(2, 1, 3, 1, 1)))
    with pytest.raises(ValueError, match="cond_channels=1"):
        tiny_text_dit()(x, t, Continuation(tokens, mask))  # no mask channel
    with pytest.raises(ValueError, match="cond_channels 0 or 1"):
        TextDiT(DiTConfig(**{**vars(cfg), "cond_channels": 2}))


def test_masked_dit_reads_its_mask():
    from vgcourse.dit.generation import MaskedDiT
    cfg = DiTConfig(input_size=8, frames=4, in_channels=1, patch_size=2, hidden_size=32, depth=1, num_heads=2,
                    num_classes=0, cond_channels=1)
    model = MaskedDiT(cfg)
    torch.nn.init.normal_(model.dit.final_layer.linear.weight, std=0.1)
    torch.nn.init.normal_(model.dit.final_layer.adaLN_modulation[-1].weight, std=0.1)
    x, t = torch.randn(2, 1, 4, 8, 8), torch.full((2,), 5)
    mask = torch.zeros(2, 1, 4, 1, 1)
    mask[:, :, :2] = 1
    assert not torch.allclose(model(x, t, mask), model(x, t))
    torch.testing.assert_close(model(x, t, torch.zeros_like(mask)), model(x, t))
    from vgcourse.dit.generation import Continuation
    torch.testing.assert_close(model(x, t, Continuation(None, mask)), model(x, t, mask))
    with pytest.raises(ValueError, match="no caption"):
        model(x, t, Continuation(torch.zeros(2, 3, dtype=torch.long), mask))
    with pytest.raises(ValueError, match="mask"):
        model(x, t, torch.zeros(2, 1, 3, 1, 1))
    with pytest.raises(ValueError, match="cond_channels=1"):
        MaskedDiT(DiTConfig(**{**vars(cfg), "cond_channels": 0}))
