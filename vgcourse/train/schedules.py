"""Learning-rate schedules used across the chapters."""

from __future__ import annotations

import math

import torch


def warmup_cosine(optimizer: torch.optim.Optimizer, warmup: int, total: int,
                  final: float = 1.0) -> torch.optim.lr_scheduler.LambdaLR:
    """Linear warm-up over ``warmup`` steps, then a cosine decay to ``final`` × the peak at step ``total``.

    ``final=1.0`` keeps the peak after the warm-up (no decay). Loshchilov & Hutter 2017 (SGDR, eq. (5)) for the
    cosine; Goyal et al. 2017 for the warm-up.
    """
    if warmup < 1 or total < 1:
        raise ValueError(f"warmup and total must be positive step counts, got warmup={warmup}, total={total}")
    if not 0.0 <= final <= 1.0:
        raise ValueError(f"final is a fraction of the peak learning rate in [0, 1], got {final}")

    def factor(step: int) -> float:
        warm = min(1.0, (step + 1) / warmup)
        return warm * (final + (1 - final) * 0.5 * (1 + math.cos(math.pi * min(step, total) / total)))

    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)
