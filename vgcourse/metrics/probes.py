"""Probe networks: small classifiers the course trains on its own data, standing in for downloaded ones.

FVD uses an I3D network trained on Kinetics; we have no downloads, so the course trains two small probes on
its generated datasets and ships their weights in ``data/weights/`` (hash-checked, ``weights_only=True``):

- :class:`FrameProbe` — a 2D CNN that says which digit classes a frame shows (multi-label). Frame quality and
  identity consistency read its outputs.
- :class:`VideoProbe` — a 3D CNN trained to name the classes *and* each class's speed along y and x (constant
  through elastic bounces), so its features see appearance and motion. The Fréchet distance uses its
  penultimate features, as FVD uses I3D's.

Both work at a fixed internal resolution of 32×32 (inputs are resized with area averaging), so one probe
scores 32×32 and 64×64 models alike. :func:`probe_accuracy` measures them on held-out digits;
``python -m vgcourse.scripts.train_probes`` retrains them reproducibly.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import nn

from vgcourse.checkpoint import load_model_state, load_shipped
from vgcourse.data import MovingDigits
from vgcourse.data.base import VideoBatch

PROBE_SIZE = 32
CLASSES = 10  # digit classes


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


# ---- what the probes predict, and how well they do on held-out digits ---------------------------------------
def multi_hot(classes: torch.Tensor, n: int = CLASSES) -> torch.Tensor:
    """(B, K) class indices -> (B, n) 0/1 targets."""
    return torch.zeros(classes.shape[0], n, device=classes.device).scatter_(1, classes, 1.0)


def class_speeds(batch: VideoBatch, size: int, n: int = CLASSES) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-class |v_y|, |v_x| as canvas fractions per frame, averaged over the digits of that class.

    Returns targets (B, n, 2) and a mask (B, n) of the classes present. Speeds are constant through elastic
    bounces (only signs flip), which makes them a clean motion target.
    """
    speed = batch.labels["velocities"][:, 0].abs() / size  # (B, K, 2)
    classes = batch.labels["classes"]  # (B, K)
    one_hot = F.one_hot(classes, n).float()  # (B, K, n)
    count = one_hot.sum(1)  # (B, n)
    total = torch.einsum("bkn,bkd->bnd", one_hot, speed)
    return total / count.clamp(min=1)[..., None], (count > 0).float()


@torch.no_grad()
def probe_accuracy(size: int = 32, digits: int = 2, n: int = 256,
                   device: torch.device | str = "cpu") -> dict[str, float]:
    """Accuracy of the shipped probes on the held-out digits (never seen in training).

    ``frame_set_accuracy``: frames whose top-K classes equal the true digit set; ``video_set_accuracy``: the same
    for the video probe's class head; ``speed_error_px``: mean |predicted − true| per-class speed in pixels/frame.
    """
    batch = MovingDigits(size=size, digits=digits).heldout(n, device=device)
    frame_probe = load_probe("probe_moving_digits_frame", device)
    video_probe = load_probe("probe_moving_digits_video", device)
    truth = multi_hot(batch.labels["classes"]).bool()  # (B, 10)
    k = truth.sum(-1, keepdim=True)  # distinct classes per clip
    def set_of(scores):  # the top-k classes as a 0/1 mask, k = distinct true classes
        ranks = scores.argsort(-1, descending=True).argsort(-1)
        return ranks < k.view(-1, *([1] * (scores.ndim - 1)))
    frame_scores = frame_probe(batch.video)  # (B, T, 10)
    frame_ok = (set_of(frame_scores) == truth[:, None]).all(-1)
    logits, speed = video_probe(batch.video)
    video_ok = (set_of(logits) == truth).all(-1)
    target, present = class_speeds(batch, size)
    err = ((speed / 10 - target).abs().sum(-1) * present).sum() / present.sum() / 2 * size
    return {"frame_set_accuracy": float(frame_ok.float().mean()), "video_set_accuracy": float(video_ok.float().mean()),
            "speed_error_px": float(err)}
