"""Training: one loop with a pluggable step (saving and resuming through :mod:`vgcourse.checkpoint`), EMA, FLOPs and
MFU."""

from vgcourse.train.ema import EMA
from vgcourse.train.flops import count_flops, mfu, peak_flops
from vgcourse.train.loop import NonFiniteLossError, TrainConfig, Trainer, TrainSummary, fit_to_flops
from vgcourse.train.optim import configure_adamw, make_trainer, weight_decay_groups
from vgcourse.train.schedules import warmup_cosine

__all__ = ["Trainer", "TrainConfig", "TrainSummary", "NonFiniteLossError", "EMA", "count_flops", "mfu", "peak_flops",
           "warmup_cosine", "weight_decay_groups", "configure_adamw", "make_trainer", "fit_to_flops"]
