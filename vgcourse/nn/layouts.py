"""Spacetime attention layouts: which tokens of a (T', H', W') patch grid attend to which.

Every layout is a rearrangement of q, k, v around :func:`vgcourse.nn.attention.attention`, so that each
group of tokens that may see each other becomes one row of the batch. :class:`vgcourse.nn.transformer.Attention`
projects the tokens and calls :func:`attend` with its step; the DiT, the C-ViViT tokenizer and any other
spacetime transformer share these layouts.

- ``full``: all T'·H'·W' tokens attend to all (Sora-style spacetime patches). Cost ∝ L².
- ``factorised``: blocks alternate a *spatial* step (each frame's H'·W' tokens, batch B·T') and a
  *temporal* step (each location's T' tokens, batch B·H'·W'), as in Latte's interleaved variant
  (Ma et al. 2024, variant 1).
- ``window``: blocks alternate non-overlapping *spatial windows* of (1, w, w) tokens and
  *spatiotemporal windows* of (t', w, w) tokens (WALT, Gupta et al. 2023, §3.2); t' defaults to the
  whole clip.

Block i of a DiT uses step ``LAYOUTS[layout][i % len(LAYOUTS[layout])]`` (:func:`layout_step`).
Token order is row-major (t, h, w); q, k, v are (B, heads, L, d) with L = T'·H'·W'.

Causal steps: ``full`` with ``causal`` lets token i see tokens 0..i of the row-major order (a GPT over the grid);
``temporal`` with ``causal`` lets each location see its own and earlier frames only (C-ViViT's causal
temporal transformer in Phenaki, Villegas et al. 2023). The other steps have no causal mode.
"""

from __future__ import annotations

import torch
from einops import rearrange

from vgcourse.nn.attention import attention

Grid = tuple[int, int, int]
LAYOUTS: dict[str, tuple[str, ...]] = {
    "full": ("full",),
    "factorised": ("spatial", "temporal"),
    "window": ("spatial_window", "spacetime_window"),
}
STEPS = frozenset(step for steps in LAYOUTS.values() for step in steps)
CAUSAL_STEPS = ("full", "temporal")  # the steps with a causal mode


def check_tokens(q: torch.Tensor, grid: Grid) -> None:
    """Raise unless q is (B, heads, L, d) with L = T'·H'·W' tokens of ``grid``."""
    t, h, w = grid
    if q.ndim != 4 or q.shape[2] != t * h * w:
        raise ValueError(f"expected q, k, v of shape (B, heads, L, d) with L = T'·H'·W' = {t}·{h}·{w} = "
                         f"{t * h * w}, got {tuple(q.shape)}")


def full_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, grid: Grid,
                   causal: bool = False, dropout_p: float = 0.0) -> torch.Tensor:
    """Every token attends to every token (with ``causal``: to itself and the tokens before it, row-major).

    Inputs: q, k, v (B, heads, L, d); grid (T', H', W'). Returns: (B, heads, L, d).
    """
    check_tokens(q, grid)
    return attention(q, k, v, is_causal=causal, dropout_p=dropout_p)  # (B, heads, L, d)


def spatial_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, grid: Grid,
                      dropout_p: float = 0.0) -> torch.Tensor:
    """Each frame's tokens attend within that frame (the spatial step of the factorised layout).

    Inputs: q, k, v (B, heads, L, d); grid (T', H', W'). Returns: (B, heads, L, d).
    """
    check_tokens(q, grid)
    t = grid[0]
    q, k, v = (rearrange(z, "b n (t s) d -> (b t) n s d", t=t) for z in (q, k, v))  # (B*T', heads, H'*W', d)
    out = attention(q, k, v, dropout_p=dropout_p)  # (B*T', heads, H'*W', d)
    return rearrange(out, "(b t) n s d -> b n (t s) d", t=t)  # (B, heads, L, d)


def temporal_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, grid: Grid,
                       causal: bool = False, dropout_p: float = 0.0) -> torch.Tensor:
    """Each spatial location attends across frames (the temporal step of the factorised layout); with ``causal``,
    to its own and earlier frames only.

    Inputs: q, k, v (B, heads, L, d); grid (T', H', W'). Returns: (B, heads, L, d).
    """
    check_tokens(q, grid)
    t = grid[0]
    q, k, v = (rearrange(z, "b n (t s) d -> (b s) n t d", t=t) for z in (q, k, v))  # (B*H'*W', heads, T', d)
    out = attention(q, k, v, is_causal=causal, dropout_p=dropout_p)  # (B*H'*W', heads, T', d)
    return rearrange(out, "(b s) n t d -> b n (t s) d", s=grid[1] * grid[2])  # (B, heads, L, d)


def window_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, grid: Grid,
                     window: tuple[int, int, int], dropout_p: float = 0.0) -> torch.Tensor:
    """Tokens attend within non-overlapping (wt, wh, ww) windows of the grid.

    Inputs:
        q, k, v: (B, heads, L, d), L = T'·H'·W'.
        grid: (T', H', W'); window: (wt, wh, ww), each dividing the matching grid side.
    Returns:
        (B, heads, L, d)
    """
    check_tokens(q, grid)
    if any(g % s for g, s in zip(grid, window)):
        raise ValueError(f"expected a window (wt, wh, ww) that divides the token grid (T', H', W') = {tuple(grid)}, "
                         f"got window {tuple(window)}")
    (t, h, w), (wt, wh, ww) = grid, window
    pattern = "b n (nt wt nh wh nw ww) d -> (b nt nh nw) n (wt wh ww) d"
    sizes = dict(nt=t // wt, nh=h // wh, nw=w // ww, wt=wt, wh=wh, ww=ww)
    q, k, v = (rearrange(z, pattern, **sizes) for z in (q, k, v))  # (B*windows, heads, wt*wh*ww, d)
    out = attention(q, k, v, dropout_p=dropout_p)  # (B*windows, heads, wt*wh*ww, d)
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
           window_size: int = 4, temporal_window: int | None = None, causal: bool = False,
           dropout_p: float = 0.0) -> torch.Tensor:
    """Attention of one step: 'full', 'spatial', 'temporal', 'spatial_window' or 'spacetime_window'.

    Inputs and returns as :func:`full_attention`; ``causal`` only for the 'full' and 'temporal' steps;
    ``dropout_p`` on the attention weights (0 in evaluation).
    """
    if causal and step not in CAUSAL_STEPS:
        raise ValueError(f"expected a causal step in {CAUSAL_STEPS}, got causal step {step!r}")
    if step == "full":
        return full_attention(q, k, v, grid, causal, dropout_p)
    if step == "spatial":
        return spatial_attention(q, k, v, grid, dropout_p)
    if step == "temporal":
        return temporal_attention(q, k, v, grid, causal, dropout_p)
    if step in ("spatial_window", "spacetime_window"):
        return window_attention(q, k, v, grid, step_window(step, grid, window_size, temporal_window), dropout_p)
    raise ValueError(f"expected step in {sorted(STEPS)}, got {step!r}")


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
