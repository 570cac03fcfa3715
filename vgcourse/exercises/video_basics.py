"""Exercises on video as data: layouts, corruptions, and reading motion from pixels."""

from __future__ import annotations

import torch

from vgcourse.data import BouncingBalls, CaptionedShapes, MovingDigits
from vgcourse.exercises import Wrong, exercise
from vgcourse.video import to_uint8


# ---- 1. to display ------------------------------------------------------------------------------------------
def to_display_solution(clip: torch.Tensor) -> torch.Tensor:
    """(C, T, H, W) float in [-1, 1] -> (T, H, W, C) uint8 in [0, 255]."""
    return ((clip.clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8).permute(1, 2, 3, 0)


@exercise("to_display", "Turn a model clip (C, T, H, W) in [-1, 1] into display frames (T, H, W, C) uint8.",
          to_display_solution)
def check_to_display(answer) -> None:
    grey = MovingDigits(size=16, frames=4, digits=1, digit_size=8).batch(1, seed=3).video[0]  # (1, 4, 16, 16)
    colour = CaptionedShapes(size=16, frames=4).batch(1, seed=3).video[0]  # (3, 4, 16, 16): the axes must move
    for clip in (grey, colour):
        out = torch.as_tensor(answer(clip.clone()))
        want = torch.from_numpy(to_uint8(clip))
        if tuple(out.shape) != tuple(want.shape):
            raise Wrong(f"expected shape (T, H, W, C) = {tuple(want.shape)}, got {tuple(out.shape)}")
        if out.dtype != torch.uint8:
            raise Wrong(f"expected dtype uint8, got {out.dtype}")
        diff = (out.int() - want.int()).abs().max().item()
        if diff <= 1:
            continue
        reshaped = want.permute(3, 0, 1, 2).reshape(want.shape)  # the same bytes, the axes not moved
        if clip.shape[0] > 1 and (out.int() - reshaped.int()).abs().max().item() <= 1:
            raise Wrong("a colour clip's channels end up mixed with its pixels: reshape keeps the memory order "
                        "(C, T, H, W); move the axes with permute(1, 2, 3, 0)")
        raise Wrong(f"pixel values differ by up to {diff}: map -1 -> 0 and +1 -> 255 (x + 1) * 127.5, then round")


# ---- 2. shuffle frames --------------------------------------------------------------------------------------
def shuffle_frames_solution(video: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Permute each clip's frames independently: (B, C, T, H, W) -> the same shape."""
    b, t = video.shape[0], video.shape[2]
    perm = torch.argsort(torch.rand(b, t, generator=generator), dim=1)
    return torch.stack([video[i][:, perm[i]] for i in range(b)])


@exercise("shuffle_frames", "Shuffle the frames of every clip independently (a corruption that keeps each frame "
          "perfect and destroys the motion).", shuffle_frames_solution)
def check_shuffle_frames(answer) -> None:
    video = MovingDigits(size=16, frames=8, digits=1, digit_size=8).batch(16, seed=1).video
    video[:, :, :, 0, 0] = torch.linspace(-1, 1, 16 * 8).view(16, 1, 8)  # a unique mark on every frame
    out = answer(video.clone(), torch.Generator().manual_seed(0))
    if not isinstance(out, torch.Tensor) or out.shape != video.shape:
        raise Wrong(f"expected a tensor of shape {tuple(video.shape)}, got "
                    f"{tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__}")
    same_order, orders = 0, set()
    for i in range(video.shape[0]):
        src = video[i].transpose(0, 1).flatten(1)  # (T, C*H*W)
        dst = out[i].transpose(0, 1).flatten(1)
        match = torch.cdist(dst, src).argmin(1)
        if not torch.equal(dst, src[match]):
            raise Wrong(f"clip {i}: some output frames are not frames of the same input clip")
        if sorted(match.tolist()) != list(range(video.shape[2])):
            raise Wrong(f"clip {i}: frames are repeated or lost; use a permutation of the T frames")
        same_order += torch.equal(dst, src)
        orders.add(tuple(match.tolist()))
    if same_order > 2:
        raise Wrong(f"{same_order} of 16 clips kept their order: shuffle each clip with its own permutation")
    if len(orders) < 4:
        raise Wrong(f"only {len(orders)} different orders among 16 clips: draw a new permutation for every clip")


# ---- 3. centroid ----------------------------------------------------------------------------------------
def centroid_solution(frame: torch.Tensor) -> torch.Tensor:
    """Intensity-weighted centre of mass (y, x) of a greyscale frame (H, W) in [-1, 1] (black = -1 = empty)."""
    w = (frame + 1) / 2
    ys = torch.arange(frame.shape[0], dtype=frame.dtype)
    xs = torch.arange(frame.shape[1], dtype=frame.dtype)
    total = w.sum()
    return torch.stack([(w.sum(1) * ys).sum() / total, (w.sum(0) * xs).sum() / total])


@exercise("centroid", "Find the centre of mass (y, x) of the bright pixels of one frame: the seed of a tracker.",
          centroid_solution)
def check_centroid(answer) -> None:
    batch = BouncingBalls(size=32, frames=4, balls=1).batch(8, seed=2)
    for i in range(8):
        frame = batch.video[i, 0, 0]
        got = torch.as_tensor(answer(frame.clone()), dtype=torch.float32).flatten()
        if got.shape != (2,):
            raise Wrong(f"expected two numbers (y, x), got shape {tuple(got.shape)}")
        want = batch.labels["centers"][i, 0, 0]
        err = (got - want).abs().max().item()
        if err > 0.5:
            raise Wrong(f"ball {i}: got (y, x) = ({got[0]:.2f}, {got[1]:.2f}), the ball is at "
                        f"({want[0]:.2f}, {want[1]:.2f}); weight pixels by brightness (x + 1) / 2, "
                        "and mind (y, x) order")
