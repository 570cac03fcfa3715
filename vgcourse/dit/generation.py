"""Generation with a video DiT beyond one fixed clip: text, many shapes, extension and editing.

- :class:`TextDiT`: a DiT steered through adaLN by a pooled caption embedding (plus the timestep), with caption
  dropout so that one network is also the unconditional model classifier-free guidance needs.
- :class:`CroppedDigits` and :func:`bucket_stream`: training on many shapes (Sora's "native" durations, sizes and
  aspect ratios) by bucketing: every batch has one shape, drawn per step; an image is a one-frame video
  (WALT's joint image-video training).
- :func:`ddim_from`: DDIM (Song et al. 2021, eq. (12); the package's one loop,
  :func:`vgcourse.diffusion.ddpm.ddim_loop`) from any start, with the *replacement* trick (known frames
  clamped to their noised values at every step; Song et al. 2021b, Lugmayr et al. 2022) that :func:`extend`
  uses to continue a clip chunk by chunk, and that :func:`sdedit` uses from a part-way noised source (Meng et
  al. 2022).
- :class:`MaskedDiT` and :func:`random_context`: a DiT trained to *continue* given frames (Open-Sora 1.1's masked
  DiT): the given frames enter x_t clean, a mask channel says which they are, and the loss skips them
  (:mod:`vgcourse.diffusion.clean_context`); :func:`extend` with ``clean_context=True`` continues with it.
  A :class:`TextDiT` with ``cond_channels=1`` does the same under a caption: its condition is a
  :class:`Continuation` (caption tokens and frame mask), whose unconditional half keeps the frames.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import torch
from torch import nn

from vgcourse.data.base import VideoBatch, bounce
from vgcourse.data.digits import MovingDigits, digit_split, load_digit_images, render_sprites
from vgcourse.diffusion.clean_context import CleanContext, check_frame_mask, leading_frames_context
from vgcourse.diffusion.conditioning import CaptionEncoder
from vgcourse.diffusion.ddpm import clipped, ddim_loop, ddim_timesteps
from vgcourse.diffusion.schedules import NoiseSchedule
from vgcourse.dit.model import DiT, DiTConfig
from vgcourse.video import check_video


# ---- text conditioning through adaLN ------------------------------------------------------------------------
class TextDiT(nn.Module):
    """A DiT whose adaLN conditioning is the timestep embedding plus a projected, pooled caption embedding.

    Inputs (forward): x (B, C, T, H, W); t (B,) long; cond: caption tokens (B, L) long, None (the learned null
    caption, the unconditional model), or, for a model built with ``config.cond_channels == 1``, a
    :class:`Continuation` (tokens or None, and a frame mask (B, 1, T, 1, 1) that enters as an input channel, as
    in :class:`MaskedDiT`). Captions are replaced by the null one with probability ``caption_dropout`` in training
    (Ho & Salimans 2022, §3.2); the frame mask is never dropped. Returns eps (B, C, T, H, W).
    """

    def __init__(self, config: DiTConfig, text_dim: int = 128, text_layers: int = 1, caption_dropout: float = 0.1):
        super().__init__()
        if config.num_classes != 0:
            raise ValueError(f"TextDiT conditions on captions, not labels: expected num_classes=0, "
                             f"got {config.num_classes}")
        if config.cond_channels not in (0, 1):
            raise ValueError(f"a TextDiT takes no input channel or one frame mask: expected cond_channels 0 or 1, "
                             f"got {config.cond_channels}")
        self.dit, self.caption_dropout = DiT(config), caption_dropout
        self.config = config
        self.text = CaptionEncoder(text_dim, text_layers)
        self.text_proj = nn.Linear(text_dim, config.hidden_size)
        self.null_caption = nn.Parameter(torch.randn(text_dim) * 0.02)  # learned "no caption"

    def context(self, tokens: torch.Tensor | None, batch: int, device: torch.device) -> torch.Tensor:
        """The caption vector (B, hidden_size): projected caption embedding, the null one where dropped."""
        null = self.null_caption.expand(batch, -1)  # (B, text_dim)
        if tokens is None:
            return self.text_proj(null)  # (B, D)
        if tokens.shape[0] != batch:
            raise ValueError(f"expected caption tokens (B={batch}, L), got {tuple(tokens.shape)}")
        text = self.text(tokens.to(device))  # (B, text_dim)
        if self.training and self.caption_dropout > 0:
            drop = torch.rand(batch, device=device) < self.caption_dropout  # (B,)
            text = torch.where(drop[:, None], null, text)
        return self.text_proj(text)  # (B, D)

    def forward(self, x: torch.Tensor, t: torch.Tensor,
                cond: torch.Tensor | Continuation | None = None) -> torch.Tensor:
        tokens, mask = (cond.tokens, cond.mask) if isinstance(cond, Continuation) else (cond, None)
        if mask is not None and self.config.cond_channels != 1:
            raise ValueError("this TextDiT has no frame-mask channel (cond_channels=0): build it with "
                             "cond_channels=1 to continue given frames")
        concat = None if mask is None else mask_channel(mask, x)  # None: the DiT fills the channel with zeros
        return self.dit(x, t, concat=concat, context=self.context(tokens, x.shape[0], x.device))


@dataclass(frozen=True)
class Continuation:
    """The condition of a caption-and-frames model (a :class:`TextDiT` with a mask channel): caption tokens (B, L)
    or None, and the frame mask (B, 1, T, 1, 1), 1 on frames given clean. Classifier-free guidance drops the
    caption and keeps the frames (:meth:`unconditional`, which :func:`vgcourse.diffusion.guided_eps` calls):
    ε̃ = ε(x, frames) + s (ε(x, caption, frames) − ε(x, frames))."""

    tokens: torch.Tensor | None
    mask: torch.Tensor

    def unconditional(self) -> Continuation:
        return Continuation(None, self.mask)

    def __getitem__(self, index) -> Continuation:
        return Continuation(None if self.tokens is None else self.tokens[index], self.mask[index])


# ---- continuation: a DiT that sees which frames are given clean ------------------------------------------------
def mask_channel(mask: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """The frame mask (B, 1, T, 1, 1) as an input channel beside x (B, C, T, H, W): (B, 1, T, H, W)."""
    check_frame_mask(mask, tuple(x.shape))
    b, _, frames, h, w = x.shape
    return mask.to(x.dtype).expand(b, 1, frames, h, w)


class MaskedDiT(nn.Module):
    """A DiT with one extra input channel, the frame mask: 1 on frames given clean (context), 0 on frames to draw.

    Open-Sora 1.1 ("Masked DiT as Image/Video-to-Video Model") gives such frames timestep 0; here the mask rides
    along as an input channel (the DiT's ``cond_channels``), as chapter 10's U-Net marks its given first frame.
    Inputs (forward): x (B, C, T, H, W); t (B,); mask (B, 1, T, 1, 1), a :class:`Continuation` without a caption
    (what :func:`extend` passes), or None (no frame given: unconditional generation). Returns the DiT's output for
    the C video channels.
    """

    def __init__(self, config: DiTConfig):
        super().__init__()
        if config.cond_channels != 1:
            raise ValueError(f"a MaskedDiT takes one mask channel: expected cond_channels=1, "
                             f"got {config.cond_channels}")
        self.dit, self.config = DiT(config), config

    def forward(self, x: torch.Tensor, t: torch.Tensor,
                mask: torch.Tensor | Continuation | None = None) -> torch.Tensor:
        if isinstance(mask, Continuation):
            if mask.tokens is not None:
                raise ValueError("a MaskedDiT reads no caption: use a TextDiT with cond_channels=1")
            mask = mask.mask
        if mask is None:
            return self.dit(x, t)  # the mask channel is zeros: nothing given
        return self.dit(x, t, concat=mask_channel(mask, x))  # (B, C, T, H, W)


def random_context(batch: int, frames: int, max_context: int, p_context: float = 0.5,
                   generator: torch.Generator | None = None, device: torch.device | str = "cpu") -> torch.Tensor:
    """Training masks for continuation: per clip, with probability ``p_context`` its first k frames are given,
    k uniform in 1..max_context; else none. Returns (B, 1, T, 1, 1) in {0, 1}, for ``diffusion_loss(context=)``
    and as the :class:`MaskedDiT`'s mask. ``generator`` lives on the CPU."""
    if not 0 < max_context < frames or not 0.0 <= p_context <= 1.0:
        raise ValueError(f"expected 0 < max_context < frames={frames} and p_context in [0, 1], "
                         f"got max_context={max_context}, p_context={p_context}")
    given = torch.rand(batch, generator=generator) < p_context  # (B,)
    k = torch.randint(1, max_context + 1, (batch,), generator=generator) * given  # (B,): 0 = none given
    mask = (torch.arange(frames)[None] < k[:, None]).float()  # (B, T)
    return mask.view(batch, 1, frames, 1, 1).to(device)


# ---- many shapes: cropped canvases and buckets ----------------------------------------------------------------
class CroppedDigits(MovingDigits):
    """Moving digits on an H×W canvas (any aspect ratio), bouncing off its four walls; digits and speeds sized
    as on a min(H, W) square canvas. (B, 1, T, H, W) in [-1, 1]; H = W gives :class:`MovingDigits`' look."""

    def __init__(self, height: int = 32, width: int = 48, frames: int = 16, digits: int = 2):
        side = min(height, width)
        super().__init__(size=max(height, width), frames=frames, digits=digits,
                         digit_size=max(4, round(side * 28 / 64)),
                         speed=(2.0 * side / max(height, width), 4.0 * side / max(height, width)))
        self.height, self.width = height, width

    def _draw(self, n: int, g: torch.Generator, split: str) -> dict[str, torch.Tensor]:
        pool = digit_split(split)
        instance = pool[torch.randint(len(pool), (n, self.digits), generator=g)]  # (n, K)
        room = torch.tensor([self.height - self.digit_size, self.width - self.digit_size], dtype=torch.float32)
        start = torch.rand(n, self.digits, 2, generator=g) * room
        angle = torch.rand(n, self.digits, generator=g) * 2 * math.pi
        speed = self.speed[0] + torch.rand(n, self.digits, generator=g) * (self.speed[1] - self.speed[0])
        velocity = torch.stack([torch.sin(angle), torch.cos(angle)], -1) * speed[..., None]
        axes = [bounce(start[..., a:a + 1], velocity[..., a:a + 1], 0.0, float(room[a]), self.frames) for a in (0, 1)]
        pos = torch.cat([axes[0][0], axes[1][0]], -1).transpose(1, 2)  # (n, T, K, 2)
        vel = torch.cat([axes[0][1], axes[1][1]], -1).transpose(1, 2)  # (n, T, K, 2)
        return {"classes": load_digit_images()[1][instance], "positions": pos,
                "centers": pos + self.digit_size / 2, "velocities": vel, "_instance": instance}

    def _render(self, params: dict[str, torch.Tensor], device: torch.device) -> torch.Tensor:
        sprites = self.sprites(device)[params["_instance"].to(device)]  # (B, K, d, d)
        canvas = render_sprites(sprites, params["positions"].to(device), self.size)  # (B, 1, T, S, S)
        return canvas[..., :self.height, :self.width].contiguous()  # (B, 1, T, H, W)


def bucket_stream(buckets: list[tuple[MovingDigits, int, bool]], seed: int = 0, device: torch.device | str = "cpu",
                  ) -> Callable[[int], VideoBatch]:
    """Bucketed batches: step -> a batch of ONE shape, the bucket drawn from a generator seeded by the step.

    Inputs: buckets: (dataset, batch size, as_images) triples; with as_images, each clip gives one random frame
    (a (B, C, 1, H, W) one-frame video: WALT's joint image-video training). Batch sizes are usually chosen so
    that every bucket has about the same number of tokens.
    """
    if not buckets:
        raise ValueError("expected at least one (dataset, batch size, as_images) bucket, got none")

    def batch_at(step: int) -> VideoBatch:
        g = torch.Generator().manual_seed(seed * 1_000_003 + step)
        data, size, as_images = buckets[int(torch.randint(len(buckets), (1,), generator=g))]
        batch = data.batch(size, seed=seed * 7_919 + step, device=device)
        if as_images:
            frame = int(torch.randint(batch.video.shape[2], (1,), generator=g))
            batch = VideoBatch(batch.video[:, :, frame:frame + 1], batch.labels, batch.captions)  # (B, C, 1, H, W)
        return batch

    return batch_at


# ---- DDIM from anywhere, with known frames replaced -----------------------------------------------------------
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
    model trained on clean context (:class:`MaskedDiT`). Inputs: x (B, C, T, H, W) at timesteps[0]; timesteps
    descending; cond, guidance_scale, model_kwargs as :func:`vgcourse.diffusion.ddpm.guided_eps`; clip_x0 and
    denoised_fn as :func:`vgcourse.diffusion.ddim_sample`. Returns x_0 (B, C, T, H, W).
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
    """SDEdit (Meng et al. 2022): noise ``source`` to t0 = strength·(T−1) with q(x_t0 | x_0), then denoise under
    ``cond``. Low strength keeps the source's structure; high strength follows the new condition."""
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
    (a :class:`MaskedDiT` trained with :func:`random_context`, ``cond`` None; or a :class:`TextDiT` with a mask
    channel, guided by the caption alone). Returns the long clip (B, C, total_frames, H, W) and the seams: the
    indices of the first new frame of each chunk.
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


def seam_jumps(video: torch.Tensor, seams: list[int]) -> dict[str, float]:
    """Motion consistency at chunk boundaries: the mean absolute change between consecutive frames across a seam
    (frame s−1 to s) against that within chunks. A ratio near 1: seams look like any other step of motion."""
    check_video(video, "video")
    step = (video[:, :, 1:] - video[:, :, :-1]).abs().float().mean(dim=(0, 1, 3, 4))  # (T−1,): change into frame i+1
    at = torch.zeros_like(step, dtype=torch.bool)
    for s in seams:
        if not 0 < s < video.shape[2]:
            raise ValueError(f"expected seams in (0, T={video.shape[2]}), got {s}")
        at[s - 1] = True
    seam, other = float(step[at].mean()), float(step[~at].mean())
    return {"seam_change": seam, "within_change": other, "seam_ratio": seam / max(other, 1e-8)}
