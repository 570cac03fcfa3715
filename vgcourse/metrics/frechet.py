"""Fréchet distance between Gaussians fitted to features (Heusel et al. 2017, eq. (2); FVD, Unterthiner et al. 2018).

    d² = ‖μ₁ − μ₂‖² + Tr(Σ₁ + Σ₂ − 2 (Σ₁ Σ₂)^{1/2})

Computed in float64; Tr((Σ₁Σ₂)^{1/2}) = Σ sqrt(eig(Σ₁^{1/2} Σ₂ Σ₁^{1/2})), which is symmetric, so ``eigh`` is stable.
"""

from __future__ import annotations

import torch


def gaussian_stats(features: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean (D,) and covariance (D, D) of features (N, D), in float64."""
    if features.ndim != 2 or features.shape[0] < 2:
        raise ValueError(f"expected features of shape (N, D) with N >= 2, got {tuple(features.shape)}")
    f = features.detach().double()
    return f.mean(0), torch.cov(f.T)


def _sqrtm_psd(m: torch.Tensor) -> torch.Tensor:
    vals, vecs = torch.linalg.eigh(m)
    return (vecs * vals.clamp(min=0).sqrt()) @ vecs.T


def frechet_distance(mu1: torch.Tensor, sigma1: torch.Tensor, mu2: torch.Tensor, sigma2: torch.Tensor) -> float:
    """d² between N(μ₁, Σ₁) and N(μ₂, Σ₂)."""
    root1 = _sqrtm_psd(sigma1.double())
    cross = torch.linalg.eigvalsh(root1 @ sigma2.double() @ root1).clamp(min=0).sqrt().sum()
    d2 = (mu1.double() - mu2.double()).pow(2).sum() + torch.trace(sigma1.double()) + torch.trace(sigma2.double()) - 2 * cross
    return float(d2.clamp(min=0))


def frechet_distance_features(a: torch.Tensor, b: torch.Tensor) -> float:
    """d² between Gaussians fitted to two feature sets (N, D) and (M, D)."""
    return frechet_distance(*gaussian_stats(a), *gaussian_stats(b))
