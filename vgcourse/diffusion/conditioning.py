"""Conditioning a video diffusion model on text, a first frame, structure, a motion brush and a camera move.

Gen-2 (Runway 2023) and Gen-1 (Esser et al. 2023) condition one latent video diffusion model in two ways:

- **vectors** that steer every block: a caption embedding (Gen-1 uses CLIP's), here joined by a camera-move
  embedding; :class:`vgcourse.dit.conditional.ConditionalDenoiser` adds their sum to the timestep embedding of its
  U-Net (or feeds it to its DiT's adaLN);
- **frames concatenated with the noisy input** along channels: Gen-1 concatenates the structure of the source
  clip (its depth maps) with the latent; image-to-video models concatenate the given first frame (Stable
  Video Diffusion repeats it over time). Here :func:`condition_channels` stacks the first frame (repeated, with
  a channel marking frame 0), the object masks of a source clip (structure) and a motion brush (a region of
  frame 0 and a direction, as Runway's "motion brush").

Every condition can be missing, per clip (:class:`Conditions` ``given``): a missing caption becomes a learned
null embedding, a missing camera a null camera class, missing frames zeros. Training drops conditions at random
(:func:`drop_conditions`), so that one network learns every combination and the unconditional model that
classifier-free guidance needs (Ho & Salimans 2022).
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields, replace
from typing import Callable

import torch
from einops import repeat

from vgcourse.data.base import VideoBatch, foreground
from vgcourse.data.shapes import DIRECTION_VECTORS, caption, tokenize
from vgcourse.diffusion.clean_context import CleanContext, leading_frames_context
from vgcourse.video import check_video

CONDITIONS = ("caption", "first_frame", "structure", "brush", "camera")
_TENSORS = {"caption": ("caption",), "first_frame": ("first_frame",), "structure": ("structure",),
            "brush": ("region", "direction"), "camera": ("camera",)}


def concat_channels(channels: int) -> int:
    """Channels of :func:`condition_channels` for C-channel videos: first frame (C) + frame-0 mark + structure
    + brush (dy, dx)."""
    return channels + 4


@dataclass
class Conditions:
    """What a batch of clips is conditioned on; any field may be None, and ``given`` says per clip what is used.

    Inputs (B clips of T frames, H×W, C channels):
        caption: (B, L) long tokens over :data:`VOCAB` (:func:`vgcourse.data.tokenize`).
        first_frame: (B, C, H, W) in [-1, 1], the frame to continue (image-to-video).
        structure: (B, 1, T, H, W) in {0, 1}, per-frame object masks of a source clip (Gen-1's structure).
        region, direction: the motion brush, (B, H, W) bool region of frame 0 and (B,) long direction index.
        camera: (B,) long camera move, an index into :data:`PANS` (0 = static).
        given: {condition name: (B,) bool}; a condition whose tensors are set and that has no entry is given
            for every clip; one whose tensors are None is given for none.
    """

    caption: torch.Tensor | None = None
    first_frame: torch.Tensor | None = None
    structure: torch.Tensor | None = None
    region: torch.Tensor | None = None
    direction: torch.Tensor | None = None
    camera: torch.Tensor | None = None
    given: dict[str, torch.Tensor] = field(default_factory=dict)

    def __post_init__(self):
        unknown = set(self.given) - set(CONDITIONS)
        if unknown:
            raise ValueError(f"unknown condition(s) {sorted(unknown)} in given; conditions are {CONDITIONS}")
        sizes = {f.name: getattr(self, f.name).shape[0] for f in fields(self)
                 if isinstance(getattr(self, f.name), torch.Tensor)}
        sizes |= {f"given[{k}]": v.shape[0] for k, v in self.given.items()}
        if len(set(sizes.values())) > 1:
            raise ValueError(f"every condition needs one row per clip; got batch sizes {sizes}")
        for name in CONDITIONS:
            present = [getattr(self, k) is not None for k in _TENSORS[name]]
            if any(present) and not all(present):
                raise ValueError(f"condition {name!r} needs {_TENSORS[name]} together; got only some of them")

    @property
    def batch_size(self) -> int:
        for f in fields(self):
            value = getattr(self, f.name)
            if isinstance(value, torch.Tensor):
                return value.shape[0]
        for value in self.given.values():
            return value.shape[0]
        raise ValueError("a Conditions with no tensors has no batch size")

    @property
    def device(self) -> torch.device:
        for f in fields(self):
            value = getattr(self, f.name)
            if isinstance(value, torch.Tensor):
                return value.device
        return torch.device("cpu")

    def is_given(self, name: str) -> torch.Tensor:
        """(B,) bool: which clips use condition ``name``."""
        if name not in CONDITIONS:
            raise KeyError(f"no condition {name!r}; conditions are {CONDITIONS}")
        b, device = self.batch_size, self.device
        if getattr(self, _TENSORS[name][0]) is None:
            return torch.zeros(b, dtype=torch.bool, device=device)
        if name in self.given:
            return self.given[name].to(device)
        return torch.ones(b, dtype=torch.bool, device=device)

    def only(self, *names: str) -> "Conditions":
        """The same conditions with every one not named marked as not given (their tensors stay)."""
        for n in names:
            if n not in CONDITIONS:
                raise KeyError(f"no condition {n!r}; conditions are {CONDITIONS}")
        given = {n: (self.is_given(n) if n in names else torch.zeros_like(self.is_given(n))) for n in CONDITIONS}
        return replace(self, given=given)

    def to(self, device: torch.device | str) -> "Conditions":
        moved = {f.name: getattr(self, f.name).to(device) for f in fields(self)
                 if isinstance(getattr(self, f.name), torch.Tensor)}
        return replace(self, **moved, given={k: v.to(device) for k, v in self.given.items()})

    def __getitem__(self, index: slice | torch.Tensor) -> "Conditions":
        """Select clips (for sampling in chunks): ``cond[:64]``."""
        picked = {f.name: getattr(self, f.name)[index] for f in fields(self)
                  if isinstance(getattr(self, f.name), torch.Tensor)}
        return replace(self, **picked, given={k: v[index] for k, v in self.given.items()})


# ---- building conditions from clips --------------------------------------------------------------------------
def object_captions(labels: dict[str, torch.Tensor]) -> list[str]:
    """The caption of each clip's first object, without the camera clause: 'a red square moves left'."""
    colour, shape, direction = (labels[k] for k in ("colour", "shape", "direction"))
    first = lambda v: (v[:, 0] if v.ndim == 2 else v).tolist()  # noqa: E731 — one object per clip
    return [caption(c, s, d) for c, s, d in zip(first(colour), first(shape), first(direction))]


def structure_masks(video: torch.Tensor) -> torch.Tensor:
    """Per-frame object masks (B, 1, T, H, W) in {0, 1}: the saturated (foreground) pixels of a coloured clip."""
    check_video(video, "video", channels=3)
    return (foreground(video) > 0).float()[:, None]  # (B, 1, T, H, W)



def brush_map(region: torch.Tensor, direction: torch.Tensor, frames: int) -> torch.Tensor:
    """A motion brush as frames: (dy, dx) of the direction inside the region, 0 outside, the same every frame.

    Inputs: region (B, H, W) bool; direction (B,) long index into :data:`vgcourse.data.DIRECTION_NAMES`.
    Returns: (B, 2, T, H, W) float.
    """
    if region.ndim != 3 or direction.shape != region.shape[:1]:
        raise ValueError(f"expected region (B, H, W) and direction (B,), got {tuple(region.shape)} and "
                         f"{tuple(direction.shape)}")
    vec = DIRECTION_VECTORS.to(region.device)[direction.long()]  # (B, 2) as (dy, dx)
    flow = vec[:, :, None, None] * region[:, None].float()  # (B, 2, H, W)
    return repeat(flow, "b c h w -> b c t h w", t=frames)  # (B, 2, T, H, W)


def conditions_from_batch(batch: VideoBatch) -> Conditions:
    """Every condition of a captioned-shapes batch, read from its clips and labels (all given).

    caption: the first object's caption; first_frame: frame 0; structure: the object masks of every frame;
    brush: the object's mask in frame 0 and its direction; camera: the pan label.
    """
    video = batch.video
    check_video(video, "batch.video", channels=3)
    masks = structure_masks(video)  # (B, 1, T, H, W)
    direction = batch.labels["direction"]
    # the first object's clause of each caption string (no device sync), else built from the labels
    texts = [c.split(" and ")[0] for c in batch.captions] if batch.captions else object_captions(batch.labels)
    return Conditions(caption=tokenize(texts).to(video.device),
                      first_frame=video[:, :, 0], structure=masks, region=masks[:, 0, 0] > 0,
                      direction=(direction[:, 0] if direction.ndim == 2 else direction).long(),
                      camera=batch.labels["pan"].long())


def drop_conditions(cond: Conditions, p_uncond: float = 0.1, p_drop: float | dict[str, float] = 0.5,
                    generator: torch.Generator | None = None) -> Conditions:
    """Multi-task training with classifier-free guidance: forget conditions at random, per clip.

    A fraction ``p_uncond`` of the clips loses every condition (the unconditional model CFG needs, Ho & Salimans
    2022, §3.2); every other clip drops each condition independently with probability ``p_drop`` (one number, or
    one per condition name), so that every combination (caption only, first frame only, structure + caption, ...)
    is trained. ``generator`` must live on the conditions' device.
    """
    probs = p_drop if isinstance(p_drop, dict) else {n: p_drop for n in CONDITIONS}
    if set(probs) != set(CONDITIONS):
        raise ValueError(f"expected a drop probability for each of {CONDITIONS}, got {sorted(probs)}")
    if not (0 <= p_uncond <= 1 and all(0 <= v <= 1 for v in probs.values())):
        raise ValueError(f"expected probabilities in [0, 1], got p_uncond={p_uncond}, p_drop={probs}")
    b, device = cond.batch_size, cond.device
    uncond = torch.rand(b, device=device, generator=generator) < p_uncond  # (B,)
    draws = torch.rand(len(CONDITIONS), b, device=device, generator=generator)  # (5, B)
    given = {n: cond.is_given(n) & (draws[i] >= probs[n]) & ~uncond for i, n in enumerate(CONDITIONS)}
    return replace(cond, given=given)


def condition_channels(cond: Conditions | None, shape: tuple[int, ...],
                       device: torch.device | str | None = None) -> torch.Tensor:
    """The frames concatenated with the noisy video x of ``shape`` (B, C, T, H, W): (B, C + 4, T, H, W).

    Channels: the first frame repeated over time (C; zeros if not given), a mark of the given frame (1 at frame 0
    where a first frame is given, else 0), the structure masks (+1 object, −1 background, 0 if not given), the
    motion brush (dy, dx) inside its region (0 if not given).
    """
    b, c, t, h, w = shape
    device = device if device is not None else (cond.device if cond is not None else "cpu")
    out = torch.zeros(b, concat_channels(c), t, h, w, device=device)
    if cond is None:
        return out
    if cond.batch_size != b:
        raise ValueError(f"conditions for {cond.batch_size} clips cannot condition a batch of {b}")
    if cond.first_frame is not None:
        if tuple(cond.first_frame.shape) != (b, c, h, w):
            raise ValueError(f"expected first_frame of shape (B, C, H, W) = {(b, c, h, w)}, "
                             f"got {tuple(cond.first_frame.shape)}")
        on = cond.is_given("first_frame").float().view(b, 1, 1, 1, 1)  # (B, 1, 1, 1, 1)
        out[:, :c] = repeat(cond.first_frame.float(), "b c h w -> b c t h w", t=t) * on  # Gen-2 / SVD: repeated
        out[:, c, 0] = on[:, 0, 0]  # (B, H, W): "frame 0 is given"
    if cond.structure is not None:
        if tuple(cond.structure.shape) != (b, 1, t, h, w):
            raise ValueError(f"expected structure of shape (B, 1, T, H, W) = {(b, 1, t, h, w)}, "
                             f"got {tuple(cond.structure.shape)}")
        on = cond.is_given("structure").float().view(b, 1, 1, 1)
        out[:, c + 1] = (2 * cond.structure[:, 0].float() - 1) * on  # Gen-1: structure concatenated
    if cond.region is not None:
        if tuple(cond.region.shape) != (b, h, w):
            raise ValueError(f"expected region of shape (B, H, W) = {(b, h, w)}, got {tuple(cond.region.shape)}")
        on = cond.is_given("brush").float().view(b, 1, 1, 1, 1)
        out[:, c + 2:] = brush_map(cond.region, cond.direction, t) * on
    return out


def first_frame_context(cond: Conditions, shape: tuple[int, ...]) -> CleanContext:
    """The given first frames as clean context (:mod:`vgcourse.diffusion.clean_context`) for videos of ``shape``
    (B, C, T, H, W): frame 0 of the clips whose first frame is given. Its ``mask`` (B, 1, T, 1, 1) is what
    ``diffusion_loss(context=)`` takes in training; the whole context is what the samplers take."""
    b, c, _, h, w = shape
    if cond.first_frame is None or tuple(cond.first_frame.shape) != (b, c, h, w):
        got = None if cond.first_frame is None else tuple(cond.first_frame.shape)
        raise ValueError(f"expected a first_frame of shape (B, C, H, W) = {(b, c, h, w)}, got {got}")
    known = torch.zeros(shape, device=cond.device, dtype=cond.first_frame.dtype)
    known[:, :, 0] = cond.first_frame
    return leading_frames_context(known, 1, given=cond.is_given("first_frame"))


def with_uncond(model: Callable[..., torch.Tensor], uncond: Conditions) -> Callable[..., torch.Tensor]:
    """The model whose "unconditional" call ``model(x, t)`` uses ``uncond`` instead of nothing at all.

    Classifier-free guidance on one condition while others stay fixed (e.g. guide the caption with the camera
    given in both terms): ε̃ = ε(x, c_rest) + s (ε(x, c_caption, c_rest) − ε(x, c_rest)).
    """

    def guided(x: torch.Tensor, t: torch.Tensor, cond: Conditions | None = None) -> torch.Tensor:
        if cond is None and uncond.batch_size != x.shape[0]:
            raise ValueError(f"uncond has {uncond.batch_size} clips, the batch has {x.shape[0]}")
        return model(x, t, cond if cond is not None else uncond)

    return guided
