"""Tests of the spacetime-attention exercises: solutions pass, stubs are "not attempted yet", wrong answers fail."""

from __future__ import annotations

import pytest
import torch
from einops import rearrange

from vgcourse.exercises import FAIL, all_exercises, check

NAMES = ["window_partition", "replace_known", "sdedit_timesteps"]


def test_registered() -> None:
    """Solutions and stubs of every registered exercise are checked in test_results_exercises_build.py."""
    assert set(NAMES) <= set(all_exercises())


def partition_tokens_swapped(q, grid, window):  # tokens inside a window in (w, h, t) order
    (t, h, w), (wt, wh, ww) = grid, window
    return rearrange(q, "b n (nt wt nh wh nw ww) d -> (b nt nh nw) n (ww wh wt) d", nt=t // wt, nh=h // wh,
                     nw=w // ww, wt=wt, wh=wh, ww=ww)


def partition_bare_reshape(q, grid, window):  # consecutive tokens, not neighbours in space
    b, n, length, d = q.shape
    s = window[0] * window[1] * window[2]
    return rearrange(q, "b n (k s) d -> (b k) n s d", s=s)


def replace_with_clean(x, known, mask, t, schedule, noise):
    return mask * known + (1 - mask) * x


def replace_with_alpha_t(x, known, mask, t, schedule, noise):
    a = 1 - schedule.betas[t]
    return mask * (a.sqrt() * known + (1 - a).sqrt() * noise) + (1 - mask) * x


def sdedit_from_T(T, strength, steps):
    return torch.linspace(T - 1, 0, steps).round().long().tolist()


@pytest.mark.parametrize("name, wrong, says", [
    ("window_partition", partition_tokens_swapped, "another order"),
    ("window_partition", partition_bare_reshape, "not neighbours"),
    ("window_partition", lambda q, grid, window: q, "expected (B·windows"),
    ("replace_known", replace_with_clean, "noised"),
    ("replace_known", replace_with_alpha_t, "alphas_cumprod"),
    ("replace_known", lambda x, known, mask, t, schedule, noise: known, "unchanged"),
    ("sdedit_timesteps", sdedit_from_T, "t0 = round"),
    ("sdedit_timesteps", lambda T, strength, steps: 3, "expected a list"),
])
def test_wrong_answers_fail_with_a_message(name, wrong, says) -> None:
    result = check(name, wrong)
    assert result.status == FAIL and says in result.message, str(result)
