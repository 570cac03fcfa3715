"""The module inside the wrappers that training adds: DistributedDataParallel and ``torch.compile``."""

from __future__ import annotations

from torch import nn
from torch.nn.parallel import DistributedDataParallel as DDP


def unwrap(model: nn.Module) -> nn.Module:
    """The bare model inside DDP (and inside ``torch.compile``), for type checks, EMA, sampling and saving."""
    while True:
        if isinstance(model, DDP):
            model = model.module
        elif hasattr(model, "_orig_mod"):  # torch.compile's OptimizedModule
            model = model._orig_mod
        else:
            return model
