"""The transformer's one set of blocks: attention, the MLP, the pre-LN block and the adaLN-Zero block.

Every transformer of the course is built from these pieces: the DiT (adaLN blocks over spacetime layouts), the
caption encoder (pre-LN blocks with a padding mask), the GPT prior (causal pre-LN blocks with a KV cache),
MaskGIT (bidirectional pre-LN blocks) and the C-ViViT tokenizer (spatial and causal temporal steps).

- :class:`Attention`: multi-head self-attention from one qkv projection. Per head,
  Attention(Q, K, V) = softmax(Q Kᵀ / √d_k) V (Vaswani et al. 2017, eq. (1)); the heads are concatenated and
  projected, MultiHead(X) = Concat(head_1, …, head_h) W^O (§3.2.2). A causal mode, an optional mask, a KV cache
  for incremental decoding, and the spacetime layouts of :mod:`vgcourse.nn.layouts`.
- :class:`MLP`: the position-wise feed-forward network, Linear → GELU → Linear (Vaswani et al. 2017, eq. (2),
  with GELU as in GPT-2 and ViT).
- :class:`Block`: the pre-LN block of GPT-2 (Radford et al. 2019) and nanoGPT: x + attn(LN(x)), then
  x + mlp(LN(x)).
- :class:`AdaLNBlock`: the DiT block (Peebles & Xie 2023, §3.2, adaLN-Zero): a conditioning vector c sets the
  shift, scale and gate of both branches, x + α·attn(LN(x)·(1 + γ) + β), each projection zero-initialised so
  that the block starts as the identity.
- :class:`KVCache`: the keys and values of the tokens already seen, so that decoding token n costs O(n), not O(n²).

Tokens are (N, L, D) throughout; heads split D into ``heads`` × d.
"""

from __future__ import annotations

import torch
from einops import rearrange
from torch import nn

from vgcourse.nn.attention import attention
from vgcourse.nn.layouts import CAUSAL_STEPS, STEPS, Grid, attend, check_tokens


def modulate(x: torch.Tensor, shift: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    """adaLN: x·(1 + scale) + shift, with per-sample (B, D) shift and scale over (B, L, D) tokens -> (B, L, D)
    (Peebles & Xie 2023, §3.2)."""
    return x * (1 + scale[:, None]) + shift[:, None]


def causal_mask(lq: int, lk: int, device: torch.device | str | None = None) -> torch.Tensor:
    """(Lq, Lk) bool, True where query i may attend to key j: the queries are the last Lq of the Lk tokens, so
    query i (token Lk − Lq + i) sees keys j ≤ Lk − Lq + i. With Lq = Lk it is the lower triangle."""
    if lq > lk:
        raise ValueError(f"expected no more queries than keys for a causal mask, got Lq={lq}, Lk={lk}")
    return torch.ones(lq, lk, dtype=torch.bool, device=device).tril(diagonal=lk - lq)


class KVCache:
    """The keys and values of one attention layer for the tokens seen so far (incremental decoding).

    Buffers of (N, heads, max_len, d) are allocated at the first :meth:`append` in the dtype and device of the
    keys; ``length`` tokens are filled. For inference (under ``torch.no_grad``): appending overwrites buffers that
    an earlier step's graph would need. A model keeps one cache per layer (``[KVCache(n) for _ in blocks]``).
    """

    def __init__(self, max_len: int):
        if max_len < 1:
            raise ValueError(f"expected a KV cache of at least one token, got max_len={max_len}")
        self.max_len, self.length = max_len, 0
        self.k: torch.Tensor | None = None
        self.v: torch.Tensor | None = None

    def append(self, k: torch.Tensor, v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Add (N, heads, L, d) keys and values; returns those of every token so far, (N, heads, length, d)."""
        n, h, steps, d = k.shape
        if self.k is None:
            self.k = k.new_empty(n, h, self.max_len, d)
            self.v = v.new_empty(n, h, self.max_len, d)
        elif (self.k.shape[0], self.k.shape[1], self.k.shape[3]) != (n, h, d):
            raise ValueError(f"expected keys of shape (N, heads, L, d) = ({self.k.shape[0]}, {self.k.shape[1]}, L, "
                             f"{self.k.shape[3]}) for this cache, got {tuple(k.shape)}")
        if self.length + steps > self.max_len:
            raise ValueError(f"the KV cache holds {self.max_len} tokens: {self.length} cached + {steps} new exceed it")
        self.k[:, :, self.length:self.length + steps] = k
        self.v[:, :, self.length:self.length + steps] = v
        self.length += steps
        return self.k[:, :, :self.length], self.v[:, :, :self.length]  # (N, heads, length, d)

    def reset(self) -> None:
        """Forget every token (the buffers stay allocated)."""
        self.length = 0


def _as_bias(mask: torch.Tensor, shape: tuple[int, int, int, int], dtype: torch.dtype) -> torch.Tensor:
    """A bool (True = attend) or additive float mask as a 4-D bias broadcastable to (N, heads, Lq, Lk)."""
    if mask.dtype != torch.bool and not mask.is_floating_point():
        raise TypeError(f"expected a bool mask (True = attend) or an additive float mask, got dtype {mask.dtype}")
    try:
        fits = torch.broadcast_shapes(mask.shape, shape) == torch.Size(shape) and mask.ndim <= 4
    except RuntimeError:
        fits = False
    if not fits:
        raise ValueError(f"expected a mask broadcastable to (N, heads, Lq, Lk) = {shape}, got {tuple(mask.shape)}")
    if mask.ndim < 4:
        mask = mask.reshape((1,) * (4 - mask.ndim) + tuple(mask.shape))  # (N or 1, heads or 1, Lq or 1, Lk or 1)
    return mask if mask.dtype == torch.bool else mask.to(dtype)


class Attention(nn.Module):
    """Multi-head self-attention: (N, L, D) -> (N, L, D), with one qkv projection and an output projection.

    Inputs (forward):
        x: (N, L, D) tokens; for a spacetime grid, in row-major (t, h, w) order.
        grid: (T', H', W') token grid; needed by every step but 'full' (where it is only checked).
        mask: bool (True = attend) or additive float, broadcastable to (N, heads, L, L_keys), L_keys = the cached
            tokens plus L; 'full' step only.
        cache: a :class:`KVCache`: the keys and values of x join those cached, and x's queries attend to all of
            them ('full' step only; inference).
    Options: ``causal`` (token i sees tokens ≤ i; over frames in the 'temporal' step), ``step`` (a layout step of
    :mod:`vgcourse.nn.layouts`), ``dropout`` (on the attention weights and on the output, in training).
    Returns: (N, L, D).
    """

    def __init__(self, dim: int, heads: int, qkv_bias: bool = True, *, causal: bool = False, step: str = "full",
                 window_size: int = 4, temporal_window: int | None = None, proj_bias: bool = True,
                 dropout: float = 0.0):
        super().__init__()
        if dim % heads:
            raise ValueError(f"expected dim divisible by heads, got dim={dim}, heads={heads}")
        if step not in STEPS:
            raise ValueError(f"expected step in {sorted(STEPS)}, got {step!r}")
        if causal and step not in CAUSAL_STEPS:
            raise ValueError(f"expected a causal step in {CAUSAL_STEPS}, got causal step {step!r}")
        self.dim, self.heads, self.causal, self.step = dim, heads, causal, step
        self.window_size, self.temporal_window, self.dropout = window_size, temporal_window, dropout
        self.qkv = nn.Linear(dim, 3 * dim, bias=qkv_bias)
        self.proj = nn.Linear(dim, dim, bias=proj_bias)
        self.resid_dropout = nn.Dropout(dropout) if dropout > 0 else nn.Identity()

    def split_heads(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Tokens (N, L, D) -> q, k, v, each (N, heads, L, d), from the one qkv projection."""
        q, k, v = rearrange(self.qkv(x), "n l (three h d) -> three n h l d", three=3, h=self.heads)
        return q, k, v

    def merge_heads(self, out: torch.Tensor) -> torch.Tensor:
        """Per-head outputs (N, heads, L, d) -> concatenated and projected (N, L, D)."""
        return self.resid_dropout(self.proj(rearrange(out, "n h l d -> n l (h d)")))

    def forward(self, x: torch.Tensor, grid: Grid | None = None, *, mask: torch.Tensor | None = None,
                cache: KVCache | None = None) -> torch.Tensor:
        if x.ndim != 3 or x.shape[-1] != self.dim:
            raise ValueError(f"expected tokens of shape (N, L, D={self.dim}), got {tuple(x.shape)}")
        q, k, v = self.split_heads(x)  # (N, heads, L, d) each
        dropout_p = self.dropout if self.training else 0.0
        if self.step == "full":
            if grid is not None:
                check_tokens(q, grid)
            out = self.full(q, k, v, mask, cache, dropout_p)  # (N, heads, L, d)
        else:
            if grid is None:
                raise ValueError(f"the {self.step!r} step needs the token grid (T', H', W'), got grid=None")
            if mask is not None or cache is not None:
                raise ValueError(f"a mask and a KV cache work with the 'full' step, got step {self.step!r}")
            out = attend(q, k, v, grid, self.step, self.window_size, self.temporal_window, causal=self.causal,
                         dropout_p=dropout_p)  # (N, heads, L, d)
        return self.merge_heads(out)  # (N, L, D)

    def full(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, mask: torch.Tensor | None = None,
             cache: KVCache | None = None, dropout_p: float = 0.0) -> torch.Tensor:
        """Every query attends to every key allowed by ``causal`` and ``mask``, after the cache's keys.

        Inputs: q, k, v (N, heads, L, d). Returns (N, heads, L, d).
        """
        past = 0
        if cache is not None:
            past = cache.length
            k, v = cache.append(k, v)  # (N, heads, past + L, d)
        n, _, lq, _ = q.shape
        lk = k.shape[2]
        bias = None if mask is None else _as_bias(mask, (n, self.heads, lq, lk), q.dtype)
        is_causal = False
        if self.causal and lq > 1:  # one new query after the cache sees every key: no mask needed
            if bias is None and past == 0:
                is_causal = True  # SDPA's own lower triangle (Lq = Lk): the fused kernels' fast path
            else:
                allowed = causal_mask(lq, lk, q.device)  # (Lq, Lk)
                bias = allowed if bias is None else (
                    bias & allowed if bias.dtype == torch.bool else bias.masked_fill(~allowed, float("-inf")))
        return attention(q, k, v, bias=bias, is_causal=is_causal, dropout_p=dropout_p)  # (N, heads, Lq, d)


class MLP(nn.Sequential):
    """The position-wise feed-forward network: Linear(D → hidden), GELU, Linear(hidden → D) (Vaswani et al.
    2017, eq. (2), with GELU). A Sequential, so its parameters are named ``0.*`` and ``2.*``.

    Inputs: x (..., D). Returns (..., D).
    """

    def __init__(self, dim: int, hidden: int | None = None, *, approximate: str = "none", bias: bool = True,
                 dropout: float = 0.0):
        hidden = 4 * dim if hidden is None else hidden
        layers = [nn.Linear(dim, hidden, bias=bias), nn.GELU(approximate=approximate),
                  nn.Linear(hidden, dim, bias=bias)] + ([nn.Dropout(dropout)] if dropout > 0 else [])
        super().__init__(*layers)


class Block(nn.Module):
    """The pre-LN transformer block (GPT-2; nanoGPT's ``Block``): x + attn(LN(x)), then x + mlp(LN(x)).

    Inputs (forward): x (N, L, D); grid, mask, cache as :class:`Attention`. Returns (N, L, D).
    Options: ``causal``, ``step``, ``window_size``, ``temporal_window`` and ``dropout`` as :class:`Attention`;
    ``bias`` on the linear layers and norms (nanoGPT's ``bias``); ``approximate`` GELU ('none' or 'tanh').
    """

    def __init__(self, dim: int, heads: int, mlp_ratio: float = 4.0, *, causal: bool = False, step: str = "full",
                 window_size: int = 4, temporal_window: int | None = None, bias: bool = True, dropout: float = 0.0,
                 norm_eps: float = 1e-5, approximate: str = "none"):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, eps=norm_eps, bias=bias)
        self.attn = Attention(dim, heads, qkv_bias=bias, causal=causal, step=step, window_size=window_size,
                              temporal_window=temporal_window, proj_bias=bias, dropout=dropout)
        self.norm2 = nn.LayerNorm(dim, eps=norm_eps, bias=bias)
        self.mlp = MLP(dim, int(dim * mlp_ratio), approximate=approximate, bias=bias, dropout=dropout)

    def forward(self, x: torch.Tensor, grid: Grid | None = None, *, mask: torch.Tensor | None = None,
                cache: KVCache | None = None) -> torch.Tensor:
        x = x + self.attn(self.norm1(x), grid, mask=mask, cache=cache)  # (N, L, D)
        return x + self.mlp(self.norm2(x))  # (N, L, D)


class AdaLNBlock(nn.Module):
    """A transformer block whose norms are scaled, shifted and gated by a conditioning vector (adaLN-Zero).

    Peebles & Xie 2023, §3.2: a linear map of c gives, per branch, a shift β, a scale γ and a gate α;
    x ← x + α_a · attn(LN(x)·(1 + γ_a) + β_a), then x ← x + α_m · mlp(LN(x)·(1 + γ_m) + β_m), the norms without
    learned affine parameters. With the map zero-initialised (``zero_init``, the "-Zero"), every α is 0 and the
    block starts as the identity.

    Inputs (forward): x (B, L, D) tokens; c (B, cond_dim) conditioning (cond_dim = D unless given); grid, mask,
    cache as :class:`Attention`. Returns (B, L, D).
    """

    def __init__(self, dim: int, heads: int, mlp_ratio: float = 4.0, *, cond_dim: int | None = None,
                 causal: bool = False, step: str = "full", window_size: int = 4, temporal_window: int | None = None,
                 zero_init: bool = True):
        super().__init__()
        self.cond_dim = dim if cond_dim is None else cond_dim
        self.norm1 = nn.LayerNorm(dim, elementwise_affine=False, eps=1e-6)
        self.attn = Attention(dim, heads, causal=causal, step=step, window_size=window_size,
                              temporal_window=temporal_window)
        self.norm2 = nn.LayerNorm(dim, elementwise_affine=False, eps=1e-6)
        self.mlp = MLP(dim, int(dim * mlp_ratio), approximate="tanh")
        self.adaLN_modulation = nn.Sequential(nn.SiLU(), nn.Linear(self.cond_dim, 6 * dim))
        if zero_init:
            nn.init.zeros_(self.adaLN_modulation[-1].weight)
            nn.init.zeros_(self.adaLN_modulation[-1].bias)

    def forward(self, x: torch.Tensor, c: torch.Tensor, grid: Grid | None = None, *,
                mask: torch.Tensor | None = None, cache: KVCache | None = None) -> torch.Tensor:
        if c.ndim != 2 or c.shape != (x.shape[0], self.cond_dim):
            raise ValueError(f"expected conditioning c of shape (B, cond_dim) = ({x.shape[0]}, {self.cond_dim}), "
                             f"got {tuple(c.shape)}")
        shift_a, scale_a, gate_a, shift_m, scale_m, gate_m = self.adaLN_modulation(c).chunk(6, dim=1)  # 6×(B, D)
        # Peebles & Xie 2023, §3.2 adaLN-Zero: scale-shift the normed input, gate the residual branch
        x = x + gate_a[:, None] * self.attn(modulate(self.norm1(x), shift_a, scale_a), grid,
                                            mask=mask, cache=cache)  # (B, L, D)
        return x + gate_m[:, None] * self.mlp(modulate(self.norm2(x), shift_m, scale_m))  # (B, L, D)
