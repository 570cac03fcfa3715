"""Reconstruction and likelihood measures: PSNR, SSIM, codebook usage and perplexity, bits per dimension."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from einops import rearrange

from vgcourse.video import check_video

DATA_RANGE = 2.0  # videos live in [-1, 1]


def psnr(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Peak signal-to-noise ratio per clip (B,) in dB: 10 log10(range² / MSE), range 2.

    x, y (B, C, T, H, W) in [-1, 1] -> (B,)."""
    check_video(x, "x"), check_video(y, "y")
    if x.shape != y.shape:
        raise ValueError(f"psnr needs equal shapes, got {tuple(x.shape)} and {tuple(y.shape)}")
    mse = (x.float() - y.float()).pow(2).flatten(1).mean(1)
    return 10 * torch.log10(DATA_RANGE**2 / mse.clamp(min=1e-12))


def ssim(x: torch.Tensor, y: torch.Tensor, window: int = 11, sigma: float = 1.5) -> torch.Tensor:
    """Structural similarity per clip (B,), averaged over frames (Wang et al. 2004, eq. (13), Gaussian window).

    x, y (B, C, T, H, W) in [-1, 1] -> (B,)."""
    check_video(x, "x"), check_video(y, "y")
    if x.shape != y.shape:
        raise ValueError(f"ssim needs equal shapes, got {tuple(x.shape)} and {tuple(y.shape)}")
    b, c = x.shape[:2]
    a = rearrange(x.float(), "b c t h w -> (b t) c h w")
    bb = rearrange(y.float(), "b c t h w -> (b t) c h w")
    window = min(window, a.shape[-1], a.shape[-2]) | 1
    g = torch.exp(-((torch.arange(window, device=x.device) - window // 2) ** 2) / (2 * sigma**2))
    g = (g / g.sum())
    kernel = (g[:, None] * g[None, :]).expand(c, 1, window, window)
    blur = lambda z: F.conv2d(z, kernel, groups=c)  # noqa: E731 — a valid Gaussian filter
    mu_a, mu_b = blur(a), blur(bb)
    var_a = blur(a * a) - mu_a**2
    var_b = blur(bb * bb) - mu_b**2
    cov = blur(a * bb) - mu_a * mu_b
    c1, c2 = (0.01 * DATA_RANGE) ** 2, (0.03 * DATA_RANGE) ** 2
    s = ((2 * mu_a * mu_b + c1) * (2 * cov + c2)) / ((mu_a**2 + mu_b**2 + c1) * (var_a + var_b + c2))
    return rearrange(s.mean((1, 2, 3)), "(b t) -> b t", b=b).mean(1)


def codebook_stats(indices: torch.Tensor, codebook_size: int) -> dict[str, torch.Tensor]:
    """Usage (fraction of codes used) and perplexity exp(H(p)) of the code histogram p, as tensors (no host sync:
    a training step can log them; van den Oord et al. 2017). indices (...,) in [0, codebook_size) -> dict of ()
    tensors."""
    counts = torch.bincount(indices.flatten().long(), minlength=codebook_size).float()  # (K,)
    p = counts / counts.sum().clamp(min=1)
    entropy = -(p * torch.log(p.clamp(min=1e-12))).sum()
    return {"usage": (counts > 0).float().mean(), "perplexity": entropy.exp()}


def codebook_usage(indices: torch.Tensor, codebook_size: int) -> dict[str, float]:
    """:func:`codebook_stats` as plain numbers, for tables and results files: indices (...,) -> dict(usage,
    perplexity) of floats."""
    return {k: float(v) for k, v in codebook_stats(indices, codebook_size).items()}


def mask_iou(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Intersection over union of two mask videos, per clip over all frames: (B, ...) -> (B,); two empty
    masks agree (IoU 1). Structure kept by an edit = high IoU between source and edited object masks."""
    if a.shape != b.shape:
        raise ValueError(f"mask_iou needs masks of one shape, got {tuple(a.shape)} and {tuple(b.shape)}")
    a, b = a.flatten(1) > 0.5, b.flatten(1) > 0.5
    inter, union = (a & b).sum(1).float(), (a | b).sum(1).float()
    return torch.where(union > 0, inter / union.clamp(min=1), torch.ones_like(union))


def bits_per_dim(nll_nats: torch.Tensor, dims: int) -> torch.Tensor:
    """Negative log-likelihood in nats per sample -> bits per dimension, nll / (dims · ln 2): nll_nats of any shape,
    e.g. (B,) -> the same shape."""
    return nll_nats / (dims * math.log(2))
