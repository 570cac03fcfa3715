"""NÜWA's 3D nearby attention (Wu et al. 2022, §3.2, eq. (5)-(8)) as a mask over a (T, H, W) token grid.

A token at grid cell (t, h, w) attends only to the cells of its neighbourhood, the box
|t' − t| ≤ e_t, |h' − h| ≤ e_h, |w' − w| ≤ e_w (the extent e = (e_t, e_h, e_w)), and, in NÜWA's autoregressive
decoder, only to the cells before it in raster order (t, h, w) (causal). :func:`nearby_mask` gives the (L, L) bool
mask (True = attend) that :class:`vgcourse.nn.transformer.Attention` takes as ``mask``; :func:`nearby_pairs` counts
the query-key pairs it allows without building it (the work a sparse kernel would do), and :func:`pair_flops` turns
pairs into FLOPs. A dense kernel given the mask still computes all L² scores: the saving needs a kernel that skips
the masked blocks (NÜWA's own implementation gathers each token's neighbourhood).
"""

from __future__ import annotations

import torch

Grid = tuple[int, int, int]


def _check(grid: Grid, extent: Grid) -> tuple[Grid, Grid]:
    grid, extent = tuple(int(g) for g in grid), tuple(int(e) for e in extent)
    if len(grid) != 3 or min(grid) < 1:
        raise ValueError(f"expected a grid (T, H, W) of positive sizes, got {grid}")
    if len(extent) != 3 or min(extent) < 0:
        raise ValueError(f"expected an extent (e_t, e_h, e_w) of sizes ≥ 0, got {extent}")
    return grid, extent


def grid_coordinates(grid: Grid, device: torch.device | str | None = None) -> torch.Tensor:
    """(L, 3) long: the (t, h, w) cell of each token in raster order."""
    t, h, w = grid
    axes = torch.meshgrid(torch.arange(t, device=device), torch.arange(h, device=device),
                          torch.arange(w, device=device), indexing="ij")
    return torch.stack(axes, -1).reshape(-1, 3)  # (L, 3)


def nearby_mask(grid: Grid, extent: Grid, causal: bool = True, device: torch.device | str | None = None
                ) -> torch.Tensor:
    """(L, L) bool, L = T·H·W: True where query i may attend to key j, both in raster order.

    j is in i's neighbourhood when |t_j − t_i| ≤ e_t, |h_j − h_i| ≤ e_h and |w_j − w_i| ≤ e_w; with ``causal``, also
    j ≤ i. An extent that covers the grid gives full attention (the lower triangle with ``causal``)."""
    grid, extent = _check(grid, extent)
    length = grid[0] * grid[1] * grid[2]
    axis = [(torch.arange(n, device=device)[:, None] - torch.arange(n, device=device)[None]).abs() <= e
            for n, e in zip(grid, extent)]  # per axis (n, n): |Δ| ≤ e
    # the box is the product of the three axes' masks, built on the (t, h, w, t', h', w') grid: L² bools, no more
    near = (axis[0][:, None, None, :, None, None] & axis[1][None, :, None, None, :, None]
            & axis[2][None, None, :, None, None, :]).reshape(length, length)  # (L, L)
    return near.tril() if causal else near


def nearby_pairs(grid: Grid, extent: Grid, causal: bool = True) -> int:
    """The query-key pairs :func:`nearby_mask` allows, counted without building it.

    The box is a product over axes, so the pairs are ∏_axis Σ_i (min(i + e, n − 1) − max(i − e, 0) + 1). The box is
    symmetric (j near i ⇔ i near j), so as many pairs have j < i as j > i: causal pairs = (pairs + L) / 2."""
    grid, extent = _check(grid, extent)
    pairs = 1
    for n, e in zip(grid, extent):
        pairs *= sum(min(i + e, n - 1) - max(i - e, 0) + 1 for i in range(n))
    length = grid[0] * grid[1] * grid[2]
    return (pairs + length) // 2 if causal else pairs


def pair_flops(pairs: int, dim: int) -> int:
    """Forward FLOPs of one attention layer's two products, Q Kᵀ and A V, over ``pairs`` query-key pairs: 2·dim
    multiply-adds per pair, 2 FLOPs each (the projections are the same for every mask and are left out)."""
    return 4 * dim * pairs
