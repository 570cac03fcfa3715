"""Multi-head attention through ``F.scaled_dot_product_attention``, safe for many short sequences.

Factorised video attention reshapes (B, C, T, H, W) into B·H·W sequences of length T (temporal) or B·T
sequences of length H·W (spatial). On an H100 (PyTorch 2.11) SDPA fails once batch × heads passes
65,535 (a CUDA grid limit; see ``shared/gpu/NOTES.md``), so :func:`attention` splits the batch into
chunks below that bound. The maths is Vaswani et al. 2017, eq. (1): softmax(Q Kᵀ / √d) V.

The module that projects tokens to q, k, v and back is :class:`vgcourse.nn.transformer.Attention`;
``SelfAttention`` here is its old name, kept for old imports.
"""

from __future__ import annotations

from contextlib import AbstractContextManager, nullcontext

import torch
import torch.nn.functional as F
from torch.nn.attention import SDPBackend, sdpa_kernel

MAX_SDPA_BATCH = 65_535  # batch × heads per SDPA call must stay below this on CUDA

# Every SDPA backend but cuDNN's, for loops that meet a new key length at every call. cuDNN's backend builds an
# execution plan per new shape: sampling the 26M GPT prior of chapter 06 one code at a time (256 codes, a KV cache,
# bf16, an H100, PyTorch 2.11) took 2,091 ms per clip in a first call at batch 8 and 101 ms in a second call with the
# same shapes; without cuDNN's backend a first call took 132 ms (``python -m vgcourse.scripts.kv_cache_speed``).
DECODE_BACKENDS = (SDPBackend.FLASH_ATTENTION, SDPBackend.EFFICIENT_ATTENTION, SDPBackend.MATH)


def decode_backends(backends: tuple[SDPBackend, ...] | None = DECODE_BACKENDS) -> AbstractContextManager:
    """A context in which SDPA picks among ``backends`` (default :data:`DECODE_BACKENDS`); None: PyTorch's choice.

    For token-by-token sampling, where each step's keys are one longer than the last step's.
    """
    return nullcontext() if backends is None else sdpa_kernel(list(backends))


def attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, bias: torch.Tensor | None = None,
              is_causal: bool = False, max_batch: int = MAX_SDPA_BATCH - 1, dropout_p: float = 0.0) -> torch.Tensor:
    """softmax(Q Kᵀ / √d + bias) V, chunked over the batch (Vaswani et al. 2017, eq. (1)).

    Inputs:
        q: (N, heads, Lq, d); k, v: (N, heads, Lk, d)
        bias: additive float mask broadcastable to (N, heads, Lq, Lk), or a bool mask (True = attend).
        is_causal: lower-triangular mask (Lq == Lk).
        dropout_p: dropout on the attention weights (pass 0 in evaluation).
    Returns:
        (N, heads, Lq, d)
    """
    if q.ndim != 4 or k.ndim != 4 or v.ndim != 4:
        raise ValueError(f"expected q, k, v of shape (N, heads, L, d), got {tuple(q.shape)}, "
                         f"{tuple(k.shape)}, {tuple(v.shape)}")
    n, heads = q.shape[:2]
    per_chunk = max(1, max_batch // heads)
    if n <= per_chunk:
        return F.scaled_dot_product_attention(q, k, v, attn_mask=bias, is_causal=is_causal, dropout_p=dropout_p)
    outs = []
    for start in range(0, n, per_chunk):
        sl = slice(start, start + per_chunk)
        b = bias if bias is None or bias.ndim < 4 or bias.shape[0] == 1 else bias[sl]  # per-sample masks follow q
        outs.append(F.scaled_dot_product_attention(q[sl], k[sl], v[sl], attn_mask=b, is_causal=is_causal,
                                                   dropout_p=dropout_p))
    return torch.cat(outs)


def __getattr__(name: str):
    if name == "SelfAttention":  # the old name of the one attention module (imported late: it imports this file)
        from vgcourse.nn.transformer import Attention
        return Attention
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
