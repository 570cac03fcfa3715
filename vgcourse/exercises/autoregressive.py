"""Exercises on autoregressive priors over video tokens: the teacher-forcing inputs (shift right), NÜWA's 3D nearby
causal mask, and top-k filtering of the next code's logits."""

from __future__ import annotations

import torch

from vgcourse.exercises import Wrong, exercise
from vgcourse.nn.local_attention import nearby_mask


def _shape(x: object) -> object:
    return tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__


# ---- 1. teacher forcing: the inputs are the codes shifted right ----------------------------------------------------
def shift_right_solution(codes: torch.Tensor, start: torch.Tensor) -> torch.Tensor:
    """codes (B, L), start ids (B,) -> the prior's inputs (B, L): the start id, then codes 0 … L−2."""
    return torch.cat([start.view(-1, 1).to(codes.dtype), codes[:, :-1]], dim=1)


@exercise("shift_right", "Teacher forcing: the output at position i predicts code i from the codes before it, so the "
          "input at position i is code i − 1, and position 0 reads the start (or class) token. From codes (B, L) and "
          "start ids (B,), return the inputs (B, L).", shift_right_solution)
def check_shift_right(answer) -> None:
    g = torch.Generator().manual_seed(0)
    for b, length in [(2, 5), (3, 8), (1, 2)]:
        codes = torch.randint(0, 16, (b, length), generator=g)
        start = torch.randint(16, 20, (b,), generator=g)
        want = shift_right_solution(codes, start)
        got = answer(codes, start)
        if not isinstance(got, torch.Tensor) or got.shape != want.shape:
            raise Wrong(f"codes {tuple(codes.shape)}: expected inputs of shape {tuple(want.shape)}, got {_shape(got)}")
        if torch.equal(got, want):
            continue
        if torch.equal(got, codes):
            raise Wrong("the inputs are the codes themselves: then position i would see the code it must predict")
        if torch.equal(got[:, :-1], codes[:, 1:]):
            raise Wrong("that shifts left (the next code as input): the input at i is code i − 1, not i + 1")
        if not torch.equal(got[:, 0], start.to(got.dtype)):
            raise Wrong("position 0 must read the start token (the class id), which says 'begin a clip'")
        raise Wrong(f"codes {codes[0].tolist()}, start {int(start[0])}: expected {want[0].tolist()}, got "
                    f"{got[0].tolist()}")


# ---- 2. NÜWA's 3D nearby causal mask -------------------------------------------------------------------------------
def nearby_causal_mask_solution(grid: tuple[int, int, int], extent: tuple[int, int, int]) -> torch.Tensor:
    """(L, L) bool: query i attends to key j when j ≤ i (raster order) and their cells differ by at most the extent
    along each of t, h and w."""
    return nearby_mask(grid, extent, causal=True)


@exercise("nearby_causal_mask", "NÜWA's 3D nearby attention (Wu et al. 2022, §3.2) as a mask: for a grid (T, H, W) "
          "of L = T·H·W tokens in raster order (t, h, w) and an extent (e_t, e_h, e_w), return the (L, L) bool mask "
          "with True where query i may attend to key j: |t_j − t_i| ≤ e_t, |h_j − h_i| ≤ e_h, |w_j − w_i| ≤ e_w, "
          "and j ≤ i.", nearby_causal_mask_solution)
def check_nearby_causal_mask(answer) -> None:
    for grid, extent in [((3, 4, 4), (1, 1, 1)), ((3, 4, 5), (1, 2, 1)), ((4, 2, 2), (0, 1, 1))]:
        want = nearby_mask(grid, extent)
        got = answer(grid, extent)
        n = want.shape[0]
        if not isinstance(got, torch.Tensor) or got.shape != (n, n):
            raise Wrong(f"grid {grid}: expected a ({n}, {n}) mask, got {_shape(got)}")
        got = got.bool()
        if torch.equal(got, want):
            continue
        if torch.equal(got, nearby_mask(grid, extent, causal=False)):
            raise Wrong("the box is right but keys after the query are allowed: keep j ≤ i (causal)")
        if torch.equal(got, want.T):
            raise Wrong("the mask is transposed: rows are queries, columns are keys")
        if torch.equal(got, torch.ones(n, n, dtype=torch.bool).tril()):
            raise Wrong("that is full causal attention: also keep only keys within the extent on every axis")
        wider = nearby_mask(grid, tuple(e + 1 for e in extent))
        narrower = nearby_mask(grid, tuple(max(e - 1, 0) for e in extent))
        if torch.equal(got, wider) or torch.equal(got, narrower):
            raise Wrong("off by one in the extent: |Δ| ≤ e, the box is 2e + 1 cells wide")
        raise Wrong(f"grid {grid}, extent {extent}: {int((got != want).sum())} of {n * n} entries differ")


# ---- 3. top-k filtering ---------------------------------------------------------------------------------------------
def top_k_logits_solution(logits: torch.Tensor, k: int) -> torch.Tensor:
    """logits (B, K) -> the same with every entry below the row's k-th largest set to −inf."""
    kth = torch.topk(logits, k, dim=-1).values[:, -1:]  # (B, 1)
    return logits.masked_fill(logits < kth, float("-inf"))


@exercise("top_k_logits", "Top-k sampling (as nanoGPT's generate): keep the k largest logits of each row of (B, K) "
          "and set the others to −inf, so that softmax gives them probability 0.", top_k_logits_solution)
def check_top_k_logits(answer) -> None:
    g = torch.Generator().manual_seed(1)
    for b, vocab, k in [(2, 8, 3), (4, 16, 1), (3, 5, 5)]:
        logits = torch.randn(b, vocab, generator=g)
        want = top_k_logits_solution(logits, k)
        got = answer(logits.clone(), k)
        if not isinstance(got, torch.Tensor) or got.shape != want.shape:
            raise Wrong(f"expected logits of shape {tuple(want.shape)}, got {_shape(got)}")
        if torch.equal(got, want):
            continue
        if torch.equal(torch.isinf(got), torch.isinf(want)) and not torch.equal(got[~torch.isinf(got)],
                                                                               want[~torch.isinf(want)]):
            raise Wrong("the right logits are kept but their values changed: leave the kept logits as they are")
        if (got == 0).sum() == b * (vocab - k):
            raise Wrong("the dropped logits are 0, which softmax still gives weight: set them to -inf")
        kept = (~torch.isinf(got)).sum(1)
        if not torch.equal(kept, torch.full((b,), k)):
            raise Wrong(f"each row must keep exactly k = {k} logits (per row, not over the whole batch); got "
                        f"{kept.tolist()}")
        raise Wrong("the kept logits are not each row's k largest")
