"""Probe networks: small classifiers the course trains on its own data, standing in for downloaded ones.

FVD uses an I3D network trained on Kinetics; we have no downloads, so the course trains two small probes on
its generated datasets and ships their weights in ``data/weights/`` (hash-checked, ``weights_only=True``):

- :class:`FrameProbe` — a 2D CNN that says which digit classes a frame shows (multi-label). Frame quality and
  identity consistency read its outputs.
- :class:`VideoProbe` — a 3D CNN trained to name the classes *and* each class's speed along y and x (constant
  through elastic bounces), so its features see appearance and motion. The Fréchet distance uses its
  penultimate features, as FVD uses I3D's.

Both work at a fixed internal resolution of 32×32 (inputs are resized with area averaging), so one probe
scores 32×32 and 64×64 models alike. :mod:`vgcourse.metrics.train_probes` retrains them reproducibly.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import nn

from vgcourse.train.checkpoint import load_model_state, load_shipped

PROBE_SIZE = 32


def resize_frames(video: torch.Tensor, size: int = PROBE_SIZE) -> torch.Tensor:
    """(B, C, T, H, W) -> (B, C, T, size, size) by area averaging (or bilinear when upsampling)."""
    b, c, t, h, w = video.shape
    if (h, w) == (size, size):
        return video
    frames = rearrange(video, "b c t h w -> (b t) c h w")
    mode = "area" if h >= size else "bilinear"
    frames = F.interpolate(frames, size=(size, size), mode=mode, **({} if mode == "area" else {"align_corners": False}))
    return rearrange(frames, "(b t) c h w -> b c t h w", b=b)


class FrameProbe(nn.Module):
    """Per-frame multi-label classifier: (B, C, T, H, W) -> logits (B, T, classes)."""

    def __init__(self, in_channels: int = 1, classes: int = 10, width: int = 32):
        super().__init__()
        w = width
        block = lambda cin, cout, stride: [nn.Conv2d(cin, cout, 3, stride, 1), nn.GroupNorm(8, cout), nn.GELU()]  # noqa: E731
        self.net = nn.Sequential(
            *block(in_channels, w, 1),  # 32x32
            *block(w, 2 * w, 2),  # 32x32 => 16x16
            *block(2 * w, 4 * w, 2),  # 16x16 => 8x8
            *block(4 * w, 4 * w, 2),  # 8x8 => 4x4
            nn.AdaptiveAvgPool2d(1), nn.Flatten(),
            nn.Linear(4 * w, classes),
        )

    def forward(self, video: torch.Tensor) -> torch.Tensor:
        b = video.shape[0]
        frames = rearrange(resize_frames(video), "b c t h w -> (b t) c h w")
        return rearrange(self.net(frames), "(b t) k -> b t k", b=b)


class VideoProbe(nn.Module):
    """Clip encoder with feature, class and per-class speed heads: (B, C, T, H, W) -> features (B, D)."""

    def __init__(self, in_channels: int = 1, classes: int = 10, width: int = 32, features: int = 128):
        super().__init__()
        w = width
        block = lambda cin, cout, stride: [nn.Conv3d(cin, cout, 3, stride, 1), nn.GroupNorm(8, cout), nn.GELU()]  # noqa: E731
        self.encoder = nn.Sequential(
            *block(in_channels, w, (1, 2, 2)),  # 32x32 => 16x16
            *block(w, 2 * w, (1, 2, 2)),  # 16x16 => 8x8
            *block(2 * w, 4 * w, (2, 2, 2)),  # T => T/2, 8x8 => 4x4
            *block(4 * w, 4 * w, (2, 1, 1)),  # T/2 => T/4
            nn.AdaptiveAvgPool3d(1), nn.Flatten(),
            nn.Linear(4 * w, features), nn.GELU(),
        )
        self.classes = classes
        self.class_head = nn.Linear(features, classes)
        self.speed_head = nn.Linear(features, classes * 2)

    def features(self, video: torch.Tensor) -> torch.Tensor:
        """The Fréchet features (B, D)."""
        return self.encoder(resize_frames(video))

    def forward(self, video: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Class logits (B, classes) and speeds (B, classes, 2) as |v_y|, |v_x| in canvas fractions per frame."""
        f = self.features(video)
        return self.class_head(f), rearrange(self.speed_head(f), "b (k two) -> b k two", two=2)


PROBES = {  # shipped name -> (class, constructor kwargs)
    "probe_moving_digits_frame": (FrameProbe, {"in_channels": 1, "classes": 10}),
    "probe_moving_digits_video": (VideoProbe, {"in_channels": 1, "classes": 10}),
}


def load_probe(name: str, device: torch.device | str = "cpu") -> nn.Module:
    """A shipped probe by name, hash-checked, in eval mode with frozen weights."""
    if name not in PROBES:
        raise KeyError(f"unknown probe {name!r}; shipped probes are {sorted(PROBES)}")
    cls, kwargs = PROBES[name]
    model = cls(**kwargs)
    load_model_state(model, load_shipped(name)["model"], f"shipped weights {name!r}")
    return model.to(device).eval().requires_grad_(False)
