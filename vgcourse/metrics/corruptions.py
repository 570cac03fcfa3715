"""Corruptions of real clips that calibrate the metrics: each breaks one thing a person would notice.

- :func:`shuffle_frames`: every frame is real, the order is not (motion breaks, frames stay perfect).
- :func:`freeze_frames`: the first frame held for the whole clip (no motion at all).
- :func:`blur`: Gaussian blur of every frame (appearance degrades, motion stays).
- :func:`add_noise`: Gaussian pixel noise (appearance degrades, motion stays).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from einops import rearrange

from vgcourse.video import check_video


def shuffle_frames(video: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    """Permute the frames of every clip independently (a random permutation per clip).

    video (B, C, T, H, W) in [-1, 1] -> the same shape; ``generator`` on the CPU."""
    check_video(video)
    b, _, t = video.shape[:3]
    perm = torch.argsort(torch.rand(b, t, generator=generator), dim=1).to(video.device)  # (B, T)
    index = perm[:, None, :, None, None].expand_as(video)
    return torch.gather(video, 2, index)


def freeze_frames(video: torch.Tensor) -> torch.Tensor:
    """Hold the first frame: (B, C, T, H, W) -> the same shape, every frame equal to frame 0."""
    check_video(video)
    return video[:, :, :1].expand_as(video).contiguous()


def blur(video: torch.Tensor, sigma: float = 1.5) -> torch.Tensor:
    """Gaussian blur of every frame with standard deviation ``sigma`` pixels (edges replicated).

    video (B, C, T, H, W) in [-1, 1] -> the same shape and dtype."""
    check_video(video)
    radius = max(1, int(3 * sigma))
    x = torch.arange(-radius, radius + 1, device=video.device, dtype=torch.float32)
    g = torch.exp(-x**2 / (2 * sigma**2))
    g = g / g.sum()
    b, c = video.shape[:2]
    frames = rearrange(video.float(), "b c t h w -> (b t) c h w")
    frames = F.pad(frames, (radius,) * 4, mode="replicate")
    frames = F.conv2d(frames, g.view(1, 1, 1, -1).expand(c, 1, 1, -1), groups=c)
    frames = F.conv2d(frames, g.view(1, 1, -1, 1).expand(c, 1, -1, 1), groups=c)
    return rearrange(frames, "(b t) c h w -> b c t h w", b=b).to(video.dtype)


def add_noise(video: torch.Tensor, sigma: float = 0.3, generator: torch.Generator | None = None) -> torch.Tensor:
    """Add N(0, sigma²) noise per pixel and clip back to [-1, 1].

    video (B, C, T, H, W) in [-1, 1] -> the same shape and dtype; ``generator`` on the CPU."""
    check_video(video)
    noise = torch.randn(video.shape, generator=generator).to(video.device, video.dtype)
    return (video + sigma * noise).clamp(-1, 1)


CORRUPTIONS = {
    "shuffled frames": lambda v, g: shuffle_frames(v, g),
    "frozen frames": lambda v, g: freeze_frames(v),
    "blurred": lambda v, g: blur(v, 1.5),
    "noisy": lambda v, g: add_noise(v, 0.3, g),
}
