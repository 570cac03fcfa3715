"""Position embeddings: fixed sine-cosine ones for token sequences, image patch grids and spacetime patch grids,
and learned ones for the cells of a code grid (:class:`GridPositions`).

A position ``pos`` is encoded by ``D/2`` frequencies ω_i = 1 / 10000^(i / (D/2)), i = 0 … D/2 − 1, as
``[sin(pos·ω), cos(pos·ω)]`` (Vaswani et al. 2017, §3.5; the MAE/DiT variant puts all sines first).
A grid concatenates one such embedding per axis, each on its own slice of the channels:

- 2D (DiT, MAE): D/2 channels for the row h, D/2 for the column w; needs D divisible by 4.
- 3D (spacetime patches): D/4 channels for the frame t, 3D/8 for h and 3D/8 for w; needs D divisible
  by 16 (each slice must hold an even number of channels). Space gets more channels than time because
  latent grids have more rows and columns than frames. For a one-frame grid the t slice is the
  constant embedding of t = 0 (zeros then ones), so images are one-frame videos, as in joint
  image-video training (WALT, Latte).

Tokens are ordered row-major over the grid: (t, h, w), the order of :func:`vgcourse.dit.model.patchify`.
MAE's helper builds its meshgrid with w first, so its "h" half encodes the column; ours encodes the row.
The two differ only by a permutation of the channels.
"""

from __future__ import annotations

import torch
from torch import nn

MAX_PERIOD = 10_000.0


def sincos_1d(dim: int, positions: torch.Tensor) -> torch.Tensor:
    """Sine-cosine embedding of scalar positions.

    Inputs:
        dim: channels D (even).
        positions: (L,) positions, integer or fractional.
    Returns:
        (L, D) float32: ``[sin(pos·ω), cos(pos·ω)]`` with ω_i = 1 / 10000^(2i / D).
    """
    if dim % 2:
        raise ValueError(f"expected an even embedding dim for sin-cos pairs, got dim={dim}")
    omega = torch.arange(dim // 2, dtype=torch.float64, device=positions.device) / (dim / 2)
    omega = 1.0 / MAX_PERIOD ** omega  # (D/2,)
    angles = positions.reshape(-1).to(torch.float64)[:, None] * omega[None]  # (L, D/2), outer product
    return torch.cat([torch.sin(angles), torch.cos(angles)], dim=1).float()  # (L, D)


def _axis_positions(grid: tuple[int, ...], device: torch.device | str | None) -> list[torch.Tensor]:
    """Row-major coordinates of every grid cell, one (L,) tensor per axis."""
    axes = [torch.arange(n, dtype=torch.float64, device=device) for n in grid]
    return [c.reshape(-1) for c in torch.meshgrid(*axes, indexing="ij")]


def sincos_2d(dim: int, grid: tuple[int, int], device: torch.device | str | None = None) -> torch.Tensor:
    """Sine-cosine embedding of an (H, W) patch grid, as in DiT and MAE.

    Inputs:
        dim: channels D, divisible by 4 (D/2 for h, D/2 for w).
        grid: (H, W) in patches.
    Returns:
        (H·W, D) float32, tokens in row-major (h, w) order.
    """
    if dim % 4:
        raise ValueError(f"2D sin-cos embedding splits D into halves of sin-cos pairs: expected D "
                         f"divisible by 4, got D={dim}")
    h, w = _axis_positions(tuple(grid), device)
    return torch.cat([sincos_1d(dim // 2, h), sincos_1d(dim // 2, w)], dim=1)  # (H*W, D)


def sincos_3d(dim: int, grid: tuple[int, int, int], device: torch.device | str | None = None) -> torch.Tensor:
    """Sine-cosine embedding of a (T, H, W) spacetime patch grid: D/4 channels for t, 3D/8 for h, 3D/8 for w.

    Inputs:
        dim: channels D, divisible by 16.
        grid: (T, H, W) in patches.
    Returns:
        (T·H·W, D) float32, tokens in row-major (t, h, w) order.
    """
    if dim % 16:
        raise ValueError(f"3D sin-cos embedding splits D into D/4 (t) + 3D/8 (h) + 3D/8 (w), each an even "
                         f"number of channels: expected D divisible by 16, got D={dim}")
    t, h, w = _axis_positions(tuple(grid), device)
    d_t, d_s = dim // 4, 3 * dim // 8
    return torch.cat([sincos_1d(d_t, t), sincos_1d(d_s, h), sincos_1d(d_s, w)], dim=1)  # (T*H*W, D)


class GridPositions(nn.Module):
    """Learned positions of the cells of a (T, H, W) grid, read in raster (t, h, w) order.

    ``kind="factorised"``: one learned vector per frame t, per row h and per column w, summed (T + H + W vectors;
    VideoGPT's spatio-temporal embedding keeps one table per axis too, concatenated); ``"learned"``: one vector per
    cell (T·H·W vectors, GPT-2's table). Initialised N(0, 0.02).

    Inputs (forward): start, n. Returns the embeddings (n, D) of cells start … start + n − 1.
    """

    def __init__(self, grid: tuple[int, int, int], dim: int, kind: str = "factorised"):
        super().__init__()
        if kind not in ("factorised", "learned"):
            raise ValueError(f"expected position kind 'factorised' or 'learned', got {kind!r}")
        self.grid, self.kind = tuple(grid), kind
        self.cells = self.grid[0] * self.grid[1] * self.grid[2]
        if kind == "factorised":
            self.t, self.h, self.w = (nn.Parameter(torch.randn(n, dim) * 0.02) for n in self.grid)
        else:
            self.table = nn.Parameter(torch.randn(self.cells, dim) * 0.02)

    def forward(self, start: int = 0, n: int | None = None) -> torch.Tensor:
        n = self.cells - start if n is None else n
        if start < 0 or n < 0 or start + n > self.cells:
            raise ValueError(f"expected cells within the {self.cells} of the grid {self.grid}, "
                             f"got {start}…{start + n - 1}")
        if self.kind == "learned":
            return self.table[start:start + n]  # (n, D)
        _, h, w = self.grid
        i = torch.arange(start, start + n, device=self.t.device)
        return self.t[i // (h * w)] + self.h[(i // w) % h] + self.w[i % w]  # (n, D)
