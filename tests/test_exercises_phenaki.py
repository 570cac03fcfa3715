"""Tests of the Phenaki exercises: solutions pass and equal the package's code, stubs are "not attempted yet",
known-wrong answers fail with a hint."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from vgcourse.autoregressive import MaskGIT, decode_schedule, maskgit_tiny
from vgcourse.exercises import FAIL, all_exercises, check, solution

NAMES = ["masked_token_loss", "guided_logits", "still_masked"]


def test_the_exercises_are_registered() -> None:
    """Each registered exercise's solution passes its check and its stub reads "not attempted yet": that is
    test_results_exercises_build.py's test, over every exercise of the package."""
    assert set(NAMES) <= set(all_exercises())


def test_the_loss_solution_is_maskgits_loss() -> None:
    torch.manual_seed(0)
    model = MaskGIT(maskgit_tiny(grid=(2, 3, 4)))
    x = torch.randint(16, (3, 24), generator=torch.Generator().manual_seed(1))
    mask = torch.rand(3, 24, generator=torch.Generator().manual_seed(2)) < 0.5
    logits, loss = model(x, mask=mask)
    torch.testing.assert_close(solution("masked_token_loss")(logits, x, mask), loss)


def test_the_schedule_solution_is_decode_schedule() -> None:
    for n, steps in ((320, 12), (64, 8)):
        assert [solution("still_masked")(n, t, steps) for t in range(steps)] == decode_schedule(n, steps)


def test_wrong_answers_fail_with_a_hint() -> None:
    everywhere = check("masked_token_loss", lambda lg, y, m: F.cross_entropy(lg.flatten(0, 1), y.flatten()))
    assert everywhere.status == FAIL and "every code" in everywhere.message
    backwards = check("guided_logits", lambda c, u, s: c + s * (c - u))
    assert backwards.status == FAIL and "start from the unconditional" in backwards.message
    before = check("still_masked", lambda n, t, steps: math.floor(math.cos(math.pi / 2 * t / steps) * n))
    assert before.status == FAIL and "before step t" in before.message
    in_float32 = check("still_masked", lambda n, t, steps: int(torch.floor(torch.cos(torch.tensor(
        math.pi / 2 * (t + 1) / steps)) * n)))
    assert in_float32.status == FAIL and "float32 rounding" in in_float32.message
