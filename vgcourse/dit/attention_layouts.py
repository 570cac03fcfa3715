"""Old home of the spacetime attention layouts, now :mod:`vgcourse.nn.layouts` (every transformer shares them).

Kept so that old imports work; import from :mod:`vgcourse.nn.layouts` and :mod:`vgcourse.nn.transformer`.
"""

from __future__ import annotations

from vgcourse.nn.layouts import (
    LAYOUTS,
    attend,
    attention_flops,
    full_attention,
    layout_step,
    spatial_attention,
    step_window,
    temporal_attention,
    window_attention,
)
from vgcourse.nn.transformer import Attention


class SpacetimeAttention(Attention):
    """The shared :class:`~vgcourse.nn.transformer.Attention` with this module's old signature:
    ``SpacetimeAttention(dim, heads, step, window_size, temporal_window)``, called as ``(x, grid)``: x (N, L, D)
    over the token grid (T', H', W'), L = T'·H'·W' -> (N, L, D) (the grid may be None for ``step="full"``)."""

    def __init__(self, dim: int, heads: int, step: str = "full", window_size: int = 4,
                 temporal_window: int | None = None):
        super().__init__(dim, heads, step=step, window_size=window_size, temporal_window=temporal_window)


__all__ = ["LAYOUTS", "SpacetimeAttention", "attend", "attention_flops", "full_attention", "layout_step",
           "spatial_attention", "step_window", "temporal_attention", "window_attention"]
