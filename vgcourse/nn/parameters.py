"""Counting a model's parameters (the one counter every family and chapter uses), and waking up the parameters a
model starts at zero, for checks."""

from __future__ import annotations

import torch
from torch import nn


def count_parameters(module: nn.Module, trainable_only: bool = False) -> int:
    """The number of scalar parameters of ``module`` (every one, or with ``trainable_only`` those with
    ``requires_grad``). Shared parameters count once, as ``module.parameters()`` yields them once."""
    return sum(p.numel() for p in module.parameters() if p.requires_grad or not trainable_only)


def randomised(model: nn.Module, seed: int = 0, scale: float = 0.2) -> nn.Module:
    """``model`` with its all-zero parameter tensors (zero-initialised output layers, residual branches, adaLN gates,
    position tables) set to ``scale`` · N(0, 1) from ``seed``, so that every input and every weight matters to the
    output; returned in eval mode. For checks of a written-out piece against the package's: at its zero start a
    network hides the branches a check should see."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            if not p.any():
                p.copy_(torch.randn(p.shape, generator=g) * scale)
    return model.eval()
