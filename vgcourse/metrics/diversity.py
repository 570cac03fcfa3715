"""Diversity of conditional samples in pixels: do the samples of one condition (one caption) differ from each other
as much as real clips of that condition do?"""

from __future__ import annotations

import torch
from einops import rearrange

from vgcourse.video import check_video


def group_diversity(videos: torch.Tensor, groups: torch.Tensor) -> float:
    """Mean pairwise RMS distance between clips of the same group (e.g. the same caption), averaged over groups.

    Inputs: videos (N, C, T, H, W) in [-1, 1]; groups (N,) integer ids, each with at least 2 clips.
    Compare with real clips of the same groups: a ratio ≪ 1 means the samples of one condition look alike.
    """
    check_video(videos, "videos")
    if groups.shape != videos.shape[:1]:
        raise ValueError(f"expected one group id per clip, got {tuple(groups.shape)} for {videos.shape[0]} clips")
    flat = rearrange(videos.float(), "n c t h w -> n (c t h w)")
    scores = []
    for g in groups.unique():
        members = flat[(groups == g).to(flat.device)]
        if len(members) < 2:
            raise ValueError(f"group {int(g)} has {len(members)} clip; each group needs at least 2")
        d = torch.cdist(members, members) / members.shape[1] ** 0.5  # (n, n) RMS distances
        n = len(members)
        scores.append(d.sum() / (n * (n - 1)))
    return float(torch.stack(scores).mean())
