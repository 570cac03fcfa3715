"""Fréchet distance between Gaussians fitted to features (Heusel et al. 2017, eq. (2); FVD, Unterthiner et al. 2018).

    d² = ‖μ₁ − μ₂‖² + Tr(Σ₁ + Σ₂ − 2 (Σ₁ Σ₂)^{1/2})

Computed in float64; Tr((Σ₁Σ₂)^{1/2}) = Σ sqrt(eig(Σ₁^{1/2} Σ₂ Σ₁^{1/2})), which is symmetric, so ``eigh`` is stable.

With a few hundred clips the estimate is noisy (and biased upwards: real clips against the reference do not score
0). :func:`jackknife_fd` and :func:`jackknife_std` say how noisy, for several sample sets compared on the same clips
(paired, so that the noise common to all sets cancels in their ratio). The jackknife, not the bootstrap: with about
as many clips as feature dimensions (128 and 128 in the chapters), a bootstrap resample's repeated rows shrink the
covariance's rank and inflate the distance; leaving one clip out does not.
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
    """d² between N(μ₁, Σ₁) and N(μ₂, Σ₂) (Heusel et al. 2017, eq. (2)): mu1, mu2 (D,), sigma1, sigma2 (D, D) -> float,
    the squared distance (clamped at 0)."""
    root1 = _sqrtm_psd(sigma1.double())
    cross = torch.linalg.eigvalsh(root1 @ sigma2.double() @ root1).clamp(min=0).sqrt().sum()
    d2 = ((mu1.double() - mu2.double()).pow(2).sum() + torch.trace(sigma1.double()) + torch.trace(sigma2.double())
          - 2 * cross)
    return float(d2.clamp(min=0))


def frechet_distance_features(a: torch.Tensor, b: torch.Tensor) -> float:
    """d² between Gaussians fitted to two feature sets (N, D) and (M, D)."""
    return frechet_distance(*gaussian_stats(a), *gaussian_stats(b))


def jackknife_fd(features: dict[str, torch.Tensor],
                 reference: tuple[torch.Tensor, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Leave-one-clip-out Fréchet distances of several sample sets to a fixed ``reference``.

    Inputs: features {name: (N, D)}, every set with the same N clips, paired row by row (e.g. samplers started from
    the same x_T); reference (μ (D,), Σ (D, D)) of the real clips. Returns {name: (N,) float64}: entry i is the
    distance with clip i left out of *every* set, so that :func:`jackknife_std` of one entry is the standard error
    of its distance, and of ``out[b] / out[a]`` the standard error of the ratio of two (their shared noise cancels).
    """
    sizes = {name: tuple(f.shape) for name, f in features.items()}
    if not features or any(len(v) != 2 for v in sizes.values()) or len({v[0] for v in sizes.values()}) != 1:
        raise ValueError(f"expected feature sets (N, D) with the same N clips, paired by row; got {sizes}")
    n = next(iter(sizes.values()))[0]
    if n < 3:
        raise ValueError(f"a leave-one-out distance needs at least 3 clips, got {n}")
    keep = ~torch.eye(n, dtype=torch.bool)  # (N, N): row i keeps every clip but i
    return {name: torch.tensor([frechet_distance(*gaussian_stats(f[rows]), *reference) for rows in keep],
                               dtype=torch.float64)
            for name, f in features.items()}


def jackknife_std(estimates: torch.Tensor) -> float:
    """The jackknife standard error from N leave-one-out estimates θ₍ᵢ₎ (N,): √((N−1)/N · Σᵢ (θ₍ᵢ₎ − θ̄)²)
    (Efron & Tibshirani 1993, ch. 11)."""
    if estimates.ndim != 1 or estimates.shape[0] < 2:
        raise ValueError(f"expected N >= 2 leave-one-out estimates of shape (N,), got {tuple(estimates.shape)}")
    n, e = estimates.shape[0], estimates.double()
    return float(((n - 1) / n * (e - e.mean()).pow(2).sum()).sqrt())
