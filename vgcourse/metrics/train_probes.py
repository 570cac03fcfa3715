"""Retrain the shipped probe networks, reproducibly, on freshly generated data.

    python -m vgcourse.metrics.train_probes            # both probes, on the CPU (about 10 minutes on 2 cores)
    python -m vgcourse.metrics.train_probes --device cuda

The probes see moving digits at 32×32 and 64×64 with one to three digits, so one probe scores every chapter.
The weights go to ``data/weights/`` and their sha256 into ``data/weights/SHA256SUMS``.
"""

from __future__ import annotations

import argparse

import torch
import torch.nn.functional as F

from vgcourse.data import MovingDigits
from vgcourse.data.base import VideoBatch
from vgcourse.metrics.probes import PROBES, FrameProbe, VideoProbe
from vgcourse.paths import data_dir
from vgcourse.train import TrainConfig, Trainer, save_checkpoint
from vgcourse.train.checkpoint import WEIGHTS, register_shipped

CLASSES = 10
# Training mixtures: (size, digits) pairs, cycled batch by batch.
MIXTURE = [(32, 2), (64, 2), (32, 1), (64, 3), (32, 3), (64, 1)]


def probe_batch(step: int, batch_size: int, device: torch.device, frames: int = 16, seed: int = 7) -> VideoBatch:
    """Batch ``step`` of the probes' training stream: a moving-digits batch from the mixture, resized to 32."""
    size, digits = MIXTURE[step % len(MIXTURE)]
    data = MovingDigits(size=size, frames=frames, digits=digits)
    return data.batch(batch_size, seed=seed * 1_000_003 + step, device=device)


def multi_hot(classes: torch.Tensor, n: int = CLASSES) -> torch.Tensor:
    """(B, K) class indices -> (B, n) 0/1 targets."""
    return torch.zeros(classes.shape[0], n, device=classes.device).scatter_(1, classes, 1.0)


def class_speeds(batch: VideoBatch, size: int, n: int = CLASSES) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-class |v_y|, |v_x| as canvas fractions per frame, averaged over the digits of that class.

    Returns targets (B, n, 2) and a mask (B, n) of the classes present. Speeds are constant through elastic
    bounces (only signs flip), which makes them a clean motion target.
    """
    speed = batch.labels["velocities"][:, 0].abs() / size  # (B, K, 2)
    classes = batch.labels["classes"]  # (B, K)
    one_hot = F.one_hot(classes, n).float()  # (B, K, n)
    count = one_hot.sum(1)  # (B, n)
    total = torch.einsum("bkn,bkd->bnd", one_hot, speed)
    return total / count.clamp(min=1)[..., None], (count > 0).float()


def frame_loss(model: FrameProbe, batch: VideoBatch) -> torch.Tensor:
    logits = model(batch.video[:, :, ::4])  # (B, T/4, 10): frames of a clip are alike, so 4 of 16 suffice
    target = multi_hot(batch.labels["classes"])[:, None].expand_as(logits)
    return F.binary_cross_entropy_with_logits(logits, target)


def video_loss(model: VideoProbe, batch: VideoBatch) -> dict[str, torch.Tensor]:
    logits, speed = model(batch.video)
    target_speed, present = class_speeds(batch, batch.video.shape[-1])
    cls = F.binary_cross_entropy_with_logits(logits, multi_hot(batch.labels["classes"]))
    motion = ((speed - target_speed * 10) ** 2).sum(-1).mul(present).sum() / present.sum()  # speeds in 1/10 canvas
    return {"loss": cls + motion, "class": cls, "speed": motion}


def train_probe(name: str, steps: int, batch_size: int, device: torch.device, seed: int = 0) -> dict:
    torch.manual_seed(seed)
    cls, kwargs = PROBES[name]
    model = cls(**kwargs).to(device)
    opt = torch.optim.AdamW(model.parameters(), lr=2e-3, weight_decay=1e-4)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=2e-3, total_steps=steps, pct_start=0.1)
    loss = frame_loss if cls is FrameProbe else video_loss
    trainer = Trainer(model, opt, lambda s: probe_batch(s, batch_size, device), TrainConfig(steps=steps, desc=name),
                      loss_fn=loss, schedulers={"main": sched}, model_config={"name": name} | kwargs)
    trainer.fit()
    path = data_dir() / WEIGHTS / f"{name}.pt"
    save_checkpoint(path, model={k: v.cpu() for k, v in model.state_dict().items()}, config=kwargs,
                    trained={"steps": steps, "batch_size": batch_size, "seed": seed})
    digest = register_shipped(name)
    print(f"{name}: final {trainer.history[-1]}; sha256 {digest[:16]}…")
    return trainer.history[-1]


@torch.no_grad()
def probe_accuracy(size: int = 32, digits: int = 2, n: int = 256,
                   device: torch.device | str = "cpu") -> dict[str, float]:
    """Accuracy of the shipped probes on the held-out digits (never seen in training).

    ``frame_set_accuracy``: frames whose top-K classes equal the true digit set; ``video_set_accuracy``: the same
    for the video probe's class head; ``speed_error``: mean |predicted − true| per-class speed in pixels/frame.
    """
    from vgcourse.metrics.probes import load_probe

    batch = MovingDigits(size=size, digits=digits).heldout(n, device=device)
    frame_probe = load_probe("probe_moving_digits_frame", device)
    video_probe = load_probe("probe_moving_digits_video", device)
    truth = multi_hot(batch.labels["classes"]).bool()  # (B, 10)
    k = truth.sum(-1, keepdim=True)  # distinct classes per clip
    def set_of(scores):  # the top-k classes as a 0/1 mask, k = distinct true classes
        ranks = scores.argsort(-1, descending=True).argsort(-1)
        return ranks < k.view(-1, *([1] * (scores.ndim - 1)))
    frame_scores = frame_probe(batch.video)  # (B, T, 10)
    frame_ok = (set_of(frame_scores) == truth[:, None]).all(-1)
    logits, speed = video_probe(batch.video)
    video_ok = (set_of(logits) == truth).all(-1)
    target, present = class_speeds(batch, size)
    err = ((speed / 10 - target).abs().sum(-1) * present).sum() / present.sum() / 2 * size
    return {"frame_set_accuracy": float(frame_ok.float().mean()), "video_set_accuracy": float(video_ok.float().mean()),
            "speed_error_px": float(err)}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--steps", type=int, default=1500)
    parser.add_argument("--only", choices=sorted(PROBES), default=None)
    parser.add_argument("--batch-size", type=int, default=None, help="default: 32 clips (frame), 24 (video)")
    args = parser.parse_args(argv)
    device = torch.device(args.device)
    torch.use_deterministic_algorithms(True, warn_only=True)
    for name in ([args.only] if args.only else sorted(PROBES)):
        batch_size = args.batch_size or (32 if "frame" in name else 24)
        train_probe(name, args.steps, batch_size, device)
    if not args.only:
        for size in (32, 64):
            print(f"held-out accuracy at {size}×{size}:", probe_accuracy(size=size, device=device))


if __name__ == "__main__":
    main()
