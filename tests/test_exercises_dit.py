"""Tests of the DiT exercises: every solution passes its check, untouched stubs read "not attempted yet",
and known-wrong answers fail with a message."""

from __future__ import annotations

import pytest
import torch
from einops import rearrange

from vgcourse.dit import modulate, sincos_1d
from vgcourse.exercises import FAIL, NOT_ATTEMPTED, PASS, check, solution

NAMES = ["patchify", "sincos_3d", "adaln_zero_block"]


@pytest.mark.parametrize("name", NAMES)
def test_solution_passes(name: str) -> None:
    result = check(name, solution(name))
    assert result.status == PASS, str(result)


@pytest.mark.parametrize("name", NAMES)
def test_stub_is_not_attempted(name: str) -> None:
    def stub(*args):
        raise NotImplementedError

    assert check(name, stub).status == NOT_ATTEMPTED


def patchify_channels_first(x, pt, p):  # flattens each tubelet as (C, pt, p, p): same values, wrong order
    return rearrange(x, "b c (nt pt) (nh ph) (nw pw) -> b (nt nh nw) (c pt ph pw)", pt=pt, ph=p, pw=p)


def patchify_space_first(x, pt, p):  # tokens ordered (h, w, t): the right tubelets in the wrong order
    return rearrange(x, "b c (nt pt) (nh ph) (nw pw) -> b (nh nw nt) (pt ph pw c)", pt=pt, ph=p, pw=p)


def sincos_thirds(dim, grid):  # equal thirds instead of D/4 + 3D/8 + 3D/8
    t, h, w = (c.reshape(-1) for c in torch.meshgrid(*(torch.arange(n) for n in grid), indexing="ij"))
    third = (dim // 3) // 2 * 2
    return torch.cat([sincos_1d(third, t), sincos_1d(third, h), sincos_1d(dim - 2 * third, w)], dim=1)


def sincos_space_swapped(dim, grid):  # w before h
    t, h, w = (c.reshape(-1) for c in torch.meshgrid(*(torch.arange(n) for n in grid), indexing="ij"))
    return torch.cat([sincos_1d(dim // 4, t), sincos_1d(3 * dim // 8, w), sincos_1d(3 * dim // 8, h)], dim=1)


def block_without_gates(block, x, c, grid):  # adaLN without the zero-initialised gates
    shift_a, scale_a, _, shift_m, scale_m, _ = block.adaLN_modulation(c).chunk(6, dim=1)
    x = x + block.attn(modulate(block.norm1(x), shift_a, scale_a), grid)
    return x + block.mlp(modulate(block.norm2(x), shift_m, scale_m))


def block_wrong_chunk_order(block, x, c, grid):  # scale before shift
    scale_a, shift_a, gate_a, scale_m, shift_m, gate_m = block.adaLN_modulation(c).chunk(6, dim=1)
    x = x + gate_a[:, None] * block.attn(modulate(block.norm1(x), shift_a, scale_a), grid)
    return x + gate_m[:, None] * block.mlp(modulate(block.norm2(x), shift_m, scale_m))


@pytest.mark.parametrize("name, wrong, says", [
    ("patchify", patchify_channels_first, "wrong order"),
    ("patchify", patchify_space_first, "row-major"),
    ("patchify", lambda x, pt, p: x.flatten(2), "expected (B, L"),
    ("sincos_3d", sincos_thirds, "D/4"),
    ("sincos_3d", sincos_space_swapped, "row h"),
    ("adaln_zero_block", block_without_gates, "unchanged"),
    ("adaln_zero_block", block_wrong_chunk_order, "shift, scale, gate"),
])
def test_wrong_answers_fail_with_a_message(name, wrong, says) -> None:
    result = check(name, wrong)
    assert result.status == FAIL and says in result.message, str(result)
