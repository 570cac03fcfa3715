"""Training: one loop with a pluggable step, EMA, checkpoints (and shipped weights), FLOPs and MFU; AdamW with
weight-decay groups and the trainer built around it (``make_trainer``)."""

from vgcourse.train.checkpoint import CheckpointError, load_checkpoint, load_model_state, load_shipped, save_checkpoint
from vgcourse.train.ema import EMA
from vgcourse.train.flops import count_flops, mfu, peak_flops
from vgcourse.train.loop import NonFiniteLossError, TrainConfig, Trainer, TrainSummary
from vgcourse.train.optim import configure_adamw, make_trainer, weight_decay_groups
from vgcourse.train.schedules import warmup_cosine

__all__ = ["Trainer", "TrainConfig", "TrainSummary", "NonFiniteLossError", "EMA", "save_checkpoint",
           "load_checkpoint", "load_shipped", "load_model_state", "CheckpointError", "count_flops", "mfu", "peak_flops",
           "warmup_cosine", "weight_decay_groups", "configure_adamw", "make_trainer"]
