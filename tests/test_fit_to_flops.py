"""fit_to_flops: a run ends at the last step within a FLOPs budget, its learning-rate decay with it."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from vgcourse.train import fit_to_flops, make_trainer


def tiny_trainer(steps_cap: int = 1000, **options):
    torch.manual_seed(0)
    model = nn.Linear(8, 1)
    data = torch.randn(4, 8)
    return make_trainer(model, lambda step: data, steps_cap, lambda m, x: m(x).pow(2).mean(), lr=1e-2, warmup=1,
                        decay_to=0.1, progress=False, log_every=1, **options)


def test_the_run_spends_the_budget_and_no_more():
    trainer = tiny_trainer()
    probe = tiny_trainer()
    probe.fit(1)
    per_step = probe.summary.flops_per_step
    summary = fit_to_flops(trainer, 10.5 * per_step)
    assert summary.steps == 10 and summary.stopped_by == "steps"
    assert summary.train_flops == 10 * per_step <= 10.5 * per_step < 11 * per_step
    factor = trainer.schedulers["main"].lr_lambdas[0]
    assert factor.total == 10                                    # the decay ends with the run, not at the cap
    assert trainer.optimizers["main"].param_groups[0]["lr"] == pytest.approx(1e-3)   # decayed to a tenth


def test_a_budget_below_one_step_runs_one_and_bad_budgets_raise():
    trainer = tiny_trainer()
    assert fit_to_flops(trainer, 1.0).steps == 1
    with pytest.raises(ValueError, match="must be positive"):
        fit_to_flops(tiny_trainer(), 0.0)
    with pytest.raises(ValueError, match="measure_flops=True"):
        fit_to_flops(tiny_trainer(measure_flops=False), 1e9)


def test_a_step_counted_as_no_flops_is_refused():
    trainer = tiny_trainer()
    trainer.fit(1)
    trainer.summary.flops_per_step = 0
    with pytest.raises(ValueError, match="nothing to divide the budget by"):
        fit_to_flops(trainer, 1e9)


def test_a_periodic_step_is_counted_by_its_mean_over_a_cycle():
    """A step that does extra work every third step (as a lazy R1 penalty does): cycle=3 counts its mean."""
    torch.manual_seed(0)
    model = nn.Linear(8, 1)
    data = torch.randn(4, 8)

    def loss(m, x):
        extra = trainer.step % 3 == 0 and trainer.summary.flops_per_step is not None
        return m(x).pow(2).mean() + (m(torch.cat([x] * 50)).pow(2).mean() if extra else 0.0)

    trainer = make_trainer(model, lambda step: data, 1000, loss, lr=1e-2, progress=False, log_every=1)
    plain = tiny_trainer()
    plain.fit(1)
    summary = fit_to_flops(trainer, 1e6, cycle=3)
    mean_step = summary.train_flops / summary.steps
    assert trainer.summary.flops_per_step == plain.summary.flops_per_step          # the loop counted a plain step
    assert mean_step > 10 * plain.summary.flops_per_step                             # the mean sees the heavy step
    assert summary.steps == int(1e6 // mean_step) and summary.train_flops <= 1e6
    with pytest.raises(ValueError, match="cycle is a number of steps"):
        fit_to_flops(tiny_trainer(), 1e6, cycle=0)
