"""DDIM from any state, for any ε-model: editing (SDEdit) and continuation (replacement, or clean context).

- :func:`ddim_from`: DDIM (Song et al. 2021, eq. (12); the package's one loop,
  :func:`vgcourse.diffusion.ddpm.ddim_loop`) from any start, with the *replacement* trick (known frames clamped to
  their noised values at every step, by :func:`replace_known`; Song et al. 2021b, Lugmayr et al. 2022) or with
  frames given clean (:mod:`vgcourse.diffusion.clean_context`);
- :func:`sdedit`: from a part-way noised source (Meng et al. 2022), on the schedule :func:`sdedit_timesteps`;
- :func:`extend`: a clip continued chunk by chunk, each chunk's first frames the last ones generated so far.

The model is any callable ``model(x_t, t, cond) -> eps`` (the samplers' convention, :mod:`vgcourse.diffusion.ddpm`):
a U-Net, a DiT (chapter 12), or a function.
"""

from __future__ import annotations

from typing import Callable

import torch

from vgcourse.diffusion.clean_context import CleanContext, Continuation, leading_frames_context
from vgcourse.diffusion.ddpm import clipped, ddim_loop, ddim_timesteps
from vgcourse.diffusion.schedules import NoiseSchedule
from vgcourse.video import check_video


def sdedit_timesteps(T: int, strength: float, steps: int) -> list[int]:
    """SDEdit's schedule: start at t0 = round(strength·(T−1)) and take ``steps`` evenly spaced steps down to 0.

    strength 1 is sampling from pure noise; strength 0 returns the source untouched (no steps).
    """
    if not 0.0 <= strength <= 1.0 or steps < 1:
        raise ValueError(f"expected strength in [0, 1] and steps ≥ 1, got strength={strength}, steps={steps}")
    t0 = round(strength * (T - 1))
    if t0 == 0:
        return []
    n = min(steps, t0 + 1)
    return torch.linspace(t0, 0, n, dtype=torch.float64).round().long().tolist()


def replace_known(x_t: torch.Tensor, known: torch.Tensor, mask: torch.Tensor, t: int, schedule: NoiseSchedule,
                  noise: torch.Tensor) -> torch.Tensor:
    """The replacement step: known pixels become their forward-noised values at step t, the rest stays.

    x_t ← m ⊙ q(x_t | x_0 = known) + (1 − m) ⊙ x_t, with q(x_t | x_0) = √ᾱ_t x_0 + √(1−ᾱ_t) ε (Ho et al. 2020, eq. (4)).
    Inputs: x_t, known, noise (B, C, T, H, W); mask broadcastable to them, 1 where known.
    """
    tt = torch.full((x_t.shape[0],), t, device=x_t.device, dtype=torch.long)
    noised = schedule.q_sample(known.to(x_t.dtype), tt, noise)  # (B, C, T, H, W)
    return mask * noised + (1 - mask) * x_t


@torch.no_grad()
def ddim_from(model: Callable[..., torch.Tensor], x: torch.Tensor, schedule: NoiseSchedule, timesteps: list[int],
              cond: object | None = None, guidance_scale: float = 1.0, known: torch.Tensor | None = None,
              mask: torch.Tensor | None = None, generator: torch.Generator | None = None,
              clip_x0: bool = True, context: CleanContext | None = None, model_kwargs: dict | None = None,
              denoised_fn: Callable[[torch.Tensor], torch.Tensor] | None = None) -> torch.Tensor:
    """Deterministic DDIM (η = 0; Song et al. 2021, eq. (12)) from the state x at timesteps[0] down to x_0.

    :func:`vgcourse.diffusion.ddpm.ddim_loop` with a ``state_fn``: with ``known`` and ``mask``, the known region is
    replaced by its noised values before every model call (fresh noise from ``generator`` each step) and by the clean
    values at the end (:func:`replace_known`); with ``context``, given frames are written in clean instead, for a
    model trained on clean context (e.g. :class:`vgcourse.dit.generation.MaskedDiT`). Inputs: x (B, C, T, H, W) at
    timesteps[0]; timesteps descending; cond, guidance_scale, model_kwargs as :func:`vgcourse.diffusion.guided_eps`;
    clip_x0 and denoised_fn as :func:`vgcourse.diffusion.ddim_sample`. Returns x_0 (B, C, T, H, W).
    """
    if x.ndim != 5 or not x.is_floating_point():
        raise ValueError(f"expected a noisy state x as a float (B, C, T, H, W), got {tuple(x.shape)} {x.dtype}")
    if (known is None) != (mask is None):
        raise ValueError("replacement needs known and mask together; got only one of them")
    if known is not None and context is not None:
        raise ValueError("give either known frames to replace by their noised values or a clean context, not both")

    def state_fn(x_t: torch.Tensor, t: int) -> torch.Tensor:  # x_t (B, C, T, H, W) at step t; t = -1: the sample
        if known is not None and t >= 0:
            noise = torch.randn(x_t.shape, device=x_t.device, generator=generator)
            x_t = replace_known(x_t, known, mask, t, schedule, noise)
        elif known is not None:
            x_t = mask * known.to(x_t.dtype) + (1 - mask) * x_t
        return context.apply(x_t) if context is not None else x_t

    for _, x in ddim_loop(model, x, schedule, timesteps, 0.0, cond, guidance_scale, model_kwargs,
                          clipped(denoised_fn, clip_x0), state_fn, generator):
        pass
    return x


@torch.no_grad()
def sdedit(model: Callable[..., torch.Tensor], source: torch.Tensor, schedule: NoiseSchedule, strength: float,
           steps: int, cond: object | None = None, guidance_scale: float = 1.0,
           generator: torch.Generator | None = None) -> torch.Tensor:
    """SDEdit (Meng et al. 2022): noise ``source`` to t0 = round(strength·(T−1)) with q(x_t0 | x_0), then denoise
    under ``cond`` with deterministic DDIM (:func:`ddim_from`) from t0 in ``steps`` steps (:func:`sdedit_timesteps`).
    Low strength keeps the source's structure; high strength follows the new condition.

    Inputs: source (B, C, T, H, W) in [-1, 1]. Returns the edit (B, C, T, H, W) (the source itself if t0 = 0)."""
    check_video(source, "source")
    ts = sdedit_timesteps(schedule.T, strength, steps)
    if not ts:
        return source.clone()
    noise = torch.randn(source.shape, device=source.device, generator=generator)
    t0 = torch.full((source.shape[0],), ts[0], device=source.device, dtype=torch.long)
    x = schedule.q_sample(source.float(), t0, noise)  # Ho et al. 2020, eq. (4)
    return ddim_from(model, x, schedule, ts, cond=cond, guidance_scale=guidance_scale, generator=generator)


@torch.no_grad()
def extend(model: Callable[..., torch.Tensor], clip: torch.Tensor, schedule: NoiseSchedule, total_frames: int,
           context: int, steps: int, cond: object | None = None, guidance_scale: float = 1.0,
           generator: torch.Generator | None = None, clean_context: bool = False) -> tuple[torch.Tensor, list[int]]:
    """Continue ``clip`` (B, C, T, H, W) chunk by chunk until it has ``total_frames`` frames.

    Each chunk is a T-frame window whose first ``context`` frames are the last frames generated so far; its
    T − context new frames are appended. The context is kept by replacement (its noised values, any model), or with
    ``clean_context`` given clean, with the model's condition a :class:`Continuation` of ``cond`` and the frame mask
    (e.g. a :class:`vgcourse.dit.generation.MaskedDiT` trained with :func:`vgcourse.dit.generation.random_context`,
    ``cond`` None; or a :class:`vgcourse.dit.generation.TextDiT` with a mask channel, guided by the caption alone).
    Returns the long clip (B, C, total_frames, H, W) and the seams: the indices of the first new frame of each
    chunk.
    """
    check_video(clip, "clip")
    b, c, t, h, w = clip.shape
    if not 0 < context < t:
        raise ValueError(f"expected 0 < context < T={t} frames of the window, got context={context}")
    if cond is None and guidance_scale != 1.0:
        raise ValueError(f"guidance_scale={guidance_scale} needs a cond to guide towards; got cond=None")
    ts = ddim_timesteps(schedule.T, steps).tolist()
    out, seams = clip.float(), []
    while out.shape[2] < total_frames:
        known = torch.zeros(b, c, t, h, w, device=clip.device)
        known[:, :, :context] = out[:, :, -context:]
        kept = leading_frames_context(known, context)  # mask (B, 1, T, 1, 1): the first `context` frames
        x = torch.randn(known.shape, device=clip.device, generator=generator)  # x_T
        if clean_context:
            given = Continuation(cond, kept.mask)  # the frames; the caption too, if any
            chunk = ddim_from(model, x, schedule, ts, cond=given, guidance_scale=guidance_scale, generator=generator,
                              context=kept)
        else:
            chunk = ddim_from(model, x, schedule, ts, cond, guidance_scale, known, kept.mask, generator)
        seams.append(out.shape[2])
        out = torch.cat([out, chunk[:, :, context:]], dim=2)  # (B, C, T_so_far + T − context, H, W)
    return out[:, :, :total_frames], [s for s in seams if s < total_frames]
