"""Counting a model's parameters: the one counter every family and chapter uses."""

from __future__ import annotations

from torch import nn


def count_parameters(module: nn.Module, trainable_only: bool = False) -> int:
    """The number of scalar parameters of ``module`` (every one, or with ``trainable_only`` those with
    ``requires_grad``). Shared parameters count once, as ``module.parameters()`` yields them once."""
    return sum(p.numel() for p in module.parameters() if p.requires_grad or not trainable_only)
