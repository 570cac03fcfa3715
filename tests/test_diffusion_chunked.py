"""Sampling in chunks: results concatenated in order, conditions cut to the right clips, and for a deterministic
sampler (DDIM, η = 0) the same samples as one unchunked call, whatever the chunk size."""

from dataclasses import dataclass

import pytest
import torch

from vgcourse.diffusion import (
    VideoUNet,
    ddim_sample,
    ddim_sample_chunked,
    in_chunks,
    linear_schedule,
    rows,
    video_unet_tiny,
)
from vgcourse.diffusion.clean_context import CleanContext
from vgcourse.diffusion.conditioning import Conditions
from vgcourse.nn import randomised
from vgcourse.video import in_chunks as shared_in_chunks

SHAPE = (5, 1, 4, 16, 16)
SCHEDULE = linear_schedule(100)


def test_in_chunks_calls_in_order_and_concatenates():
    assert in_chunks is shared_in_chunks  # one function: vgcourse.video's, re-exported by diffusion
    seen = []

    def fn(r: slice) -> torch.Tensor:
        seen.append((r.start, r.stop))
        return torch.arange(r.start, r.stop)[:, None] * torch.ones(1, 3)  # (rows, 3): row i holds i

    out = in_chunks(fn, 7, 3)
    assert seen == [(0, 3), (3, 6), (6, 7)]
    torch.testing.assert_close(out, torch.arange(7.0)[:, None].expand(7, 3))
    with pytest.raises(ValueError, match="one row per item"):
        in_chunks(lambda r: torch.zeros(1, 3), 7, 3)
    with pytest.raises(ValueError, match="chunk >= 1"):
        in_chunks(fn, 7, 0)


@dataclass(frozen=True)
class CaptionAndFrames:  # a dataclass condition without __getitem__, as dit.generation.Continuation
    tokens: torch.Tensor
    mask: torch.Tensor
    label: str = "x"


def test_rows_cuts_every_kind_of_condition():
    r = slice(1, 3)
    tokens = torch.arange(12).view(4, 3)
    assert rows(None, r) is None
    torch.testing.assert_close(rows(tokens, r), tokens[1:3])
    ctx = rows(CleanContext(torch.arange(4.0).view(4, 1, 1, 1, 1), torch.ones(4, 1, 1, 1, 1)), r)
    assert isinstance(ctx, CleanContext) and ctx.known.flatten().tolist() == [1.0, 2.0]
    cond = rows(Conditions(caption=tokens, camera=torch.arange(4)), r)
    assert isinstance(cond, Conditions) and cond.camera.tolist() == [1, 2]
    both = rows(CaptionAndFrames(tokens, torch.arange(4.0)), r)
    assert both.mask.tolist() == [1.0, 2.0] and both.tokens.shape == (2, 3) and both.label == "x"
    assert rows({"a": tokens, "b": ["p", "q", "r", "s"]}, r)["b"] == ["q", "r"]
    with pytest.raises(TypeError, match="cannot take rows of a int"):
        rows(3, r)


def unet() -> VideoUNet:
    """A tiny video U-Net with random weights everywhere (its zero-initialised layers too): every input matters."""
    torch.manual_seed(0)
    return randomised(VideoUNet(video_unet_tiny(frames=4)))


@pytest.mark.parametrize("chunk", [1, 2, 5, 64])
def test_chunked_ddim_equals_one_unchunked_call(chunk):
    model = unet()
    whole = ddim_sample(model, SHAPE, SCHEDULE, 3, generator=torch.Generator().manual_seed(0), progress=False)
    chunked = ddim_sample_chunked(model, SHAPE, SCHEDULE, 3, chunk=chunk, generator=torch.Generator().manual_seed(0))
    assert chunked.dtype == torch.float32 and chunked.shape == SHAPE
    torch.testing.assert_close(chunked, whole, rtol=1e-5, atol=1e-5)


def test_conditions_and_context_reach_their_own_clips():
    model = unet()

    def conditional(x, t, cond=None):  # ε depends on each clip's caption (None: the unconditional half)
        return model(x, t) + (0 if cond is None else 0.3 * cond.float().mean(1).view(-1, 1, 1, 1, 1))

    tokens = torch.arange(SHAPE[0] * 2).view(SHAPE[0], 2)
    known = torch.linspace(-0.5, 0.5, SHAPE[0]).view(-1, 1, 1, 1, 1).expand(SHAPE).contiguous()
    mask = torch.zeros(SHAPE[0], 1, SHAPE[2], 1, 1)
    mask[:, :, 0] = 1  # frame 0 given clean
    kw = dict(cond=tokens, guidance_scale=2.0, context=CleanContext(known, mask))
    whole = ddim_sample(conditional, SHAPE, SCHEDULE, 3, generator=torch.Generator().manual_seed(1), progress=False,
                        **kw)
    chunked = ddim_sample_chunked(conditional, SHAPE, SCHEDULE, 3, chunk=2, generator=torch.Generator().manual_seed(1),
                                  **kw)
    torch.testing.assert_close(chunked, whole, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(chunked[:, :, 0], known[:, :, 0])  # each clip's own given frame, in order
    swapped = ddim_sample_chunked(conditional, SHAPE, SCHEDULE, 3, chunk=2, generator=torch.Generator().manual_seed(1),
                                  **(kw | dict(cond=tokens.flip(0))))
    assert not torch.allclose(swapped, chunked, atol=1e-3)  # the caption matters, so the slicing test can fail


def test_ddim_sample_refuses_an_x_T_of_another_shape():
    with pytest.raises(ValueError, match="expected x_T of the sample's shape"):
        ddim_sample(unet(), SHAPE, SCHEDULE, 2, x_T=torch.zeros(2, 1, 4, 16, 16), progress=False)
