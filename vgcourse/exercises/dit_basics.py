"""Exercises on the Diffusion Transformer: spacetime patches, 3D sin-cos positions, and an adaLN-Zero block."""

from __future__ import annotations

import torch
from einops import rearrange
from torch import nn

from vgcourse.dit import DiTBlock, modulate, patchify, sincos_1d, sincos_3d
from vgcourse.exercises import Wrong, exercise


def _shape(x: object) -> object:
    return tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__


# ---- 1. spacetime patchify ----------------------------------------------------------------------------------
def patchify_solution(x: torch.Tensor, pt: int, p: int) -> torch.Tensor:
    """(B, C, T, H, W) -> (B, L, pt·p·p·C): one row per pt×p×p tubelet, tubelets in row-major (t, h, w) order,
    each flattened in (pt, p, p, C) order."""
    return rearrange(x, "b c (nt pt) (nh ph) (nw pw) -> b (nt nh nw) (pt ph pw c)", pt=pt, ph=p, pw=p)


@exercise("patchify", "Cut a video (B, C, T, H, W) into pt×p×p tubelets: (B, L, pt·p·p·C), tubelets in (t, h, w) "
          "order, each flattened as (pt, p, p, C).", patchify_solution)
def check_patchify(answer) -> None:
    g = torch.Generator().manual_seed(0)
    for shape, pt, p in [((2, 3, 4, 8, 8), 2, 4), ((1, 1, 6, 6, 12), 3, 2), ((2, 4, 1, 4, 4), 1, 2)]:
        x = torch.randn(shape, generator=g)
        out = answer(x.clone(), pt, p)
        want = patchify(x, pt, p)
        if not isinstance(out, torch.Tensor) or out.shape != want.shape:
            raise Wrong(f"for x of shape {shape}, pt={pt}, p={p}: expected (B, L, pt·p·p·C) = {tuple(want.shape)}, "
                        f"got {_shape(out)}")
        if not torch.equal(out, want):
            same_rows = torch.equal(out.sort(-1).values, want.sort(-1).values)
            hint = ("each token holds the right values in the wrong order: flatten a tubelet as (pt, p, p, C), "
                    "channels last" if same_rows else
                    "the tokens hold the wrong pixels or come in the wrong order: tokens are row-major over (t, h, w)")
            raise Wrong(f"for x of shape {shape}, pt={pt}, p={p}: {hint}")


# ---- 2. 3D sin-cos positions ----------------------------------------------------------------------------------
def sincos_3d_solution(dim: int, grid: tuple[int, int, int]) -> torch.Tensor:
    """(T, H, W) grid -> (T·H·W, dim): D/4 channels encode t, 3D/8 encode h, 3D/8 encode w, each as [sin, cos]."""
    t, h, w = (c.reshape(-1) for c in torch.meshgrid(*(torch.arange(n, dtype=torch.float64) for n in grid),
                                                       indexing="ij"))
    d_t, d_s = dim // 4, 3 * dim // 8
    return torch.cat([sincos_1d(d_t, t), sincos_1d(d_s, h), sincos_1d(d_s, w)], dim=1)


@exercise("sincos_3d", "Fixed positions of a (T, H, W) patch grid: concatenate 1D sin-cos embeddings of t (D/4 "
          "channels), h (3D/8) and w (3D/8); tokens in row-major (t, h, w) order. sincos_1d(dim, positions) "
          "is given.", sincos_3d_solution)
def check_sincos_3d(answer) -> None:
    for dim, grid in [(64, (4, 3, 5)), (32, (1, 2, 2)), (128, (2, 4, 4))]:
        out = answer(dim, grid)
        want = sincos_3d(dim, grid)
        if not isinstance(out, torch.Tensor) or out.shape != want.shape:
            raise Wrong(f"for dim={dim}, grid={grid}: expected (T·H·W, D) = {tuple(want.shape)}, got {_shape(out)}")
        out = out.float()
        if torch.allclose(out, want, atol=1e-5):
            continue
        d_t = dim // 4
        if not torch.allclose(out[:, :d_t], want[:, :d_t], atol=1e-5):
            raise Wrong(f"for dim={dim}, grid={grid}: the first D/4 = {d_t} channels should encode the frame index t "
                        "(tokens in row-major (t, h, w) order: t changes slowest)")
        raise Wrong(f"for dim={dim}, grid={grid}: the time channels are right; the next 3D/8 channels encode the "
                    "row h and the last 3D/8 the column w")


# ---- 3. an adaLN-Zero block ----------------------------------------------------------------------------------
def adaln_zero_block_solution(block: DiTBlock, x: torch.Tensor, c: torch.Tensor,
                              grid: tuple[int, int, int]) -> torch.Tensor:
    """One DiT block with adaLN-Zero, from its parts: block.adaLN_modulation, norm1, attn, norm2, mlp.

    Inputs: x (B, L, D) tokens; c (B, D) conditioning; grid (T', H', W'). Returns (B, L, D).
    """
    shift_a, scale_a, gate_a, shift_m, scale_m, gate_m = block.adaLN_modulation(c).chunk(6, dim=1)  # 6×(B, D)
    x = x + gate_a[:, None] * block.attn(modulate(block.norm1(x), shift_a, scale_a), grid)  # (B, L, D)
    return x + gate_m[:, None] * block.mlp(modulate(block.norm2(x), shift_m, scale_m))  # (B, L, D)


@exercise("adaln_zero_block", "Write the forward of a DiT block with adaLN-Zero: the conditioning c gives six "
          "(B, D) vectors (shift, scale, gate for attention, then for the MLP); each branch sees "
          "norm(x)·(1 + scale) + shift and is added to x multiplied by its gate.", adaln_zero_block_solution)
def check_adaln_zero_block(answer) -> None:
    torch.manual_seed(0)
    block = DiTBlock(32, 4).eval()
    grid = (2, 2, 3)
    x, c = torch.randn(2, 12, 32), torch.randn(2, 32)
    with torch.no_grad():
        nn.init.zeros_(block.adaLN_modulation[-1].weight)
        nn.init.zeros_(block.adaLN_modulation[-1].bias)
        out = answer(block, x.clone(), c.clone(), grid)
        if not isinstance(out, torch.Tensor) or out.shape != x.shape:
            raise Wrong(f"expected (B, L, D) = {tuple(x.shape)}, got {_shape(out)}")
        if not torch.allclose(out, x, atol=1e-6):
            raise Wrong("with the modulation zeroed (adaLN-Zero's initialisation) every gate is 0, so the block must "
                        "return x unchanged")
        for p in block.parameters():
            p.add_(0.1 * torch.randn_like(p))
        out = answer(block, x.clone(), c.clone(), grid)
        want = block(x, c, grid)
    if not torch.allclose(out, want, atol=1e-5):
        raise Wrong(f"with non-zero modulation the output differs from DiTBlock by up to "
                    f"{(out - want).abs().max().item():.3g}: the chunks come in the order shift, scale, gate "
                    "(attention) then shift, scale, gate (MLP); modulate is x·(1 + scale) + shift; the MLP branch "
                    "sees the x updated by the attention branch")
