"""Tests of the DiT exercises: every solution passes its check, untouched stubs read "not attempted yet",
and known-wrong answers fail with a message that says what is wrong."""

from __future__ import annotations

import pytest
import torch
from einops import rearrange

from vgcourse.dit import flops_per_forward, sincos_1d
from vgcourse.exercises import FAIL, all_exercises, check, solution

NAMES = ["unpatchify", "sincos_3d", "dit_gflops"]


def test_registered() -> None:
    """Solutions and stubs of every registered exercise are checked in test_results_exercises_build.py."""
    assert set(NAMES) <= set(all_exercises())


def unpatchify_channels_first(tokens, grid, pt, p):  # reads each token as (C, pt, p, p)
    t, h, w = grid
    return rearrange(tokens, "b (nt nh nw) (c pt ph pw) -> b c (nt pt) (nh ph) (nw pw)", nt=t, nh=h, nw=w,
                     pt=pt, ph=p, pw=p)


def unpatchify_reshape(tokens, grid, pt, p):  # a bare reshape: right size, wrong places
    b, _, v = tokens.shape
    return tokens.reshape(b, v // (pt * p * p), grid[0] * pt, grid[1] * p, grid[2] * p)


def sincos_thirds(dim, grid):  # equal thirds instead of D/4 + 3D/8 + 3D/8
    t, h, w = (c.reshape(-1) for c in torch.meshgrid(*(torch.arange(n) for n in grid), indexing="ij"))
    third = (dim // 3) // 2 * 2
    return torch.cat([sincos_1d(third, t), sincos_1d(third, h), sincos_1d(dim - 2 * third, w)], dim=1)


def sincos_space_swapped(dim, grid):  # w before h
    t, h, w = (c.reshape(-1) for c in torch.meshgrid(*(torch.arange(n) for n in grid), indexing="ij"))
    return torch.cat([sincos_1d(dim // 4, t), sincos_1d(3 * dim // 8, w), sincos_1d(3 * dim // 8, h)], dim=1)


def gflops_without_attention(cfg):  # forgets Q·Kᵀ and A·V
    tokens = cfg.grid[0] * cfg.grid[1] * cfg.grid[2]
    return flops_per_forward(cfg) - cfg.depth * 2 * tokens ** 2 * cfg.hidden_size / 1e9


def gflops_without_adaln(cfg):  # forgets the per-sample adaLN linears
    return flops_per_forward(cfg) - cfg.depth * 6 * cfg.hidden_size ** 2 / 1e9


def gflops_final_layer_writes_c(cfg):  # C_out = C: forgets the paper's variance channels (learn_sigma=True)
    tokens = cfg.grid[0] * cfg.grid[1] * cfg.grid[2]
    volume = cfg.temporal_patch * cfg.patch_size ** 2
    return flops_per_forward(cfg) - tokens * cfg.hidden_size * volume * (cfg.out_channels - cfg.in_channels) / 1e9


@pytest.mark.parametrize("name, wrong, says", [
    ("unpatchify", unpatchify_channels_first, "wrong place"),
    ("unpatchify", unpatchify_reshape, "wrong place"),
    ("unpatchify", lambda tokens, grid, pt, p: tokens, "expected (B, C, T, H, W)"),
    ("unpatchify", lambda tokens, grid, pt, p: 0 * solution("unpatchify")(tokens, grid, pt, p), "never changes"),
    ("sincos_3d", sincos_thirds, "D/4"),
    ("sincos_3d", sincos_space_swapped, "row h"),
    ("dit_gflops", gflops_without_attention, "attention products"),
    ("dit_gflops", gflops_without_adaln, "adaLN"),
    ("dit_gflops", gflops_final_layer_writes_c, "C_out = cfg.out_channels"),
    ("dit_gflops", lambda cfg: 2 * flops_per_forward(cfg), "multiply-add as one flop"),
    ("dit_gflops", lambda cfg: "many", "expected a number"),
])
def test_wrong_answers_fail_with_a_message(name, wrong, says) -> None:
    result = check(name, wrong)
    assert result.status == FAIL and says in result.message, str(result)
