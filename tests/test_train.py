"""The training loop: resume equals an uninterrupted run, NaN stops, EMA, two-optimizer steps, FLOPs, checkpoints."""


import math
import time

import pytest
import torch
from torch import nn

from vgcourse import checkpoint as ckpt
from vgcourse.checkpoint import CheckpointError, load_checkpoint, load_model_state, load_shipped, save_checkpoint
from vgcourse.data import MovingDigits
from vgcourse.train import EMA, NonFiniteLossError, TrainConfig, Trainer, count_flops, warmup_cosine
from vgcourse.train.schedules import retarget


def tiny_model():
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv3d(1, 4, 3, padding=1), nn.GELU(), nn.Conv3d(4, 1, 3, padding=1))


def denoise_loss(model, batch):
    noise = torch.randn_like(batch.video)  # uses the global RNG: resume must restore it
    return (model(batch.video + 0.3 * noise) - batch.video).pow(2).mean()


def make_trainer(tmp_path=None, steps=8, ema=0.9):
    model = tiny_model()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-2)
    data = MovingDigits(16, frames=4, digits=1, digit_size=8)
    cfg = TrainConfig(steps=steps, ema_decay=ema, progress=False, log_every=2,
                      checkpoint_path=str(tmp_path / "run.pt") if tmp_path else None)
    return Trainer(model, opt, data.stream(4, seed=1), cfg, loss_fn=denoise_loss, model_config={"width": 4})


def test_resume_equals_uninterrupted_run(tmp_path):
    torch.manual_seed(123)
    full = make_trainer(steps=8)
    full.fit()
    torch.manual_seed(123)
    first = make_trainer(tmp_path, steps=8)
    first.fit(steps=4)  # stops half way and writes its checkpoint
    torch.manual_seed(999)  # a different process would start from another RNG state
    second = make_trainer(steps=8).load(tmp_path / "run.pt")
    assert second.step == 4
    second.fit()
    for a, b in zip(full.model.state_dict().values(), second.model.state_dict().values()):
        torch.testing.assert_close(a, b)
    for a, b in zip(full.ema.model.state_dict().values(), second.ema.model.state_dict().values()):
        torch.testing.assert_close(a, b)
    assert [r["step"] for r in second.history] == [r["step"] for r in full.history]


def test_loss_goes_down_and_summary_is_filled():
    tr = make_trainer(steps=30)
    summary = tr.fit()
    assert tr.history[-1]["loss"] < tr.history[0]["loss"]
    assert summary.steps == 30 and summary.samples_per_s > 0 and summary.flops_per_step > 0
    assert summary.train_flops == summary.flops_per_step * 30
    assert summary.mfu is None  # no peak is known for CPUs


def test_nan_stops_with_step_and_name():
    model = nn.Linear(2, 1)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)

    def loss_fn(m, batch):
        loss = m(batch).pow(2).mean()
        return {"loss": loss * (float("nan") if batch[0, 0] == 7 else 1.0), "aux": loss.detach()}

    batches = lambda step: torch.full((3, 2), float(step))  # noqa: E731
    tr = Trainer(model, opt, batches, TrainConfig(steps=20, progress=False, log_every=5, grad_clip=None),
                 loss_fn=loss_fn)
    with pytest.raises(NonFiniteLossError, match="loss became nan at step 7"):
        tr.fit()


@pytest.mark.parametrize("decay, want", [(0.5, 1.25), (0.9, 0.29)])
def test_ema_matches_closed_form(decay, want):
    """0 -> d·0 + (1 − d)·1 -> d·(1 − d) + (1 − d)·2: 1.25 at d = 0.5, 0.29 at 0.9 (at 0.5 alone a swapped decay,
    lerp by d instead of 1 − d, would pass)."""
    model = nn.Linear(1, 1, bias=False)
    with torch.no_grad():
        model.weight.fill_(0.0)
    ema = EMA(model, decay=decay)
    for value in (1.0, 2.0):
        with torch.no_grad():
            model.weight.fill_(value)
        ema.update(model)
    assert ema.model.weight.item() == pytest.approx(want)
    with pytest.raises(ValueError):
        EMA(model, decay=1.0)


def test_two_optimizer_step_like_a_gan():
    torch.manual_seed(0)
    models = nn.ModuleDict({"G": nn.Linear(2, 2), "D": nn.Linear(2, 1)})
    opts = {"disc": torch.optim.SGD(models["D"].parameters(), lr=0.1),
            "gen": torch.optim.SGD(models["G"].parameters(), lr=0.1)}
    seen = []

    def step(trainer, batch):
        g, d = trainer.model["G"], trainer.model["D"]
        d_loss = d(g(batch).detach()).mean() - d(batch).mean()
        trainer.optimize(d_loss, "disc")
        g_loss = -d(g(batch)).mean()
        before = [p.clone() for p in d.parameters()]
        trainer.optimize(g_loss, "gen")
        seen.append(all(torch.equal(a, b) for a, b in zip(before, d.parameters())))
        return {"d_loss": d_loss, "g_loss": g_loss}

    tr = Trainer(models, opts, lambda s: torch.randn(4, 2), TrainConfig(steps=5, progress=False, ema_decay=0.9),
                 step_fn=step, ema_of=models["G"])
    tr.fit()
    assert all(seen), "the generator's step must not move the discriminator"
    assert set(tr.history[-1]) == {"step", "d_loss", "g_loss"}
    assert isinstance(tr.ema.model, nn.Linear)
    with pytest.raises(ValueError, match="exactly one"):
        Trainer(models, opts, lambda s: None, TrainConfig(steps=1))


def _gan_parts(grad_clip=None):
    torch.manual_seed(0)
    models = nn.ModuleDict({"G": nn.Linear(2, 2), "D": nn.Linear(2, 1)})
    opts = {"disc": torch.optim.SGD(models["D"].parameters(), lr=0.1),
            "gen": torch.optim.SGD(models["G"].parameters(), lr=0.1)}
    return models, opts, TrainConfig(steps=4, progress=False, grad_clip=grad_clip, measure_flops=False)


def test_discriminator_update_equals_the_update_from_its_own_loss_alone():
    """The generator's backward also fills the discriminator's .grad; the discriminator's next update must not
    contain it (it did when the loop zeroed grads only after each step)."""
    models, opts, cfg = _gan_parts()
    gaps = []

    def step(trainer, batch):
        g, d = trainer.forward_model["G"], trainer.forward_model["D"]
        fake = g(batch).detach()
        d_loss = d(fake).mean() - d(batch).mean()
        before = [p.detach().clone() for p in d.parameters()]
        grads = torch.autograd.grad(d_loss, list(d.parameters()), retain_graph=True)  # from d_loss alone
        trainer.optimize(d_loss, "disc")
        gaps.append(max((p - (b - 0.1 * gr)).abs().max().item() for p, b, gr in zip(d.parameters(), before, grads)))
        g_loss = -d(g(batch)).mean()  # its backward reaches D's weights too
        trainer.optimize(g_loss, "gen")
        return {"d_loss": d_loss, "g_loss": g_loss}

    Trainer(models, opts, lambda s: torch.randn(4, 2, generator=torch.Generator().manual_seed(s)), cfg,
            step_fn=step).fit()
    assert len(gaps) == 4 and max(gaps) < 1e-7, f"the discriminator's updates differ from its own loss's: {gaps}"


def test_gradient_clipping_per_optimizer():
    models, opts, cfg = _gan_parts(grad_clip={"disc": 1e-3, "gen": None})
    moved = {}

    def step(trainer, batch):
        for name, key, sign in (("D", "disc", 1.0), ("G", "gen", -1.0)):
            net = trainer.model[name]
            before = torch.cat([p.detach().flatten() for p in net.parameters()])
            loss = sign * 100 * trainer.model["D"](trainer.model["G"](batch)).mean()
            trainer.optimize(loss, key)
            moved[name] = (torch.cat([p.detach().flatten() for p in net.parameters()]) - before).norm().item()
        return {}

    Trainer(models, opts, lambda s: torch.ones(4, 2), cfg, step_fn=step).fit(steps=1)
    assert moved["D"] <= 0.1 * 1e-3 * (1 + 1e-4)  # lr · max norm
    assert moved["G"] > 10 * moved["D"]
    assert TrainConfig(steps=1, grad_clip={"disc": 2.0}).clip_for("gen") is None
    with pytest.raises(KeyError, match="no optimizer named 'critic'"):
        Trainer(models, opts, lambda s: torch.ones(4, 2), cfg, step_fn=step).optimize(torch.tensor(0.0), "critic")


def test_compile_reaches_the_networks_a_step_fn_calls(monkeypatch):
    compiled = []

    def fake_compile(module):
        compiled.append(module)
        return module

    monkeypatch.setattr(torch, "compile", fake_compile)
    models, opts, cfg = _gan_parts()
    called = []
    tr = Trainer(models, opts, lambda s: torch.ones(4, 2), cfg,
                 step_fn=lambda trainer, batch: called.append(trainer.forward_model) or {})
    tr._compile_on = True  # compile is honoured on CUDA only; pretend this is CUDA
    tr.fit(steps=2)
    assert compiled == [models["G"], models["D"]] or compiled == [models["D"], models["G"]]
    assert set(called[-1].keys()) == {"G", "D"}


@pytest.mark.parametrize("kwargs, message", [
    ({"steps": -5}, "steps must be a positive integer, got -5"),
    ({"steps": 0}, "steps must be a positive integer, got 0"),
    ({"steps": 10, "max_minutes": -1.0}, "max_minutes must be positive"),
    ({"steps": 10, "ema_decay": 1.0}, r"ema_decay must be in \[0, 1\)"),
    ({"steps": 10, "ema_decay": -0.1}, r"ema_decay must be in \[0, 1\)"),
    ({"steps": 10, "grad_clip": 0.0}, "grad_clip must be a positive max norm"),
    ({"steps": 10, "log_every": 0}, "log_every must be a positive integer"),
])
def test_train_config_refuses_what_would_run_silently_wrong(kwargs, message):
    with pytest.raises(ValueError, match=message):
        TrainConfig(**kwargs)


def test_load_of_a_weights_only_file_says_what_it_lacks(tmp_path):
    tr = make_trainer(steps=2)
    save_checkpoint(tmp_path / "weights.pt", model=tr.model.state_dict())
    with pytest.raises(CheckpointError, match=r"not a training checkpoint.*lacks \['optimizers', 'step'\].*"
                                              r"load_model_state"):
        tr.load(tmp_path / "weights.pt")


def test_count_flops_of_a_matmul():
    a, b = torch.randn(8, 16), torch.randn(16, 4)
    assert count_flops(lambda: a @ b) == 2 * 8 * 16 * 4


def test_checkpoint_round_trip_and_errors(tmp_path):
    model = tiny_model()
    path = save_checkpoint(tmp_path / "m.pt", model=model.state_dict(), step=3, config={"a": 1})
    state = load_checkpoint(path)
    assert state["step"] == 3 and state["config"] == {"a": 1}
    other = tiny_model()
    load_model_state(other, state["model"])
    with pytest.raises(CheckpointError, match="does not fit"):
        load_model_state(nn.Linear(2, 2), state["model"])
    (tmp_path / "junk.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError, match="not a readable checkpoint"):
        load_checkpoint(tmp_path / "junk.pt")
    with pytest.raises(CheckpointError, match="no checkpoint"):
        load_checkpoint(tmp_path / "missing.pt")


def test_checkpoint_refuses_pickled_code(tmp_path):
    torch.save({"model": object()}, tmp_path / "evil.pt")  # weights_only=True refuses arbitrary objects
    with pytest.raises(CheckpointError):
        load_checkpoint(tmp_path / "evil.pt")


def test_shipped_weights_hash_checked(tmp_path, monkeypatch):
    import shutil

    from vgcourse.paths import data_dir
    data = tmp_path / "data"
    shutil.copytree(data_dir() / "weights", data / "weights")
    monkeypatch.setenv("VGCOURSE_DATA", str(data))
    assert "model" in load_shipped("probe_moving_digits_frame")
    target = data / "weights" / "probe_moving_digits_frame.pt"
    blob = bytearray(target.read_bytes())
    blob[-10] ^= 0xFF
    target.write_bytes(bytes(blob))
    with pytest.raises(CheckpointError, match="corrupt.*git checkout"):
        load_shipped("probe_moving_digits_frame")
    target.unlink()
    with pytest.raises(CheckpointError, match="missing"):
        load_shipped("probe_moving_digits_frame")
    with pytest.raises(CheckpointError, match="not listed"):
        load_shipped("no_such_weights")
    assert set(ckpt.shipped_hashes()) >= {"probe_moving_digits_video"}


def test_warmup_cosine_schedule():
    opt = torch.optim.SGD([nn.Parameter(torch.zeros(1))], lr=1.0)
    sched = warmup_cosine(opt, warmup=4, total=10, final=0.1)
    lrs = []
    for _ in range(11):
        lrs.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    assert lrs[0] == pytest.approx(0.25 * (0.1 + 0.9 * 0.5 * (1 + math.cos(0))))  # warm-up step 1 of 4
    assert lrs[10] == pytest.approx(0.1)  # the floor at the last step
    assert all(a >= b - 1e-12 for a, b in zip(lrs[3:], lrs[4:]))  # decays after the warm-up
    for step in (5, 7, 9):  # the ends and the decay hold for a linear schedule too; the values between are a cosine's
        assert lrs[step] == pytest.approx(0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * step / 10)))
    const = warmup_cosine(torch.optim.SGD([nn.Parameter(torch.zeros(1))], lr=1.0), warmup=1, total=5)
    assert const.get_last_lr() == [1.0]
    with pytest.raises(ValueError, match="fraction"):
        warmup_cosine(opt, 1, 5, final=2.0)


def slow_trainer(steps: int, max_minutes: float | None, final: float = 0.1, sleep_s: float = 0.01):
    """A one-parameter model whose every step sleeps, with a warm-up/cosine schedule planned for ``steps``."""
    w = nn.Parameter(torch.ones(1))
    opt = torch.optim.SGD([w], lr=1.0)

    def loss_fn(m, batch):
        time.sleep(sleep_s)
        return (w * batch).pow(2).mean()

    cfg = TrainConfig(steps=steps, max_minutes=max_minutes, progress=False, log_every=5, measure_flops=False)
    model = nn.Module()
    model.w = w
    return Trainer(model, opt, lambda step: torch.ones(2), cfg, loss_fn=loss_fn,
                   schedulers={"main": warmup_cosine(opt, warmup=2, total=steps, final=final)})


def test_time_budget_stops_the_run_and_ends_the_decay_there():
    budget_s = 0.6
    tr = slow_trainer(steps=100_000, max_minutes=budget_s / 60)
    summary = tr.fit()
    assert summary.stopped_by == "time"
    assert 10 < summary.steps < 100_000
    assert budget_s * 0.8 < summary.wall_time_s < budget_s + 0.5
    # the cosine decay was moved to end at the last step: the learning rate has reached final × peak
    lr = tr.optimizers["main"].param_groups[0]["lr"]
    assert lr == pytest.approx(0.1, abs=0.02)
    # and the plan is public: where the run was planned to end is where it ended
    assert tr.planned_end == summary.steps


def test_a_budget_that_is_not_reached_changes_nothing():
    tr = slow_trainer(steps=20, max_minutes=1.0, sleep_s=0.0)
    summary = tr.fit()
    assert summary.steps == 20 and summary.stopped_by == "steps"
    assert tr.planned_end == 20
    assert tr.optimizers["main"].param_groups[0]["lr"] == pytest.approx(0.1)


def test_retarget_moves_only_warmup_cosine():
    opt = torch.optim.SGD([nn.Parameter(torch.zeros(1))], lr=1.0)
    sched = warmup_cosine(opt, warmup=1, total=100, final=0.0)
    assert retarget(sched, 10)
    for _ in range(10):
        opt.step()
        sched.step()
    assert opt.param_groups[0]["lr"] == pytest.approx(0.0, abs=1e-9)
    assert not retarget(torch.optim.lr_scheduler.StepLR(opt, 5), 10)
    # the moved end survives a checkpoint round trip
    fresh = warmup_cosine(torch.optim.SGD([nn.Parameter(torch.zeros(1))], lr=1.0), warmup=1, total=100)
    fresh.load_state_dict(sched.state_dict())
    assert fresh.lr_lambdas[0].total == 10


def test_a_time_budget_warns_about_a_schedule_it_cannot_move():
    w = nn.Parameter(torch.ones(1))
    opt = torch.optim.SGD([w], lr=1.0)
    model = nn.Module()
    model.w = w
    cfg = TrainConfig(steps=10_000, max_minutes=0.2 / 60, progress=False, log_every=5, measure_flops=False)

    def loss_fn(m, batch):
        time.sleep(0.005)
        return (w * batch).pow(2).mean()

    tr = Trainer(model, opt, lambda step: torch.ones(2), cfg, loss_fn=loss_fn,
                 schedulers={"main": torch.optim.lr_scheduler.StepLR(opt, 100)})
    with pytest.warns(UserWarning, match="cannot follow the time budget"):
        tr.fit()


def test_retarget_does_not_restart_a_finished_decay():
    """A second time-bounded fit() moves the end again; a decay that has ended must not climb back up."""
    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
    sched = warmup_cosine(opt, 1, 10, final=0.1)
    for _ in range(12):
        opt.step()
        sched.step()
    assert opt.param_groups[0]["lr"] == pytest.approx(0.1)  # decayed to the end
    assert retarget(sched, 30)
    opt.step()
    sched.step()
    assert opt.param_groups[0]["lr"] == pytest.approx(0.1)  # still the final rate, not 0.1 + 0.9·cos(...)
    midway = warmup_cosine(opt, 1, 10, final=0.1)
    for _ in range(5):
        opt.step()
        midway.step()
    assert retarget(midway, 20)  # a decay still running does move
    assert midway.lr_lambdas[0].total == 20
    flat = warmup_cosine(opt, 1, 10)  # final = 1: no decay to protect
    for _ in range(12):
        opt.step()
        flat.step()
    assert retarget(flat, 30) and flat.lr_lambdas[0].total == 30


@pytest.mark.parametrize("left", [0.0, -0.4])
def test_a_budget_set_after_construction_that_has_run_out_is_refused_before_a_step(left):
    tr = make_trainer(steps=4)
    tr.config.max_minutes = left  # e.g. a first stretch's minutes subtracted from the whole budget
    with pytest.raises(ValueError, match="max_minutes must be positive"):
        tr.fit()
    assert tr.step == 0


def test_flops_per_step_counts_the_forward_and_the_weight_gradient():
    """Linear(8 -> 1) on a batch of 4: forward 2·4·8 = 64 FLOPs, the weight's gradient another 64, and no gradient
    for the input (it needs none): 128. A count of the forward alone would read 64."""
    model = nn.Linear(8, 1, bias=False)
    trainer = Trainer(model, torch.optim.SGD(model.parameters(), 0.1), lambda step: torch.randn(4, 8),
                      TrainConfig(steps=1, progress=False, log_every=1), loss_fn=lambda m, x: m(x).pow(2).mean())
    assert trainer.fit().flops_per_step == 128
