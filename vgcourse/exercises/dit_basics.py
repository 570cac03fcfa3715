"""Exercises on the Diffusion Transformer: putting tubelets back together, 3D sin-cos positions, and counting Gflops."""

from __future__ import annotations

from dataclasses import replace

import torch
from einops import rearrange

from vgcourse.dit import (
    PAPER_IMAGENET_256,
    DiT_S_8,
    DiT_XL_2,
    DiTConfig,
    flops_per_forward,
    patchify,
    sincos_1d,
    sincos_3d,
)
from vgcourse.exercises import Wrong, exercise


def _shape(x: object) -> object:
    return tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__


# ---- 1. unpatchify -----------------------------------------------------------------------------------------
def unpatchify_solution(tokens: torch.Tensor, grid: tuple[int, int, int], pt: int, p: int) -> torch.Tensor:
    """(B, L, pt·p·p·C) tokens over a (T', H', W') grid -> the video (B, C, T'·pt, H'·p, W'·p) they tile."""
    t, h, w = grid
    return rearrange(tokens, "b (nt nh nw) (pt ph pw c) -> b c (nt pt) (nh ph) (nw pw)", nt=t, nh=h, nw=w,
                     pt=pt, ph=p, pw=p)


@exercise("unpatchify", "Put the DiT's output tokens (B, L, pt·p·p·C) back together into a video (B, C, T, H, W): "
          "tokens come in row-major (t, h, w) order over the grid (T', H', W'), each flattened as (pt, p, p, C).",
          unpatchify_solution)
def check_unpatchify(answer) -> None:
    g = torch.Generator().manual_seed(0)
    for shape, pt, p in [((2, 3, 4, 8, 8), 2, 4), ((1, 1, 6, 6, 12), 3, 2), ((2, 4, 1, 4, 4), 1, 2)]:
        x = torch.randn(shape, generator=g)
        grid = (shape[2] // pt, shape[3] // p, shape[4] // p)
        out = answer(patchify(x, pt, p), grid, pt, p)
        if not isinstance(out, torch.Tensor) or out.shape != x.shape:
            raise Wrong(f"for a video of shape {shape} cut with pt={pt}, p={p} (grid {grid}): expected (B, C, T, H, W) "
                        f"= {shape}, got {_shape(out)}")
        if not torch.equal(out, x):
            same_pixels = torch.equal(out.flatten().sort().values, x.flatten().sort().values)
            hint = ("every value is there but in the wrong place: a token is flattened as (pt, p, p, C), channels "
                    "last, and tokens run over (t, h, w) with w fastest" if same_pixels else
                    "the values differ from the video's: unpatchify only moves values, it never changes them")
            raise Wrong(f"unpatchify(patchify(x)) is not x for shape {shape}, pt={pt}, p={p}: {hint}")


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


# ---- 3. the paper's Gflops ---------------------------------------------------------------------------------
def dit_gflops_solution(cfg: DiTConfig) -> float:
    """Forward Gflops of a full-attention DiT for one sample, one multiply-add = one flop (Peebles & Xie 2023, §4)."""
    return sum(_gflops_parts(cfg).values())


def _gflops_parts(cfg: DiTConfig) -> dict[str, float]:
    d, (t, h, w) = cfg.hidden_size, cfg.grid
    tokens, volume, mlp = t * h * w, cfg.temporal_patch * cfg.patch_size ** 2, int(cfg.hidden_size * cfg.mlp_ratio)
    return {"the tubelet embedding (L·(pt·p·p·C)·D)": tokens * cfg.in_channels * volume * d / 1e9,
            "the timestep MLP (256·D + D·D)": (256 * d + d * d) / 1e9,
            "the qkv and output projections (4·L·D² per block)": cfg.depth * 4 * tokens * d * d / 1e9,
            "the MLPs (2·L·D·4D per block)": cfg.depth * 2 * tokens * d * mlp / 1e9,
            "the attention products Q·Kᵀ and A·V (2·L²·D per block)": cfg.depth * 2 * tokens ** 2 * d / 1e9,
            "the adaLN linears (D·6D per block, once per sample)": cfg.depth * 6 * d * d / 1e9,
            "the final layer (D·2D + L·D·pt·p·p·C_out)": (2 * d * d + tokens * d * volume * cfg.out_channels) / 1e9}


@exercise("dit_gflops", "Count the forward Gflops of a DiT config (full attention, one sample) as the paper does: "
          "one multiply-add = one flop; count every matrix product (tubelet embedding, timestep MLP, qkv, output "
          "projection, attention products, MLP, adaLN linears, final layer); leave out norms, activations, softmax.",
          dit_gflops_solution)
def check_dit_gflops(answer) -> None:
    # The video DiT first: with C_out = C there, a missing tubelet embedding and a final layer counted with C instead
    # of C_out differ; on the paper's configs (C = 4, C_out = 8) the two shortfalls are the same number.
    configs = {"a video DiT (32×32×16 pixels, tubelets 2×4×4)": DiTConfig(
                   input_size=32, frames=16, in_channels=1, num_classes=0, depth=8, hidden_size=384, num_heads=6,
                   patch_size=4, temporal_patch=2),
               "DiT-XL/2 at ImageNet 256": DiT_XL_2(**PAPER_IMAGENET_256),
               "DiT-S/8 at ImageNet 256": DiT_S_8(**PAPER_IMAGENET_256)}
    for name, cfg in configs.items():
        got = answer(cfg)
        if not isinstance(got, (int, float)) and not (isinstance(got, torch.Tensor) and got.numel() == 1):
            raise Wrong(f"expected a number of Gflops, got {type(got).__name__}")
        got, want = float(got), flops_per_forward(cfg)
        if abs(got - want) <= 2e-4 * want:
            continue
        if cfg.learn_sigma:  # the paper's models: C_out = 2C; the count of a final layer that writes C
            if abs(got - dit_gflops_solution(replace(cfg, learn_sigma=False))) <= 2e-4 * want:
                raise Wrong(f"{name}: got {got:.4g} Gflops, expected {want:.4g}; the final layer writes C_out = "
                            f"cfg.out_channels = {cfg.out_channels} channels per pixel (the paper's models also "
                            f"predict the variance: learn_sigma=True), not C = {cfg.in_channels}")
        parts = _gflops_parts(cfg)
        missing = [k for k, v in parts.items() if abs((want - got) - v) <= 0.01 * v + 1e-9]
        doubled = [k for k, v in parts.items() if abs((got - want) - v) <= 0.01 * v + 1e-9]
        hint = (f"the difference is exactly {missing[0]}: did you leave it out?" if missing else
                f"the difference is exactly {doubled[0]}: counted twice?" if doubled else
                "2× too many? the paper counts a multiply-add as one flop" if abs(got / want - 2) < 0.01 else
                "count each part: " + "; ".join(parts))
        raise Wrong(f"{name}: got {got:.4g} Gflops, expected {want:.4g}; {hint}")
