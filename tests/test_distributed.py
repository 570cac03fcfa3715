"""Tests of vgcourse.train.distributed: two CPU processes under DDP take the step one process takes on the whole
batch; the documented command (the DiT training script, vgcourse.scripts.train_dit) runs."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time

import pytest
import torch
import torch.multiprocessing as mp
import torch.nn.functional as F

import vgcourse.train.distributed as distributed
from vgcourse.checkpoint import load_checkpoint
from vgcourse.data import MovingDigits
from vgcourse.dit import DiT, DiT_Tiny, DiTConfig
from vgcourse.train import TrainConfig, Trainer
from vgcourse.train.distributed import (
    DistributedEnv,
    init_distributed,
    local_rows,
    seed_for_rank,
    shard_batches,
    unwrap,
    wrap_model,
)

GLOBAL_BATCH, STEPS, WORLD = 4, 3, 2
SPAWN_LIMIT_S = 240  # two fresh processes import torch and train 3 tiny steps: well under a minute on 2 cores
CONFIG = DiT_Tiny(input_size=8, frames=2, in_channels=1, num_classes=0, depth=1, hidden_size=32, num_heads=2,
                  patch_size=2, temporal_patch=1)


def global_batch(step: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The step's whole batch: noisy inputs, timesteps and targets, from a generator seeded by the step."""
    g = torch.Generator().manual_seed(100 + step)
    x = torch.randn(GLOBAL_BATCH, 1, 2, 8, 8, generator=g)
    t = torch.randint(0, 1000, (GLOBAL_BATCH,), generator=g)
    target = torch.randn(GLOBAL_BATCH, 1, 2, 8, 8, generator=g)
    return x, t, target


def loss_fn(model: torch.nn.Module, batch: tuple[torch.Tensor, ...]) -> torch.Tensor:
    x, t, target = batch
    return F.mse_loss(model(x, t), target)


def train(env: DistributedEnv) -> dict[str, torch.Tensor]:
    """The DiT training path of the helpers: same seed, wrap, shard, Trainer; returns the final weights."""
    torch.manual_seed(0)
    model = DiT(CONFIG)
    with torch.no_grad():  # leave the zero init, so that every parameter gets a gradient
        for p in model.parameters():
            p.add_(0.05 * torch.randn_like(p))
    wrapped = wrap_model(model, env)
    # SGD: an update linear in the gradient, so float round-off stays round-off (Adam would divide the
    # round-off of a zero gradient, e.g. the key bias's, by its own tiny norm)
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    trainer = Trainer(wrapped, opt, shard_batches(global_batch, env),
                      TrainConfig(steps=STEPS, grad_clip=1.0, ema_decay=0.5, progress=False), loss_fn=loss_fn,
                      ema_of=unwrap(wrapped))
    trainer.fit()
    return {k: v.detach().clone() for k, v in unwrap(wrapped).state_dict().items()}


def worker(rank: int, port: int, out_dir: str) -> None:
    import os

    torch.set_num_threads(1)
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), WORLD_SIZE=str(WORLD), RANK=str(rank),
                      LOCAL_RANK=str(rank))
    env = init_distributed(backend="gloo")
    assert env.world_size == WORLD and env.rank == rank and env.distributed
    state = train(env)
    torch.save(state, f"{out_dir}/rank{rank}.pt")
    torch.distributed.destroy_process_group()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def loopback_problem(timeout: float = 5.0) -> str | None:
    """Why two processes could not talk over 127.0.0.1 here (a sandbox without a loopback interface), or None."""
    try:
        with socket.socket() as server:
            server.settimeout(timeout)
            server.bind(("127.0.0.1", 0))
            server.listen(1)
            with socket.create_connection(server.getsockname(), timeout=timeout):
                server.accept()[0].close()
    except OSError as err:
        return f"no working loopback interface: a connection to 127.0.0.1 failed ({err!r})"
    return None


def spawn_with_limit(fn, args: tuple, nprocs: int, limit_s: float) -> None:
    """``torch.multiprocessing.spawn`` that fails, naming the limit, when the processes are not done in ``limit_s``
    (and kills them): gloo waits for its peers without end if they cannot reach each other."""
    context = mp.start_processes(fn, args=args, nprocs=nprocs, join=False, start_method="spawn")
    deadline = time.monotonic() + limit_s
    try:
        while not context.join(timeout=max(0.1, deadline - time.monotonic())):
            if time.monotonic() >= deadline:
                alive = sum(p.is_alive() for p in context.processes)
                pytest.fail(f"{alive} of {nprocs} DDP processes still running after {limit_s:g} s; expected them to "
                            "finish well within it (do they reach each other over 127.0.0.1?)")
    finally:
        for process in context.processes:
            if process.is_alive():
                process.kill()


@pytest.mark.timeout(SPAWN_LIMIT_S + 60)
def test_two_process_ddp_update_equals_one_process_on_the_whole_batch(tmp_path, monkeypatch) -> None:
    problem = loopback_problem()
    if problem:
        pytest.skip(problem)
    spawn_with_limit(worker, (free_port(), str(tmp_path)), WORLD, SPAWN_LIMIT_S)
    for var in ("WORLD_SIZE", "RANK", "LOCAL_RANK"):
        monkeypatch.delenv(var, raising=False)
    single = train(init_distributed(device="cpu"))
    start = DiT(CONFIG).state_dict()
    for rank in range(WORLD):
        ranked = torch.load(tmp_path / f"rank{rank}.pt", weights_only=True)
        assert ranked.keys() == single.keys()
        for k in single:
            torch.testing.assert_close(ranked[k], single[k], rtol=1e-5, atol=1e-6, msg=f"rank {rank}, {k}")
    moved = max((single[k] - start[k]).abs().max().item() for k in single)
    assert moved > 1e-3  # the runs really trained


def test_single_process_is_unchanged(monkeypatch) -> None:
    for var in ("WORLD_SIZE", "RANK", "LOCAL_RANK"):
        monkeypatch.delenv(var, raising=False)
    env = init_distributed(device="cpu")
    assert (env.rank, env.world_size, env.distributed, env.is_main) == (0, 1, False, True)
    model = DiT(CONFIG)
    assert wrap_model(model, env) is model and unwrap(model) is model
    assert shard_batches(global_batch, env) is global_batch
    assert seed_for_rank(7, env) == 7


def test_spawn_with_limit_fails_saying_so_when_processes_hang() -> None:
    with pytest.raises(pytest.fail.Exception, match=r"2 of 2 DDP processes still running after 1 s"):
        spawn_with_limit(_sleep, (60,), 2, 1.0)


def _sleep(rank: int, seconds: float) -> None:
    time.sleep(seconds)


def test_loopback_problem_says_why(monkeypatch) -> None:
    assert loopback_problem() is None  # this machine has a loopback interface (else the DDP test is skipped)

    def refuse(*args, **kwargs):
        raise ConnectionRefusedError(111, "Connection refused")

    monkeypatch.setattr(socket, "create_connection", refuse)
    assert "no working loopback interface: a connection to 127.0.0.1 failed" in loopback_problem()


def test_local_rows_partition_the_global_batch(monkeypatch) -> None:
    batch = MovingDigits(size=16, frames=2, digits=1, digit_size=8).batch(6, seed=0)
    parts = [local_rows(batch, r, 3) for r in range(3)]
    assert [len(p) for p in parts] == [2, 2, 2]
    torch.testing.assert_close(torch.cat([p.video for p in parts]), batch.video)
    torch.testing.assert_close(torch.cat([p.labels["classes"] for p in parts]), batch.labels["classes"])
    x, t, target = global_batch(0)
    first = local_rows((x, t, target), 1, 2)
    assert isinstance(first, tuple) and torch.equal(first[1], t[2:])
    assert torch.equal(local_rows({"x": x}, 0, 4)["x"], x[:1])
    assert seed_for_rank(7, DistributedEnv(rank=1, world_size=2)) != 7
    with pytest.raises(ValueError, match="divisible by the world size"):
        local_rows(batch, 0, 4)
    monkeypatch.setenv("WORLD_SIZE", "two")
    with pytest.raises(ValueError, match="WORLD_SIZE to be an integer"):
        init_distributed()


@pytest.mark.timeout(180)
def test_the_documented_command_trains_a_dit_and_saves_it(tmp_path) -> None:
    """``python -m vgcourse.train.distributed`` (one process) hands over to the script, which trains and saves."""
    assert not hasattr(distributed, "main")  # the library module holds no script: vgcourse.scripts.train_dit does
    env = {k: v for k, v in os.environ.items() if k not in ("WORLD_SIZE", "RANK", "LOCAL_RANK")}
    out = subprocess.run([sys.executable, "-m", "vgcourse.train.distributed", "--steps", "2", "--batch", "2",
                          "--size", "8", "--frames", "2", "--depth", "1", "--hidden", "32", "--heads", "2",
                          "--patch", "4", "--temporal-patch", "1", "--out", str(tmp_path / "dit.pt")],
                         capture_output=True, text=True, timeout=150, env=env)
    assert out.returncode == 0, out.stderr[-2000:]
    assert "'world_size': 1" in out.stdout and "'steps': 2" in out.stdout
    saved = load_checkpoint(tmp_path / "dit.pt")
    assert saved["config"]["hidden_size"] == 32
    DiT(DiTConfig(**saved["config"])).load_state_dict(saved["model"])  # the EMA weights of that DiT, every one
