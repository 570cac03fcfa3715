"""Shared neural-network pieces: attention (chunked SDPA), fixed sin-cos positions and small blocks used by several
families."""

from vgcourse.nn.attention import MAX_SDPA_BATCH, SelfAttention, attention
from vgcourse.nn.positions import sincos_1d, sincos_2d, sincos_3d

__all__ = ["attention", "SelfAttention", "MAX_SDPA_BATCH", "sincos_1d", "sincos_2d", "sincos_3d"]
