"""Loader for the standard Moving MNIST file (``mnist_test_seq.npy``: uint8 of shape (20, N, 64, 64)).

The course never downloads it; learners who have the file can evaluate on it with the course's metrics.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from einops import rearrange


def load_moving_mnist(path: str | Path, limit: int | None = None) -> torch.Tensor:
    """Read the standard array (T, N, H, W) uint8 -> videos (N, 1, T, H, W) float in [-1, 1]."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no Moving MNIST file at {path}")
    array = np.load(path, mmap_mode="r")
    if array.ndim != 4:
        raise ValueError(f"expected the Moving MNIST layout (T, N, H, W), got an array of shape {array.shape}")
    if array.dtype != np.uint8:
        raise TypeError(f"expected uint8 frames in the Moving MNIST file, got {array.dtype}")
    if limit is not None:
        array = array[:, :limit]
    video = torch.from_numpy(np.array(array)).float() / 127.5 - 1  # (T, N, H, W), copied out of the memory map
    return rearrange(video, "t n h w -> n 1 t h w")
