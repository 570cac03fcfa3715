"""Data-parallel training over any number of GPUs with PyTorch's DDP, unchanged on one GPU or the CPU.

    torchrun --standalone --nproc_per_node=8 -m vgcourse.train.distributed --steps 2000 --batch 256
    python -m vgcourse.train.distributed --steps 2000 --batch 256          # the same run on one device

Run as a command, this module hands over to :mod:`vgcourse.scripts.train_dit` (a pixel-space DiT on moving digits,
also ``-m vgcourse.scripts.train_dit``); imported, it is the library: the helpers below, for any model.

torchrun starts one process per GPU and sets ``RANK``, ``LOCAL_RANK``, ``WORLD_SIZE``, ``MASTER_ADDR`` and
``MASTER_PORT``. With ``WORLD_SIZE`` > 1, :func:`init_distributed` joins the process group from those
variables (NCCL on CUDA, gloo on the CPU); otherwise it does nothing and every helper here is the identity.

What makes the runs the same whatever the number of GPUs:

- **One global batch per step.** Step i's global batch is the dataset stream's batch i, exactly the batch a
  one-process run sees; rank r trains on its rows [r·b, (r+1)·b), b = global batch / world size
  (:func:`shard_batches`). Each rank renders the whole batch and keeps its rows: generation is cheap next to a
  DiT step, and no rank needs to know how the others draw.
- **One update.** DDP broadcasts rank 0's weights when it wraps the model and, in backward, all-reduces the
  gradients to their mean over ranks (Li et al. 2020, "PyTorch Distributed", §3). With equal shards, the mean
  of the per-rank mean losses is the mean loss over the global batch, so every rank takes the step that one
  process would take on the whole batch. The test checks this equality on two CPU processes.
- **Different noise per rank.** Diffusion losses draw t and ε from the process's RNG: :func:`seed_for_rank`
  gives each rank its own stream, so the global batch is not noised the same way on every rank.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any, Callable

import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel as DDP

from vgcourse.nn.wrappers import unwrap  # noqa: F401 — re-exported: vgcourse.train.distributed.unwrap


@dataclass(frozen=True)
class DistributedEnv:
    """Where this process sits: its rank among ``world_size`` processes and its device."""

    rank: int = 0
    local_rank: int = 0
    world_size: int = 1
    device: torch.device = torch.device("cpu")

    @property
    def distributed(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        """Rank 0 logs, evaluates and saves; the others only train."""
        return self.rank == 0


def _env_int(name: str, default: int) -> int:
    value = os.environ.get(name, "")
    try:
        return int(value) if value.strip() else default
    except ValueError:
        raise ValueError(f"expected the environment variable {name} to be an integer (torchrun sets it), "
                         f"got {value!r}") from None


def init_distributed(backend: str | None = None, device: torch.device | str | None = None) -> DistributedEnv:
    """Join the process group described by torchrun's environment variables, or stay a single process.

    Inputs:
        backend: 'nccl' or 'gloo'; default NCCL when CUDA is available, else gloo.
        device: only for a single process: where to train (default CUDA if available, else the CPU).
            Under torchrun each rank takes ``cuda:LOCAL_RANK`` (or the CPU with gloo).
    """
    world = _env_int("WORLD_SIZE", 1)
    if world <= 1:
        dev = torch.device(device if device is not None else "cuda" if torch.cuda.is_available() else "cpu")
        return DistributedEnv(device=dev)
    # NVLink multicast (NVLS) can take shared multi-GPU hosts out of service; keep it off unless a user decides
    # otherwise. It must be set before NCCL initialises.
    os.environ.setdefault("NCCL_NVLS_ENABLE", "0")
    rank, local_rank = _env_int("RANK", 0), _env_int("LOCAL_RANK", 0)
    if not 0 <= rank < world:
        raise ValueError(f"expected 0 <= RANK < WORLD_SIZE, got RANK={rank}, WORLD_SIZE={world}")
    backend = backend or ("nccl" if torch.cuda.is_available() else "gloo")
    if backend == "nccl":
        torch.cuda.set_device(local_rank)
        dev = torch.device("cuda", local_rank)
    else:
        dev = torch.device("cpu")
    if not dist.is_initialized():
        dist.init_process_group(backend, init_method="env://", rank=rank, world_size=world)
    return DistributedEnv(rank=rank, local_rank=local_rank, world_size=world, device=dev)


def seed_for_rank(seed: int, env: DistributedEnv) -> int:
    """A different RNG seed per rank (for t and ε of the loss); rank 0 keeps ``seed``, so one process is unchanged."""
    return seed + 1_000_003 * env.rank


def wrap_model(model: nn.Module, env: DistributedEnv) -> nn.Module:
    """DDP around ``model`` (already on ``env.device``) when distributed; the model itself otherwise."""
    if not env.distributed:
        return model
    device_ids = [env.device.index] if env.device.type == "cuda" else None
    return DDP(model, device_ids=device_ids)


def local_rows(batch: Any, rank: int, world_size: int) -> Any:
    """Rows [rank·b, (rank+1)·b) of a global batch, b = batch size / world size.

    Inputs: a VideoBatch (anything with ``__getitem__`` on slices and ``video``), a tensor (B, ...),
    a tuple/list of tensors or a dict of tensors sharing the leading dimension B.
    """
    if world_size == 1:
        return batch
    if hasattr(batch, "video"):
        n = batch.video.shape[0]
    elif isinstance(batch, torch.Tensor):
        n = batch.shape[0]
    elif isinstance(batch, (tuple, list)) and batch:
        n = batch[0].shape[0]
    elif isinstance(batch, dict) and batch:
        n = next(iter(batch.values())).shape[0]
    else:
        raise TypeError(f"expected a VideoBatch, a tensor, or a tuple/list/dict of tensors, got {type(batch).__name__}")
    if n % world_size:
        raise ValueError(f"expected a global batch divisible by the world size so that every rank trains on as many "
                         f"rows, got batch {n} for {world_size} processes")
    per = n // world_size
    rows = slice(rank * per, (rank + 1) * per)
    if isinstance(batch, (tuple, list)):
        return type(batch)(b[rows] for b in batch)
    if isinstance(batch, dict):
        return {k: v[rows] for k, v in batch.items()}
    return batch[rows]


def shard_batches(batch_fn: Callable[[int], Any], env: DistributedEnv) -> Callable[[int], Any]:
    """step -> this rank's rows of ``batch_fn(step)``, the global batch of that step (identity on one process)."""
    if not env.distributed:
        return batch_fn

    def local_batch(step: int) -> Any:
        return local_rows(batch_fn(step), env.rank, env.world_size)

    return local_batch


def all_reduce_mean(value: torch.Tensor | float, env: DistributedEnv) -> float:
    """The mean of a scalar over ranks (for logging a global loss); the value itself on one process."""
    if not env.distributed:
        return float(value)
    t = torch.as_tensor(value, dtype=torch.float64, device=env.device).clone()
    dist.all_reduce(t)
    return float(t) / env.world_size


def cleanup() -> None:
    """Leave the process group (call at the end of a torchrun script)."""
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


if __name__ == "__main__":  # the command above: a script entry, the DiT training of vgcourse.scripts.train_dit
    from vgcourse.scripts.train_dit import main

    main()
