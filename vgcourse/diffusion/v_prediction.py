"""The v-parameterisation: a network that predicts v = √ᾱ_t ε − √(1−ᾱ_t) x_0 instead of ε.

Salimans & Ho 2022 ("Progressive distillation", §4) define v; Imagen Video (Ho et al. 2022) trains its video
models this way. With x_t = √ᾱ x_0 + √(1−ᾱ) ε (Ho et al. 2020, eq. (4)) the three targets are linked by

    ε = √ᾱ v + √(1−ᾱ) x_t,        x_0 = √ᾱ x_t − √(1−ᾱ) v.

Why it matters for short runs: an ε-model's estimate of x_0 is (x_t − √(1−ᾱ) ε̂) / √ᾱ, so at high noise (ᾱ → 0)
an error in ε̂ is multiplied by 1/√ᾱ (about 2·10⁴ at the last step of the cosine schedule). Early in training the
sampler's first steps then commit to noise-like "data", and the samples stay noise. A v-model's x_0 estimate has
no such factor: at high noise it is −v̂, a direct guess of the clean clip.

:class:`VPrediction` wraps a v-network so that every sampler of the course, which expects ε, uses it unchanged;
:func:`vgcourse.diffusion.diffusion_loss` trains it on the v-loss ‖v̂ − v‖² (Salimans & Ho 2022, §4).
"""

from __future__ import annotations

import torch
from torch import nn

from vgcourse.diffusion.schedules import NoiseSchedule
from vgcourse.nn.wrappers import unwrap


def v_target(x0: torch.Tensor, noise: torch.Tensor, t: torch.Tensor, schedule: NoiseSchedule) -> torch.Tensor:
    """v = √ᾱ_t ε − √(1−ᾱ_t) x_0 (Salimans & Ho 2022, §4). Inputs: x0, noise (B, ...); t (B,) long. Returns (B, ...)."""
    if noise.shape != x0.shape:
        raise ValueError(f"expected noise of shape {tuple(x0.shape)} like x0, got {tuple(noise.shape)}")
    return (schedule._gather(schedule.sqrt_alphas_cumprod, t, x0, check=False) * noise
            - schedule._gather(schedule.sqrt_one_minus_alphas_cumprod, t, x0, check=False) * x0)


class VPrediction(nn.Module):
    """A v-predicting network seen as an ε-model: ``forward(x_t, t, ...)`` returns ε̂ = √ᾱ_t v̂ + √(1−ᾱ_t) x_t.

    Inputs (forward): x_t (B, C, T, H, W); t (B,) long; any further arguments (a condition) go to ``net``.
    Returns: ε̂ (B, C, T, H, W) float32. ``predict_v`` returns the network's own output v̂.

    The schedule is part of the model (a v-network means nothing without its ᾱ); samplers and the loss check
    that they are given the same one (:func:`check_schedule`).
    """

    def __init__(self, net: nn.Module, schedule: NoiseSchedule):
        super().__init__()
        if not isinstance(schedule, NoiseSchedule):
            raise TypeError(f"expected a NoiseSchedule, got {type(schedule).__name__}")
        self.net = net
        self.schedule = NoiseSchedule(schedule.betas.detach().double().cpu(), name=schedule.name)

    def predict_v(self, x_t: torch.Tensor, t: torch.Tensor, *args, **kwargs) -> torch.Tensor:
        """The network's v̂ of v = √ᾱ_t ε − √(1−ᾱ_t) x_0 (Salimans & Ho 2022, §4): x_t (B, C, T, H, W), t (B,) long
        -> (B, C, T, H, W), as ``net`` returns it (no dtype cast); further arguments go to ``net``."""
        return self.net(x_t, t, *args, **kwargs)

    def forward(self, x_t: torch.Tensor, t: torch.Tensor, *args, output: str = "eps", **kwargs) -> torch.Tensor:
        """ε̂ (``output="eps"``, what samplers call) or the network's v̂ (``output="v"``, what the loss calls: through
        forward, so that a ``torch.compile``d or DDP-wrapped model runs compiled and synchronised)."""
        if output not in ("eps", "v"):
            raise ValueError(f"expected output 'eps' or 'v', got {output!r}")
        v = self.predict_v(x_t, t, *args, **kwargs)
        if output == "v":
            return v
        if not isinstance(v, torch.Tensor) or v.shape != x_t.shape:
            got = tuple(v.shape) if isinstance(v, torch.Tensor) else type(v).__name__
            raise ValueError(f"expected the network to return v of shape {tuple(x_t.shape)} like x_t, got {got}")
        s = self.schedule
        a, b = (s._gather(c, t, x_t, check=False) for c in (s.sqrt_alphas_cumprod, s.sqrt_one_minus_alphas_cumprod))
        return a * v.float() + b * x_t.float()  # ε = √ᾱ v + √(1−ᾱ) x_t

    def extra_repr(self) -> str:
        return f"schedule={self.schedule.name!r}, T={self.schedule.T}"


def check_schedule(model: object, schedule: NoiseSchedule) -> None:
    """Raise if ``model`` is a :class:`VPrediction` built on another schedule than the one it is used with."""
    model = unwrap(model)  # a compiled or DDP-wrapped VPrediction is still one
    if not isinstance(model, VPrediction):
        return
    if model.schedule.key != schedule.key:  # compares stored betas, without touching the device (a hot path)
        raise ValueError(f"this VPrediction model was built on a {model.schedule.name} schedule with T="
                         f"{model.schedule.T}, but is used with a {schedule.name} schedule with T={schedule.T}; "
                         "train and sample with the schedule the model was built on")
