"""Clean context: frames that are known exactly enter the noisy input clean, and are neither noised nor scored.

Image-to-video and continuation condition on frames that are given, not drawn. Concatenating them as extra input
channels (Gen-2, Stable Video Diffusion) leaves the network to learn to copy them into its prediction, and a
sampler then redraws them from noise. Open-Sora 1.1's masked DiT (report "Masked DiT as Image/Video-to-Video
Model", 2024) instead puts the given frames into x_t *unnoised* and leaves them out of the loss, so the network
only has to continue them. Open-Sora marks such frames with a per-frame timestep 0; a U-Net has one timestep per
clip, so here a mask channel (:func:`vgcourse.diffusion.conditioning.condition_channels`' frame-0 mark) says
which frames are clean.

- training: :func:`with_clean_context` builds x_t, and :func:`vgcourse.diffusion.diffusion_loss` (``context=``)
  drops the clean frames from the loss;
- sampling: every sampler (``context=``) writes the clean frames into its state before each model call and into
  the final sample, so they come out exactly as given; the model learns which frames are given from a
  :class:`Continuation` condition (its frame mask, with a caption or none).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import torch


def check_frame_mask(mask: torch.Tensor, shape: tuple[int, ...]) -> None:
    """Raise unless ``mask`` is a per-frame mask (B, 1, T, 1, 1) or (1, 1, T, 1, 1) for videos of ``shape``."""
    b, _, t = shape[:3]
    if not isinstance(mask, torch.Tensor) or mask.ndim != 5 or tuple(mask.shape[:3]) not in ((b, 1, t), (1, 1, t)) \
            or mask.shape[3:] != (1, 1):
        got = tuple(mask.shape) if isinstance(mask, torch.Tensor) else type(mask).__name__
        raise ValueError(f"expected a frame mask of shape (B, 1, T, 1, 1) = {(b, 1, t, 1, 1)}, got {got}")


def with_clean_context(x_t: torch.Tensor, x0: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """x_t with the masked frames replaced by their clean values: m ⊙ x_0 + (1 − m) ⊙ x_t.

    Inputs: x_t, x0 (B, C, T, H, W); mask (B, 1, T, 1, 1) (or (1, 1, T, 1, 1)) in {0, 1}, 1 = given clean.
    """
    if x_t.shape != x0.shape:
        raise ValueError(f"expected x_t and x0 of one shape, got {tuple(x_t.shape)} and {tuple(x0.shape)}")
    check_frame_mask(mask, tuple(x_t.shape))
    m = mask.to(x_t.dtype)
    return m * x0.to(x_t.dtype) + (1 - m) * x_t


class CleanContext(NamedTuple):
    """Frames given clean at sampling time. known (B, C, T, H, W): their values (anything elsewhere);
    mask (B, 1, T, 1, 1) in {0, 1}: 1 on the given frames."""

    known: torch.Tensor
    mask: torch.Tensor

    def apply(self, x: torch.Tensor) -> torch.Tensor:
        """The sampler state x (B, C, T, H, W) with the given frames written in, clean."""
        return with_clean_context(x, self.known.to(x.device), self.mask.to(x.device))


def leading_frames_context(video: torch.Tensor, frames: int, given: torch.Tensor | None = None) -> CleanContext:
    """A :class:`CleanContext` holding the first ``frames`` frames of ``video`` (B, C, T, H, W), for the clips
    where ``given`` (B,) bool is True (all clips by default)."""
    if video.ndim != 5 or not 0 < frames <= video.shape[2]:
        raise ValueError(f"expected video (B, C, T, H, W) and 0 < frames ≤ T, got {tuple(video.shape)}, {frames}")
    b, _, t = video.shape[:3]
    mask = torch.zeros(b, 1, t, 1, 1, device=video.device)
    mask[:, :, :frames] = 1.0
    if given is not None:
        if given.shape != (b,):
            raise ValueError(f"expected given of shape ({b},), got {tuple(given.shape)}")
        mask = mask * given.to(mask.device, mask.dtype).view(b, 1, 1, 1, 1)
    return CleanContext(video, mask)


@dataclass(frozen=True)
class Continuation:
    """The condition of a model that continues frames given clean (e.g. :class:`vgcourse.dit.generation.MaskedDiT`,
    or a :class:`vgcourse.dit.generation.TextDiT` with a mask channel): caption tokens (B, L) or None, and the frame
    mask (B, 1, T, 1, 1), 1 on frames given clean. Classifier-free guidance drops the caption and keeps the frames
    (:meth:`unconditional`, which :func:`vgcourse.diffusion.guided_eps` calls):
    ε̃ = ε(x, frames) + s (ε(x, caption, frames) − ε(x, frames)) (Ho & Salimans 2022, eq. (6))."""

    tokens: torch.Tensor | None
    mask: torch.Tensor

    def unconditional(self) -> Continuation:
        return Continuation(None, self.mask)

    def __getitem__(self, index) -> Continuation:
        return Continuation(None if self.tokens is None else self.tokens[index], self.mask[index])
