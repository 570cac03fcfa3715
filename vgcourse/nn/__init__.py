"""Shared neural-network pieces: attention (chunked SDPA) and small blocks used by several families."""

from vgcourse.nn.attention import MAX_SDPA_BATCH, SelfAttention, attention

__all__ = ["attention", "SelfAttention", "MAX_SDPA_BATCH"]
