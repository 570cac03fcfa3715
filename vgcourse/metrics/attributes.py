"""Analytic detectors that read a captioned-shapes clip back into (colour, shape, direction).

Conditioning accuracy needs no learned judge: the colour is the palette entry nearest the mean foreground
colour; the shape is told by how much of its bounding box it fills (square 1, circle π/4 ≈ 0.79,
triangle 1/2); the direction is the sign of the dominant axis of the centroid's displacement.
Detectors read one object per clip.
"""

from __future__ import annotations

import torch

from vgcourse.data.shapes import COLOUR_RGB, DIRECTION_VECTORS
from vgcourse.metrics.tracking import foreground
from vgcourse.video import check_video

FILL_SQUARE, FILL_TRIANGLE = 0.9, 0.62  # fill > 0.9: square; < 0.62: triangle; between: circle


def detect_attributes(video: torch.Tensor) -> dict[str, torch.Tensor]:
    """(B, 3, T, H, W) -> ``colour``, ``shape``, ``direction`` (B,) indices and ``visible`` (B,) bool."""
    check_video(video, channels=3)
    x = (video.float() + 1) / 2
    w = foreground(video)  # (B, T, H, W)
    m = w > 0
    mass = m.sum((1, 2, 3)).clamp(min=1)  # (B,)
    mean_rgb = torch.einsum("bcthw,bthw->bc", x, m.float()) / mass[:, None]
    colour = torch.cdist(mean_rgb, COLOUR_RGB.to(x.device)).argmin(-1)
    rows, cols = m.any(-1), m.any(-2)  # (B, T, H), (B, T, W)
    h, wd = rows.shape[-1], cols.shape[-1]
    ar_h = torch.arange(h, device=x.device)
    ar_w = torch.arange(wd, device=x.device)
    height = (torch.where(rows, ar_h, -1).amax(-1) - torch.where(rows, ar_h, h).amin(-1) + 1).clamp(min=0)
    width = (torch.where(cols, ar_w, -1).amax(-1) - torch.where(cols, ar_w, wd).amin(-1) + 1).clamp(min=0)
    area = m.sum((-1, -2)).float()  # (B, T)
    fill = area / (height * width).clamp(min=1)
    has = area > 0
    fill = torch.where(has, fill, torch.nan).nanmedian(-1).values  # (B,)
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


def attribute_accuracy(video: torch.Tensor, labels: dict[str, torch.Tensor]) -> dict[str, float]:
    """Fraction of clips whose detected colour / shape / direction equal the requested ones (first object),
    and ``attribute_accuracy``: all three right."""
    found = detect_attributes(video)
    out, all_ok = {}, torch.ones_like(found["colour"], dtype=torch.bool)
    for key in ("colour", "shape", "direction"):
        want = labels[key].to(found[key].device)
        want = want[:, 0] if want.ndim == 2 else want
        ok = (found[key] == want) & found["visible"]
        out[f"{key}_accuracy"] = float(ok.float().mean())
        all_ok &= ok
    out["attribute_accuracy"] = float(all_ok.float().mean())
    return out
