"""DDPM training loss and samplers (ancestral and DDIM), with optional classifier-free guidance.

Model call convention everywhere: ``model(x_t, t, cond) -> eps`` with x_t (B, C, T, H, W), t (B,) long
and eps like x_t. When ``cond`` is None the model is called as ``model(x_t, t)`` and must act
unconditionally (it owns its null embedding).

Samplers clamp the predicted x_0 to the data range [-1, 1] at every step (``clip_x0=True``), as in Ho et
al. 2020's released sampler; pass ``clip_x0=False`` for latents, whose range is not [-1, 1].
"""

from __future__ import annotations

from typing import Callable, NamedTuple

import torch

from vgcourse.diffusion.clean_context import CleanContext, with_clean_context
from vgcourse.diffusion.schedules import NoiseSchedule
from vgcourse.diffusion.v_prediction import VPrediction, check_schedule, v_target
from vgcourse.nn.wrappers import unwrap
from vgcourse.progress import progress_bar

EpsModel = Callable[..., torch.Tensor]


class SamplingResult(NamedTuple):
    """A sample with the states it went through (for a timestep scrubber)."""

    sample: torch.Tensor  # (B, C, T, H, W) on the sampling device
    trajectory: torch.Tensor  # (S, B, C, T, H, W) float32 on the CPU
    timesteps: torch.Tensor  # (S,) long: the noise level of each state; -1 is the final clean sample


def _check_5d(x: torch.Tensor, name: str) -> None:
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"expected {name} as a torch.Tensor of shape (B, C, T, H, W), got {type(x).__name__}")
    if x.ndim != 5:
        raise ValueError(f"expected {name} of shape (B, C, T, H, W), got {tuple(x.shape)}")
    if not x.is_floating_point():
        raise TypeError(f"expected {name} as a float tensor, got dtype {x.dtype}")


_range_checks = 0  # calls of diffusion_loss so far: on an accelerator its range check runs on every 100th


def check_x0_range(x0: torch.Tensor, pixels: bool | None) -> None:
    """The data range ``diffusion_loss`` trains on: pixels in [-1, 1] (``pixels=True``), anything (``pixels=False``:
    latents, whose range is the autoencoder's), or, by default, anything but data that never go below 0 and exceed 1
    (pixels in [0, 255] or similar: the noise of the forward process would be a rounding error on them, and the loss
    would sit at 1 while nothing is learned).

    Reading the range waits for the data; on an accelerator it is read on the first call and every 100th after it
    (a data pipeline that is wrong is wrong from the first batch), on the CPU on every call.
    """
    global _range_checks
    if pixels is False or x0.numel() == 0:
        return
    _range_checks += 1
    if x0.device.type != "cpu" and (_range_checks - 1) % 100:
        return
    lo, hi = (float(v) for v in torch.aminmax(x0.detach()))
    tolerance = 1e-3
    if pixels and (lo < -1 - tolerance or hi > 1 + tolerance):
        raise ValueError(f"expected x0 as pixels in [-1, 1] (pixels=True), got values in [{lo:.4g}, {hi:.4g}]"
                         + ("; frames in [0, 255]? use vgcourse.video.from_uint8" if hi > 2 else ""))
    if pixels is None and lo >= 0 and hi > 1 + tolerance:
        raise ValueError(f"expected x0 as pixels in [-1, 1] or as latents, got values in [{lo:.4g}, {hi:.4g}], never "
                         "below 0: pixels in [0, 255]? map them to [-1, 1] (vgcourse.video.from_uint8); for latents "
                         "whose range this is, pass pixels=False")


def _call(model: EpsModel, x_t: torch.Tensor, t: torch.Tensor, cond: object | None) -> torch.Tensor:
    eps = model(x_t, t) if cond is None else model(x_t, t, cond)
    if not isinstance(eps, torch.Tensor) or eps.shape != x_t.shape:
        got = tuple(eps.shape) if isinstance(eps, torch.Tensor) else type(eps).__name__
        raise ValueError(f"expected the model to return eps of shape {tuple(x_t.shape)} like x_t, got {got}")
    return eps.float()


def guided_eps(model: EpsModel, x_t: torch.Tensor, t: torch.Tensor, cond: object | None = None,
               guidance_scale: float = 1.0) -> torch.Tensor:
    """Classifier-free guidance: ε̃ = ε(x_t, ∅) + s (ε(x_t, c) - ε(x_t, ∅)).

    s = 1 is plain conditioning; s = 1 + w for the guidance weight w of Ho & Salimans 2022, eq. (6).

    Inputs:
        x_t: (B, C, T, H, W); t: (B,) long; cond: anything the model takes, or None. The unconditional term
            calls the model with ``cond.unconditional()`` where cond has that method, else with no cond.
    Returns:
        eps: (B, C, T, H, W) float32.
    """
    if cond is None or guidance_scale == 1.0:
        if cond is None and guidance_scale != 1.0:
            raise ValueError(f"guidance_scale={guidance_scale} needs a cond to guide towards; got cond=None")
        return _call(model, x_t, t, cond)
    eps_cond = _call(model, x_t, t, cond)
    # a condition may name its unconditional half (a Continuation keeps its given frames); otherwise nothing
    eps_uncond = _call(model, x_t, t, cond.unconditional() if hasattr(cond, "unconditional") else None)
    return eps_uncond + guidance_scale * (eps_cond - eps_uncond)  # Ho & Salimans 2022, eq. (6) with s = 1 + w


def diffusion_loss(model: EpsModel, x0: torch.Tensor, schedule: NoiseSchedule, cond: object | None = None,
                   generator: torch.Generator | None = None, mask: torch.Tensor | None = None,
                   context: torch.Tensor | None = None, pixels: bool | None = None) -> torch.Tensor:
    """The "simple" ε-prediction loss of Ho et al. 2020, eq. (14).

    L = E_{t, ε} ||ε - ε_θ(√ᾱ_t x_0 + √(1-ᾱ_t) ε, t)||², with t uniform over the T steps. For a
    :class:`~vgcourse.diffusion.v_prediction.VPrediction` model the target is v instead:
    L = E ||v − v_θ(x_t, t)||², v = √ᾱ_t ε − √(1−ᾱ_t) x_0 (Salimans & Ho 2022, §4).

    Inputs:
        x0: (B, C, T, H, W) clean data (videos in [-1, 1], or latents).
        cond: passed to the model as its third argument (None: unconditional).
        generator: draws t and ε (must live on x0's device) for reproducible losses.
        mask: optional weights, (B,) per sample or broadcastable to x0 (e.g. (B, 1, T, 1, 1) per frame);
            the loss is the mask-weighted mean of the squared error.
        context: optional (B, 1, T, 1, 1) in {0, 1}: frames that enter x_t clean and are left out of the loss
            (:mod:`vgcourse.diffusion.clean_context`; a first frame to continue, the last frames of a chunk).
        pixels: True: x0 are pixels, checked to lie in [-1, 1]; False: latents, not checked; None (default): refuse
            only data that never go below 0 and exceed 1 (pixels in [0, 255]); see :func:`check_x0_range`.
    Returns:
        a scalar float32 tensor.
    """
    _check_5d(x0, "x0")
    check_x0_range(x0, pixels)
    check_schedule(model, schedule)
    b = x0.shape[0]
    t = torch.randint(0, schedule.T, (b,), device=x0.device, generator=generator)  # t ~ Uniform{0..T-1}
    noise = torch.randn(x0.shape, device=x0.device, dtype=x0.dtype, generator=generator)  # ε ~ N(0, I)
    x_t = schedule.q_sample(x0, t, noise)  # eq. (4)
    if context is not None:
        x_t = with_clean_context(x_t, x0, context)  # the given frames, unnoised
        unscored = 1 - context.to(x0.device, torch.float32)  # (B, 1, T, 1, 1)
        mask = unscored if mask is None else _as_weights(mask, x0) * unscored
    if isinstance(unwrap(model), VPrediction):  # also compiled or inside DDP: called through its forward
        predict = lambda x, t_, *c: model(x, t_, *c, output="v")  # noqa: E731
        target = v_target(x0, noise, t, schedule).float()  # Salimans & Ho 2022, §4
    else:
        predict, target = model, noise.float()
    sq_err = (_call(predict, x_t, t, cond) - target) ** 2  # (B, C, T, H, W), eq. (14)
    if mask is None:
        return sq_err.mean()
    weights = _as_weights(mask, x0)  # (B, C, T, H, W)
    return (sq_err * weights).sum() / weights.sum().clamp_min(1e-12)


def _as_weights(mask: torch.Tensor, x0: torch.Tensor) -> torch.Tensor:
    """Loss weights (B,) or broadcastable to x0, as float32 weights of x0's shape (B, C, T, H, W)."""
    mask = mask.to(x0.device, torch.float32)
    if mask.ndim == 1:
        mask = mask.reshape(-1, 1, 1, 1, 1)  # (B, 1, 1, 1, 1)
    try:
        return torch.broadcast_to(mask, x0.shape)  # (B, C, T, H, W)
    except RuntimeError:
        raise ValueError(f"expected mask of shape (B,) or broadcastable to {tuple(x0.shape)}, "
                         f"got {tuple(mask.shape)}") from None


SPACINGS = ("linear", "quadratic")


def ddim_timesteps(T: int, steps: int, spacing: str = "linear") -> torch.Tensor:
    """``steps`` timesteps over [0, T-1], both ends included, descending. Returns (steps,) long.

    ``spacing`` (Song et al. 2021, App. D.2): "linear", evenly spaced (τ_i ∝ i); "quadratic", τ_i ∝ i², so the
    steps are short near the data and long near the noise (the paper's choice for CIFAR10). Here quadratic is
    τ_i = i + round((T − steps)·(i / (steps − 1))²), which keeps both ends and at least one step between
    neighbours (the paper's code squares a linspace up to √(0.8·T) instead, so its largest step is 0.8·T).
    """
    if not 1 <= steps <= T:
        raise ValueError(f"expected 1 <= steps <= T={T}, got steps={steps}")
    if spacing not in SPACINGS:
        raise ValueError(f"expected spacing in {SPACINGS}, got {spacing!r}")
    if steps == 1:
        return torch.tensor([T - 1])
    if spacing == "linear":
        ts = torch.linspace(0, T - 1, steps, dtype=torch.float64)
    else:
        i = torch.arange(steps, dtype=torch.float64)
        ts = i + (T - steps) * (i / (steps - 1)) ** 2
    return ts.round().long().flip(0)


def _check_shape(shape: tuple[int, ...]) -> tuple[int, ...]:
    shape = tuple(int(s) for s in shape)
    if len(shape) != 5 or min(shape) < 1:
        raise ValueError(f"expected shape (B, C, T, H, W) of positive sizes, got {shape}")
    return shape


class _Recorder:
    """Keeps every ``every``-th state (and always the last) on the CPU."""

    def __init__(self, on: bool, every: int):
        if every < 1:
            raise ValueError(f"expected trajectory_every >= 1, got {every}")
        self.on, self.every, self.states, self.timesteps, self.count = on, every, [], [], 0

    def add(self, x: torch.Tensor, t: int, last: bool = False) -> None:
        if self.on and (self.count % self.every == 0 or last):
            self.states.append(x.detach().float().cpu())
            self.timesteps.append(t)
        self.count += 1

    def result(self, x: torch.Tensor) -> torch.Tensor | SamplingResult:
        if not self.on:
            return x
        return SamplingResult(x, torch.stack(self.states), torch.tensor(self.timesteps, dtype=torch.long))


@torch.no_grad()
def ddpm_sample(model: EpsModel, shape: tuple[int, ...], schedule: NoiseSchedule, cond: object | None = None,
                generator: torch.Generator | None = None, return_trajectory: bool = False, progress: bool = True,
                guidance_scale: float = 1.0, clip_x0: bool = True, variance: str = "posterior",
                trajectory_every: int = 1, device: torch.device | str | None = None,
                context: CleanContext | None = None) -> torch.Tensor | SamplingResult:
    """Ancestral sampling, T model calls from x_T ~ N(0, I) down to x_0 (Ho et al. 2020, Algorithm 2).

    Inputs:
        shape: (B, C, T, H, W) of the samples; cond, guidance_scale: see :func:`guided_eps`.
        variance: "posterior" (σ_t² = β̃_t) or "beta" (σ_t² = β_t), the two choices of Ho et al. 2020, §3.2.
        clip_x0: clamp the predicted x_0 to [-1, 1] before forming the posterior mean.
        device: where to sample (default: the schedule's device); ``generator`` must live there.
        context: frames given clean (:class:`~vgcourse.diffusion.clean_context.CleanContext`), written into the
            state before every model call and into the sample; for a model trained with ``diffusion_loss(context=)``.
    Returns:
        samples (B, C, T, H, W), or with ``return_trajectory`` a :class:`SamplingResult` whose trajectory
        holds x_T, ..., x_0 (every ``trajectory_every``-th state, always the last) on the CPU.
    """
    if variance not in ("posterior", "beta"):
        raise ValueError(f"expected variance 'posterior' or 'beta', got {variance!r}")
    shape = _check_shape(shape)
    check_schedule(model, schedule)
    device = torch.device(device) if device is not None else schedule.betas.device
    x = torch.randn(shape, device=device, generator=generator)  # x_T ~ N(0, I)
    record = _Recorder(return_trajectory, trajectory_every)
    record.add(x, schedule.T - 1)
    for i in progress_bar(range(schedule.T - 1, -1, -1), desc="DDPM", disable=not progress, leave=False):
        t = torch.full((shape[0],), i, device=device, dtype=torch.long)
        x = context.apply(x) if context is not None else x
        eps = guided_eps(model, x, t, cond, guidance_scale)
        x0 = schedule.predict_x0(x, t, eps)
        if clip_x0:
            x0 = x0.clamp(-1, 1)
        mean, var, _ = schedule.posterior(x0, x, t)  # μ̃_t(x_t, x̂_0), eq. (7); equals Algorithm 2, line 4
        if i > 0:
            std = var.sqrt() if variance == "posterior" else schedule.betas[i].sqrt()
            x = mean + std * torch.randn(shape, device=device, generator=generator)  # Algorithm 2, line 4
        else:
            x = mean if context is None else context.apply(mean)  # z = 0 at the last step
        record.add(x, i - 1, last=i == 0)
    return record.result(x)


@torch.no_grad()
def ddim_sample(model: EpsModel, shape: tuple[int, ...], schedule: NoiseSchedule, steps: int, eta: float = 0.0,
                cond: object | None = None, generator: torch.Generator | None = None,
                return_trajectory: bool = False, progress: bool = True, guidance_scale: float = 1.0,
                clip_x0: bool = True, trajectory_every: int = 1, device: torch.device | str | None = None,
                context: CleanContext | None = None, spacing: str = "linear") -> torch.Tensor | SamplingResult:
    """DDIM sampling on ``steps`` timesteps spaced by ``spacing`` (:func:`ddim_timesteps`) (Song et al. 2021, eq. (12)).

    eta = 0 is deterministic given x_T; eta = 1 with steps = T is ancestral DDPM sampling with σ_t² = β̃_t.
    Inputs (``context`` included) and returns as :func:`ddpm_sample`; with ``clip_x0`` the ε used for the direction
    term is recomputed from the clamped x_0, so that x_t, x̂_0 and ε stay consistent.
    """
    shape = _check_shape(shape)
    if eta < 0:
        raise ValueError(f"expected eta >= 0, got {eta}")
    check_schedule(model, schedule)
    device = torch.device(device) if device is not None else schedule.betas.device
    abar = schedule.alphas_cumprod.double().cpu()  # python-side scalars: no device sync per step
    ts = ddim_timesteps(schedule.T, steps, spacing).tolist()
    x = torch.randn(shape, device=device, generator=generator)  # x_T ~ N(0, I)
    record = _Recorder(return_trajectory, trajectory_every)
    record.add(x, ts[0])
    for k, i in enumerate(progress_bar(ts, desc="DDIM", disable=not progress, leave=False)):
        prev = ts[k + 1] if k + 1 < len(ts) else -1
        a, a_prev = abar[i].item(), (abar[prev].item() if prev >= 0 else 1.0)
        t = torch.full((shape[0],), i, device=device, dtype=torch.long)
        x = context.apply(x) if context is not None else x
        eps = guided_eps(model, x, t, cond, guidance_scale)
        x0 = schedule.predict_x0(x, t, eps)  # "predicted x_0" of eq. (12)
        if clip_x0:
            x0 = x0.clamp(-1, 1)
            eps = schedule.predict_eps(x, t, x0)
        sigma = eta * ((1 - a_prev) / (1 - a) * (1 - a / a_prev)) ** 0.5  # Song et al. 2021, eq. (16)
        x = a_prev ** 0.5 * x0 + max(1 - a_prev - sigma ** 2, 0.0) ** 0.5 * eps  # eq. (12): x_0 and direction to x_t
        if sigma > 0:
            x = x + sigma * torch.randn(shape, device=device, generator=generator)  # eq. (12): random noise
        if prev == -1 and context is not None:
            x = context.apply(x)
        record.add(x, prev, last=prev == -1)
    return record.result(x)
