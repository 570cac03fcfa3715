"""Moving digits: the Moving MNIST recipe on real handwriting that ships with the course.

Srivastava et al. 2015 ("Unsupervised Learning of Video Representations using LSTMs") bounce two 28×28
MNIST digits on a 64×64 canvas and overlay them with a pixel-wise max. We follow the recipe with the 1,797
8×8 digits of scikit-learn's ``load_digits`` (UCI optdigits, real handwriting), shipped in
``data/digits.npz``, upscaled bilinearly to ``digit_size``. One in five instances is reserved for the
held-out set, so evaluation digits were never seen in training. :class:`CroppedDigits` renders the same digits on
an H×W canvas of any aspect ratio (training on many shapes, chapter 12).
"""

from __future__ import annotations

import math
from functools import lru_cache

import numpy as np
import torch
import torch.nn.functional as F

from vgcourse.data.base import VideoDataset, bounce, positive_int
from vgcourse.paths import data_path

HELDOUT_EVERY = 5  # instance i is held out when i % 5 == 0


@lru_cache(maxsize=1)
def load_digit_images() -> tuple[torch.Tensor, torch.Tensor]:
    """The bundled digits: images (1797, 8, 8) float in [0, 1] and labels (1797,) long."""
    path = data_path("digits.npz")
    with np.load(path) as f:
        images = torch.from_numpy(f["images"].astype(np.float32) / 16.0)
        labels = torch.from_numpy(f["labels"].astype(np.int64))
    return images, labels


def digit_split(split: str) -> torch.Tensor:
    """Indices of the digit instances of ``split`` ('train' or 'heldout')."""
    n = load_digit_images()[0].shape[0]
    idx = torch.arange(n)
    return idx[idx % HELDOUT_EVERY == 0] if split == "heldout" else idx[idx % HELDOUT_EVERY != 0]


class MovingDigits(VideoDataset):
    """Bouncing handwritten digits, (B, 1, T, size, size), overlaid by a pixel-wise max.

    Labels: ``classes`` (B, K) digit classes, ``positions`` (B, T, K, 2) top-left (y, x) in pixels,
    ``centers`` (B, T, K, 2), ``velocities`` (B, T, K, 2) in pixels per frame.
    """

    name = "moving_digits"
    channels = 1

    def __init__(self, size: int = 64, frames: int = 16, digits: int = 2, digit_size: int | None = None,
                 speed: tuple[float, float] = (2.0, 4.0)):
        super().__init__(size, frames)
        self.digits = positive_int(digits, "digits")
        self.digit_size = digit_size if digit_size is not None else max(4, round(size * 28 / 64))
        positive_int(self.digit_size, "digit_size")
        if self.digit_size >= size:
            raise ValueError(f"digit_size={self.digit_size} cannot move on a {size}×{size} canvas: "
                             f"use digit_size < size (default is 28/64 of size)")
        lo, hi = speed
        if not 0 <= lo <= hi:
            raise ValueError(f"speed must be a range (low, high) with 0 <= low <= high, got {speed}")
        self.speed = (float(lo) * size / 64, float(hi) * size / 64)  # pixels per frame, scaled with the canvas
        self._sprites: dict[torch.device, torch.Tensor] = {}

    def sprites(self, device: torch.device) -> torch.Tensor:
        """All digit images upscaled to (1797, digit_size, digit_size) in [0, 1], cached per device."""
        if device not in self._sprites:
            images = load_digit_images()[0].to(device)
            up = F.interpolate(images[:, None], size=(self.digit_size,) * 2, mode="bilinear", align_corners=False)
            self._sprites[device] = up[:, 0].clamp(0, 1)
        return self._sprites[device]

    def _draw(self, n: int, g: torch.Generator, split: str) -> dict[str, torch.Tensor]:
        pool = digit_split(split)
        instance = pool[torch.randint(len(pool), (n, self.digits), generator=g)]  # (n, K)
        room = self.size - self.digit_size
        start = torch.rand(n, self.digits, 2, generator=g) * room
        angle = torch.rand(n, self.digits, generator=g) * 2 * math.pi
        speed = self.speed[0] + torch.rand(n, self.digits, generator=g) * (self.speed[1] - self.speed[0])
        velocity = torch.stack([torch.sin(angle), torch.cos(angle)], -1) * speed[..., None]
        pos, vel = bounce(start, velocity, 0.0, float(room), self.frames)  # (n, K, T, 2)
        pos, vel = pos.transpose(1, 2), vel.transpose(1, 2)  # (n, T, K, 2)
        return {"classes": load_digit_images()[1][instance], "positions": pos,
                "centers": pos + self.digit_size / 2, "velocities": vel, "_instance": instance}

    def _render(self, params: dict[str, torch.Tensor], device: torch.device) -> torch.Tensor:
        sprites = self.sprites(device)[params["_instance"].to(device)]  # (B, K, d, d)
        return render_sprites(sprites, params["positions"].to(device), self.size)


def render_sprites(sprites: torch.Tensor, positions: torch.Tensor, size: int) -> torch.Tensor:
    """Paste sprites at integer positions and overlay them by a pixel-wise max.

    Inputs:
        sprites: (B, K, d, d) in [0, 1]; positions: (B, T, K, 2) top-left (y, x), rounded to pixels.
    Returns:
        (B, 1, T, size, size) in [-1, 1]
    """
    b, k, d, _ = sprites.shape
    top_left = positions.round().long()  # (B, T, K, 2)
    grid = torch.arange(size, device=sprites.device)
    rel_y = grid - top_left[..., 0:1]  # (B, T, K, size): row of the sprite that lands on canvas row y
    rel_x = grid - top_left[..., 1:2]  # (B, T, K, size)
    inside = ((rel_y >= 0) & (rel_y < d))[..., :, None] & ((rel_x >= 0) & (rel_x < d))[..., None, :]
    bi = torch.arange(b, device=sprites.device).view(b, 1, 1, 1, 1)
    ki = torch.arange(k, device=sprites.device).view(1, 1, k, 1, 1)
    # (B, T, K, S, S)
    pasted = sprites[bi, ki, rel_y.clamp(0, d - 1)[..., :, None], rel_x.clamp(0, d - 1)[..., None, :]]
    canvas = (pasted * inside).amax(dim=2)  # (B, T, S, S): overlay by max
    return (canvas * 2 - 1)[:, None]  # (B, 1, T, S, S)


class CroppedDigits(MovingDigits):
    """Moving digits on an H×W canvas (any aspect ratio), bouncing off its four walls; digits and speeds sized
    as on a min(H, W) square canvas. (B, 1, T, H, W) in [-1, 1]; H = W gives :class:`MovingDigits`' look."""

    def __init__(self, height: int = 32, width: int = 48, frames: int = 16, digits: int = 2):
        side = min(height, width)
        super().__init__(size=max(height, width), frames=frames, digits=digits,
                         digit_size=max(4, round(side * 28 / 64)),
                         speed=(2.0 * side / max(height, width), 4.0 * side / max(height, width)))
        self.height, self.width = height, width

    def _draw(self, n: int, g: torch.Generator, split: str) -> dict[str, torch.Tensor]:
        pool = digit_split(split)
        instance = pool[torch.randint(len(pool), (n, self.digits), generator=g)]  # (n, K)
        room = torch.tensor([self.height - self.digit_size, self.width - self.digit_size], dtype=torch.float32)
        start = torch.rand(n, self.digits, 2, generator=g) * room
        angle = torch.rand(n, self.digits, generator=g) * 2 * math.pi
        speed = self.speed[0] + torch.rand(n, self.digits, generator=g) * (self.speed[1] - self.speed[0])
        velocity = torch.stack([torch.sin(angle), torch.cos(angle)], -1) * speed[..., None]
        axes = [bounce(start[..., a:a + 1], velocity[..., a:a + 1], 0.0, float(room[a]), self.frames) for a in (0, 1)]
        pos = torch.cat([axes[0][0], axes[1][0]], -1).transpose(1, 2)  # (n, T, K, 2)
        vel = torch.cat([axes[0][1], axes[1][1]], -1).transpose(1, 2)  # (n, T, K, 2)
        return {"classes": load_digit_images()[1][instance], "positions": pos,
                "centers": pos + self.digit_size / 2, "velocities": vel, "_instance": instance}

    def _render(self, params: dict[str, torch.Tensor], device: torch.device) -> torch.Tensor:
        sprites = self.sprites(device)[params["_instance"].to(device)]  # (B, K, d, d)
        canvas = render_sprites(sprites, params["positions"].to(device), self.size)  # (B, 1, T, S, S)
        return canvas[..., :self.height, :self.width].contiguous()  # (B, 1, T, H, W)
