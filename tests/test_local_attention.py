"""Tests of NÜWA's 3D nearby attention mask (vgcourse.nn.local_attention): the mask against a brute-force reading of
its definition, the pair count against the mask, the limits (full extent = causal, zero extent = the token alone),
and that an Attention given the mask ignores tokens outside the neighbourhood."""

from __future__ import annotations

import itertools

import pytest
import torch

from vgcourse.nn import Attention, causal_mask, nearby_mask, nearby_pairs, pair_flops


def brute_force(grid, extent, causal):
    cells = list(itertools.product(*(range(n) for n in grid)))  # raster order
    out = torch.zeros(len(cells), len(cells), dtype=torch.bool)
    for i, a in enumerate(cells):
        for j, b in enumerate(cells):
            out[i, j] = all(abs(x - y) <= e for x, y, e in zip(a, b, extent)) and (j <= i or not causal)
    return out


@pytest.mark.parametrize("grid, extent", [((2, 3, 4), (1, 1, 1)), ((3, 4, 4), (0, 2, 1)), ((4, 2, 5), (2, 0, 3))])
@pytest.mark.parametrize("causal", [True, False])
def test_mask_is_the_box_and_the_pairs_count_it(grid, extent, causal) -> None:
    mask = nearby_mask(grid, extent, causal)
    assert torch.equal(mask, brute_force(grid, extent, causal))
    assert nearby_pairs(grid, extent, causal) == int(mask.sum())


def test_limits_full_extent_is_causal_and_zero_extent_is_the_token_itself() -> None:
    grid = (3, 4, 5)
    assert torch.equal(nearby_mask(grid, (3, 4, 5)), causal_mask(60, 60))
    assert torch.equal(nearby_mask(grid, (0, 0, 0)), torch.eye(60, dtype=torch.bool))
    assert nearby_pairs(grid, (9, 9, 9)) == 60 * 61 // 2
    assert nearby_pairs((16, 32, 32), (1, 2, 2)) < 0.01 * nearby_pairs((16, 32, 32), (16, 32, 32))
    assert pair_flops(10, 64) == 2560


def test_attention_with_the_mask_ignores_tokens_outside_the_neighbourhood() -> None:
    torch.manual_seed(0)
    grid, extent = (3, 3, 3), (0, 1, 1)
    attn = Attention(16, 2, causal=True).eval()
    mask = nearby_mask(grid, extent)
    x = torch.randn(2, 27, 16)
    q = 13  # the centre cell (1, 1, 1): frame 0 (cells 0 … 8) is outside its box
    far = ~mask[q]
    changed = x.clone()
    changed[:, far] += 5.0
    a, b = attn(x, mask=mask), attn(changed, mask=mask)
    torch.testing.assert_close(a[:, q], b[:, q])
    assert far[:q].any() and (attn(x)[:, q] - attn(changed)[:, q]).abs().max() > 1e-3  # without the mask it differs


def test_bad_inputs_raise() -> None:
    with pytest.raises(ValueError, match="grid"):
        nearby_mask((0, 2, 2), (1, 1, 1))
    with pytest.raises(ValueError, match="extent"):
        nearby_pairs((2, 2, 2), (1, -1, 1))
