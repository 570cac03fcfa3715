"""Adversarial losses: what the discriminator (critic) minimises and what the generator minimises.

Each pair takes the discriminator's raw scores (logits) on real and on generated samples, any shape (one score
per clip, or one per frame or patch), and returns a scalar:

=================  ======================================================  =======================================
loss               discriminator                                           generator
=================  ======================================================  =======================================
non-saturating     softplus(−D(x)) + softplus(D(G(z)))                     softplus(−D(G(z)))
                   (Goodfellow et al. 2014, eq. (1), as a logistic loss)   (§3: maximise log D(G(z)) instead)
hinge              relu(1 − D(x)) + relu(1 + D(G(z)))                      −D(G(z))
                   (Lim & Ye 2017; Miyato et al. 2018, eq. (16))
Wasserstein        D(G(z)) − D(x)  (Arjovsky et al. 2017, eq. (3); needs    −D(G(z))
                   a Lipschitz critic: clipping, SVC, a gradient penalty)
=================  ======================================================  =======================================

``ADVERSARIAL_LOSSES[name]`` gives the pair ``(discriminator_loss, generator_loss)``.
"""

from __future__ import annotations

from typing import Callable

import torch
import torch.nn.functional as F


def _check(name: str, *scores: torch.Tensor) -> None:
    for s in scores:
        if not isinstance(s, torch.Tensor) or not s.is_floating_point():
            raise TypeError(f"{name} expects floating-point discriminator scores, got "
                            f"{type(s).__name__ if not isinstance(s, torch.Tensor) else s.dtype}")


def d_nonsaturating(real: torch.Tensor, fake: torch.Tensor) -> torch.Tensor:
    """−log σ(D(x)) − log(1 − σ(D(G(z)))), the discriminator's cross-entropy, averaged over each set
    (Goodfellow et al. 2014, eq. (1)). real, fake: logits of any shape, e.g. (B,) or (B, P) -> ()."""
    _check("d_nonsaturating", real, fake)
    return F.softplus(-real).mean() + F.softplus(fake).mean()


def g_nonsaturating(fake: torch.Tensor) -> torch.Tensor:
    """−log σ(D(G(z))): strong gradients when the discriminator rejects the samples (Goodfellow et al. 2014, §3).

    fake: logits of any shape, e.g. (B,) or (B, P) -> ()."""
    _check("g_nonsaturating", fake)
    return F.softplus(-fake).mean()


def d_hinge(real: torch.Tensor, fake: torch.Tensor) -> torch.Tensor:
    """E[max(0, 1 − D(x))] + E[max(0, 1 + D(G(z)))]: no gradient from samples already beyond the margin
    (Lim & Ye 2017; Miyato et al. 2018, eq. (16)). real, fake: logits of any shape, e.g. (B,) or (B, P) -> ()."""
    _check("d_hinge", real, fake)
    return F.relu(1 - real).mean() + F.relu(1 + fake).mean()


def g_hinge(fake: torch.Tensor) -> torch.Tensor:
    """−E[D(G(z))] (Lim & Ye 2017; Miyato et al. 2018). fake: logits of any shape, e.g. (B,) or (B, P) -> ()."""
    _check("g_hinge", fake)
    return -fake.mean()


def d_wasserstein(real: torch.Tensor, fake: torch.Tensor) -> torch.Tensor:
    """E[D(G(z))] − E[D(x)]: minus the critic's estimate of the Wasserstein-1 distance (if D is 1-Lipschitz)
    (Arjovsky et al. 2017, eq. (3)). real, fake: logits of any shape, e.g. (B,) or (B, P) -> ()."""
    _check("d_wasserstein", real, fake)
    return fake.mean() - real.mean()


def g_wasserstein(fake: torch.Tensor) -> torch.Tensor:
    """−E[D(G(z))] (Arjovsky et al. 2017). fake: logits of any shape, e.g. (B,) or (B, P) -> ()."""
    _check("g_wasserstein", fake)
    return -fake.mean()


ADVERSARIAL_LOSSES: dict[str, tuple[Callable[..., torch.Tensor], Callable[..., torch.Tensor]]] = {
    "nonsaturating": (d_nonsaturating, g_nonsaturating),
    "hinge": (d_hinge, g_hinge),
    "wasserstein": (d_wasserstein, g_wasserstein),
}


def adversarial_losses(name: str) -> tuple[Callable[..., torch.Tensor], Callable[..., torch.Tensor]]:
    """(discriminator_loss, generator_loss) of loss ``name``: 'nonsaturating', 'hinge' or 'wasserstein'."""
    if name not in ADVERSARIAL_LOSSES:
        raise ValueError(f"no adversarial loss {name!r}; choose one of {sorted(ADVERSARIAL_LOSSES)}")
    return ADVERSARIAL_LOSSES[name]
