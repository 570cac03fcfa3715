"""One way to set up a GAN's :class:`~vgcourse.train.Trainer`, shared by the GAN chapters.

A GAN's networks live in one ``nn.ModuleDict``: the generator side under ``"G"`` (and an encoder ``"E"`` where a
VAE-GAN has one), the discriminators under names that start with ``"D"`` (``"D"``, ``"D_I"`` and ``"D_V"``,
``"D_S"`` and ``"D_T"``). Each side gets its own Adam, so that the step function can call
``trainer.optimize(loss, "disc")`` and ``trainer.optimize(loss, "gen")`` and each optimizer moves only its own
networks. Two learning rates (the two time-scale update rule of Heusel et al. 2017, "TTUR") are the usual choice.
"""

from __future__ import annotations

from typing import Any, Callable

import torch
from torch import nn

from vgcourse.train import TrainConfig, Trainer

GENERATOR_SIDE = ("G", "E")


def gan_optimizers(model: nn.ModuleDict, lr_g: float, lr_d: float,
                   betas: tuple[float, float] = (0.0, 0.99)) -> dict[str, torch.optim.Optimizer]:
    """``{"gen": Adam over G (and E), "disc": Adam over every D*}``; no "disc" where the model has no discriminator.

    Raises ``ValueError`` when the model has no ``"G"`` or holds a network that is on neither side.
    """
    if "G" not in model:
        raise ValueError(f"a GAN's ModuleDict needs its generator under 'G'; got {list(model)}")
    other = [name for name in model if name not in GENERATOR_SIDE and not name.startswith("D")]
    if other:
        raise ValueError(f"networks {other} are on neither side: name the generator side {GENERATOR_SIDE} and "
                         "discriminators 'D...'")
    gen = [p for name in GENERATOR_SIDE if name in model for p in model[name].parameters()]
    disc = [p for name, net in model.items() if name.startswith("D") for p in net.parameters()]
    optimizers = {"gen": torch.optim.Adam(gen, lr_g, betas=betas)}
    if disc:
        optimizers["disc"] = torch.optim.Adam(disc, lr_d, betas=betas)
    return optimizers


def make_gan_trainer(model: nn.ModuleDict, step_fn: Callable[[Trainer, Any], dict], steps: int,
                     batch_fn: Callable[[int], Any], *, lr_g: float, lr_d: float,
                     betas: tuple[float, float] = (0.0, 0.99), ema: bool = True, amp: bool | None = False,
                     **config: Any) -> Trainer:
    """A :class:`Trainer` for a GAN: :func:`gan_optimizers`, no gradient clipping, an EMA of ``model["G"]`` for
    sampling (``trainer.ema.model``; set its decay with ``ema_decay=``) unless ``ema=False``.

    ``amp``: False keeps fp32 (the default: R1's double backward and small GANs are happier in full precision),
    None uses bf16 autocast on CUDA. Other keywords (``max_minutes``, ``compile``, ``log_every``, ``desc``, ...) go
    to :class:`TrainConfig`.
    """
    return Trainer(model, gan_optimizers(model, lr_g, lr_d, betas), batch_fn,
                   TrainConfig(steps=steps, grad_clip=None, amp=amp, **config), step_fn=step_fn,
                   ema_of=model["G"] if ema else None)
