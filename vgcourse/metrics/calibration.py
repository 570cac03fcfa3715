"""Calibration: score real clips and corrupted real clips, to see that the metrics rank them as a person would.

Rows: ``real`` (a fresh real sample vs the held-out reference), then each corruption of
:mod:`vgcourse.metrics.corruptions` applied to real clips. The tests assert the ordering each metric is meant to
catch (shuffled frames hurt motion and the Fréchet distance but not frame quality, and so on).
"""

from __future__ import annotations

import torch

from vgcourse.data.base import VideoDataset
from vgcourse.metrics.corruptions import CORRUPTIONS
from vgcourse.metrics.suite import Evaluator


def calibration_table(dataset: VideoDataset, n: int = 128, n_real: int = 256, device: torch.device | str = "cpu",
                      seed: int = 123, evaluator: Evaluator | None = None) -> dict[str, dict[str, float]]:
    """{condition: metrics} for real clips and each corruption, all against the held-out reference."""
    evaluator = evaluator or Evaluator(dataset, n_real=n_real, device=device)
    real = dataset.batch(n, seed=seed, device=device).video  # training split, not the reference clips
    g = torch.Generator().manual_seed(seed)
    table = {"real": evaluator(real)}
    for name, corrupt in CORRUPTIONS.items():
        table[name] = evaluator(corrupt(real, g))
    return table
