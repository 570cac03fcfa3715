"""One training loop for every chapter, with a pluggable step.

The simple case gives a ``loss_fn(model, batch) -> loss`` and the loop does backward, clipping and the
optimizer step. Families with several optimizers (GANs) give a ``step_fn(trainer, batch) -> dict`` that calls
``trainer.optimize(loss, "disc")`` and ``trainer.optimize(loss, "gen")`` itself, reading its networks from
``trainer.forward_model`` (``trainer.forward_model["G"]`` when the model is an ``nn.ModuleDict``: compiled there
when ``compile`` is on). Each ``optimize`` zeroes its own optimizer's gradients *before* its backward, so the
generator's backward, which also reaches the discriminator's weights, leaves nothing in the discriminator's next
update. Data comes from ``batch_fn(step)`` — the batch *for step i* — so a resumed run sees exactly the batches
it would have seen.

What the loop adds: a tqdm progress bar, bf16 autocast and optional ``torch.compile`` on CUDA, an EMA of the
weights, gradient clipping, NaN/inf detection that stops naming the step and the loss, checkpoints with
resume (model, optimizers, EMA, step, RNG, config), wall time, samples/s, and FLOPs/MFU measured on a real step.

A run can be bounded by time as well as steps (``TrainConfig(steps=..., max_minutes=...)``): at every log
point the loop measures its seconds per step and plans the last step that fits the budget, compile included,
and moves the end of a :func:`~vgcourse.train.warmup_cosine` decay there, so a chapter's ``gpu`` profile fits
its minutes on any GPU and its learning-rate schedule still ends where the run does.
"""

from __future__ import annotations

import time
import warnings
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Callable

import torch
from torch import nn

from vgcourse.checkpoint import CheckpointError, load_checkpoint, load_model_state, save_checkpoint
from vgcourse.progress import progress_bar, set_total
from vgcourse.train.ema import EMA
from vgcourse.train.flops import count_flops, mfu
from vgcourse.train.schedules import retarget

LossFn = Callable[[nn.Module, Any], "torch.Tensor | dict[str, torch.Tensor]"]
StepFn = Callable[["Trainer", Any], "dict[str, torch.Tensor]"]


class NonFiniteLossError(FloatingPointError):
    """A loss became NaN or inf; the message names the step and the loss."""


@dataclass
class TrainConfig:
    """Knobs of the loop (the model's own config travels separately, as ``model_config``)."""

    steps: int
    grad_clip: float | dict[str, float | None] | None = 1.0  # a max norm, or one per optimizer name
    ema_decay: float | None = None
    amp: bool | None = None  # None: bf16 autocast on CUDA, fp32 on the CPU
    compile: bool = False  # only honoured on CUDA; counts minutes before the first step
    max_minutes: float | None = None  # a time budget for each fit() (compile included); ``steps`` is then a cap
    log_every: int = 25
    checkpoint_path: str | None = None
    checkpoint_every: int | None = None
    measure_flops: bool = True
    progress: bool = True
    desc: str = "train"

    def __post_init__(self):
        self.validate()

    def validate(self) -> None:
        """Raise ``ValueError`` on a setting that would run silently wrong; :meth:`Trainer.fit` calls it again, so
        that a field set after construction (a time budget left over from an earlier stretch) is checked too."""
        if not isinstance(self.steps, int) or isinstance(self.steps, bool) or self.steps < 1:
            raise ValueError(f"TrainConfig.steps must be a positive integer, got {self.steps!r}")
        if self.max_minutes is not None and not self.max_minutes > 0:
            raise ValueError(f"TrainConfig.max_minutes must be positive minutes or None, got {self.max_minutes!r}")
        if self.ema_decay is not None and not 0.0 <= self.ema_decay < 1.0:
            raise ValueError(f"TrainConfig.ema_decay must be in [0, 1) or None, got {self.ema_decay!r}")
        clips = self.grad_clip.values() if isinstance(self.grad_clip, dict) else [self.grad_clip]
        if any(c is not None and not c > 0 for c in clips):
            raise ValueError(f"TrainConfig.grad_clip must be a positive max norm or None, got {self.grad_clip!r}")
        for name in ("log_every", "checkpoint_every"):
            value = getattr(self, name)
            if value is not None and (not isinstance(value, int) or value < 1):
                raise ValueError(f"TrainConfig.{name} must be a positive integer, got {value!r}")

    def clip_for(self, optimizer: str) -> float | None:
        """The max gradient norm for ``optimizer`` (None: no clipping)."""
        return self.grad_clip.get(optimizer) if isinstance(self.grad_clip, dict) else self.grad_clip


@dataclass
class TrainSummary:
    """What a run measured; ``as_dict()`` goes into the results file."""

    steps: int = 0
    wall_time_s: float = 0.0
    samples_per_s: float | None = None
    flops_per_step: int | None = None
    train_flops: float | None = None
    mfu: float | None = None
    device: str = ""
    stopped_by: str = "steps"  # "steps", or "time" when the time budget ended the run first

    def as_dict(self) -> dict:
        return asdict(self)


def batch_size_of(batch: Any) -> int:
    if hasattr(batch, "video"):
        return batch.video.shape[0]
    if isinstance(batch, torch.Tensor):
        return batch.shape[0]
    if isinstance(batch, (tuple, list)) and batch and isinstance(batch[0], torch.Tensor):
        return batch[0].shape[0]
    if isinstance(batch, dict):
        return next(iter(batch.values())).shape[0]
    raise TypeError(f"cannot tell the batch size of a {type(batch).__name__}")


class Trainer:
    """Runs ``config.steps`` steps of ``loss_fn`` (or ``step_fn``) on ``batch_fn(step)``."""

    def __init__(self, model: nn.Module, optimizers: torch.optim.Optimizer | dict[str, torch.optim.Optimizer],
                 batch_fn: Callable[[int], Any], config: TrainConfig, loss_fn: LossFn | None = None,
                 step_fn: StepFn | None = None, ema_of: nn.Module | None = None,
                 schedulers: dict[str, Any] | None = None, model_config: dict | None = None):
        if (loss_fn is None) == (step_fn is None):
            raise ValueError("give exactly one of loss_fn (one optimizer) or step_fn (your own step)")
        self.model = model
        self.optimizers = optimizers if isinstance(optimizers, dict) else {"main": optimizers}
        if loss_fn is not None and len(self.optimizers) != 1:
            raise ValueError(f"loss_fn drives one optimizer; got {sorted(self.optimizers)}: use step_fn")
        self.batch_fn, self.config, self.loss_fn, self.step_fn = batch_fn, config, loss_fn, step_fn
        self.schedulers = schedulers or {}
        self.model_config = model_config or {}
        self.device = next(model.parameters()).device
        cuda = self.device.type == "cuda"
        self.amp_dtype = torch.bfloat16 if (config.amp if config.amp is not None else cuda) else None
        self.ema = EMA(ema_of if ema_of is not None else model, config.ema_decay) if config.ema_decay else None
        self._ema_source = ema_of if ema_of is not None else model
        self.forward_model: nn.Module = model  # what the step calls: the model, compiled when ``compile`` is on
        self.step = 0
        self.planned_end = config.steps  # the step fit() plans to stop at; a time budget moves it (see fit)
        self.history: list[dict[str, float]] = []
        self.summary = TrainSummary(device=torch.cuda.get_device_name(self.device) if cuda else "cpu")
        self._pending: list[tuple[int, dict[str, torch.Tensor]]] = []
        self._compile_on = config.compile and cuda  # compiling on a CPU only costs time
        self._compiled = False
        self._not_retargeted: set[str] = set()  # schedulers already warned about (time budgets)

    # ---- the step -------------------------------------------------------------------------------------
    def optimize(self, loss: torch.Tensor, optimizer: str = "main") -> None:
        """Zero one optimizer's grads, backward, clip (``config.clip_for(optimizer)``), step (GAN steps call this
        twice). Zeroing *before* the backward is what keeps another loss's gradients out of this update."""
        if optimizer not in self.optimizers:
            raise KeyError(f"no optimizer named {optimizer!r}; this trainer has {sorted(self.optimizers)}")
        opt = self.optimizers[optimizer]
        opt.zero_grad(set_to_none=True)
        loss.backward()
        max_norm = self.config.clip_for(optimizer)
        if max_norm is not None:
            params = [p for group in opt.param_groups for p in group["params"] if p.grad is not None]
            torch.nn.utils.clip_grad_norm_(params, max_norm)
        opt.step()
        opt.zero_grad(set_to_none=True)
        if optimizer in self.schedulers:
            self.schedulers[optimizer].step()

    def _run_step(self, batch: Any) -> dict[str, torch.Tensor]:
        with torch.autocast(self.device.type, dtype=self.amp_dtype, enabled=self.amp_dtype is not None):
            if self.step_fn is not None:
                logs = self.step_fn(self, batch)
            else:
                out = self.loss_fn(self.forward_model, batch)
                logs = out if isinstance(out, dict) else {"loss": out}
                self.optimize(logs["loss"], next(iter(self.optimizers)))
        if self.ema is not None:
            self.ema.update(self._ema_source)
        return {k: v.detach().float() if isinstance(v, torch.Tensor) else torch.tensor(float(v))
                for k, v in logs.items()}

    def _compiled_model(self) -> nn.Module:
        """``torch.compile`` of the model; of each network of an ``nn.ModuleDict`` (what a ``step_fn`` calls)."""
        if isinstance(self.model, nn.ModuleDict):
            return nn.ModuleDict({name: torch.compile(module) for name, module in self.model.items()})
        return torch.compile(self.model)

    def _flush(self) -> None:
        """Sync logged values to the CPU, stop on the first non-finite one, log their mean as one history row."""
        if not self._pending:
            return
        steps = [step for step, _ in self._pending]
        keys = list(self._pending[0][1])
        if not keys:  # a step that logs nothing
            self.history.append({"step": steps[-1]})
            self._pending.clear()
            return
        values = torch.stack([torch.stack([logs[k] for k in keys]) for _, logs in self._pending]).cpu()  # (n, keys)
        finite = torch.isfinite(values)
        if not finite.all():
            i, j = (~finite).nonzero()[0].tolist()
            raise NonFiniteLossError(f"{keys[j]} became {values[i, j].item()} at step {steps[i]}; lower the learning "
                                     "rate, clip gradients harder, or check the inputs of that step")
        self.history.append({"step": steps[-1]} | dict(zip(keys, values.mean(0).tolist())))
        self._pending.clear()

    # ---- the loop ---------------------------------------------------------------------------------------
    def fit(self, steps: int | None = None) -> TrainSummary:
        """Train until ``steps`` (default ``config.steps``) steps are done in total; return the summary."""
        cfg = self.config
        cfg.validate()
        cap = end = steps if steps is not None else cfg.steps
        self.model.train()
        first_timed = self.step + 3  # skip warm-up (and compile) steps when timing
        timing_start, timed_samples = None, 0
        start_wall = time.perf_counter()
        deadline = start_wall + 60 * cfg.max_minutes if cfg.max_minutes is not None else None
        # Under a time budget the end is unknown until steps are timed: the bar counts steps without a total (no
        # percentage, and no estimate of hours left drawn from a compile step) until the plan has one.
        bar = progress_bar(total=end if deadline is None else None, initial=self.step, desc=cfg.desc,
                           disable=not cfg.progress, mininterval=1.0)
        self.planned_end = end
        while self.step < end:
            batch = self.batch_fn(self.step)
            if self.summary.flops_per_step is None and cfg.measure_flops:
                logs = {}
                self.summary.flops_per_step = count_flops(lambda: logs.update(self._run_step(batch)))
            else:
                if self._compile_on and not self._compiled:
                    self.forward_model = self._compiled_model()
                    self._compiled = True
                if self.step == first_timed:
                    self._sync()
                    timing_start = time.perf_counter()
                logs = self._run_step(batch)
                if timing_start is not None:
                    timed_samples += batch_size_of(batch)
            self._pending.append((self.step, logs))
            self.step += 1
            if self.step % cfg.log_every == 0 or self.step == end:
                self._flush()  # syncs: the clock below is the GPU's too
                if self.history:
                    bar.set_postfix({k: f"{v:.4g}" for k, v in self.history[-1].items() if k != "step"})
                if deadline is not None:
                    planned = self._plan_end(cap, deadline, timing_start, first_timed)
                    if planned is not None:  # from timed steps, or the budget is spent: the bar gets its total
                        end = self.planned_end = planned
                        set_total(bar, end)
            if cfg.checkpoint_path and cfg.checkpoint_every and self.step % cfg.checkpoint_every == 0:
                self._flush()
                self.save(cfg.checkpoint_path)
            bar.update(1)
        set_total(bar, self.step)  # the finished bar reads n/n, whatever stopped the run
        bar.close()
        self._flush()
        self._sync()
        s = self.summary
        s.wall_time_s += time.perf_counter() - start_wall
        s.steps = self.step
        s.stopped_by = "time" if self.step < cap else "steps"
        if timing_start is not None:
            elapsed = time.perf_counter() - timing_start
            s.samples_per_s = timed_samples / elapsed
            if s.flops_per_step:
                precision = "bf16" if self.amp_dtype is not None else "tf32"
                s.mfu = mfu(s.flops_per_step, (self.step - first_timed) / elapsed, self.device, precision)
        if s.flops_per_step:
            s.train_flops = float(s.flops_per_step) * self.step
        if cfg.checkpoint_path:
            self.save(cfg.checkpoint_path)
        return s

    def _plan_end(self, cap: int, deadline: float, timing_start: float | None, first_timed: int) -> int | None:
        """The last step that fits the time budget (at most ``cap``), from the seconds per step so far.

        Before any step is timed (compile, FLOP counting) there is nothing to plan from: None (the end stays
        ``cap``), unless the budget is already spent. The plan moves the end of
        :func:`~vgcourse.train.warmup_cosine` schedules with it.
        """
        now = time.perf_counter()
        if now >= deadline:
            end = self.step
        elif timing_start is None or self.step <= first_timed:
            return None
        else:
            per_step = (now - timing_start) / (self.step - first_timed)
            end = min(cap, self.step + int((deadline - now) / per_step))
        for name, sched in self.schedulers.items():
            if not retarget(sched, end) and name not in self._not_retargeted:
                self._not_retargeted.add(name)
                warnings.warn(f"scheduler {name!r} ({type(sched).__name__}) cannot follow the time budget: its decay "
                              f"keeps its own end; use vgcourse.train.warmup_cosine", stacklevel=3)
        return end

    def _sync(self) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)

    # ---- checkpoints ------------------------------------------------------------------------------------
    def state_dict(self) -> dict:
        state = {"model": self.model.state_dict(),
                 "optimizers": {k: o.state_dict() for k, o in self.optimizers.items()},
                 "schedulers": {k: s.state_dict() for k, s in self.schedulers.items()},
                 "step": self.step, "history": self.history,
                 "config": asdict(self.config), "model_config": self.model_config,
                 "rng_cpu": torch.get_rng_state()}
        if self.ema is not None:
            state["ema"] = self.ema.state_dict()
        if torch.cuda.is_available():
            state["rng_cuda"] = torch.cuda.get_rng_state_all()
        return state

    def save(self, path: str | Path) -> Path:
        return save_checkpoint(path, **self.state_dict())

    def load(self, path: str | Path) -> "Trainer":
        """Resume from a checkpoint written by :meth:`save`: weights, optimizers, EMA, step, RNG."""
        state = load_checkpoint(path, map_location=self.device)
        absent = [key for key in ("model", "optimizers", "step") if key not in state]
        if absent:
            raise CheckpointError(f"{path} is not a training checkpoint written by Trainer.save: it lacks "
                                  f"{absent} (it holds {sorted(state)}). To use weights alone, call "
                                  "load_model_state(model, state['model']) (or load_shipped for the course's files)")
        load_model_state(self.model, state["model"], str(path))
        if sorted(state["optimizers"]) != sorted(self.optimizers):
            raise CheckpointError(f"{path} holds optimizers {sorted(state['optimizers'])}, this trainer has "
                                  f"{sorted(self.optimizers)}")
        for k, opt in self.optimizers.items():
            opt.load_state_dict(state["optimizers"][k])
        for k, sched in self.schedulers.items():
            sched.load_state_dict(state["schedulers"][k])
        if self.ema is not None and "ema" in state:
            self.ema.load_state_dict(state["ema"])
        self.step, self.history = state["step"], list(state["history"])
        torch.set_rng_state(state["rng_cpu"].cpu())
        if "rng_cuda" in state and torch.cuda.is_available():
            torch.cuda.set_rng_state_all([s.cpu() for s in state["rng_cuda"]])
        return self


def fit_to_flops(trainer: Trainer, budget: float, cycle: int = 1) -> TrainSummary:
    """Train until ``budget`` training FLOPs are spent, for comparisons at matched compute.

    The first step measures a step's FLOPs (as every run does); the run then ends at the last step within the
    budget, ``floor(budget / flops_per_step)`` steps in all (at least the steps already done), and a
    :func:`~vgcourse.train.warmup_cosine` decay is moved to end there. Where steps differ with a period (a GAN's
    lazy R1 penalty every k steps, which the loop's counted step leaves out), ``cycle=k`` counts the FLOPs of the
    next k steps and uses their mean instead; the summary's ``train_flops`` is then that mean × the steps. A time
    budget in the config still bounds each ``fit()``: if it ends the run first, ``summary.stopped_by`` reads "time"
    and the FLOPs fall short of the budget, so the run does not count as matched.
    """
    if not budget > 0:
        raise ValueError(f"a FLOPs budget must be positive, got {budget!r}")
    if not isinstance(cycle, int) or cycle < 1:
        raise ValueError(f"cycle is a number of steps >= 1, got {cycle!r}")
    if not trainer.config.measure_flops:
        raise ValueError("fit_to_flops needs TrainConfig(measure_flops=True): the budget is counted in measured FLOPs")
    if trainer.summary.flops_per_step is None:
        trainer.fit(trainer.step + 1)
    per_step = trainer.summary.flops_per_step
    if cycle > 1:
        start = trainer.step
        per_step = count_flops(lambda: trainer.fit(start + cycle)) / cycle     # the mean step of one period
    if not per_step:
        raise ValueError(f"a step's FLOPs were counted as {per_step!r}: nothing to divide the budget by")
    steps = max(trainer.step, int(budget // per_step))
    for sched in trainer.schedulers.values():
        retarget(sched, steps)
    summary = trainer.fit(steps)
    if cycle > 1:
        summary.train_flops = float(per_step) * summary.steps
    return summary
