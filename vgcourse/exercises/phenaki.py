"""Exercises on Phenaki's masked transformer: the loss on masked codes, classifier-free guidance on logits and the
cosine schedule of parallel decoding."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from vgcourse.exercises import Wrong, exercise


def _number(x: object, what: str) -> float:
    try:
        return float(x)
    except (TypeError, ValueError, RuntimeError):
        raise Wrong(f"expected {what} as one number, got {tuple(x.shape) if isinstance(x, torch.Tensor) else x!r}") \
            from None


# ---- 1. the loss on masked codes ---------------------------------------------------------------------------------
def masked_token_loss_solution(logits: torch.Tensor, targets: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean cross-entropy over the masked codes only (MaskGIT, eq. (1)): logits (B, N, K), targets (B, N) long,
    mask (B, N) bool (True = masked)."""
    return F.cross_entropy(logits[mask], targets[mask])


@exercise("masked_token_loss", "MaskGIT's training loss: from logits (B, N, K), the true codes (B, N) and the mask "
          "(B, N) bool (True = masked), the mean cross-entropy over the masked codes only (eq. (1)); the unmasked "
          "codes are visible to the model and add nothing.", masked_token_loss_solution)
def check_masked_token_loss(answer) -> None:
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(3, 10, 6, generator=g) * 2
    targets = torch.randint(0, 6, (3, 10), generator=g)
    mask = torch.rand(3, 10, generator=g) < 0.4
    mask[:, 0] = True
    got = _number(answer(logits, targets, mask), "the loss")
    want = float(masked_token_loss_solution(logits, targets, mask))
    if abs(got - want) < 1e-4:
        return
    everywhere = float(F.cross_entropy(logits.flatten(0, 1), targets.flatten()))
    if abs(got - everywhere) < 1e-4:
        raise Wrong("that averages over every code; the loss counts the masked codes only (the others are given)")
    summed = float(F.cross_entropy(logits[mask], targets[mask], reduction="sum"))
    if abs(got - summed) < 1e-3:
        raise Wrong("that is the sum over the masked codes; take their mean")
    raise Wrong(f"expected {want:.4f} (the mean cross-entropy of the {int(mask.sum())} masked codes), got {got:.4f}")


# ---- 2. classifier-free guidance on logits -----------------------------------------------------------------------
def guided_logits_solution(cond: torch.Tensor, uncond: torch.Tensor, guidance: float) -> torch.Tensor:
    """ℓ(∅) + s (ℓ(c) − ℓ(∅)) (Ho & Salimans 2022, eq. (6), applied to logits)."""
    return uncond + guidance * (cond - uncond)


@exercise("guided_logits", "Classifier-free guidance on logits: from the logits with the caption, ℓ(c), and without "
          "it, ℓ(∅) (same shape), and the scale s, return ℓ(∅) + s (ℓ(c) − ℓ(∅)): s = 1 is the conditional model, "
          "s > 1 moves further from the unconditional one.", guided_logits_solution)
def check_guided_logits(answer) -> None:
    g = torch.Generator().manual_seed(1)
    cond, uncond = torch.randn(2, 2, 5, 7, generator=g)
    for s in (0.0, 1.0, 3.0):
        got = answer(cond, uncond, s)
        if not isinstance(got, torch.Tensor) or got.shape != cond.shape:
            raise Wrong(f"expected a tensor of shape {tuple(cond.shape)}, got "
                        f"{tuple(got.shape) if isinstance(got, torch.Tensor) else type(got).__name__}")
        want = guided_logits_solution(cond, uncond, s)
        if torch.allclose(got, want, atol=1e-5):
            continue
        if torch.allclose(got, cond + s * (cond - uncond), atol=1e-5):
            raise Wrong("the guided logits start from the unconditional ones: ℓ(∅) + s (ℓ(c) − ℓ(∅)), so that s = 1 "
                        "gives ℓ(c)")
        raise Wrong(f"at s = {s}: expected ℓ(∅) + s (ℓ(c) − ℓ(∅)); at s = 1 the answer must equal ℓ(c)")


# ---- 3. how many codes stay masked -------------------------------------------------------------------------------
def still_masked_solution(n: int, t: int, steps: int) -> int:
    """Codes of n still masked after decoding step t (from 0) of ``steps``: ⌊cos(π/2 · (t + 1)/T) · n⌋ (MaskGIT,
    §3.2, eq. (4) with the cosine schedule)."""
    return math.floor(math.cos(math.pi / 2 * (t + 1) / steps) * n)


@exercise("still_masked", "MaskGIT's decoding schedule: of n unknown codes, how many are still masked after step t "
          "(counted from 0) of T steps? The cosine schedule γ(r) = cos(π r / 2) at r = (t + 1)/T, times n, rounded "
          "down (0 after the last step).", still_masked_solution)
def check_still_masked(answer) -> None:
    for n, steps in ((256, 12), (320, 8), (64, 16), (10, 3)):
        for t in range(steps):
            got, want = answer(n, t, steps), still_masked_solution(n, t, steps)
            if got == want:
                continue
            if got == math.floor(math.cos(math.pi / 2 * t / steps) * n):
                raise Wrong(f"n = {n}, T = {steps}, t = {t}: that is the count before step t; after it the ratio is "
                            f"(t + 1)/T")
            in_float32 = int(torch.floor(torch.cos(torch.tensor(math.pi / 2 * (t + 1) / steps)) * n))
            if got == in_float32:
                raise Wrong(f"n = {n}, T = {steps}, t = {t}: expected {want}, got {got}: float32 rounding (cos · n "
                            f"sits on or just above {want} here, and a float32 tensor lands just below it); compute "
                            f"in float64, e.g. with math.cos")
            raise Wrong(f"n = {n}, T = {steps}, t = {t}: expected {want}, got {got!r}")
