"""Tests of vgcourse.nn.layouts (the spacetime attention layouts the DiT uses): each layout equals the attention it
claims, and costs are ordered."""

from __future__ import annotations

import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

import vgcourse.dit
import vgcourse.dit.attention_layouts
from vgcourse.dit import DiT, DiT_Tiny
from vgcourse.nn import layouts
from vgcourse.nn.attention import attention
from vgcourse.nn.layouts import (
    attend,
    attention_flops,
    full_attention,
    layout_step,
    spatial_attention,
    temporal_attention,
    window_attention,
)


def qkv(grid: tuple[int, int, int], b: int = 2, heads: int = 2, d: int = 8, seed: int = 0) -> list[torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    n = grid[0] * grid[1] * grid[2]
    return [torch.randn(b, heads, n, d, generator=g) for _ in range(3)]


def as_grid(z: torch.Tensor, grid: tuple[int, int, int]) -> torch.Tensor:
    return z.reshape(*z.shape[:2], *grid, z.shape[-1])  # (B, heads, T', H', W', d)


def test_window_covering_the_grid_equals_full_attention() -> None:
    grid = (2, 4, 6)
    q, k, v = qkv(grid)
    assert torch.allclose(window_attention(q, k, v, grid, grid), full_attention(q, k, v, grid), atol=1e-6)


def test_spatial_step_is_per_frame_full_attention() -> None:
    grid = (3, 4, 4)
    q, k, v = qkv(grid)
    out = as_grid(spatial_attention(q, k, v, grid), grid)
    for f in range(3):
        frame = [as_grid(z, grid)[:, :, f].flatten(2, 3) for z in (q, k, v)]  # (B, heads, H'*W', d)
        assert torch.allclose(out[:, :, f].flatten(2, 3), attention(*frame), atol=1e-6)


def test_temporal_step_is_per_location_attention_over_frames() -> None:
    grid = (4, 3, 2)
    q, k, v = qkv(grid)
    out = as_grid(temporal_attention(q, k, v, grid), grid)
    for i in range(3):
        for j in range(2):
            loc = [as_grid(z, grid)[:, :, :, i, j] for z in (q, k, v)]  # (B, heads, T', d)
            assert torch.allclose(out[:, :, :, i, j], attention(*loc), atol=1e-6)


def test_window_step_is_attention_inside_each_window() -> None:
    grid, win = (4, 4, 6), (2, 2, 3)
    q, k, v = qkv(grid)
    out = as_grid(window_attention(q, k, v, grid, win), grid)
    for a in range(0, 4, 2):
        for b in range(0, 4, 2):
            for c in range(0, 6, 3):
                box = [as_grid(z, grid)[:, :, a:a + 2, b:b + 2, c:c + 3].flatten(2, 4) for z in (q, k, v)]
                expected = attention(*box).reshape(2, 2, 2, 2, 3, 8)
                assert torch.allclose(out[:, :, a:a + 2, b:b + 2, c:c + 3], expected, atol=1e-6)


def test_layouts_alternate_their_steps() -> None:
    assert [layout_step("full", i) for i in range(3)] == ["full"] * 3
    assert [layout_step("factorised", i) for i in range(3)] == ["spatial", "temporal", "spatial"]
    assert [layout_step("window", i) for i in range(3)] == ["spatial_window", "spacetime_window", "spatial_window"]


def test_dit_with_whole_grid_windows_equals_full_dit() -> None:
    # one latent frame (T' = 1), so the spatial (1, 4, 4) and spacetime (1, 4, 4) windows both cover the grid
    base = dict(input_size=8, frames=2, in_channels=2, temporal_patch=2, num_classes=3, depth=2)
    full = DiT(DiT_Tiny(**base)).eval()
    window = DiT(DiT_Tiny(**base, attention_layout="window", window_size=4)).eval()
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for p in full.parameters():
            p.add_(0.05 * torch.randn(p.shape, generator=g))
    window.load_state_dict(full.state_dict())
    x, t, y = torch.randn(2, 2, 2, 8, 8, generator=g), torch.tensor([3, 700]), torch.tensor([0, 2])
    assert torch.allclose(window(x, t, y), full(x, t, y), atol=1e-5)
    small = DiT(DiT_Tiny(**base, attention_layout="window", window_size=2)).eval()
    small.load_state_dict(full.state_dict())
    assert (small(x, t, y) - full(x, t, y)).abs().max() > 1e-4  # smaller windows see less


def test_costs_are_ordered_and_closed_form() -> None:
    grid, dim = (8, 16, 16), 384
    tokens = 8 * 16 * 16
    full = attention_flops("full", grid, dim, depth=2)
    assert full == 2 * (2 * tokens ** 2 * dim)
    fact = attention_flops("factorised", grid, dim, depth=2)
    assert fact == 2 * tokens * 256 * dim + 2 * tokens * 8 * dim
    window = attention_flops("window", grid, dim, depth=2, window_size=4)
    assert window == 2 * tokens * 16 * dim + 2 * tokens * (8 * 16) * dim
    assert full > window and full > fact
    # windows as wide as the grid: the spatial window is one whole frame, the spacetime window the whole clip
    assert attention_flops("window", grid, dim, depth=2, window_size=16) == \
        attention_flops("factorised", grid, dim, depth=1) + full / 2


@pytest.mark.parametrize("step", ["full", "spatial", "temporal", "spatial_window", "spacetime_window"])
def test_step_cost_matches_flop_counter(step: str) -> None:
    grid, heads, d = (4, 8, 8), 2, 8
    layout = {"full": "full", "spatial": "factorised", "temporal": "factorised"}.get(step, "window")
    index = 1 if step in ("temporal", "spacetime_window") else 0
    with torch.device("meta"):
        q, k, v = (torch.empty(1, heads, 256, d) for _ in range(3))
    with FlopCounterMode(display=False) as counter:
        attend(q, k, v, grid, step, window_size=4, temporal_window=2)
    expected = attention_flops(layout, grid, heads * d, depth=index + 1, window_size=4, temporal_window=2) \
        - attention_flops(layout, grid, heads * d, depth=index, window_size=4, temporal_window=2)
    assert counter.get_total_flops() / 2 == expected


def test_layout_errors() -> None:
    grid = (2, 4, 4)
    q, k, v = qkv(grid)
    divides = r"window \(wt, wh, ww\) that divides the token grid .*\(2, 4, 4\), got window \(1, 3, 3\)"
    with pytest.raises(ValueError, match=divides):
        window_attention(q, k, v, grid, (1, 3, 3))
    with pytest.raises(ValueError, match=r"L = T'·H'·W' = 2·4·5 = 40, got \(2, 2, 32, 8\)"):
        full_attention(q, k, v, (2, 4, 5))
    with pytest.raises(ValueError, match="attention_layout in"):
        layout_step("dilated", 0)


def test_old_paths_re_export_the_layouts() -> None:
    for name in ("LAYOUTS", "attend", "attention_flops", "full_attention", "layout_step", "spatial_attention",
                 "temporal_attention", "window_attention"):
        assert getattr(vgcourse.dit, name) is getattr(layouts, name)
        assert getattr(vgcourse.dit.attention_layouts, name) is getattr(layouts, name)
