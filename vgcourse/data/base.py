"""What every course dataset shares: a batch type, seeding, the train / held-out split, bucketed streams of several
shapes, and which pixels of a clip are objects (:func:`foreground`).

Datasets are *generated*, batch by batch, on the training device, from a seed: nothing is downloaded and no
giant array sits in memory. The same (seed, n) gives the same batch on every run and on CPU or GPU (random
parameters are drawn on the CPU with a seeded ``torch.Generator``; only rendering runs on the device).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Callable

import torch

from vgcourse.video import check_video

HELDOUT_SEED = 2**40  # the fixed evaluation set; training streams never reach this seed
TRAIN_SEED_STRIDE = 1_000_003  # seed s, step i -> generator seed s * stride + i
FOREGROUND_LEVEL = 0.3  # in [0, 1] intensity (greyscale) or saturation (colour): above it, a pixel is an object


@dataclass
class VideoBatch:
    """A batch of clips with their labels.

    video: (B, C, T, H, W) float in [-1, 1]; labels: tensors with leading dim B; captions: B strings or None.
    """

    video: torch.Tensor
    labels: dict[str, torch.Tensor] = field(default_factory=dict)
    captions: list[str] | None = None

    def __len__(self) -> int:
        return self.video.shape[0]

    def to(self, device: torch.device | str) -> "VideoBatch":
        return VideoBatch(self.video.to(device), {k: v.to(device) for k, v in self.labels.items()}, self.captions)

    def __getitem__(self, index: slice | torch.Tensor) -> "VideoBatch":
        """Select clips: ``batch[:8]`` or ``batch[mask]``."""
        caps = None
        if self.captions is not None:
            idx = torch.arange(len(self))[index].tolist()
            caps = [self.captions[i] for i in ([idx] if isinstance(idx, int) else idx)]
        return VideoBatch(self.video[index], {k: v[index] for k, v in self.labels.items()}, caps)


def generator_for(seed: int) -> torch.Generator:
    """A CPU generator seeded with ``seed`` (CPU so that CPU and GPU runs draw the same parameters)."""
    return torch.Generator().manual_seed(int(seed))


def positive_int(value: int, name: str) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")
    return value


class VideoDataset(ABC):
    """A generated video dataset: ``batch(n, seed)`` renders n clips; ``heldout(n)`` is the evaluation set."""

    name: str = "dataset"
    channels: int = 1

    def __init__(self, size: int, frames: int):
        self.size = positive_int(size, "size")
        self.frames = positive_int(frames, "frames")

    @abstractmethod
    def _draw(self, n: int, g: torch.Generator, split: str) -> dict[str, torch.Tensor]:
        """Draw the random parameters of n clips on the CPU (labels included)."""

    @abstractmethod
    def _render(self, params: dict[str, torch.Tensor], device: torch.device) -> torch.Tensor:
        """Render (n, C, T, H, W) in [-1, 1] on ``device`` from the drawn parameters."""

    def _captions(self, params: dict[str, torch.Tensor]) -> list[str] | None:
        return None

    def batch(self, n: int, seed: int = 0, device: torch.device | str = "cpu", split: str = "train") -> VideoBatch:
        """Render n clips from ``seed``. Same seed, same clips, on any device."""
        positive_int(n, "n")
        if split not in ("train", "heldout"):
            raise ValueError(f"split must be 'train' or 'heldout', got {split!r}")
        params = self._draw(n, generator_for(seed), split)
        video = self._render(params, torch.device(device))
        labels = {k: v.to(device) for k, v in params.items() if not k.startswith("_")}
        return VideoBatch(video, labels, self._captions(params))

    def heldout(self, n: int, device: torch.device | str = "cpu") -> VideoBatch:
        """The fixed held-out evaluation set (its own seed and, where the data has instances, its own instances)."""
        return self.batch(n, seed=HELDOUT_SEED, device=device, split="heldout")

    def stream(self, batch_size: int, seed: int = 0, device: torch.device | str = "cpu") -> Callable[[int], VideoBatch]:
        """A function step -> batch: the training loop asks for batch ``step``, so a resumed run sees the same data."""
        positive_int(batch_size, "batch_size")

        def batch_at(step: int) -> VideoBatch:
            return self.batch(batch_size, seed=seed * TRAIN_SEED_STRIDE + step, device=device)

        return batch_at

    def __repr__(self) -> str:
        fields = ", ".join(f"{k}={v!r}" for k, v in vars(self).items() if not k.startswith("_"))
        return f"{type(self).__name__}({fields})"


def bounce(start: torch.Tensor, velocity: torch.Tensor, low: float, high: float,
           frames: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Elastic wall bounces: positions and velocities over ``frames`` steps.

    Inputs:
        start, velocity: (..., 2) initial position and per-frame velocity.
        low, high: the walls (the position stays in [low, high]).
    Returns:
        positions, velocities: (..., frames, 2)
    """
    pos, vel = start.clone(), velocity.clone()
    positions, velocities = [], []
    for _ in range(frames):
        positions.append(pos.clone())
        velocities.append(vel.clone())
        pos = pos + vel
        below, above = pos < low, pos > high
        pos = torch.where(below, 2 * low - pos, pos)
        pos = torch.where(above, 2 * high - pos, pos)
        vel = torch.where(below | above, -vel, vel)
    return torch.stack(positions, -2), torch.stack(velocities, -2)


def bucket_stream(buckets: list[tuple[VideoDataset, int, bool]], seed: int = 0, device: torch.device | str = "cpu",
                  ) -> Callable[[int], VideoBatch]:
    """Bucketed batches: step -> a batch of ONE shape, the bucket drawn from a generator seeded by the step.

    Inputs: buckets: (dataset, batch size, as_images) triples; with as_images, each clip gives one random frame
    (a (B, C, 1, H, W) one-frame video: WALT's joint image-video training). Batch sizes are usually chosen so
    that every bucket has about the same number of tokens.
    """
    if not buckets:
        raise ValueError("expected at least one (dataset, batch size, as_images) bucket, got none")

    def batch_at(step: int) -> VideoBatch:
        g = torch.Generator().manual_seed(seed * 1_000_003 + step)
        data, size, as_images = buckets[int(torch.randint(len(buckets), (1,), generator=g))]
        batch = data.batch(size, seed=seed * 7_919 + step, device=device)
        if as_images:
            frame = int(torch.randint(batch.video.shape[2], (1,), generator=g))
            batch = VideoBatch(batch.video[:, :, frame:frame + 1], batch.labels, batch.captions)  # (B, C, 1, H, W)
        return batch

    return batch_at


def foreground(video: torch.Tensor) -> torch.Tensor:
    """Foreground weights (B, T, H, W) in [0, 1]: brightness above the level (grey) or saturation (colour)."""
    check_video(video)
    x = (video.float() + 1) / 2
    if x.shape[1] == 1:
        level = x[:, 0]
    else:
        level = x.amax(1) - x.amin(1)  # saturation: grey backgrounds are not objects
    return ((level - FOREGROUND_LEVEL) / (1 - FOREGROUND_LEVEL)).clamp(min=0)
