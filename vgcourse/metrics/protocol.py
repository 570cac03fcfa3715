"""The course's one evaluation protocol, so that a number means the same in every chapter and in the README.

On moving digits (32×32, 16 frames, 2 digits), ``n_gen`` = 384 generated clips are scored against the
``n_real`` = 512-clip held-out reference, and every chapter shows, at the same n, the reference rows of one call,
:func:`reference_rows`: real clips, shuffled frames, frozen frames, pure noise and the mean video. Measured on an
H200 at this protocol: real 3.5, frozen 10.6, shuffled 17.9, noise above 200.

    evaluator = PROTOCOL.evaluator(device)                         # the 512-clip reference, once
    rows = reference_rows(evaluator, n=PROTOCOL.n_gen)             # {row: scores with fd and fd_se}
    model = score(evaluator, samples)                              # the same metrics, with fd's jackknife SE
    verdict(model["fd"], rows["frozen frames"]["fd"], model["fd_se"])   # 'met', 'not resolved' or 'not met'

A bar is *met* when the value beats it by at least one standard error, *not met* when it misses it by more than
one, and *not resolved* in between (COURSE.md, Quality rules). A claim checked through several bars is read from
their outcomes with :func:`claim_from`: supported when all are met, not supported when one is not met.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import torch

from vgcourse.data.digits import MovingDigits
from vgcourse.metrics.corruptions import freeze_frames, shuffle_frames
from vgcourse.metrics.frechet import jackknife_fd, jackknife_std
from vgcourse.metrics.suite import Evaluator
from vgcourse.video import check_video

REFERENCE_ROWS = ("real", "shuffled frames", "frozen frames", "noise", "mean video")
HEADLINE_KEYS = ("fd", "fd_se", "frame_quality", "identity_consistency", "diversity", "motion_consistency")


@dataclass(frozen=True)
class Protocol:
    """What every chapter scores on: the data, how many generated clips, how many held-out reference clips."""

    size: int = 32
    frames: int = 16
    digits: int = 2
    n_gen: int = 384
    n_real: int = 512
    reference_seed: int = 123  # which training-split clips the "real" row scores

    def dataset(self) -> MovingDigits:
        return MovingDigits(size=self.size, frames=self.frames, digits=self.digits)

    def evaluator(self, device: torch.device | str = "cpu", n_real: int | None = None) -> Evaluator:
        """The held-out reference statistics (``n_real`` clips; a smaller number only for quick profiles)."""
        return Evaluator(self.dataset(), n_real=n_real or self.n_real, device=device)


PROTOCOL = Protocol()


def score(evaluator: Evaluator, videos: torch.Tensor, labels: dict[str, torch.Tensor] | None = None) -> dict:
    """``evaluator(videos)`` plus ``fd_se``, the jackknife standard error of fd over the generated clips, and
    ``n_gen``. videos: (N, C, T, H, W) in [-1, 1]."""
    check_video(videos, "videos")
    scores = evaluator(videos, labels)
    scores["n_gen"] = videos.shape[0]
    if "fd" in scores and videos.shape[0] >= 3:
        left_out = jackknife_fd({"clips": evaluator.features(videos)}, evaluator.real_stats)["clips"]
        scores["fd_se"] = jackknife_std(left_out)
    return scores


def reference_rows(evaluator: Evaluator, n: int, seed: int = PROTOCOL.reference_seed) -> dict[str, dict]:
    """{row: scores} for the rows every chapter shows beside its models, all at ``n`` clips:

    - ``real``: n fresh real clips (training split, never the reference clips);
    - ``shuffled frames``: the same clips, frames in a random order (perfect frames, no motion);
    - ``frozen frames``: their first frame held (no motion at all);
    - ``noise``: N(0, 1) pixels clipped to [-1, 1] (what an untrained diffusion model draws);
    - ``mean video``: the pixel-wise mean of the real clips, n times (what a model that ignores its input
      and minimises squared error would draw).
    """
    real = evaluator.dataset.batch(n, seed=seed, device=evaluator.device).video
    g = torch.Generator().manual_seed(seed)
    videos = {"real": real, "shuffled frames": shuffle_frames(real, g), "frozen frames": freeze_frames(real),
              "noise": torch.randn(real.shape, generator=g).clamp(-1, 1).to(real.device),
              "mean video": real.mean(0, keepdim=True).expand_as(real).contiguous()}
    return {name: score(evaluator, video) for name, video in videos.items()}


def verdict(value: float, bar: float, se: float, lower_is_better: bool = True) -> str:
    """'met' when ``value`` beats ``bar`` by at least one standard error ``se``, 'not met' when it misses by more
    than one, 'not resolved' in between."""
    if not se >= 0:
        raise ValueError(f"a standard error must be >= 0, got {se}")
    margin = (bar - value) if lower_is_better else (value - bar)
    if margin >= se:
        return "met"
    return "not met" if margin < -se else "not resolved"


def floor_fd(rows: dict[str, dict]) -> float:
    """The floor for showing a model's samples (COURSE.md, Quality rules; chapter 00 §8): twice the fd of the
    shuffled-frame row of ``rows`` (:func:`reference_rows`, at the n the model is scored at). Below it a model draws
    digits that move; above it, what it draws is closer to noise than to clips with their order lost."""
    return 2 * rows["shuffled frames"]["fd"]


def past_the_floor(scores: dict[str, dict], floor: float) -> list[str]:
    """The names in ``scores`` ({name: {'fd', 'fd_se', ...}}) whose fd is below ``floor`` by one standard error,
    in order: the only models whose samples a chapter shows (COURSE.md, Quality rules). Each other one is named
    with its fd on a printed line, so a reader sees what was left out and why."""
    shown = []
    for name, s in scores.items():
        if verdict(s["fd"], floor, s["fd_se"]) == "met":
            shown.append(name)
        else:
            print(f"not shown: {name}, fd {s['fd']:.1f} ± {s['fd_se']:.1f} is not below the floor {floor:.1f} "
                  f"by one standard error")
    return shown


def mean_se(values: torch.Tensor) -> tuple[float, float]:
    """The mean of per-item values (N,) (one per clip, say) and its standard error, std / sqrt(N)."""
    values = torch.as_tensor(values).detach().float().flatten()
    if values.numel() < 2:
        raise ValueError(f"a standard error needs at least 2 values, got {values.numel()}")
    return values.mean().item(), values.std().item() / values.numel() ** 0.5


def bar(value: float, line: float, se: float = 0.0, line_se: float = 0.0, lower_is_better: bool = True) -> dict:
    """A bar read with one standard error: {'outcome' ('met', 'not met', 'not resolved'), 'value', 'se', 'line',
    'line_se', 'margin'}. Where the line is itself measured (a reference row, 0.9 × the real clips' value), its
    standard error ``line_se`` counts too: the value − line difference has se = sqrt(se² + line_se²).
    ``margin`` > 0 means the value clears the line."""
    if not (se >= 0 and line_se >= 0):
        raise ValueError(f"a standard error must be >= 0, got se={se}, line_se={line_se}")
    combined = (se ** 2 + line_se ** 2) ** 0.5
    margin = (line - value) if lower_is_better else (value - line)
    return {"outcome": verdict(value, line, combined, lower_is_better), "value": value, "se": se, "line": line,
            "line_se": line_se, "margin": margin}


def claim_from(outcomes: Iterable[str]) -> str:
    """A claim read from its parts' bar outcomes ('met', 'not met', 'not resolved', as :func:`bar` gives them):
    'supported' when every part is met, 'not supported' when any part is not met, 'not resolved' otherwise."""
    outcomes = list(outcomes)
    unknown = set(outcomes) - {"met", "not met", "not resolved"}
    if not outcomes or unknown:
        raise ValueError(f"expected one or more outcomes among 'met', 'not met', 'not resolved', got {outcomes}")
    if all(o == "met" for o in outcomes):
        return "supported"
    return "not supported" if "not met" in outcomes else "not resolved"


def show_bars(bars: dict[str, dict]) -> str:
    """One line per bar of :func:`bar`: its outcome, value ± se against its line, and by how much it clears or
    misses it."""
    lines = []
    for name, b in bars.items():
        se = f" ± {b['se']:.3f}" if b["se"] else ""
        line_se = f" ± {b['line_se']:.3f}" if b.get("line_se") else ""
        lines.append(f"{b['outcome']:>12s}: {name}: {b['value']:.3f}{se} against {b['line']:.3f}{line_se} "
                     f"({'clears' if b['margin'] >= 0 else 'misses'} it by {abs(b['margin']):.3f})")
    return "\n".join(lines)


def shortfalls(scores: dict, real: dict, tolerance: float = 0.1) -> list[str]:
    """Where a model's clips fall short of real ones, worst first: each of frame quality, identity consistency,
    motion consistency and diversity more than ``tolerance`` (a fraction) below the real row's, and a speed ratio
    more than ``tolerance`` away from 1. Inputs: two rows of :func:`score` (the model's, the real clips'). Returns
    lines such as 'diversity 0.13 (real 1.00)'; empty where the model is within ``tolerance`` everywhere."""
    gaps = [(scores[m] / real[m], f"{m} {scores[m]:.2f} (real {real[m]:.2f})")
            for m in ("frame_quality", "identity_consistency", "motion_consistency", "diversity")
            if scores[m] < (1 - tolerance) * real[m]]
    if abs(scores["speed_ratio"] - 1) > tolerance:
        gaps.append((1 - abs(scores["speed_ratio"] - 1),
                     f"speed_ratio {scores['speed_ratio']:.2f} (real {real['speed_ratio']:.2f})"))
    return [text for _, text in sorted(gaps)]


def headline(scores: dict, *, n_real: int, minutes: float, **extra) -> dict:
    """The numbers a results file leads with (``metrics.headline``): fd with its SE, frame quality, identity,
    diversity, motion, ``n_gen``, ``n_real`` and the minutes of training, plus any ``extra`` numbers."""
    out = {k: scores[k] for k in HEADLINE_KEYS if k in scores}
    return out | {"n_gen": scores.get("n_gen"), "n_real": n_real, "minutes": round(minutes, 2)} | extra


def format_rows(rows: dict[str, dict], metrics: tuple[str, ...] = ("fd", "frame_quality", "identity_consistency",
                                                                      "diversity")) -> str:
    """A plain-text table of rows × metrics, fd with ± its standard error."""
    width = max([18, *(len(name) + 2 for name in rows)])             # the row names' column fits the longest
    lines = [" " * width + "".join(f"{m:>22s}" for m in metrics)]
    for name, values in rows.items():
        cells = []
        for m in metrics:
            v = values.get(m)
            if v is None:
                cells.append(f"{'—':>22s}")
            elif m == "fd" and values.get("fd_se") is not None:
                text = f"{v:.2f} ± {values['fd_se']:.2f}"
                cells.append(f"{text:>22s}")
            else:
                cells.append(f"{v:22.3f}")
        lines.append(f"{name:{width}s}" + "".join(cells))
    return "\n".join(lines)
