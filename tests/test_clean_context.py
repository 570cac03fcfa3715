"""Clean context (Open-Sora 1.1's masked conditioning): given frames enter x_t unnoised, are not scored, and come
out of every sampler exactly as given."""

import pytest
import torch
from torch import nn

from vgcourse.diffusion import cosine_schedule, ddim_sample, ddpm_sample, diffusion_loss, linear_schedule
from vgcourse.diffusion.clean_context import CleanContext, leading_frames_context, with_clean_context
from vgcourse.diffusion.conditioning import Conditions, first_frame_context


class ContinueFirstFrame(nn.Module):
    """The exact ε for data whose every frame equals frame 0, *if* frame 0 of x_t is clean: x_0 = frame 0 repeated,
    ε = (x_t − √ᾱ x_0)/√(1−ᾱ). Fed a noisy frame 0, it continues the noise instead."""

    def __init__(self, schedule):
        super().__init__()
        self.abar = schedule.alphas_cumprod.double()
        self.inputs: list[torch.Tensor] = []

    def forward(self, x_t, t, cond=None):
        self.inputs.append(x_t.clone())
        a = self.abar[t].reshape(-1, 1, 1, 1, 1)
        x0 = x_t[:, :, :1].double().expand_as(x_t)
        return ((x_t.double() - a.sqrt() * x0) / (1 - a).sqrt()).float()


def _image(seed: int, b: int = 3) -> torch.Tensor:
    return torch.rand(b, 2, 1, 6, 6, generator=torch.Generator().manual_seed(seed)) * 2 - 1  # (B, C, 1, H, W)


def test_with_clean_context_replaces_only_the_masked_frames():
    x_t, x0 = torch.randn(2, 3, 4, 5, 5), torch.randn(2, 3, 4, 5, 5)
    mask = torch.zeros(2, 1, 4, 1, 1)
    mask[0, :, 0] = 1
    mask[1, :, :2] = 1
    out = with_clean_context(x_t, x0, mask)
    torch.testing.assert_close(out[0, :, :1], x0[0, :, :1])
    torch.testing.assert_close(out[0, :, 1:], x_t[0, :, 1:])
    torch.testing.assert_close(out[1, :, :2], x0[1, :, :2])
    torch.testing.assert_close(out[1, :, 2:], x_t[1, :, 2:])
    with pytest.raises(ValueError, match=r"\(B, 1, T, 1, 1\)"):
        with_clean_context(x_t, x0, torch.ones(2, 3, 4, 1, 1))


@pytest.mark.parametrize("sampler", ["ddpm", "ddim"])
def test_samplers_continue_a_clean_first_frame_exactly(sampler):
    s = linear_schedule(50)
    image = _image(0)
    clip_shape = (3, 2, 5, 6, 6)
    context = leading_frames_context(image.expand(clip_shape).contiguous(), 1)
    model = ContinueFirstFrame(s)
    g = torch.Generator().manual_seed(1)
    run = (lambda **kw: ddpm_sample(model, clip_shape, s, progress=False, generator=g, **kw)) if sampler == "ddpm" \
        else (lambda **kw: ddim_sample(model, clip_shape, s, 10, progress=False, generator=g, **kw))
    out = run(context=context)
    torch.testing.assert_close(out[:, :, :1], image)  # frame 0 exactly as given
    torch.testing.assert_close(out, image.expand(clip_shape), atol=1e-4, rtol=0)  # and continued
    assert all(torch.equal(x[:, :, :1], image) for x in model.inputs)  # the model always saw it clean
    model.inputs.clear()
    without = run()
    assert (without - image.expand(clip_shape)).abs().max() > 0.5  # without the context the frame is not kept


def test_loss_sees_clean_context_and_does_not_score_it():
    s = cosine_schedule(100)
    x0 = torch.rand(4, 1, 3, 4, 4, generator=torch.Generator().manual_seed(2)) * 2 - 1
    mask = torch.zeros(4, 1, 3, 1, 1)
    mask[:2, :, 0] = 1  # clips 0, 1: frame 0 given

    class Spy(nn.Module):
        def __init__(self, frame0_output: float):
            super().__init__()
            self.value, self.seen = frame0_output, None

        def forward(self, x_t, t, cond=None):
            self.seen = x_t.clone()
            out = torch.zeros_like(x_t)
            out[:, :, 0] = self.value  # anything at frame 0
            return out

    losses = []
    for value in (0.0, 100.0):
        spy = Spy(value)
        losses.append(diffusion_loss(spy, x0, s, generator=torch.Generator().manual_seed(3), context=mask))
        torch.testing.assert_close(spy.seen[:2, :, 0], x0[:2, :, 0])  # given frames: clean in x_t
        assert not torch.allclose(spy.seen[2:, :, 0], x0[2:, :, 0])  # the others: noised
    assert losses[1] > losses[0] + 100  # clips 2, 3 still score their frame 0
    plain = diffusion_loss(Spy(0.0), x0, s, generator=torch.Generator().manual_seed(3))
    assert not torch.isclose(plain, losses[0])  # (the context changed which elements count)


def test_loss_ignores_the_context_frames_entirely():
    s = cosine_schedule(100)
    x0 = torch.rand(2, 1, 3, 4, 4) * 2 - 1
    ctx = torch.zeros(1, 1, 3, 1, 1)
    ctx[:, :, 0] = 1

    def model(out0: float):
        def f(x_t, t, cond=None):
            out = torch.zeros_like(x_t)
            out[:, :, 0] = out0
            return out
        return f

    a, b = (diffusion_loss(model(v), x0, s, generator=torch.Generator().manual_seed(4), context=ctx)
            for v in (0.0, 50.0))
    torch.testing.assert_close(a, b)


def test_first_frame_context_follows_given():
    image = torch.rand(3, 2, 6, 6) * 2 - 1
    cond = Conditions(first_frame=image, given={"first_frame": torch.tensor([True, False, True])})
    ctx = first_frame_context(cond, (3, 2, 4, 6, 6))
    assert ctx.mask[:, 0, :, 0, 0].tolist() == [[1, 0, 0, 0], [0, 0, 0, 0], [1, 0, 0, 0]]
    torch.testing.assert_close(ctx.known[:, :, 0], image)
    out = ctx.apply(torch.zeros(3, 2, 4, 6, 6))
    torch.testing.assert_close(out[0, :, 0], image[0])
    assert out[1].abs().max() == 0
    with pytest.raises(ValueError, match="first_frame"):
        first_frame_context(Conditions(caption=torch.ones(3, 2, dtype=torch.long)), (3, 2, 4, 6, 6))
    with pytest.raises(ValueError, match="0 < frames"):
        leading_frames_context(torch.zeros(1, 1, 4, 2, 2), 5)
    assert isinstance(ctx, CleanContext)
