"""Retrain the shipped probe networks, reproducibly, on freshly generated data.

    python -m vgcourse.scripts.train_probes            # both probes, on the CPU (about 10 minutes on 2 cores)
    python -m vgcourse.scripts.train_probes --device cuda

The probes see moving digits at 32×32 and 64×64 with one to three digits, so one probe scores every chapter.
The weights go to ``data/weights/`` and their sha256 into ``data/weights/SHA256SUMS``. The probes, their targets and
:func:`vgcourse.metrics.probe_accuracy` live in :mod:`vgcourse.metrics.probes`; this script only trains them.
"""

from __future__ import annotations

import argparse

import torch
import torch.nn.functional as F

from vgcourse.checkpoint import WEIGHTS, register_shipped, save_checkpoint
from vgcourse.data import MovingDigits
from vgcourse.data.base import VideoBatch
from vgcourse.metrics.probes import PROBES, FrameProbe, VideoProbe, class_speeds, multi_hot, probe_accuracy
from vgcourse.paths import data_dir
from vgcourse.train import TrainConfig, Trainer

# Training mixtures: (size, digits) pairs, cycled batch by batch.
MIXTURE = [(32, 2), (64, 2), (32, 1), (64, 3), (32, 3), (64, 1)]


def probe_batch(step: int, batch_size: int, device: torch.device, frames: int = 16, seed: int = 7) -> VideoBatch:
    """Batch ``step`` of the probes' training stream: a moving-digits batch from the mixture, resized to 32."""
    size, digits = MIXTURE[step % len(MIXTURE)]
    data = MovingDigits(size=size, frames=frames, digits=digits)
    return data.batch(batch_size, seed=seed * 1_000_003 + step, device=device)


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
