"""Training: one loop with a pluggable step (saving and resuming through :mod:`vgcourse.checkpoint`), EMA, FLOPs and
MFU."""

from vgcourse.train.ema import EMA
from vgcourse.train.flops import count_flops, mfu, peak_flops
from vgcourse.train.loop import NonFiniteLossError, TrainConfig, Trainer, TrainSummary
from vgcourse.train.schedules import warmup_cosine

__all__ = ["Trainer", "TrainConfig", "TrainSummary", "NonFiniteLossError", "EMA", "count_flops", "mfu", "peak_flops",
           "warmup_cosine"]
