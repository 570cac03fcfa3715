"""Train a pixel-space DiT on moving digits, data-parallel with PyTorch's DDP over any number of GPUs.

    torchrun --standalone --nproc_per_node=8 -m vgcourse.scripts.train_dit --steps 2000 --batch 256
    python -m vgcourse.scripts.train_dit --steps 2000 --batch 256          # the same run on one device

``-m vgcourse.train.distributed`` runs this script too. What makes the runs the same whatever the number of GPUs
(one global batch per step, one update, different noise per rank) is explained in :mod:`vgcourse.train.distributed`.
"""

from __future__ import annotations

import argparse

import torch

from vgcourse.checkpoint import save_checkpoint
from vgcourse.data import MovingDigits
from vgcourse.diffusion import diffusion_loss, linear_schedule
from vgcourse.dit import DiT, DiTConfig
from vgcourse.train import TrainConfig, Trainer
from vgcourse.train.distributed import (
    all_reduce_mean,
    cleanup,
    init_distributed,
    seed_for_rank,
    shard_batches,
    wrap_model,
)


def main(argv: list[str] | None = None) -> dict:
    """Train a pixel-space DiT on moving digits with DDP; rank 0 prints the summary and saves the EMA weights."""
    p = argparse.ArgumentParser(prog="torchrun --nproc_per_node=N -m vgcourse.scripts.train_dit",
                                description="DiT on moving digits, data-parallel over N GPUs (N = 1 works too).")
    p.add_argument("--steps", type=int, default=1000)
    p.add_argument("--batch", type=int, default=64, help="global batch per step, split over the ranks")
    p.add_argument("--size", type=int, default=32)
    p.add_argument("--frames", type=int, default=16)
    p.add_argument("--depth", type=int, default=12)
    p.add_argument("--hidden", type=int, default=512)
    p.add_argument("--heads", type=int, default=8)
    p.add_argument("--patch", type=int, default=2)
    p.add_argument("--temporal-patch", type=int, default=2)
    p.add_argument("--lr", type=float, default=3e-4)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--compile", action="store_true")
    p.add_argument("--out", default=None, help="where rank 0 saves the EMA weights (.pt)")
    args = p.parse_args(argv)

    env = init_distributed()
    torch.manual_seed(args.seed)  # the same initial weights everywhere (DDP broadcasts rank 0's anyway)
    data = MovingDigits(size=args.size, frames=args.frames)
    config = DiTConfig(input_size=args.size, frames=args.frames, in_channels=data.channels, num_classes=0,
                       depth=args.depth, hidden_size=args.hidden, num_heads=args.heads, patch_size=args.patch,
                       temporal_patch=args.temporal_patch)
    model = DiT(config).to(env.device)
    ddp_model = wrap_model(model, env)
    torch.manual_seed(seed_for_rank(args.seed, env))  # each rank its own t and ε
    schedule = linear_schedule().to(env.device)
    opt = torch.optim.AdamW(model.parameters(), lr=args.lr, betas=(0.9, 0.99), weight_decay=0.0,
                            fused=env.device.type == "cuda")
    trainer = Trainer(ddp_model, opt, shard_batches(data.stream(args.batch, seed=args.seed, device=env.device), env),
                      TrainConfig(steps=args.steps, ema_decay=0.999, compile=args.compile, progress=env.is_main,
                                  desc=f"DiT DDP x{env.world_size}"),
                      loss_fn=lambda m, b: diffusion_loss(m, b.video, schedule), ema_of=model)
    summary = trainer.fit()
    loss = all_reduce_mean(trainer.history[-1]["loss"], env) if trainer.history else float("nan")
    out = summary.as_dict() | {"world_size": env.world_size, "global_batch": args.batch, "final_loss": loss}
    if env.is_main:
        out["global_samples_per_s"] = (summary.samples_per_s or 0.0) * env.world_size
        print({k: v for k, v in out.items() if v is not None})
        if args.out:
            save_checkpoint(args.out, model=trainer.ema.model.state_dict(), config=vars(config))
    cleanup()
    return out


if __name__ == "__main__":
    main()
