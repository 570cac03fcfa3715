"""One call that scores a batch of generated videos against the held-out set of their dataset.

    >>> scores = evaluate(samples, MovingDigits(size=32))     # doctest: +SKIP
    {'fd': 12.3, 'frame_quality': 0.91, 'identity_consistency': 0.95, 'motion_consistency': 0.88, ...}

What each number means (higher is better unless marked ↓):

==========================  ==================================================================================
``fd`` ↓                    Fréchet distance of video-probe features to the real held-out set (an FVD proxy)
``frame_quality``           agreement of the frame probe with a crisp answer of K digits, Σ top-K p / (K + Σ other p)
``identity_consistency``    fraction of frames whose digit set equals the clip's most common set (a frozen clip
                            scores 1: read it beside ``motion_consistency`` and ``speed_ratio``)
``motion_consistency``      fraction of tracked steps that keep their velocity or bounce elastically
``speed_ratio``             tracked speed / real speed (1 is right; 0 is frozen)
``objects``                 mean connected components per frame (compare with the real value)
``class_coverage``          fraction of the 10 digit classes that appear among the clips
``class_entropy``           entropy of the class histogram / log 10 (1 = all classes equally often)
``diversity``               mean pairwise feature distance / the real set's (1 is right; ≪ 1 is mode collapse)
``attribute_accuracy``      captioned shapes: colour, shape and direction all read back right (needs labels)
==========================  ==================================================================================

Two mistakes that would give a wrong number without a word are warned about: clips that never go below 0
(data in [0, 1], e.g. straight from ``torch.rand`` or an image library: the course's layout is [-1, 1]), and an fd
on fewer clips than the video probe has features (:class:`SmallSampleWarning`: below that the distance is
dominated by the number of clips, not by the model).
"""

from __future__ import annotations

import math
import warnings

import torch

from vgcourse.data.base import VideoDataset
from vgcourse.metrics.attributes import attribute_accuracy
from vgcourse.metrics.frechet import frechet_distance, gaussian_stats
from vgcourse.metrics.probes import load_probe
from vgcourse.metrics.tracking import count_objects, motion_stats, track_centroids
from vgcourse.video import check_video


class SmallSampleWarning(UserWarning):
    """A Fréchet distance on fewer clips than features: its value is dominated by the number of clips."""


def warn_if_unit_range(videos: torch.Tensor, name: str = "videos") -> None:
    """Warn when ``videos`` never go below 0: [0, 1] data in the course's [-1, 1] layout use half of the range, and
    every metric reads them as other clips (fd many times that of the same clips in [-1, 1])."""
    if videos.numel() and float(videos.min()) >= 0:
        lo, hi = float(videos.min()), float(videos.max())
        warnings.warn(f"expected {name} in [-1, 1], got values in [{lo:.3g}, {hi:.3g}], never below 0: data in "
                      "[0, 1]? map them with x * 2 - 1 (vgcourse.video.from_uint8 does it for uint8 frames)",
                      UserWarning, stacklevel=3)


def _chunks(video: torch.Tensor, size: int):
    for i in range(0, video.shape[0], size):
        yield video[i:i + size]


class Evaluator:
    """Holds a dataset's held-out reference statistics and scores generated batches against them."""

    def __init__(self, dataset: VideoDataset, n_real: int = 256, device: torch.device | str | None = None,
                 batch_size: int = 128):
        self.dataset = dataset
        self.device = torch.device(device) if device is not None else torch.device("cpu")
        self.batch_size = batch_size
        self.objects_per_clip = getattr(dataset, "digits", None) or getattr(dataset, "balls", None) \
            or getattr(dataset, "objects", 1)
        self.has_probes = dataset.name == "moving_digits"
        if self.has_probes:
            self.frame_probe = load_probe("probe_moving_digits_frame", self.device)
            self.video_probe = load_probe("probe_moving_digits_video", self.device)
        self._n_real = n_real
        real = dataset.heldout(n_real, device=self.device).video
        self.shape = tuple(real.shape[1:])
        self.reference = self._measure(real)
        if self.has_probes:
            self.real_stats = gaussian_stats(self.reference.pop("_features"))
            self.real_spread = self.reference.pop("_spread")

    @torch.no_grad()
    def _measure(self, video: torch.Tensor) -> dict:
        """Everything that needs only the videos: probe outputs, tracks, counts."""
        out: dict = {}
        centers, visible = [], []
        counts = []
        feats, probs = [], []
        for chunk in _chunks(video, self.batch_size):
            chunk = chunk.to(self.device).float()
            c, v = track_centroids(chunk, self.objects_per_clip)
            centers.append(c), visible.append(v)
            counts.append(count_objects(chunk).float())
            if self.has_probes:
                feats.append(self._probe_features(chunk))
                probs.append(torch.sigmoid(self.frame_probe(chunk)).cpu())
        out |= motion_stats(torch.cat(centers), torch.cat(visible))
        out["objects"] = float(torch.cat(counts).mean())
        if self.has_probes:
            f = torch.cat(feats)
            out["_features"] = f
            out["_spread"] = float(torch.cdist(f, f).sum() / max(1, f.shape[0] * (f.shape[0] - 1)))
            out |= self._digit_scores(torch.cat(probs))
        return out

    @torch.no_grad()
    def features(self, videos: torch.Tensor) -> torch.Tensor:
        """The video probe's features (N, D) of ``videos`` (N, C, T, H, W): what ``fd`` compares with
        ``real_stats`` (e.g. for :func:`~vgcourse.metrics.frechet.jackknife_fd`)."""
        check_video(videos, "videos")
        warn_if_unit_range(videos)
        if not self.has_probes:
            raise ValueError(f"{self.dataset!r} has no video probe, so no features (only moving digits has one)")
        return torch.cat([self._probe_features(c.to(self.device).float()) for c in _chunks(videos, self.batch_size)])

    def _probe_features(self, chunk: torch.Tensor) -> torch.Tensor:
        """Video-probe features (n, D) of one chunk of clips already on the device, as float64 on the CPU."""
        return self.video_probe.features(chunk).double().cpu()

    def _digits_of_clips(self, probs: torch.Tensor) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
        """Per-clip frame quality and identity consistency (B,) from frame-probe probabilities (B, T, 10), and each
        clip's most common set of digits (B,) as a bitmask."""
        k = self.objects_per_clip
        top = probs.topk(k, dim=-1)
        sets = (2 ** top.indices).sum(-1)  # (B, T): the digit set of each frame as a bitmask
        modal = sets.mode(dim=1).values  # (B,)
        # 1 when the probe is sure of exactly K digits and of no others; low when unsure or when it sees extras
        rest = probs.sum(-1) - top.values.sum(-1)
        quality = top.values.sum(-1) / (k + rest)  # (B, T)
        identity = (sets == modal[:, None]).float().mean(1)  # (B,): the share of frames showing the clip's set
        return {"frame_quality": quality.mean(1), "identity_consistency": identity}, modal

    def _digit_scores(self, probs: torch.Tensor) -> dict[str, float]:
        """Frame quality, identity consistency and class diversity from frame-probe probabilities (B, T, 10)."""
        per_clip, modal = self._digits_of_clips(probs)
        classes = torch.tensor([[(int(m) >> c) & 1 for c in range(10)] for m in modal])  # (B, 10)
        hist = classes.sum(0).float()
        p = hist / hist.sum().clamp(min=1)
        entropy = -(p[p > 0] * p[p > 0].log()).sum() / math.log(10)
        return {"frame_quality": float(per_clip["frame_quality"].mean()),
                "identity_consistency": float(per_clip["identity_consistency"].mean()),
                "class_coverage": float((hist > 0).float().mean()), "class_entropy": float(entropy)}

    @torch.no_grad()
    def digits_per_clip(self, videos: torch.Tensor) -> dict[str, torch.Tensor]:
        """Identity consistency and frame quality of each clip, {name: (N,)} on the CPU, for ``videos``
        (N, C, T, H, W) in [-1, 1]: their means are this Evaluator's ``identity_consistency`` and
        ``frame_quality``, and per clip they give those scores a standard error (:func:`mean_se`)."""
        check_video(videos, "videos")
        warn_if_unit_range(videos)
        if not self.has_probes:
            raise ValueError(f"{self.dataset!r} has no frame probe, so no per-clip digit scores")
        probs = torch.cat([torch.sigmoid(self.frame_probe(c.to(self.device).float())).cpu()
                           for c in _chunks(videos, self.batch_size)])
        return self._digits_of_clips(probs)[0]

    def __call__(self, videos: torch.Tensor, labels: dict[str, torch.Tensor] | None = None) -> dict[str, float]:
        """Score generated ``videos`` (N, C, T, H, W) in [-1, 1]; ``labels`` enable conditioning accuracy."""
        check_video(videos, "videos")
        warn_if_unit_range(videos)
        if tuple(videos.shape[1:]) != self.shape:
            raise ValueError(f"videos of shape {tuple(videos.shape[1:])} per clip cannot be compared with the "
                             f"held-out set of {self.dataset!r}, shaped {self.shape}")
        m = self._measure(videos)
        scores: dict[str, float] = {}
        if self.has_probes:
            if videos.shape[0] < 2:
                raise ValueError(f"the Fréchet distance needs at least 2 generated clips, got {videos.shape[0]}")
            feats, spread = m.pop("_features"), m.pop("_spread")
            self._warn_if_few(feats.shape[0])
            scores["fd"] = frechet_distance(*gaussian_stats(feats), *self.real_stats)
            scores["diversity"] = spread / self.real_spread
        scores |= {k: v for k, v in m.items() if k not in ("speed",)}
        scores["speed_ratio"] = m["speed"] / max(self.reference["speed"], 1e-6)
        if labels is not None and self.dataset.name == "captioned_shapes":
            scores |= attribute_accuracy(videos.to(self.device), labels)
        return scores

    @property
    def min_clips(self) -> int:
        """The fewest clips (generated, and real in the reference) for an fd that measures the model rather than
        the sample size: the video probe's feature dimension."""
        return int(self.real_stats[0].shape[0]) if self.has_probes else 0

    @property
    def n_real(self) -> int:
        return int(self._n_real)

    def _warn_if_few(self, n_gen: int) -> None:
        if min(n_gen, self.n_real) < self.min_clips:
            warnings.warn(f"fd on {n_gen} generated clips against {self.n_real} real ones: expected at least "
                          f"{self.min_clips} of each (the video probe's feature dimension); with fewer, the distance "
                          "is dominated by the number of clips, so compare it only with fds on the same numbers",
                          SmallSampleWarning, stacklevel=3)


_CACHE: dict[tuple, Evaluator] = {}


def evaluate(videos: torch.Tensor, dataset: VideoDataset, labels: dict[str, torch.Tensor] | None = None,
             n_real: int = 256, device: torch.device | str | None = None) -> dict[str, float]:
    """Score ``videos`` against ``dataset``'s held-out set with every metric that applies to that dataset.

    Inputs: videos (N, C, T, H, W) in [-1, 1], shaped per clip as the dataset's clips (N >= 2 where there is an fd);
    labels as :func:`~vgcourse.metrics.attributes.attribute_accuracy` (captioned shapes only). Returns
    {name: float} (the module's table lists the main names); the :class:`Evaluator` is cached per
    (dataset, n_real, device)."""
    device = torch.device(device) if device is not None else videos.device
    key = (repr(dataset), n_real, str(device))
    if key not in _CACHE:
        _CACHE[key] = Evaluator(dataset, n_real=n_real, device=device)
    return _CACHE[key](videos, labels)
