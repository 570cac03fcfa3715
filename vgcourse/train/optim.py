"""AdamW with weight-decay groups, and the trainer that the diffusion and DiT chapters build around it.

Weight decay (Loshchilov & Hutter 2019, decoupled: θ ← θ − lr·λ·θ besides the Adam step) pulls weights toward
zero. It belongs on the matrices of the matrix products (linear layers, convolution kernels), whose scale the
next normalisation undoes anyway, and not on the parameters that set a scale or an offset or look something up:
biases, the gains and shifts of the norms, embedding tables (tokens, labels, positions, null conditions). This is
minGPT's ``configure_optimizers`` and nanoGPT's first one (a whitelist of ``nn.Linear`` weights, a blacklist of
norms and ``nn.Embedding``; a weight tied between an embedding and a head is not decayed). nanoGPT later decays
every tensor of two or more dimensions, embeddings included; :meth:`vgcourse.autoregressive.GPT.configure_optimizers`
keeps that rule.

Our models also hold free ``nn.Parameter`` tensors outside any linear or convolution layer (position tables,
relative-position biases, null captions): they are embeddings in all but name, so the rule here is the whitelist
alone. Decayed: the ``weight`` of every ``nn.Linear`` and every convolution (``nn.Conv1d/2d/3d`` and their
transposes). Not decayed: every other trainable parameter.
"""

from __future__ import annotations

from typing import Any, Callable

import torch
from torch import nn

from vgcourse.train.loop import LossFn, TrainConfig, Trainer
from vgcourse.train.schedules import warmup_cosine

DECAYED_MODULES = (nn.Linear, nn.modules.conv._ConvNd)  # their ``weight`` is a matrix of a matrix product


def weight_decay_groups(model: nn.Module, weight_decay: float) -> list[dict[str, Any]]:
    """Two AdamW parameter groups: linear and convolution weights with ``weight_decay``, the rest with none.

    Returns ``[decay, no_decay]``, each a dict with ``params`` (tensors), ``param_names`` (their names in
    ``model.named_parameters()``, which the optimizer keeps in its state dict) and ``weight_decay``. Every trainable
    parameter is in exactly one group; frozen ones (``requires_grad=False``) are in neither. A parameter shared
    with an ``nn.Embedding`` (a tied output head) is not decayed.
    """
    if weight_decay < 0:
        raise ValueError(f"expected weight_decay >= 0, got {weight_decay}")
    embedded = {id(m.weight) for m in model.modules() if isinstance(m, nn.Embedding)}
    decayed = {id(m.weight) for m in model.modules()
               if isinstance(m, DECAYED_MODULES) and id(m.weight) not in embedded}
    groups = [{"params": [], "param_names": [], "weight_decay": float(weight_decay)},
              {"params": [], "param_names": [], "weight_decay": 0.0}]
    for name, p in model.named_parameters():  # shared (tied) tensors appear once
        if p.requires_grad:
            group = groups[0] if id(p) in decayed else groups[1]
            group["params"].append(p)
            group["param_names"].append(name)
    if not groups[0]["params"] and not groups[1]["params"]:
        raise ValueError(f"{type(model).__name__} has no trainable parameters to optimise")
    return groups


def configure_adamw(model: nn.Module, lr: float, weight_decay: float = 0.0,
                    betas: tuple[float, float] = (0.9, 0.999)) -> torch.optim.AdamW:
    """AdamW on :func:`weight_decay_groups` (decay on linear and convolution weights only); the fused kernel when
    the model is on CUDA (one kernel for all parameters instead of a loop of small ones)."""
    groups = weight_decay_groups(model, weight_decay)
    fused = (groups[0]["params"] or groups[1]["params"])[0].device.type == "cuda"
    return torch.optim.AdamW(groups, lr=lr, betas=betas, fused=fused)


def make_trainer(model: nn.Module, batch_fn: Callable[[int], Any], steps: int, loss_fn: LossFn, *, lr: float,
                 warmup: int = 1, decay_to: float | None = None, weight_decay: float = 0.0,
                 betas: tuple[float, float] = (0.9, 0.999), ema_decay: float | None = None,
                 minutes: float | None = None, compile: bool = False, desc: str = "train",
                 model_config: dict | None = None, **loop_options: Any) -> Trainer:
    """A :class:`Trainer` with :func:`configure_adamw` and a learning-rate schedule, as the chapters use it.

    The schedule is :func:`warmup_cosine`: a linear warm-up over ``warmup`` steps (1: none), then the peak ``lr``
    kept (``decay_to=None``) or decayed on a cosine to ``decay_to`` × lr at step ``steps``. ``minutes`` bounds each
    ``fit()`` by time (``steps`` is then a cap, and the decay ends where the run does); ``ema_decay`` keeps an EMA of
    the weights for sampling (``trainer.ema.model``). ``loss_fn(model, batch)`` and ``batch_fn(step)`` are the
    loop's; ``compile``, ``desc`` and any other ``loop_options`` (``log_every``, ``grad_clip``, ...) go to
    :class:`TrainConfig`, ``model_config`` to the checkpoints.
    """
    opt = configure_adamw(model, lr, weight_decay, betas)
    schedule = warmup_cosine(opt, warmup, steps, final=1.0 if decay_to is None else decay_to)
    config = TrainConfig(steps=steps, ema_decay=ema_decay, max_minutes=minutes, compile=compile, desc=desc,
                         **loop_options)
    return Trainer(model, opt, batch_fn, config, loss_fn=loss_fn, schedulers={"main": schedule},
                   model_config=model_config)
