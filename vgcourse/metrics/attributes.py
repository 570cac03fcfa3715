"""Analytic detectors that read a captioned-shapes clip back into (colour, shape, direction).

Conditioning accuracy needs no learned judge: the colour is the palette entry nearest the mean foreground
colour; the shape is told by how much of its bounding box the object fills (square 1, circle π/4 ≈ 0.79,
triangle 1/2), the object being the largest connected blob of foreground pixels in the frame, so that a stray
pixel away from it does not stretch the box; the direction is the sign of the dominant axis of the centroid's
displacement.
Detectors read one object per clip; :func:`attribute_consistency` reads every frame on its own, for the identity of
an object through a long clip (the captioned-shapes counterpart of the digit probe's identity consistency).
"""

from __future__ import annotations

import torch

from vgcourse.data.base import foreground
from vgcourse.data.shapes import COLOUR_RGB, DIRECTION_VECTORS, SHAPES
from vgcourse.metrics.tracking import largest_component
from vgcourse.video import check_video

FILL_SQUARE, FILL_TRIANGLE = 0.9, 0.62  # fill > 0.9: square; < 0.62: triangle; between: circle


def fill_ratio(video: torch.Tensor) -> torch.Tensor:
    """(B, 3, T, H, W) -> (B, T): the object's area over its bounding box's, per frame (NaN where no object).

    The object is the frame's largest connected blob of foreground pixels
    (:func:`vgcourse.metrics.tracking.largest_component`).
    """
    check_video(video, channels=3)
    return _fill(foreground(video) > 0)


def _fill(m: torch.Tensor) -> torch.Tensor:
    """Foreground masks (B, T, H, W) bool -> (B, T): the largest blob's area over its bounding box's (NaN: none)."""
    m = largest_component(m.flatten(0, 1)).view_as(m)
    area = m.sum((-1, -2)).float()
    box = (m.any(-1).sum(-1) * m.any(-2).sum(-1)).float()  # rows × columns it touches
    return torch.where(area > 0, area / box.clamp(min=1), torch.nan)


def detect_attributes(video: torch.Tensor) -> dict[str, torch.Tensor]:
    """(B, 3, T, H, W) -> ``colour``, ``shape``, ``direction`` (B,) indices and ``visible`` (B,) bool."""
    check_video(video, channels=3)
    x = (video.float() + 1) / 2
    w = foreground(video)  # (B, T, H, W)
    m = w > 0
    mass = m.sum((1, 2, 3)).clamp(min=1)  # (B,)
    mean_rgb = torch.einsum("bcthw,bthw->bc", x, m.float()) / mass[:, None]
    colour = torch.cdist(mean_rgb, COLOUR_RGB.to(x.device)).argmin(-1)
    h, wd = m.shape[-2:]
    has = m.any(-1).any(-1)  # (B, T)
    fill = _fill(m).nanmedian(-1).values  # (B,)
    shape = torch.where(fill > FILL_SQUARE, 0, torch.where(fill < FILL_TRIANGLE, 2, 1))
    ys, xs = torch.arange(h, device=x.device).float(), torch.arange(wd, device=x.device).float()
    wt = w.sum((-1, -2)).clamp(min=1e-6)  # (B, T)
    cy = torch.einsum("bthw,h->bt", w, ys) / wt
    cx = torch.einsum("bthw,w->bt", w, xs) / wt
    first = has.float().argmax(-1)
    last = has.shape[1] - 1 - has.flip(-1).float().argmax(-1)
    idx = torch.arange(x.shape[0], device=x.device)
    move = torch.stack([cy[idx, last] - cy[idx, first], cx[idx, last] - cx[idx, first]], -1)  # (B, 2)
    direction = (move @ DIRECTION_VECTORS.to(x.device).T).argmax(-1)
    return {"colour": colour, "shape": shape, "direction": direction, "visible": has.any(-1)}


def attribute_consistency(video: torch.Tensor) -> torch.Tensor:
    """Identity consistency of captioned shapes: (B, 3, T, H, W) -> (B,), per clip the fraction of frames whose
    detected (colour, shape), each frame read as a one-frame clip, is the clip's most common visible one. A frame
    with no object counts as a change, so an object that fades out loses consistency; a frozen clip scores 1."""
    check_video(video, channels=3)
    b, t = video.shape[0], video.shape[2]
    found = detect_attributes(video.transpose(1, 2).reshape(b * t, video.shape[1], 1, *video.shape[-2:]))
    ident = (found["colour"] * len(SHAPES) + found["shape"]).view(b, t)  # (B, T): one index per (colour, shape)
    visible = found["visible"].view(b, t)
    votes = torch.where(visible, ident, -1)  # invisible frames vote for no identity
    modal = torch.stack([row[row >= 0].mode().values if (row >= 0).any() else row.new_tensor(-1) for row in votes])
    return ((ident == modal[:, None]) & visible).float().mean(1)  # (B,)


def attribute_accuracy(video: torch.Tensor, labels: dict[str, torch.Tensor], by_shape: bool = False,
                       per_clip: bool = False) -> dict[str, float | dict[str, float] | torch.Tensor]:
    """Fraction of clips whose detected colour / shape / direction equal the requested ones (first object),
    and ``attribute_accuracy``: all three right. With ``by_shape``, also ``shape_accuracy_by_shape``: the shape
    accuracy among the clips asked for each shape (shapes no clip asks for left out), which tells a model that
    fails one shape from one that is unsure of all. With ``per_clip``, also ``attribute_correct``: (B,) bool, all
    three right clip by clip (for a standard error over clips when one clip is read several times).

    Inputs: video (B, 3, T, H, W) in [-1, 1]; labels with ``colour``, ``shape``, ``direction`` indices (B,) or
    (B, K) (object 0 used). Returns floats colour_accuracy, shape_accuracy, direction_accuracy, attribute_accuracy."""
    found = detect_attributes(video)
    out, all_ok, wanted, right = {}, torch.ones_like(found["colour"], dtype=torch.bool), {}, {}
    for key in ("colour", "shape", "direction"):
        want = labels[key].to(found[key].device)
        wanted[key] = want = want[:, 0] if want.ndim == 2 else want
        right[key] = (found[key] == want) & found["visible"]
        out[f"{key}_accuracy"] = float(right[key].float().mean())
        all_ok &= right[key]
    out["attribute_accuracy"] = float(all_ok.float().mean())
    if per_clip:
        out["attribute_correct"] = all_ok
    if by_shape:
        asked = wanted["shape"]
        out["shape_accuracy_by_shape"] = {name: float(right["shape"][asked == k].float().mean())
                                          for k, name in enumerate(SHAPES) if (asked == k).any()}
    return out


PAN_ERROR_RATIO = 0.5  # a shift counts only if it explains the background at least twice as well as no shift
PAN_MIN_SPEED = 0.5  # px per frame: slower mean background motion reads as a static camera ("none")


def detect_pan(video: torch.Tensor, max_shift: int = 3) -> torch.Tensor:
    """(B, 3, T, H, W) -> camera pan (B,) as indices into :data:`vgcourse.data.shapes.PANS` (0 = none).

    The background (low-saturation pixels) of each frame is compared with the previous frame shifted by every
    integer (dy, dx) in [-max_shift, max_shift]²; the shift with the least mean squared error on pixels that are
    background in both frames (the border excluded) is the scene's motion, unless it explains the frames less
    than twice as well as no shift (a flat or noisy background). The camera moves the other way: its mean
    velocity over the clip, if at least 0.5 px a frame, names the pan direction nearest to it.
    """
    check_video(video, channels=3)
    if video.shape[2] < 2:
        raise ValueError(f"detect_pan needs at least 2 frames, got (B, C, T, H, W) = {tuple(video.shape)}")
    r = int(max_shift)
    if r < 1 or 2 * r >= min(video.shape[-2:]):
        raise ValueError(f"expected 1 <= max_shift < H/2, got max_shift={max_shift} for {tuple(video.shape)}")
    grey = ((video.float() + 1) / 2).mean(1)  # (B, T, H, W)
    bg = (foreground(video) == 0).float()  # (B, T, H, W)
    prev, nxt, bg_prev, bg_next = grey[:, :-1], grey[:, 1:], bg[:, :-1], bg[:, 1:]  # (B, T-1, H, W) each
    inner = (slice(None), slice(None), slice(r, -r), slice(r, -r))
    shifts = [(dy, dx) for dy in range(-r, r + 1) for dx in range(-r, r + 1)]
    errors = []
    for dy, dx in shifts:  # the previous frame moved by (dy, dx) should be the next frame
        moved = torch.roll(prev, (dy, dx), dims=(-2, -1))
        valid = (torch.roll(bg_prev, (dy, dx), dims=(-2, -1)) * bg_next)[inner]
        sq = ((moved - nxt) ** 2)[inner]
        errors.append((sq * valid).sum((-1, -2)) / valid.sum((-1, -2)).clamp(min=1))  # (B, T-1)
    errors = torch.stack(errors, -1)  # (B, T-1, S)
    best = errors.argmin(-1)  # (B, T-1)
    zero = shifts.index((0, 0))
    best_err = errors.gather(-1, best[..., None])[..., 0]
    moving = best_err < PAN_ERROR_RATIO * errors[..., zero]  # (B, T-1): a real shift, not noise
    table = torch.tensor(shifts, dtype=torch.float32, device=video.device)  # (S, 2) as (dy, dx)
    scene = torch.where(moving[..., None], table[best], 0.0).mean(1)  # (B, 2) mean scene motion per frame
    camera = -scene  # the camera moves against the scene
    direction = (camera @ DIRECTION_VECTORS.to(video.device).T).argmax(-1) + 1  # (B,) in 1..4
    return torch.where(camera.norm(dim=-1) >= PAN_MIN_SPEED, direction, torch.zeros_like(direction))
