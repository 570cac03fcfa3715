"""Learning-rate schedules used across the chapters."""

from __future__ import annotations

import math

import torch


class WarmupCosine:
    """The factor of :func:`warmup_cosine` at a step; ``total`` can move (a run bounded by time sets it late)."""

    def __init__(self, warmup: int, total: int, final: float):
        self.warmup, self.total, self.final = warmup, total, final

    def __call__(self, step: int) -> float:
        warm = min(1.0, (step + 1) / self.warmup)
        done = min(step, self.total) / self.total
        return warm * (self.final + (1 - self.final) * 0.5 * (1 + math.cos(math.pi * done)))


def warmup_cosine(optimizer: torch.optim.Optimizer, warmup: int, total: int,
                  final: float = 1.0) -> torch.optim.lr_scheduler.LambdaLR:
    """Linear warm-up over ``warmup`` steps, then a cosine decay to ``final`` × the peak at step ``total``.

    ``final=1.0`` keeps the peak after the warm-up (no decay). Loshchilov & Hutter 2017 (SGDR, eq. (5)) for the
    cosine; Goyal et al. 2017 for the warm-up. A :class:`~vgcourse.train.Trainer` with a time budget moves
    ``total`` to the step count that fits the budget (:func:`retarget`), so the decay ends when the run does.
    """
    if warmup < 1 or total < 1:
        raise ValueError(f"warmup and total must be positive step counts, got warmup={warmup}, total={total}")
    if not 0.0 <= final <= 1.0:
        raise ValueError(f"final is a fraction of the peak learning rate in [0, 1], got {final}")
    return torch.optim.lr_scheduler.LambdaLR(optimizer, WarmupCosine(warmup, total, final))


def retarget(scheduler: object, total: int) -> bool:
    """Make a :func:`warmup_cosine` schedule end at step ``total``; False (and nothing changed) for any other.

    A decay that has already ended stays ended: moving its end past the current step would raise the learning rate
    back up the cosine (a second time-bounded ``fit()`` would otherwise restart a finished decay). Such a schedule
    keeps its final rate.
    """
    factors = [f for f in getattr(scheduler, "lr_lambdas", []) if isinstance(f, WarmupCosine)]
    step = getattr(scheduler, "last_epoch", 0)
    for f in factors:
        if f.final < 1.0 and step >= f.total:
            continue  # decayed to the end already: stay at the final rate
        f.total = max(1, total)
    return bool(factors)
