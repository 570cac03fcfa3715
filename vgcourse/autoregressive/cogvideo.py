"""CogVideo's dual-channel attention (Hong et al. 2023, §3.2), built on the course's one attention module.

CogVideo turns a pretrained text-to-image GPT (CogView2) into a video GPT without forgetting what it knows about
images. Each attention layer gets two channels: the pretrained layer, frozen, as the *spatial* channel (each token
attends within its own frame, as it did on images), and a new *temporal* channel, trained, that attends across frames
(CogVideo uses a 3D local, swin-like pattern; here full causal attention or NÜWA's nearby box,
:mod:`vgcourse.nn.local_attention`). A learned vector α ∈ ℝᴰ mixes them:

    out = α ⊙ attn_spatial(x) + (1 − α) ⊙ attn_temporal(x).

Only the temporal channel and α train, so the image model's appearance knowledge is kept while motion is learned.
α's starting value is a choice (``alpha_init``; 0.5 here, an even mix). Tokens are in raster order (t, h, w) and
every mask is causal, as in a GPT.
"""

from __future__ import annotations

import torch
from torch import nn

from vgcourse.nn.local_attention import Grid, nearby_mask
from vgcourse.nn.transformer import Attention


def frame_mask(grid: Grid, causal: bool = True, device: torch.device | str | None = None) -> torch.Tensor:
    """(L, L) bool: query i may attend to key j in the same frame (and j ≤ i with ``causal``): the spatial channel."""
    t, h, w = grid
    return nearby_mask(grid, (0, h, w), causal=causal, device=device)


class DualChannelAttention(nn.Module):
    """α ⊙ spatial + (1 − α) ⊙ temporal self-attention over a (T, H, W) token grid, both causal.

    Inputs (forward): x (B, L, D), L = T·H·W in raster order. Returns (B, L, D).
    Options: ``temporal_extent`` (e_t, e_h, e_w): the temporal channel sees a nearby box (None: every earlier token);
    ``alpha_init``: the starting value of every α.
    """

    def __init__(self, dim: int, heads: int, grid: Grid, temporal_extent: Grid | None = None,
                 alpha_init: float = 0.5):
        super().__init__()
        if len(grid) != 3 or min(grid) < 1:
            raise ValueError(f"expected a token grid (T, H, W) of positive sizes, got {grid}")
        self.grid = tuple(grid)
        self.spatial = Attention(dim, heads, causal=True)   # the pretrained image layer, frozen by freeze_spatial
        self.temporal = Attention(dim, heads, causal=True)  # new, trained
        self.alpha = nn.Parameter(torch.full((dim,), float(alpha_init)))
        self.register_buffer("spatial_mask", frame_mask(self.grid), persistent=False)  # (L, L)
        temporal = torch.ones(len(self.spatial_mask), len(self.spatial_mask), dtype=torch.bool).tril() \
            if temporal_extent is None else nearby_mask(self.grid, temporal_extent)
        self.register_buffer("temporal_mask", temporal, persistent=False)  # (L, L)

    def freeze_spatial(self, pretrained: dict[str, torch.Tensor] | None = None) -> "DualChannelAttention":
        """Load a pretrained attention layer's weights (an :class:`Attention` state dict) into the spatial channel,
        if given, and freeze it: its parameters get no gradient."""
        if pretrained is not None:
            self.spatial.load_state_dict(pretrained)
        self.spatial.requires_grad_(False)
        return self

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        length = len(self.spatial_mask)
        if x.ndim != 3 or x.shape[1] != length:
            raise ValueError(f"expected tokens (B, L, D) with L = T·H·W = {length} for grid {self.grid}, got "
                             f"{tuple(x.shape)}")
        spatial = self.spatial(x, mask=self.spatial_mask)     # (B, L, D) within each frame
        temporal = self.temporal(x, mask=self.temporal_mask)  # (B, L, D) across frames
        return self.alpha * spatial + (1 - self.alpha) * temporal  # Hong et al. 2023, §3.2
