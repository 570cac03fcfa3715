"""Multi-head attention through ``F.scaled_dot_product_attention``, safe for many short sequences.

Factorised video attention reshapes (B, C, T, H, W) into B·H·W sequences of length T (temporal) or B·T
sequences of length H·W (spatial). On an H100 (PyTorch 2.11) SDPA fails once batch × heads passes
65,535 (a CUDA grid limit; see ``shared/gpu/NOTES.md``), so :func:`attention` splits the batch into
chunks below that bound. The maths is Vaswani et al. 2017, eq. (1): softmax(Q Kᵀ / √d) V.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import nn

MAX_SDPA_BATCH = 65_535  # batch × heads per SDPA call must stay below this on CUDA


def attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, bias: torch.Tensor | None = None,
              is_causal: bool = False, max_batch: int = MAX_SDPA_BATCH - 1) -> torch.Tensor:
    """softmax(Q Kᵀ / √d + bias) V, chunked over the batch.

    Inputs:
        q: (N, heads, Lq, d); k, v: (N, heads, Lk, d)
        bias: additive float mask broadcastable to (N, heads, Lq, Lk), or a bool mask (True = attend).
        is_causal: lower-triangular mask (Lq == Lk).
    Returns:
        (N, heads, Lq, d)
    """
    if q.ndim != 4 or k.ndim != 4 or v.ndim != 4:
        raise ValueError(f"expected q, k, v of shape (N, heads, L, d), got {tuple(q.shape)}, "
                         f"{tuple(k.shape)}, {tuple(v.shape)}")
    n, heads = q.shape[:2]
    per_chunk = max(1, max_batch // heads)
    if n <= per_chunk:
        return F.scaled_dot_product_attention(q, k, v, attn_mask=bias, is_causal=is_causal)
    outs = []
    for start in range(0, n, per_chunk):
        sl = slice(start, start + per_chunk)
        b = bias if bias is None or bias.shape[0] == 1 else bias[sl]
        outs.append(F.scaled_dot_product_attention(q[sl], k[sl], v[sl], attn_mask=b, is_causal=is_causal))
    return torch.cat(outs)


class SelfAttention(nn.Module):
    """Multi-head self-attention over a sequence (N, L, D) -> (N, L, D)."""

    def __init__(self, dim: int, heads: int, qkv_bias: bool = True):
        super().__init__()
        if dim % heads:
            raise ValueError(f"dim={dim} must be divisible by heads={heads}")
        self.heads = heads
        self.qkv = nn.Linear(dim, 3 * dim, bias=qkv_bias)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor, bias: torch.Tensor | None = None, is_causal: bool = False) -> torch.Tensor:
        q, k, v = rearrange(self.qkv(x), "n l (three h d) -> three n h l d", three=3, h=self.heads)  # (N, h, L, d)
        out = attention(q, k, v, bias=bias, is_causal=is_causal)  # (N, h, L, d)
        return self.proj(rearrange(out, "n h l d -> n l (h d)"))  # (N, L, D)
