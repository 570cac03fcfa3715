"""The course's video layout, checked at every boundary.

- Models see **float videos of shape (B, C, T, H, W) with values in [-1, 1]**.
- Display sees **uint8 frames of shape (T, H, W, C)** (C = 1 or 3).

Every function that takes a video checks it and says what it expected and what arrived, e.g.
``expected video of shape (B, C, T, H, W), got (16, 64, 64)``. :func:`in_chunks` runs a function over many
clips a chunk at a time (a generator's samples, a decoder's outputs) and concatenates what it returns in order.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch
from einops import rearrange

RANGE_TOLERANCE = 1e-3


def check_video(video: torch.Tensor, name: str = "video", channels: int | None = None) -> torch.Tensor:
    """Assert ``video`` is a float tensor (B, C, T, H, W) in [-1, 1]; return it unchanged.

    Inputs:
        video: the tensor to check.
        name: how error messages call it.
        channels: if given, the required C.
    """
    if not isinstance(video, torch.Tensor):
        raise TypeError(f"expected {name} as a torch.Tensor of shape (B, C, T, H, W), got {type(video).__name__}")
    if video.ndim != 5:
        hint = " (a single clip? add a batch axis with video[None])" if video.ndim == 4 else ""
        raise ValueError(f"expected {name} of shape (B, C, T, H, W), got {tuple(video.shape)}{hint}")
    if not video.is_floating_point():
        raise TypeError(f"expected {name} as a float tensor in [-1, 1], got dtype {video.dtype}"
                        + (" (uint8 frames? use vgcourse.video.from_uint8)" if video.dtype == torch.uint8 else ""))
    if channels is not None and video.shape[1] != channels:
        raise ValueError(f"expected {name} with C={channels} channels in (B, C, T, H, W), got {tuple(video.shape)}")
    if video.numel():
        lo, hi = video.min().item(), video.max().item()
        if not (np.isfinite(lo) and np.isfinite(hi)):
            raise ValueError(f"{name} contains NaN or inf values")
        if lo < -1 - RANGE_TOLERANCE or hi > 1 + RANGE_TOLERANCE:
            raise ValueError(f"expected {name} values in [-1, 1], got range [{lo:.3g}, {hi:.3g}]"
                             + (" (values in [0, 255]? use vgcourse.video.from_uint8)" if hi > 2 else ""))
    return video


def to_uint8(clip: torch.Tensor) -> np.ndarray:
    """A float clip (C, T, H, W) or a batch of one (1, C, T, H, W) in [-1, 1] -> uint8 frames (T, H, W, C)."""
    if isinstance(clip, torch.Tensor) and clip.ndim == 4:
        clip = clip[None]
    check_video(clip, "clip")
    if clip.shape[0] != 1:
        raise ValueError(f"expected one clip (C, T, H, W), got a batch of {clip.shape[0]}: "
                         "use vgcourse.display.video_grid to tile a batch")
    if clip.shape[1] not in (1, 3):
        raise ValueError(f"expected C = 1 or 3 channels to display, got {tuple(clip.shape)}")
    frames = ((clip[0].detach().float().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)
    return rearrange(frames, "c t h w -> t h w c").cpu().numpy()


def from_uint8(frames: np.ndarray | torch.Tensor) -> torch.Tensor:
    """uint8 frames (T, H, W, C) -> a float clip (1, C, T, H, W) in [-1, 1]."""
    frames = torch.as_tensor(np.asarray(frames))
    if frames.dtype != torch.uint8:
        raise TypeError(f"expected uint8 frames (T, H, W, C), got dtype {frames.dtype}")
    if frames.ndim == 3:  # (T, H, W) greyscale
        frames = frames[..., None]
    if frames.ndim != 4 or frames.shape[-1] not in (1, 3):
        raise ValueError(f"expected uint8 frames of shape (T, H, W, C) with C = 1 or 3, got {tuple(frames.shape)}")
    return rearrange(frames.float() / 127.5 - 1, "t h w c -> 1 c t h w").contiguous()


def video_grid(videos: torch.Tensor, nrow: int | None = None, pad: int = 1, pad_value: float = 1.0) -> torch.Tensor:
    """Tile a batch (B, C, T, H, W) into one clip (1, C, T, H', W') with ``nrow`` clips per row."""
    check_video(videos, "videos")
    b, c, t, h, w = videos.shape
    nrow = nrow or min(b, 8)
    rows = -(-b // nrow)
    filler = videos.new_full((rows * nrow - b, c, t, h, w), pad_value)
    x = torch.cat([videos, filler])
    x = torch.nn.functional.pad(x, (pad, pad, pad, pad), value=pad_value)
    return rearrange(x, "(r n) c t h w -> 1 c t (r h) (n w)", n=nrow)


def in_chunks(fn: Callable[[slice], torch.Tensor], n: int, chunk: int) -> torch.Tensor:
    """``fn(rows)`` for rows = slice(0, chunk), slice(chunk, 2·chunk), ... up to n, concatenated along dim 0.

    Example: decoding latents z (N, Cz, T, h, w) 64 at a time, ``in_chunks(lambda r: ae.decode_scaled(z[r]),
    len(z), 64)``. Each call must return (rows, ...) with the same trailing shape.
    """
    if n < 1 or chunk < 1:
        raise ValueError(f"expected n >= 1 items in chunks of chunk >= 1, got n={n}, chunk={chunk}")
    out = [fn(slice(start, min(start + chunk, n))) for start in range(0, n, chunk)]
    sizes = [len(o) for o in out]
    expected = [min(chunk, n - start) for start in range(0, n, chunk)]
    if sizes != expected:
        raise ValueError(f"expected fn to return one row per item of its slice, {expected}, got {sizes}")
    return torch.cat(out)
