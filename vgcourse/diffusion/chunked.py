"""Sampling many clips a chunk at a time: the memory of one chunk, the samples of one batch.

A Fréchet distance wants hundreds of clips, more than fit through a network at once.
:func:`~vgcourse.video.in_chunks` (a shared piece, re-exported here) runs any ``fn(rows)`` over consecutive slices
of the clips and concatenates the results in order; :func:`rows` cuts the matching rows out of a condition (a tensor,
:class:`~vgcourse.diffusion.conditioning.Conditions`, a :class:`~vgcourse.diffusion.clean_context.CleanContext`, a
dataclass of tensors). :func:`ddim_sample_chunked` draws every clip's x_T first, from one generator, and then runs
:func:`~vgcourse.diffusion.ddim_sample` chunk by chunk: with η = 0 the samples do not depend on the chunk size, only
the memory does.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import torch

from vgcourse.diffusion.clean_context import CleanContext
from vgcourse.diffusion.ddpm import EpsModel, ddim_sample
from vgcourse.diffusion.schedules import NoiseSchedule
from vgcourse.video import in_chunks  # also vgcourse.diffusion.in_chunks, as chapters import it


def rows(value: Any, r: slice) -> Any:
    """The rows ``r`` of a per-clip value: None stays None; a tensor, a list or anything with ``__getitem__``
    (``Conditions``) is indexed; a tuple (a ``CleanContext``), a dict or a dataclass of tensors (a
    ``Continuation``) is cut field by field, every tensor in it along dim 0."""
    if value is None:
        return None
    if isinstance(value, tuple):
        parts = [rows(v, r) for v in value]
        return type(value)(*parts) if hasattr(value, "_fields") else tuple(parts)
    if isinstance(value, dict):
        return {k: rows(v, r) for k, v in value.items()}
    if hasattr(value, "__getitem__"):  # a tensor, a list, Conditions
        return value[r]
    if dataclasses.is_dataclass(value):
        return dataclasses.replace(value, **{f.name: getattr(value, f.name)[r] for f in dataclasses.fields(value)
                                             if isinstance(getattr(value, f.name), torch.Tensor)})
    raise TypeError(f"cannot take rows of a {type(value).__name__}: expected a tensor, a list, a tuple, a dict, "
                    "a dataclass of tensors or an object with __getitem__")


@torch.no_grad()
def ddim_sample_chunked(model: EpsModel, shape: tuple[int, ...], schedule: NoiseSchedule, steps: int,
                        chunk: int = 64, cond: object | None = None, context: CleanContext | None = None,
                        generator: torch.Generator | None = None, amp: bool | None = None,
                        **ddim_kwargs: Any) -> torch.Tensor:
    """DDIM samples (N, C, T, H, W) = ``shape``, ``chunk`` clips per call of :func:`ddim_sample`; float32.

    x_T ~ N(0, I) for all N clips is drawn first, in one call on ``generator`` (on the schedule's device), so that
    with η = 0 the result is the same for any chunk size. ``cond`` and ``context`` are per clip and cut with
    :func:`rows`; ``amp`` (None: on CUDA) runs the model under bf16 autocast; ``ddim_kwargs`` (``guidance_scale``,
    ``clip_x0``, ``eta``, ``spacing``, ``model_kwargs``, ``denoised_fn``) go to every :func:`ddim_sample` call.
    """
    device = schedule.betas.device
    x_T = torch.randn(tuple(shape), device=device, generator=generator)  # (N, C, T, H, W)
    amp = device.type == "cuda" if amp is None else amp
    ddim_kwargs.setdefault("progress", False)

    def sample(r: slice) -> torch.Tensor:
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=amp):
            x = ddim_sample(model, tuple(x_T[r].shape), schedule, steps, cond=rows(cond, r), generator=generator,
                            context=rows(context, r), x_T=x_T[r], **ddim_kwargs)
        return x.float()  # (rows, C, T, H, W)

    return in_chunks(sample, x_T.shape[0], chunk)
