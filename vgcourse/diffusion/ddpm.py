"""DDPM training loss and samplers (ancestral and DDIM), with optional classifier-free guidance.

Model call convention everywhere: ``model(x_t, t, cond, **model_kwargs) -> eps`` with x_t (B, C, T, H, W),
t (B,) long and eps like x_t. When ``cond`` is None the model is called as ``model(x_t, t, **model_kwargs)`` and
must act unconditionally (it owns its null embedding). A v-predicting network enters wrapped in
:class:`~vgcourse.diffusion.v_prediction.VPrediction`, which returns ε, so the samplers only ever see ε.

DDIM is written once: :func:`ddim_step` is one update of Song et al. 2021, eq. (12), and :func:`ddim_loop` walks
it over a list of timesteps, passing conditions to the model and per-step edits through hooks (``denoised_fn`` on
x̂_0, ``state_fn`` on x_t), as facebookresearch/DiT's ``ddim_sample`` and ``ddim_sample_loop_progressive`` do.
:func:`ddim_sample` (from noise) and :func:`vgcourse.diffusion.editing.ddim_from` (from any state, with known frames)
are both that loop.

Samplers clamp the predicted x_0 to the data range [-1, 1] at every step (``clip_x0=True``), as in Ho et
al. 2020's released sampler; pass ``clip_x0=False`` for latents, whose range is not [-1, 1].
"""

from __future__ import annotations

from typing import Callable, Iterator, NamedTuple

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


def _call(model: EpsModel, x_t: torch.Tensor, t: torch.Tensor, cond: object | None,
          model_kwargs: dict | None = None) -> torch.Tensor:
    kwargs = model_kwargs or {}
    eps = model(x_t, t, **kwargs) if cond is None else model(x_t, t, cond, **kwargs)
    if not isinstance(eps, torch.Tensor) or eps.shape != x_t.shape:
        got = tuple(eps.shape) if isinstance(eps, torch.Tensor) else type(eps).__name__
        raise ValueError(f"expected the model to return eps of shape {tuple(x_t.shape)} like x_t, got {got}")
    return eps.float()


def guided_eps(model: EpsModel, x_t: torch.Tensor, t: torch.Tensor, cond: object | None = None,
               guidance_scale: float = 1.0, model_kwargs: dict | None = None) -> torch.Tensor:
    """Classifier-free guidance: ε̃ = ε(x_t, ∅) + s (ε(x_t, c) - ε(x_t, ∅)).

    s = 1 is plain conditioning; s = 1 + w for the guidance weight w of Ho & Salimans 2022, eq. (6).

    Inputs:
        x_t: (B, C, T, H, W); t: (B,) long; cond: anything the model takes, or None. The unconditional term
            calls the model with ``cond.unconditional()`` where cond has that method, else with no cond.
        model_kwargs: keyword arguments for every model call, both halves of the guidance (None: none).
    Returns:
        eps: (B, C, T, H, W) float32.
    """
    if cond is None or guidance_scale == 1.0:
        if cond is None and guidance_scale != 1.0:
            raise ValueError(f"guidance_scale={guidance_scale} needs a cond to guide towards; got cond=None")
        return _call(model, x_t, t, cond, model_kwargs)
    eps_cond = _call(model, x_t, t, cond, model_kwargs)
    # a condition may name its unconditional half (a Continuation keeps its given frames); otherwise nothing
    eps_uncond = _call(model, x_t, t, cond.unconditional() if hasattr(cond, "unconditional") else None, model_kwargs)
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


# ---- DDIM: one step, one loop ------------------------------------------------------------------------------------
def ddim_sigma(abar_t: float, abar_prev: float, eta: float) -> float:
    """σ_t of a DDIM step from ᾱ_t to ᾱ_prev (Song et al. 2021, eq. (16)): η √((1−ᾱ_prev)/(1−ᾱ_t)) √(1−ᾱ_t/ᾱ_prev).

    η = 0 is DDIM (deterministic); η = 1 is the DDPM posterior's standard deviation √β̃_t.
    """
    return eta * ((1 - abar_prev) / (1 - abar_t) * (1 - abar_t / abar_prev)) ** 0.5


def ddim_step(x_t: torch.Tensor, eps: torch.Tensor, abar_t: float, abar_prev: float, eta: float = 0.0,
              noise: torch.Tensor | None = None,
              denoised_fn: Callable[[torch.Tensor], torch.Tensor] | None = None) -> torch.Tensor:
    """One DDIM step from noise level ᾱ_t to ᾱ_prev (Song et al. 2021, eq. (12)):

        x_prev = √ᾱ_prev x̂_0 + √(1 − ᾱ_prev − σ_t²) ε + σ_t z,   x̂_0 = (x_t − √(1−ᾱ_t) ε) / √ᾱ_t,

    with σ_t from :func:`ddim_sigma` (eq. (16)). ᾱ_prev = 1 (the last step) returns x̂_0 itself. x̂_0 is computed
    as x_t/√ᾱ_t − √(1/ᾱ_t − 1) ε, the same quantity in the form of :meth:`NoiseSchedule.predict_x0` (and DiT's
    ``_predict_xstart_from_eps``).

    Inputs:
        x_t: (B, C, T, H, W) the state at level ᾱ_t; eps: like x_t, the model's ε for it (a v-model enters through
            :class:`~vgcourse.diffusion.v_prediction.VPrediction`, which returns ε).
        abar_t, abar_prev: ᾱ of this step and of the next one, 0 < ᾱ_t < 1, 0 < ᾱ_prev ≤ 1 (ᾱ_prev ≥ ᾱ_t if η > 0).
        eta: η ≥ 0; noise: z like x_t, needed when σ_t > 0 (η > 0 and ᾱ_prev < 1), unused otherwise.
        denoised_fn: x̂_0 -> x̂_0 (B, C, T, H, W): an edit of the prediction (clip to [-1, 1], known frames, ...);
            ε is then recomputed from x_t and the edited x̂_0, ε = (x_t − √ᾱ_t x̂_0) / √(1−ᾱ_t), so that the
            three stay consistent.
    Returns:
        x_prev: (B, C, T, H, W).
    """
    abar_t, abar_prev = float(abar_t), float(abar_prev)
    if not (0 < abar_t < 1 and 0 < abar_prev <= 1):
        raise ValueError(f"expected 0 < abar_t < 1 and 0 < abar_prev <= 1, got abar_t={abar_t}, abar_prev={abar_prev}")
    if eta < 0:
        raise ValueError(f"expected eta >= 0, got {eta}")
    if eta > 0 and abar_prev < abar_t:
        raise ValueError(f"eta > 0 steps towards the data only: expected abar_prev >= abar_t, got "
                         f"abar_prev={abar_prev} < abar_t={abar_t}")
    if eps.shape != x_t.shape:
        raise ValueError(f"expected eps of shape {tuple(x_t.shape)} like x_t, got {tuple(eps.shape)}")
    recip, recipm1 = abar_t ** -0.5, (1 / abar_t - 1) ** 0.5  # 1/√ᾱ_t and √(1/ᾱ_t − 1)
    x0 = recip * x_t - recipm1 * eps  # the "predicted x_0" of eq. (12): (x_t − √(1−ᾱ_t) ε) / √ᾱ_t
    if denoised_fn is not None:
        x0 = denoised_fn(x0)
        eps = (recip * x_t - x0) / recipm1  # the ε that takes the edited x̂_0 to x_t: (x_t − √ᾱ_t x̂_0) / √(1−ᾱ_t)
    sigma = ddim_sigma(abar_t, abar_prev, eta)
    x_prev = abar_prev ** 0.5 * x0 + max(1 - abar_prev - sigma ** 2, 0.0) ** 0.5 * eps  # eq. (12): x̂_0, direction
    if sigma > 0:
        if noise is None or noise.shape != x_t.shape:
            got = "None" if noise is None else tuple(noise.shape)
            raise ValueError(f"eta={eta} gives sigma={sigma:.3g} > 0: expected noise of shape {tuple(x_t.shape)}, "
                             f"got {got}")
        x_prev = x_prev + sigma * noise  # eq. (12): random noise
    return x_prev


@torch.no_grad()
def ddim_loop(model: EpsModel, x: torch.Tensor, schedule: NoiseSchedule, timesteps: list[int], eta: float = 0.0,
              cond: object | None = None, guidance_scale: float = 1.0, model_kwargs: dict | None = None,
              denoised_fn: Callable[[torch.Tensor], torch.Tensor] | None = None,
              state_fn: Callable[[torch.Tensor, int], torch.Tensor] | None = None,
              generator: torch.Generator | None = None, progress: bool = False,
              ) -> Iterator[tuple[int, torch.Tensor]]:
    """DDIM from the state x at ``timesteps[0]`` down to x_0, one :func:`ddim_step` per timestep; yields every state.

    At each timestep t: x ← state_fn(x, t); ε from the model (:func:`guided_eps` with ``cond``, ``guidance_scale``
    and ``model_kwargs``); z ~ N(0, I) from ``generator`` if σ_t > 0; x ← ddim_step(x, ε, ᾱ_t, ᾱ_prev, η, z,
    denoised_fn). After the last step x ← state_fn(x, −1). The sampler needs to know nothing about a condition
    (it travels in ``cond`` and ``model_kwargs``) or an edit (it travels in the hooks).

    Inputs:
        x: (B, C, T, H, W) the state at timesteps[0]; timesteps: strictly descending, in [0, T).
        state_fn: (x, t) -> x, an edit of the state before the model sees it at step t and of the final sample at
            t = −1 (replace known frames by their noised values, write in clean context frames).
        denoised_fn: an edit of x̂_0 at every step (see :func:`ddim_step`).
    Yields:
        (t_prev, x): x (B, C, T, H, W) float32 after each step, at level t_prev (the next timestep, −1 for x_0).
        No timesteps: x is x_0 already, and one (−1, state_fn(x, −1)) is yielded.
    """
    if eta < 0:
        raise ValueError(f"expected eta >= 0, got {eta}")
    timesteps = [int(i) for i in timesteps]
    if any(i < 0 or i >= schedule.T for i in timesteps) or any(b >= a for a, b in zip(timesteps, timesteps[1:])):
        raise ValueError(f"expected timesteps strictly descending in [0, {schedule.T}), got {timesteps}")
    check_schedule(model, schedule)
    abar = schedule.alphas_cumprod.double().cpu()  # python-side scalars: no device sync per step
    x = x.float()
    if not timesteps:
        yield -1, (state_fn(x, -1) if state_fn is not None else x)
        return
    for k, i in enumerate(progress_bar(timesteps, desc="DDIM", disable=not progress, leave=False)):
        prev = timesteps[k + 1] if k + 1 < len(timesteps) else -1
        abar_t, abar_prev = abar[i].item(), (abar[prev].item() if prev >= 0 else 1.0)
        if state_fn is not None:
            x = state_fn(x, i)
        t = torch.full((x.shape[0],), i, device=x.device, dtype=torch.long)
        eps = guided_eps(model, x, t, cond, guidance_scale, model_kwargs)
        sigma = ddim_sigma(abar_t, abar_prev, eta)
        noise = torch.randn(x.shape, device=x.device, generator=generator) if sigma > 0 else None
        x = ddim_step(x, eps, abar_t, abar_prev, eta, noise, denoised_fn)
        if prev == -1 and state_fn is not None:
            x = state_fn(x, -1)
        yield prev, x


def clipped(denoised_fn: Callable[[torch.Tensor], torch.Tensor] | None,
            clip_x0: bool) -> Callable[[torch.Tensor], torch.Tensor] | None:
    """The x̂_0 hook of a sampler with ``clip_x0``: ``denoised_fn`` (if any), then a clamp to [-1, 1] (if clip_x0)."""
    if not clip_x0:
        return denoised_fn
    if denoised_fn is None:
        return lambda x0: x0.clamp(-1, 1)
    return lambda x0: denoised_fn(x0).clamp(-1, 1)


@torch.no_grad()
def ddim_sample(model: EpsModel, shape: tuple[int, ...], schedule: NoiseSchedule, steps: int, eta: float = 0.0,
                cond: object | None = None, generator: torch.Generator | None = None,
                return_trajectory: bool = False, progress: bool = True, guidance_scale: float = 1.0,
                clip_x0: bool = True, trajectory_every: int = 1, device: torch.device | str | None = None,
                context: CleanContext | None = None, spacing: str = "linear", model_kwargs: dict | None = None,
                denoised_fn: Callable[[torch.Tensor], torch.Tensor] | None = None,
                x_T: torch.Tensor | None = None) -> torch.Tensor | SamplingResult:
    """DDIM sampling on ``steps`` timesteps spaced by ``spacing`` (:func:`ddim_timesteps`) (Song et al. 2021, eq. (12)).

    eta = 0 is deterministic given x_T; eta = 1 with steps = T is ancestral DDPM sampling with σ_t² = β̃_t.
    Inputs (``context`` included) and returns as :func:`ddpm_sample`; x_T ~ N(0, I) is drawn from ``generator``
    (or given as ``x_T`` of ``shape``) and :func:`ddim_loop` does the rest. ``clip_x0`` clamps x̂_0 (after
    ``denoised_fn``, if given), and the ε used for the direction term is recomputed from it, so that x_t, x̂_0 and ε
    stay consistent (:func:`ddim_step`); ``model_kwargs`` go to every model call.
    """
    shape = _check_shape(shape)
    if eta < 0:
        raise ValueError(f"expected eta >= 0, got {eta}")
    check_schedule(model, schedule)
    device = torch.device(device) if device is not None else schedule.betas.device
    ts = ddim_timesteps(schedule.T, steps, spacing).tolist()
    if x_T is not None and tuple(x_T.shape) != shape:
        raise ValueError(f"expected x_T of the sample's shape {shape}, got {tuple(x_T.shape)}")
    x = x_T if x_T is not None else torch.randn(shape, device=device, generator=generator)  # x_T ~ N(0, I)
    record = _Recorder(return_trajectory, trajectory_every)
    record.add(x, ts[0])
    state_fn = (lambda x_, t: context.apply(x_)) if context is not None else None  # the given frames, clean
    for prev, x in ddim_loop(model, x, schedule, ts, eta, cond, guidance_scale, model_kwargs,
                             clipped(denoised_fn, clip_x0), state_fn, generator, progress):
        record.add(x, prev, last=prev == -1)
    return record.result(x)
