"""Bouncing balls: soft discs with elastic wall bounces (Sutskever et al. 2008's toy physics, no ball-ball
collisions)."""

from __future__ import annotations

import math

import torch

from vgcourse.data.base import VideoDataset, bounce, positive_int


class BouncingBalls(VideoDataset):
    """K discs of radius ``radius`` bouncing in a box, (B, 1, T, size, size).

    Labels: ``centers`` (B, T, K, 2) (y, x) in pixels and ``velocities`` (B, T, K, 2) in pixels per frame.
    """

    name = "bouncing_balls"
    channels = 1

    def __init__(self, size: int = 32, frames: int = 16, balls: int = 2, radius: float | None = None,
                 speed: tuple[float, float] = (1.0, 2.0)):
        super().__init__(size, frames)
        self.balls = positive_int(balls, "balls")
        self.radius = float(radius) if radius is not None else size / 10
        if not 0 < 2 * self.radius < size:
            raise ValueError(f"radius={self.radius} cannot bounce in a {size}×{size} box: use 0 < 2·radius < size")
        self.speed = (speed[0] * size / 32, speed[1] * size / 32)

    def _draw(self, n: int, g: torch.Generator, split: str) -> dict[str, torch.Tensor]:
        r, room = self.radius, self.size - 1 - self.radius
        start = r + torch.rand(n, self.balls, 2, generator=g) * (room - r)
        angle = torch.rand(n, self.balls, generator=g) * 2 * math.pi
        speed = self.speed[0] + torch.rand(n, self.balls, generator=g) * (self.speed[1] - self.speed[0])
        velocity = torch.stack([torch.sin(angle), torch.cos(angle)], -1) * speed[..., None]
        pos, vel = bounce(start, velocity, r, room, self.frames)  # (n, K, T, 2)
        return {"centers": pos.transpose(1, 2), "velocities": vel.transpose(1, 2)}

    def _render(self, params: dict[str, torch.Tensor], device: torch.device) -> torch.Tensor:
        centers = params["centers"].to(device)  # (B, T, K, 2)
        grid = torch.arange(self.size, device=device, dtype=torch.float32)
        dy = grid.view(1, 1, 1, -1, 1) - centers[..., 0, None, None]  # (B, T, K, S, 1)
        dx = grid.view(1, 1, 1, 1, -1) - centers[..., 1, None, None]  # (B, T, K, 1, S)
        dist = (dy**2 + dx**2).sqrt()  # (B, T, K, S, S)
        disc = (self.radius + 0.5 - dist).clamp(0, 1)  # anti-aliased edge one pixel wide
        return (disc.amax(dim=2) * 2 - 1)[:, None]  # (B, 1, T, S, S)
