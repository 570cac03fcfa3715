"""Exercises on spacetime attention and generation with a video DiT: WALT's window partition, the replacement
trick for continuation, and SDEdit's start step."""

from __future__ import annotations

import torch
from einops import rearrange

from vgcourse.diffusion import linear_schedule
from vgcourse.diffusion.editing import replace_known, sdedit_timesteps
from vgcourse.dit import window_attention
from vgcourse.exercises import Wrong, exercise
from vgcourse.nn.attention import attention


def _shape(x: object) -> object:
    return tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__


# ---- 1. window partition ---------------------------------------------------------------------------------------
def window_partition_solution(q: torch.Tensor, grid: tuple[int, int, int],
                              window: tuple[int, int, int]) -> torch.Tensor:
    """(B, heads, L, d) tokens in row-major (t, h, w) order -> (B·windows, heads, wt·wh·ww, d), one row per window."""
    (t, h, w), (wt, wh, ww) = grid, window
    return rearrange(q, "b n (nt wt nh wh nw ww) d -> (b nt nh nw) n (wt wh ww) d", nt=t // wt, nh=h // wh,
                     nw=w // ww, wt=wt, wh=wh, ww=ww)


@exercise("window_partition", "Cut (B, heads, L, d) tokens over a (T', H', W') grid into non-overlapping (wt, wh, ww) "
          "windows: return (B·windows, heads, wt·wh·ww, d), windows ordered (b, t, h, w), tokens inside a window in "
          "row-major (t, h, w) order (WALT, Gupta et al. 2023, §3.2).", window_partition_solution)
def check_window_partition(answer) -> None:
    g = torch.Generator().manual_seed(0)
    for grid, window in [((2, 4, 4), (1, 2, 2)), ((4, 4, 6), (2, 2, 3)), ((1, 2, 2), (1, 2, 2))]:
        q = torch.randn(2, 3, grid[0] * grid[1] * grid[2], 4, generator=g)
        want = window_partition_solution(q, grid, window)
        out = answer(q, grid, window)
        if not isinstance(out, torch.Tensor) or out.shape != want.shape:
            raise Wrong(f"grid {grid}, window {window}: expected (B·windows, heads, window tokens, d) = "
                        f"{tuple(want.shape)}, got {_shape(out)}")
        if torch.equal(out, want):
            continue
        # is each row the right set of tokens (a right partition, other order)?
        rows = lambda z: sorted(tuple(r.sort().values.tolist()) for r in z[:, 0, :, 0])  # noqa: E731
        if rows(out) == rows(want):
            raise Wrong(f"grid {grid}, window {window}: every window holds the right tokens but windows or tokens "
                        "come in another order: windows (b, t, h, w), tokens (t, h, w) inside")
        raise Wrong(f"grid {grid}, window {window}: a window holds tokens that are not neighbours; split each axis "
                    "into (number of windows, window size) before grouping")
    # used for attention, the partition gives the package's window attention
    q, k, v = torch.randn(3, 1, 2, 2 * 4 * 4, 8, generator=g).unbind(0)
    grid, window = (2, 4, 4), (2, 2, 2)
    out = attention(*(answer(z, grid, window) for z in (q, k, v)))
    back = rearrange(out, "(b nt nh nw) n (wt wh ww) d -> b n (nt wt nh wh nw ww) d", b=1, nt=1, nh=2, nw=2,
                     wt=2, wh=2, ww=2)
    if not torch.allclose(back, window_attention(q, k, v, grid, window), atol=1e-5):
        raise Wrong("attention over your windows differs from vgcourse.dit.window_attention")


# ---- 2. the replacement step -------------------------------------------------------------------------------------
def replace_known_solution(x_t: torch.Tensor, known: torch.Tensor, mask: torch.Tensor, t: int, schedule,
                           noise: torch.Tensor) -> torch.Tensor:
    """Known frames become √ᾱ_t·known + √(1−ᾱ_t)·noise (Ho et al. 2020, eq. (4)); the others keep x_t."""
    abar = schedule.alphas_cumprod[t]
    return mask * (abar.sqrt() * known + (1 - abar).sqrt() * noise) + (1 - mask) * x_t


@exercise("replace_known", "The replacement trick for continuation: given the current state x_t, the known clean "
          "frames, a 0/1 mask (1 = known), the step t, the schedule and noise ε, return x_t with the known frames "
          "replaced by their forward-noised values √ᾱ_t·x_0 + √(1−ᾱ_t)·ε.", replace_known_solution)
def check_replace_known(answer) -> None:
    schedule = linear_schedule(1000)
    g = torch.Generator().manual_seed(1)
    x, known, noise = torch.randn(3, 2, 1, 6, 4, 4, generator=g).unbind(0)
    mask = torch.zeros(1, 1, 6, 1, 1)
    mask[:, :, :2] = 1
    for t in (400, 999, 0):
        want = replace_known(x, known, mask, t, schedule, noise)
        out = answer(x, known, mask, t, schedule, noise)
        if not isinstance(out, torch.Tensor) or out.shape != x.shape:
            raise Wrong(f"expected a state of shape {tuple(x.shape)}, got {_shape(out)}")
        if not torch.allclose(out[:, :, 2:], x[:, :, 2:]):
            raise Wrong("the unknown frames (mask 0) must keep the sampler's state x_t unchanged")
        if torch.allclose(out[:, :, :2], known[:, :, :2]) and t > 0:
            raise Wrong(f"at t={t} the known frames must be *noised* to step t, not clean: the model expects every "
                        "frame at the same noise level")
        if not torch.allclose(out, want, atol=1e-5):
            hint = (": use ᾱ_t = schedule.alphas_cumprod[t] (the product of the α's, not α_t itself)" if t > 0
                    else ": at t = 0 the known frames are (almost) clean")
            raise Wrong(f"at t={t} the known frames differ from √ᾱ_t·x_0 + √(1−ᾱ_t)·ε" + hint)


# ---- 3. SDEdit's start step ------------------------------------------------------------------------------------------
def sdedit_timesteps_solution(T: int, strength: float, steps: int) -> list[int]:
    """Start at t0 = round(strength·(T−1)), then min(steps, t0+1) evenly spaced steps down to 0; [] when t0 = 0."""
    t0 = round(strength * (T - 1))
    if t0 == 0:
        return []
    return torch.linspace(t0, 0, min(steps, t0 + 1), dtype=torch.float64).round().long().tolist()


@exercise("sdedit_timesteps", "SDEdit's schedule: for T diffusion steps, an edit strength in [0, 1] and a budget of "
          "sampler steps, return the descending list of timesteps: start at t0 = round(strength·(T−1)) and take "
          "min(steps, t0 + 1) evenly spaced integer steps down to 0 (an empty list when t0 = 0).",
          sdedit_timesteps_solution)
def check_sdedit_timesteps(answer) -> None:
    for T, strength, steps in [(1000, 0.5, 5), (1000, 1.0, 50), (100, 0.03, 10), (1000, 0.0, 20), (1000, 0.7, 25)]:
        want = sdedit_timesteps(T, strength, steps)
        out = answer(T, strength, steps)
        out = out.tolist() if isinstance(out, torch.Tensor) else out
        if not isinstance(out, (list, tuple)):
            raise Wrong(f"expected a list of timesteps, got {type(out).__name__}")
        out = [int(v) for v in out]
        if out == want:
            continue
        if want and out and out[0] != want[0]:
            raise Wrong(f"T={T}, strength={strength}: the first step should be t0 = round(strength·(T−1)) = "
                        f"{want[0]}, got {out[0]}")
        if want and out and out[-1] != 0:
            raise Wrong(f"T={T}, strength={strength}: the last step must be 0 (the clean sample), got {out[-1]}")
        raise Wrong(f"T={T}, strength={strength}, steps={steps}: expected {want}, got {out}")
