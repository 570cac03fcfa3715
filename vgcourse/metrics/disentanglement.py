"""Disentanglement of content and motion, read with the course's probes (MoCoGAN, Tulyakov et al. 2018, §4).

A generator that splits a clip into a content code and motion codes makes two promises, each checked on pairs of
clips generated with one part of the latent shared:

- **content agreement**: clips that share a content code and differ in motion show the same digits. The frame
  probe reads each clip's digit set (the set of K digits it sees in most frames, as ``identity_consistency``
  does) and we count the pairs whose sets agree (:func:`content_agreement`);
- **trajectory correlation**: clips that share motion codes and differ in content move the same way. The
  centroid tracker (:func:`~vgcourse.metrics.tracking.track_centroids`) follows the K objects of each clip, and
  we correlate the two clips' tracks, each centred on its own mean position, objects matched by the permutation
  that correlates best (:func:`trajectory_correlation`).

Both come with a standard error over the pairs, and both have reference pairs from the data itself
(:func:`real_pairs`): real clips with the same digit instances on other paths, and with the same paths carrying
other digits. Unrelated pairs (nothing shared) give the chance level of each measure.
"""

from __future__ import annotations

import itertools
import math

import torch

from vgcourse.data.base import generator_for
from vgcourse.data.digits import MovingDigits
from vgcourse.metrics.suite import Evaluator
from vgcourse.metrics.tracking import track_centroids
from vgcourse.video import check_video


def _pairs_check(a: torch.Tensor, b: torch.Tensor) -> None:
    check_video(a, "a"), check_video(b, "b")
    if a.shape[:3] != b.shape[:3] or a.shape[3:] != b.shape[3:]:
        raise ValueError(f"paired clips must have one shape, got {tuple(a.shape)} and {tuple(b.shape)}")


@torch.no_grad()
def digit_sets(evaluator: Evaluator, video: torch.Tensor) -> torch.Tensor:
    """Each clip's digit set (B,) as a bitmask: the K classes the frame probe ranks highest, in most frames."""
    check_video(video)
    if not evaluator.has_probes:
        raise ValueError(f"{evaluator.dataset!r} has no frame probe (only moving digits has one)")
    k = evaluator.objects_per_clip
    sets = []
    for i in range(0, video.shape[0], evaluator.batch_size):
        chunk = video[i:i + evaluator.batch_size].to(evaluator.device).float()
        top = evaluator.frame_probe(chunk).topk(k, dim=-1).indices  # (b, T, K)
        sets.append((2 ** top).sum(-1).mode(dim=1).values.cpu())  # (b,): the modal set of each clip
    return torch.cat(sets)


def _mean_and_se(values: torch.Tensor) -> tuple[float, float]:
    n = values.numel()
    return float(values.mean()), float(values.std(unbiased=True) / math.sqrt(n)) if n > 1 else 0.0


def content_agreement(evaluator: Evaluator, a: torch.Tensor, b: torch.Tensor) -> dict[str, float]:
    """The fraction of pairs (a[i], b[i]) whose digit sets agree, with its binomial standard error.

    Inputs: a, b (N, C, T, H, W) in [-1, 1], pair i being a[i] and b[i] (their frame counts may differ).
    Returns {"agreement", "agreement_se", "n"}."""
    check_video(a, "a"), check_video(b, "b")
    if a.shape[0] != b.shape[0]:
        raise ValueError(f"expected as many clips in a as in b (pairs), got {a.shape[0]} and {b.shape[0]}")
    same = (digit_sets(evaluator, a) == digit_sets(evaluator, b)).float()  # (N,)
    p = float(same.mean())
    return {"agreement": p, "agreement_se": math.sqrt(p * (1 - p) / same.numel()), "n": same.numel()}


def track_correlation(tracks_a: torch.Tensor, tracks_b: torch.Tensor) -> torch.Tensor:
    """Pearson correlation per pair (N,) of two sets of tracks (N, T, K, 2), each centred on its mean over time,
    over all frames, objects and axes; b's objects are permuted to the order that correlates best."""
    if tracks_a.shape != tracks_b.shape or tracks_a.dim() != 4:
        raise ValueError(f"expected two track tensors (N, T, K, 2) of one shape, got {tuple(tracks_a.shape)} and "
                         f"{tuple(tracks_b.shape)}")
    a = tracks_a - tracks_a.mean(1, keepdim=True)  # (N, T, K, 2): motion about the mean position
    b = tracks_b - tracks_b.mean(1, keepdim=True)
    norm_a = a.flatten(1).norm(dim=1)
    best = torch.full((a.shape[0],), -1.0, dtype=a.dtype, device=a.device)
    for perm in itertools.permutations(range(a.shape[2])):
        bp = b[:, :, list(perm)]
        r = (a * bp).flatten(1).sum(1) / (norm_a * bp.flatten(1).norm(dim=1)).clamp(min=1e-6)
        best = torch.maximum(best, r)
    return best


@torch.no_grad()
def trajectory_correlation(a: torch.Tensor, b: torch.Tensor, objects: int) -> dict[str, float]:
    """The mean over pairs of :func:`track_correlation` of the tracked centroids of a[i] and b[i], with its
    standard error. A clip without motion has no trajectory to correlate and scores 0.

    Inputs: a, b (N, C, T, H, W) in [-1, 1]; ``objects`` = K objects to track per clip.
    Returns {"correlation", "correlation_se", "n"}."""
    _pairs_check(a, b)
    tracks_a, _ = track_centroids(a.float(), objects)  # (N, T, K, 2)
    tracks_b, _ = track_centroids(b.float(), objects)
    r = track_correlation(tracks_a.double(), tracks_b.double()).cpu()
    mean, se = _mean_and_se(r)
    return {"correlation": mean, "correlation_se": se, "n": r.numel()}


@torch.no_grad()
def real_pairs(dataset: MovingDigits, n: int, share: str, seed: int = 7,
               device: torch.device | str = "cpu") -> tuple[torch.Tensor, torch.Tensor]:
    """n pairs of real clips (two (n, C, T, H, W) tensors) that share one thing:

    - ``share="content"``: the same digit instances (the same handwriting), on other paths;
    - ``share="motion"``: the same paths, carrying other digit instances;
    - ``share="nothing"``: two unrelated clips (the chance level of both measures).
    """
    if not isinstance(dataset, MovingDigits):
        raise TypeError(f"real_pairs needs moving digits (digit instances and paths), got {type(dataset).__name__}")
    if share not in ("content", "motion", "nothing"):
        raise ValueError(f"share must be 'content', 'motion' or 'nothing', got {share!r}")
    g = generator_for(seed)
    first, second = dataset._draw(n, g, "train"), dataset._draw(n, g, "train")
    if share == "content":
        second = second | {"_instance": first["_instance"]}
    elif share == "motion":
        second = second | {"positions": first["positions"]}
    device = torch.device(device)
    return dataset._render(first, device), dataset._render(second, device)
