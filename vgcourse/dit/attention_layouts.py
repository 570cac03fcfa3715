"""Spacetime attention layouts: which tokens of a (T', H', W') patch grid attend to which.

Every layout is a rearrangement of q, k, v around :func:`vgcourse.nn.attention.attention`, so that each
group of tokens that may see each other becomes one row of the batch:

- ``full``: all T'·H'·W' tokens attend to all (Sora-style spacetime patches). Cost ∝ L².
- ``factorised``: blocks alternate a *spatial* step (each frame's H'·W' tokens, batch B·T') and a
  *temporal* step (each location's T' tokens, batch B·H'·W'), as in Latte's interleaved variant
  (Ma et al. 2024, variant 1).
- ``window``: blocks alternate non-overlapping *spatial windows* of (1, w, w) tokens and
  *spatiotemporal windows* of (t', w, w) tokens (WALT, Gupta et al. 2023, §3.2); t' defaults to the
  whole clip.

Block i of a DiT uses step ``LAYOUTS[layout][i % len(LAYOUTS[layout])]`` (:func:`layout_step`).
Token order is row-major (t, h, w); q, k, v are (B, heads, L, d) with L = T'·H'·W'.
"""

from __future__ import annotations

import torch
from einops import rearrange
from torch import nn

from vgcourse.nn.attention import attention

Grid = tuple[int, int, int]
LAYOUTS: dict[str, tuple[str, ...]] = {
    "full": ("full",),
    "factorised": ("spatial", "temporal"),
    "window": ("spatial_window", "spacetime_window"),
}


def _check_tokens(q: torch.Tensor, grid: Grid) -> None:
    t, h, w = grid
    if q.ndim != 4 or q.shape[2] != t * h * w:
        raise ValueError(f"expected q, k, v of shape (B, heads, L, d) with L = T'·H'·W' = {t}·{h}·{w} = "
                         f"{t * h * w}, got {tuple(q.shape)}")


def full_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, grid: Grid) -> torch.Tensor:
    """Every token attends to every token.

    Inputs: q, k, v (B, heads, L, d); grid (T', H', W'). Returns: (B, heads, L, d).
    """
    _check_tokens(q, grid)
    return attention(q, k, v)  # (B, heads, L, d)


def spatial_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, grid: Grid) -> torch.Tensor:
    """Each frame's tokens attend within that frame (the spatial step of the factorised layout).

    Inputs: q, k, v (B, heads, L, d); grid (T', H', W'). Returns: (B, heads, L, d).
    """
    _check_tokens(q, grid)
    t = grid[0]
    q, k, v = (rearrange(z, "b n (t s) d -> (b t) n s d", t=t) for z in (q, k, v))  # (B*T', heads, H'*W', d)
    out = attention(q, k, v)  # (B*T', heads, H'*W', d)
    return rearrange(out, "(b t) n s d -> b n (t s) d", t=t)  # (B, heads, L, d)


def temporal_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, grid: Grid) -> torch.Tensor:
    """Each spatial location attends across frames (the temporal step of the factorised layout).

    Inputs: q, k, v (B, heads, L, d); grid (T', H', W'). Returns: (B, heads, L, d).
    """
    _check_tokens(q, grid)
    t = grid[0]
    q, k, v = (rearrange(z, "b n (t s) d -> (b s) n t d", t=t) for z in (q, k, v))  # (B*H'*W', heads, T', d)
    out = attention(q, k, v)  # (B*H'*W', heads, T', d)
    return rearrange(out, "(b s) n t d -> b n (t s) d", s=grid[1] * grid[2])  # (B, heads, L, d)


def window_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, grid: Grid,
                     window: tuple[int, int, int]) -> torch.Tensor:
    """Tokens attend within non-overlapping (wt, wh, ww) windows of the grid.

    Inputs:
        q, k, v: (B, heads, L, d), L = T'·H'·W'.
        grid: (T', H', W'); window: (wt, wh, ww), each dividing the matching grid side.
    Returns:
        (B, heads, L, d)
    """
    _check_tokens(q, grid)
    if any(g % s for g, s in zip(grid, window)):
        raise ValueError(f"expected a window (wt, wh, ww) that divides the token grid (T', H', W') = {tuple(grid)}, "
                         f"got window {tuple(window)}")
    (t, h, w), (wt, wh, ww) = grid, window
    pattern = "b n (nt wt nh wh nw ww) d -> (b nt nh nw) n (wt wh ww) d"
    sizes = dict(nt=t // wt, nh=h // wh, nw=w // ww, wt=wt, wh=wh, ww=ww)
    q, k, v = (rearrange(z, pattern, **sizes) for z in (q, k, v))  # (B*windows, heads, wt*wh*ww, d)
    out = attention(q, k, v)  # (B*windows, heads, wt*wh*ww, d)
    return rearrange(out, "(b nt nh nw) n (wt wh ww) d -> b n (nt wt nh wh nw ww) d", **sizes)  # (B, heads, L, d)


def layout_step(layout: str, block_index: int) -> str:
    """The attention step block ``block_index`` uses under ``layout`` (layouts alternate their steps)."""
    if layout not in LAYOUTS:
        raise ValueError(f"expected attention_layout in {sorted(LAYOUTS)}, got {layout!r}")
    steps = LAYOUTS[layout]
    return steps[block_index % len(steps)]


def step_window(step: str, grid: Grid, window_size: int, temporal_window: int | None) -> Grid:
    """The (wt, wh, ww) box of the grid that a token sees in one step (``temporal_window`` None or ≥ T': all frames)."""
    t, h, w = grid
    return {"full": (t, h, w), "spatial": (1, h, w), "temporal": (t, 1, 1),
            "spatial_window": (1, window_size, window_size),
            "spacetime_window": (min(temporal_window or t, t), window_size, window_size)}[step]


def attend(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, grid: Grid, step: str,
           window_size: int = 4, temporal_window: int | None = None) -> torch.Tensor:
    """Attention of one step: 'full', 'spatial', 'temporal', 'spatial_window' or 'spacetime_window'.

    Inputs and returns as :func:`full_attention`.
    """
    if step == "full":
        return full_attention(q, k, v, grid)
    if step == "spatial":
        return spatial_attention(q, k, v, grid)
    if step == "temporal":
        return temporal_attention(q, k, v, grid)
    if step in ("spatial_window", "spacetime_window"):
        return window_attention(q, k, v, grid, step_window(step, grid, window_size, temporal_window))
    raise ValueError(f"expected step in {sorted({s for v in LAYOUTS.values() for s in v})}, got {step!r}")


class SpacetimeAttention(nn.Module):
    """Multi-head self-attention over spacetime tokens with one layout step: (B, L, D) -> (B, L, D)."""

    def __init__(self, dim: int, heads: int, step: str = "full", window_size: int = 4,
                 temporal_window: int | None = None):
        super().__init__()
        if dim % heads:
            raise ValueError(f"hidden size {dim} must be divisible by num_heads={heads}")
        self.heads, self.step = heads, step
        self.window_size, self.temporal_window = window_size, temporal_window
        self.qkv = nn.Linear(dim, 3 * dim, bias=True)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor, grid: Grid) -> torch.Tensor:
        """Inputs: x (B, L, D) in row-major (t, h, w) order; grid (T', H', W'). Returns (B, L, D)."""
        q, k, v = rearrange(self.qkv(x), "b l (three n d) -> three b n l d", three=3, n=self.heads)  # (B, heads, L, d)
        out = attend(q, k, v, grid, self.step, self.window_size, self.temporal_window)  # (B, heads, L, d)
        return self.proj(rearrange(out, "b n l d -> b l (n d)"))  # (B, L, D)


def attention_flops(layout: str, grid: Grid, dim: int, depth: int = 2, window_size: int = 4,
                    temporal_window: int | None = None) -> float:
    """Multiply-adds of the attention matrix products (Q Kᵀ and A V) over ``depth`` blocks, for one sample.

    A step where each of the L tokens sees a window of S tokens costs 2·L·S·D multiply-adds (L·S·D for
    the scores, L·S·D for the weighted sum, summed over heads). Counted the DiT paper's way: one
    multiply-add = one flop. Projections (qkv, out) cost the same in every layout and are not included.
    """
    t, h, w = grid
    tokens = t * h * w
    total = 0.0
    for i in range(depth):
        wt, wh, ww = step_window(layout_step(layout, i), grid, window_size, temporal_window)
        total += 2.0 * tokens * (wt * wh * ww) * dim
    return total
