"""Motion read from pixels: centroid tracking, physical plausibility, object counts, jumps at the seams of a clip
extended chunk by chunk.

No learned network: a tracker a learner can read. Each frame's foreground pixels (:func:`vgcourse.data.foreground`)
are clustered into K centroids by weighted k-means (Lloyd's algorithm), each frame starting from the previous frame's
centroids so that identities carry over. From the tracks (B, T, K, 2) we read speed, and whether each step is physically
plausible: a centroid keeps its velocity (|Δv| small) or reflects off a wall (v flips sign along one axis).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from einops import rearrange

from vgcourse.data.base import foreground
from vgcourse.video import check_video

TRACK_SIZE = 32  # tracking and counting run at most at 32×32 (area-averaged), coordinates scaled back


def _downsampled(w: torch.Tensor) -> tuple[torch.Tensor, float]:
    """Foreground weights (B, T, H, W) reduced to at most TRACK_SIZE pixels a side, and the scale factor."""
    h = w.shape[-1]
    if h <= TRACK_SIZE:
        return w, 1.0
    b = w.shape[0]
    small = F.interpolate(rearrange(w, "b t h w -> (b t) 1 h w"), size=(TRACK_SIZE, TRACK_SIZE), mode="area")
    return rearrange(small, "(b t) 1 h w -> b t h w", b=b), h / TRACK_SIZE


def _lloyd(coords: torch.Tensor, w: torch.Tensor, centers: torch.Tensor, iters: int) -> torch.Tensor:
    """Weighted k-means. coords (P, 2), w (N, P), centers (N, K, 2) -> centers (N, K, 2)."""
    for _ in range(iters):
        d = torch.cdist(centers, coords[None].expand(centers.shape[0], -1, -1))  # (N, K, P)
        assign = F.one_hot(d.argmin(1), centers.shape[1]).float() * w[..., None]  # (N, P, K)
        mass = assign.sum(1)  # (N, K)
        new = torch.einsum("npk,pd->nkd", assign, coords) / mass.clamp(min=1e-6)[..., None]
        centers = torch.where(mass[..., None] > 1e-6, new, centers)  # an empty cluster keeps its place
    return centers


def track_centroids(video: torch.Tensor, k: int, iters: int = 6) -> tuple[torch.Tensor, torch.Tensor]:
    """Track K objects through a clip.

    Inputs:
        video: (B, C, T, H, W) in [-1, 1]; k: objects to track.
    Returns:
        centers (B, T, K, 2) as (y, x) in pixels, and visible (B, T): the frame has foreground.
    """
    w, scale = _downsampled(foreground(video))  # (B, T, h, w), at most 32×32
    b, t, h, wd = w.shape
    ys, xs = torch.meshgrid(torch.arange(h, device=w.device), torch.arange(wd, device=w.device), indexing="ij")
    coords = torch.stack([ys, xs], -1).reshape(-1, 2).float()  # (P, 2)
    flat = rearrange(w, "b t h w -> b t (h w)")
    visible = flat.sum(-1) > 1e-3  # (B, T)
    # Frame 0: farthest-point initialisation among foreground pixels, then Lloyd.
    w0 = flat[:, 0]
    centers = [(w0 @ coords / w0.sum(-1, keepdim=True).clamp(min=1e-6))[:, None]]  # (B, 1, 2)
    for _ in range(1, k):
        d = torch.cdist(torch.cat(centers, 1), coords[None].expand(b, -1, -1)).amin(1)  # (B, P)
        far = (d * (w0 > 0)).argmax(-1)  # (B,)
        centers.append(coords[far][:, None])
    c = _lloyd(coords, w0, torch.cat(centers, 1), iters * 2)
    tracks = [c]
    for i in range(1, t):
        c = _lloyd(coords, flat[:, i], c, iters)
        tracks.append(c)
    centers = torch.stack(tracks, 1)
    return (centers + 0.5) * scale - 0.5, visible  # pixel centres back in the input's coordinates


def motion_stats(centers: torch.Tensor, visible: torch.Tensor, tolerance: float = 1.5) -> dict[str, float]:
    """Speed and plausibility of tracks.

    A step t -> t+1 -> t+2 of one object is plausible when, on each axis, the velocity is kept
    (|v_{t+1} − v_t| ≤ tolerance px) or reflected (|v_{t+1} + v_t| ≤ tolerance: an elastic bounce).
    Rounding to whole pixels makes real clips jitter by up to 1 px, hence the tolerance of 1.5 px.

    Inputs: centers (B, T, K, 2) and visible (B, T) bool, as :func:`track_centroids` returns them.
    Returns ``speed`` (mean px/frame) and ``motion_consistency`` (fraction of plausible steps, in [0, 1]), floats.
    """
    v = centers[:, 1:] - centers[:, :-1]  # (B, T-1, K, 2)
    speed = v.norm(dim=-1)  # (B, T-1, K)
    kept = (v[:, 1:] - v[:, :-1]).abs() <= tolerance  # (B, T-2, K, 2)
    reflected = (v[:, 1:] + v[:, :-1]).abs() <= tolerance
    plausible = (kept | reflected).all(-1)  # (B, T-2, K)
    ok = (visible[:, 2:] & visible[:, 1:-1] & visible[:, :-2])[..., None].expand_as(plausible)
    step_ok = (visible[:, 1:] & visible[:, :-1])[..., None].expand_as(speed)
    return {"speed": float(speed[step_ok].mean()) if step_ok.any() else 0.0,
            "motion_consistency": float(plausible[ok].float().mean()) if ok.any() else 0.0}


def component_labels(mask: torch.Tensor, max_iters: int = 256) -> torch.Tensor:
    """(N, H, W) bool -> (N, H, W) float labels of the 8-connected foreground components (0: background).

    Every foreground pixel starts with its own id (1 + its flat index) and takes the largest id in its 3×3
    neighbourhood until nothing changes: each component ends labelled with its largest pixel id.
    """
    if mask.dtype != torch.bool or mask.ndim != 3:
        raise ValueError(f"expected a (N, H, W) bool mask, got {tuple(mask.shape)} {mask.dtype}")
    n, h, w = mask.shape
    m = mask[:, None].float()  # (N, 1, H, W)
    labels = torch.arange(1, h * w + 1, device=m.device, dtype=torch.float32).view(1, 1, h, w) * m
    for _ in range(max_iters):
        new = F.max_pool2d(labels, 3, stride=1, padding=1) * m
        if torch.equal(new, labels):
            break
        labels = new
    return labels[:, 0]


def largest_component(mask: torch.Tensor) -> torch.Tensor:
    """(N, H, W) bool -> (N, H, W) bool: each mask's largest 8-connected component (an empty mask stays empty;
    ties: the component with the smaller label)."""
    labels = component_labels(mask, max_iters=mask.shape[-2] * mask.shape[-1]).long()  # (N, H, W)
    flat = labels.flatten(1)
    counts = torch.zeros(len(flat), flat.shape[1] + 1, device=mask.device).scatter_add_(
        1, flat, torch.ones_like(flat, dtype=torch.float))
    counts[:, 0] = 0  # the background is no component
    return (labels == counts.argmax(1).view(-1, 1, 1)) & mask


def count_objects(video: torch.Tensor, max_iters: int = 256) -> torch.Tensor:
    """Connected foreground components per frame (B, T), 8-connected (:func:`component_labels`).

    video (B, C, T, H, W) in [-1, 1] -> (B, T) long."""
    mask = _downsampled(foreground(video))[0] > 0  # (B, T, H, W), at most 32×32
    b, t, h, w = mask.shape
    m = rearrange(mask, "b t h w -> (b t) h w")
    labels = component_labels(m, max_iters)
    own = torch.arange(1, h * w + 1, device=m.device, dtype=torch.float32).view(1, h, w)
    roots = ((labels == own) & m).sum((1, 2))  # one pixel per component keeps its own label
    return roots.view(b, t)


def seam_jumps(video: torch.Tensor, seams: list[int]) -> dict[str, float]:
    """Motion consistency at chunk boundaries: the mean absolute change between consecutive frames across a seam
    (frame s−1 to s) against that within chunks. A ratio near 1: seams look like any other step of motion.

    Inputs: video (B, C, T, H, W) in [-1, 1]; seams, frame indices in (0, T). Returns floats seam_change,
    within_change and seam_ratio."""
    check_video(video, "video")
    step = (video[:, :, 1:] - video[:, :, :-1]).abs().float().mean(dim=(0, 1, 3, 4))  # (T−1,): change into frame i+1
    at = torch.zeros_like(step, dtype=torch.bool)
    for s in seams:
        if not 0 < s < video.shape[2]:
            raise ValueError(f"expected seams in (0, T={video.shape[2]}), got {s}")
        at[s - 1] = True
    seam, other = float(step[at].mean()), float(step[~at].mean())
    return {"seam_change": seam, "within_change": other, "seam_ratio": seam / max(other, 1e-8)}
