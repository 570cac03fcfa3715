"""Scores for single frames, for image models (a frame VAE, a DCGAN) trained on frames of the course's clips.

The protocol's Fréchet distance compares *video*-probe features, which see motion as well as appearance, so it
does not apply to a single frame. Frames are scored with the *frame* probe instead (the 2D classifier behind
``frame_quality``), each number with a standard error:

==================  =============================================================================================
``frame_fd`` ↓      Fréchet distance of frame-probe features (its penultimate layer, 128-d) to held-out real
                    frames: FID's recipe (Heusel et al. 2017) with the course's probe; ± a grouped jackknife SE
                    (leave one of 32 groups of frames out: 32 distances instead of one per frame)
``frame_quality``   the probe's agreement with a crisp answer of K digits, Σ top-K p / (K + Σ other p), per frame
                    (the Evaluator's formula); ± its standard error over frames
``class_coverage``  fraction of the 10 digit classes among the frames' top-K classes (mode coverage)
``class_entropy``   entropy of that class histogram / log 10 (1: every class equally often)
``diversity``       mean pairwise feature distance / the real frames' (≪ 1: mode collapse)
``sharpness``       mean squared Laplacian of each frame (blur lowers it, noise raises it), ± its SE over frames
==================  =============================================================================================

    evaluator = FrameEvaluator(PROTOCOL.dataset(), n_real=512, device=device)   # 512 held-out clips' frames
    rows = frame_reference_rows(evaluator, n=1024)                                 # real, blurred, noise, mean
    scores = evaluator(frames)                                                     # frames (N, C, H, W) in [-1, 1]
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from einops import rearrange

from vgcourse.data.base import VideoDataset
from vgcourse.metrics.corruptions import blur
from vgcourse.metrics.frechet import frechet_distance, gaussian_stats, jackknife_std
from vgcourse.metrics.probes import load_probe, resize_frames
from vgcourse.video import check_video

FRAME_REFERENCE_ROWS = ("real frames", "blurred frames", "noise", "mean frame")
LAPLACIAN = torch.tensor([[0.0, 1.0, 0.0], [1.0, -4.0, 1.0], [0.0, 1.0, 0.0]])


def frames_of(video: torch.Tensor) -> torch.Tensor:
    """Every frame of a batch of clips as an image batch: (B, C, T, H, W) -> (B·T, C, H, W)."""
    check_video(video)
    return rearrange(video, "b c t h w -> (b t) c h w")


def frames_as_video(frames: torch.Tensor) -> torch.Tensor:
    """Images as one-frame clips, the layout every course function takes: (N, C, H, W) -> (N, C, 1, H, W)."""
    check_frames(frames)
    return frames[:, :, None]


def check_frames(frames: torch.Tensor, name: str = "frames") -> torch.Tensor:
    """Assert ``frames`` is a float image batch (N, C, H, W) in [-1, 1]; return it unchanged."""
    if not isinstance(frames, torch.Tensor) or frames.ndim != 4:
        got = tuple(frames.shape) if isinstance(frames, torch.Tensor) else type(frames).__name__
        hint = " (clips? use frames_of(video))" if isinstance(frames, torch.Tensor) and frames.ndim == 5 else ""
        raise ValueError(f"expected {name} of shape (N, C, H, W), got {got}{hint}")
    check_video(frames[:, :, None], name)
    return frames


def sharpness(frames: torch.Tensor) -> torch.Tensor:
    """Mean squared Laplacian of each frame (N,): edge energy, which blur lowers and noise raises.

    The 3×3 Laplacian ∇²x ≈ x[i-1,j] + x[i+1,j] + x[i,j-1] + x[i,j+1] − 4 x[i,j], on the interior pixels.
    Inputs: frames (N, C, H, W) in [-1, 1] (clips: :func:`frames_of` first). Returns (N,).
    """
    check_frames(frames)
    c = frames.shape[1]
    kernel = LAPLACIAN.to(frames.device, torch.float32).expand(c, 1, 3, 3)
    lap = F.conv2d(frames.float(), kernel, groups=c)  # (N, C, H-2, W-2)
    return lap.pow(2).flatten(1).mean(1)


def grouped_jackknife_fd(features: torch.Tensor, reference: tuple[torch.Tensor, torch.Tensor],
                         groups: int = 32) -> torch.Tensor:
    """Fréchet distances to ``reference`` with one of ``groups`` contiguous groups of rows of ``features`` (N, D)
    left out at a time (G,): the delete-d jackknife (Efron & Tibshirani 1993, §11.7), whose
    :func:`~vgcourse.metrics.frechet.jackknife_std` is the standard error of the distance. With N frames it costs G
    distances instead of N."""
    n = features.shape[0]
    groups = min(groups, n)
    if groups < 2:
        raise ValueError(f"a grouped jackknife needs at least 2 groups of rows, got {n} rows")
    bounds = torch.linspace(0, n, groups + 1).round().long().tolist()
    out = []
    for lo, hi in zip(bounds, bounds[1:]):
        keep = torch.cat([features[:lo], features[hi:]])
        out.append(frechet_distance(*gaussian_stats(keep), *reference))
    return torch.tensor(out, dtype=torch.float64)


def mean_and_se(values: torch.Tensor) -> tuple[float, float]:
    """The mean of per-item values (N,) and its standard error s / √N."""
    v = values.double().flatten()
    if v.numel() < 2:
        raise ValueError(f"a standard error needs at least 2 values, got {v.numel()}")
    return float(v.mean()), float(v.std() / math.sqrt(v.numel()))


def _entropy(hist: torch.Tensor) -> torch.Tensor:
    """Entropy of histograms (..., K) normalised by log K."""
    p = hist / hist.sum(-1, keepdim=True)
    return -(p * p.clamp(min=1e-30).log()).sum(-1) / math.log(hist.shape[-1])


def digit_scores(probs: torch.Tensor, digits: int) -> dict[str, torch.Tensor | float]:
    """Per-frame quality (N,) and the class coverage and entropy (± a jackknife SE) of frame-probe probabilities
    ``probs`` (N, 10).

    Quality = Σ top-K p / (K + Σ other p), K = ``digits``: 1 when the probe is sure of exactly K digits and of no
    others (the formula of :class:`~vgcourse.metrics.Evaluator`'s ``frame_quality``). Each frame votes for its
    top-K classes; entropy of the votes / log 10 is 1 when every class is drawn equally often."""
    if probs.ndim != 2:
        raise ValueError(f"expected probabilities of shape (N, classes), got {tuple(probs.shape)}")
    top = probs.topk(digits, dim=-1)
    quality = top.values.sum(-1) / (digits + probs.sum(-1) - top.values.sum(-1))  # (N,)
    votes = torch.zeros(probs.shape, dtype=torch.float64).scatter_(1, top.indices.cpu(), 1.0)  # (N, classes)
    hist = votes.sum(0)
    left_out = _entropy(hist[None] - votes)  # (N,): the entropy with frame i left out
    return {"quality": quality, "class_coverage": float((hist > 0).double().mean()),
            "class_entropy": float(_entropy(hist)), "class_entropy_se": jackknife_std(left_out)}


class FrameEvaluator:
    """Held-out real frames' frame-probe statistics, and :meth:`__call__` to score generated frames against them.

    Inputs: a dataset with the frame probe (moving digits), ``n_real`` held-out *clips* (every frame of each is a
    reference frame: n_real · T frames), the device.
    """

    def __init__(self, dataset: VideoDataset, n_real: int = 512, device: torch.device | str = "cpu",
                 batch_size: int = 1024):
        if dataset.name != "moving_digits":
            raise ValueError(f"the frame probe reads moving digits; {dataset!r} has no frame probe")
        self.dataset = dataset
        self.device = torch.device(device)
        self.batch_size = batch_size
        self.digits = dataset.digits
        self.probe = load_probe("probe_moving_digits_frame", self.device)
        real = frames_of(dataset.heldout(n_real, device=self.device).video)  # (n_real·T, C, H, W)
        self.shape = tuple(real.shape[1:])
        feats, _ = self.measure(real)
        self.n_real_frames = real.shape[0]
        self.real_stats = gaussian_stats(feats)
        self.real_spread = self._spread(feats[:2048])  # a fixed subset: the spread converges long before 8192

    @torch.no_grad()
    def measure(self, frames: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Frame-probe features (N, 128) as float64 on the CPU, and class probabilities (N, 10)."""
        check_frames(frames)
        feats, probs = [], []
        head = self.probe.net[:-1]  # everything but the classifier: the 128-d features
        for i in range(0, frames.shape[0], self.batch_size):
            video = resize_frames(frames_as_video(frames[i:i + self.batch_size].to(self.device).float()))
            f = head(video[:, :, 0])  # (n, 128), from the probe's 32×32 input (n, C, 32, 32)
            feats.append(f.double().cpu())
            probs.append(torch.sigmoid(self.probe.net[-1](f)).cpu())
        return torch.cat(feats), torch.cat(probs)

    @staticmethod
    def _spread(feats: torch.Tensor) -> float:
        n = feats.shape[0]
        return float(torch.cdist(feats, feats).sum() / max(1, n * (n - 1)))

    def __call__(self, frames: torch.Tensor, jackknife: bool = True) -> dict[str, float]:
        """Every frame score of ``frames`` (N, C, H, W) in [-1, 1], with standard errors (``frame_fd_se`` by a
        grouped jackknife of 32 Fréchet distances: ``jackknife=False`` skips it)."""
        check_frames(frames)
        if tuple(frames.shape[1:]) != self.shape:
            raise ValueError(f"frames of shape {tuple(frames.shape[1:])} cannot be compared with the held-out "
                             f"frames of {self.dataset!r}, shaped {self.shape}")
        if frames.shape[0] < 3:
            raise ValueError(f"scoring needs at least 3 frames, got {frames.shape[0]}")
        feats, probs = self.measure(frames)
        digits = digit_scores(probs, self.digits)
        out = {"frame_fd": frechet_distance(*gaussian_stats(feats), *self.real_stats)}
        if jackknife:
            out["frame_fd_se"] = jackknife_std(grouped_jackknife_fd(feats, self.real_stats))
        out["frame_quality"], out["frame_quality_se"] = mean_and_se(digits["quality"])
        out["sharpness"], out["sharpness_se"] = mean_and_se(sharpness(frames))
        out |= {"class_coverage": digits["class_coverage"], "class_entropy": digits["class_entropy"],
                "class_entropy_se": digits["class_entropy_se"],
                "diversity": self._spread(feats[:2048]) / self.real_spread, "n_frames": frames.shape[0]}
        return out


def frame_reference_rows(evaluator: FrameEvaluator, n: int, seed: int = 123) -> dict[str, dict]:
    """{row: scores} at ``n`` frames each: real frames (one per training-split clip), the same frames blurred
    (σ = 1.5 px, what a model that averages over its uncertainty draws), N(0, 1) noise clipped to [-1, 1], and the
    mean frame repeated n times."""
    video = evaluator.dataset.batch(n, seed=seed, device=evaluator.device).video  # (n, C, T, H, W)
    t = torch.arange(n, device=video.device) % video.shape[2]  # frame i of clip i, cycling over the clip
    real = video[torch.arange(n, device=video.device), :, t]  # (n, C, H, W): independent frames
    g = torch.Generator().manual_seed(seed)
    rows = {"real frames": real,
            "blurred frames": blur(real[:, :, None], 1.5)[:, :, 0],
            "noise": torch.randn(real.shape, generator=g).clamp(-1, 1).to(real.device),
            "mean frame": real.mean(0, keepdim=True).expand_as(real).contiguous()}
    return {name: evaluator(frames) for name, frames in rows.items()}


def format_frame_rows(rows: dict[str, dict], metrics: tuple[str, ...] = ("frame_fd", "frame_quality", "sharpness",
                                                                         "class_coverage", "class_entropy",
                                                                         "diversity")) -> str:
    """A plain-text table of rows × frame metrics, each with ± its standard error where it has one."""
    lines = [f"{'':20s}" + "".join(f"{m:>20s}" for m in metrics)]
    for name, values in rows.items():
        cells = []
        for m in metrics:
            v, se = values.get(m), values.get(f"{m}_se")
            text = "—" if v is None else (f"{v:.3f} ± {se:.3f}" if se is not None else f"{v:.3f}")
            cells.append(f"{text:>20s}")
        lines.append(f"{name:20s}" + "".join(cells))
    return "\n".join(lines)
