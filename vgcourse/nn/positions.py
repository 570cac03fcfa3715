"""Position embeddings: fixed sine-cosine ones for token sequences, image patch grids and spacetime patch grids,
and learned ones for the cells of a code grid (:class:`GridPositions`).

A position ``pos`` is encoded by ``D/2`` frequencies ω_i = 1 / 10000^(i / (D/2)), i = 0 … D/2 − 1, as
``[sin(pos·ω), cos(pos·ω)]`` (Vaswani et al. 2017, §3.5; the MAE/DiT variant puts all sines first).
A grid concatenates one such embedding per axis, each on its own slice of the channels:

- 2D (DiT, MAE; Peebles & Xie 2023, whose table is MAE's): D/2 channels for the column w, then D/2 for the
  row h; needs D divisible by 4. DiT's reference builds its meshgrid with w first, so the half it names "h"
  holds the column; :func:`sincos_2d` reproduces that table exactly (the reference takes square grids; a
  non-square one is the same construction over H rows and W columns).
- 3D (spacetime patches): D/4 channels for the frame t, 3D/8 for h and 3D/8 for w; needs D divisible
  by 16 (each slice must hold an even number of channels). Space gets more channels than time because
  latent grids have more rows and columns than frames. For a one-frame grid the t slice is the
  constant embedding of t = 0 (zeros then ones): a quarter of the channels carry no position. A video
  model keeps that table for its one-frame inputs, so that images trained beside videos have the
  positions of frame 0 (joint image-video training, WALT, Latte); an image model (a DiT configured with
  one frame) uses the 2D table instead, as the paper's DiT does.

Tokens are ordered row-major over the grid: (t, h, w), the order of :func:`vgcourse.dit.model.patchify`.
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
    """Sine-cosine embedding of an (H, W) patch grid: DiT's fixed position table (Peebles & Xie 2023; MAE's).

    The first D/2 channels embed the column w, the last D/2 the row h, each with :func:`sincos_1d`
    (ω_i = 1 / 10000^(2i / (D/2)), sines then cosines), as DiT's ``get_2d_sincos_pos_embed`` does.

    Inputs:
        dim: channels D, divisible by 4 (D/2 for w, D/2 for h).
        grid: (H, W) in patches.
    Returns:
        (H·W, D) float32, tokens in row-major (h, w) order.
    """
    if dim % 4:
        raise ValueError(f"2D sin-cos embedding splits D into halves of sin-cos pairs: expected D "
                         f"divisible by 4, got D={dim}")
    h, w = _axis_positions(tuple(grid), device)
    return torch.cat([sincos_1d(dim // 2, w), sincos_1d(dim // 2, h)], dim=1)  # (H*W, D): column, then row


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


def check_code_range(codes: torch.Tensor, vocab_size: int) -> None:
    """Raise ``ValueError`` unless every code is in [0, K = ``vocab_size``) (on an accelerator: one device sync)."""
    if codes.numel() and ((codes < 0) | (codes >= vocab_size)).any().item():
        raise ValueError(f"expected codes in [0, {vocab_size}), got values in [{codes.min().item()}, "
                         f"{codes.max().item()}]")


def raster_codes(tokens: torch.Tensor, grid: tuple[int, int, int], vocab_size: int | None = None) -> torch.Tensor:
    """A clip's integer codes as one sequence in raster order (t, h, w): (B, T, H, W) -> (B, L), L = T·H·W; codes
    already (B, L) pass through. Raises ``ValueError`` for any other shape, for float codes, and, given
    ``vocab_size`` K, for codes of a CPU tensor outside [0, K) (ids from K up name a model's special tokens). On an
    accelerator the range is left to the caller: there the check would cost a device sync on every training step,
    and a forward pass needs none, since each code is also a target of its cross-entropy, whose own bounds check
    stops a code out of range; codes that are not targets (given codes to keep) are checked where they enter."""
    length = grid[0] * grid[1] * grid[2]
    if tokens.ndim == 4 and tuple(tokens.shape[1:]) == tuple(grid):
        tokens = tokens.flatten(1)  # raster order (t, h, w)
    if tokens.ndim != 2 or tokens.shape[1] != length or tokens.is_floating_point():
        raise ValueError(f"expected codes of shape (B, T, H, W) = (B, {', '.join(map(str, grid))}) or "
                         f"(B, L={length}) as integers, got {tuple(tokens.shape)} {tokens.dtype}")
    if vocab_size is not None and tokens.device.type == "cpu" and not torch.compiler.is_compiling():
        check_code_range(tokens, vocab_size)
    return tokens
