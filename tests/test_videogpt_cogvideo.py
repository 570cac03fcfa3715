"""Tests of CogVideo's dual-channel attention: the mix, the spatial channel's frame locality, causality, and that
freezing leaves gradients to the temporal channel and α only."""

from __future__ import annotations

import pytest
import torch

from vgcourse.autoregressive.cogvideo import DualChannelAttention, frame_mask
from vgcourse.nn import Attention


def layer(**kw) -> DualChannelAttention:
    torch.manual_seed(0)
    return DualChannelAttention(16, 2, (3, 2, 2), **kw).eval()


def test_output_is_the_alpha_mix_of_the_two_channels() -> None:
    dual = layer(alpha_init=0.3)
    x = torch.randn(2, 12, 16)
    with torch.no_grad():
        want = 0.3 * dual.spatial(x, mask=dual.spatial_mask) + 0.7 * dual.temporal(x, mask=dual.temporal_mask)
        torch.testing.assert_close(dual(x), want)


def test_the_spatial_channel_sees_its_own_frame_and_everything_is_causal() -> None:
    dual = layer(alpha_init=1.0)  # the spatial channel alone
    x = torch.randn(1, 12, 16)
    other = x.clone()
    other[:, :4] += 3.0  # change frame 0
    with torch.no_grad():
        torch.testing.assert_close(dual(x)[:, 4:], dual(other)[:, 4:])  # frames 1, 2 never read frame 0
        dual.alpha.fill_(0.5)
        later = x.clone()
        later[:, 7:] += 3.0
        torch.testing.assert_close(dual(x)[:, :7], dual(later)[:, :7])  # causal in raster order
        assert (dual(x)[:, 4:] - dual(other)[:, 4:]).abs().max() > 1e-3  # the temporal channel reads frame 0
    assert torch.equal(frame_mask((2, 1, 2)), torch.tensor([[1, 0, 0, 0], [1, 1, 0, 0], [0, 0, 1, 0],
                                                            [0, 0, 1, 1]], dtype=torch.bool))


def test_freezing_leaves_gradients_to_the_temporal_channel_and_alpha_only() -> None:
    pretrained = Attention(16, 2, causal=True).state_dict()
    dual = layer(temporal_extent=(1, 1, 1)).freeze_spatial(pretrained).train()
    assert torch.equal(dual.spatial.qkv.weight, pretrained["qkv.weight"])
    dual(torch.randn(2, 12, 16)).square().mean().backward()
    assert all(p.grad is None for p in dual.spatial.parameters())
    assert dual.alpha.grad is not None and all(p.grad is not None for p in dual.temporal.parameters())
    with pytest.raises(ValueError, match="L = T·H·W = 12"):
        dual(torch.randn(1, 10, 16))
