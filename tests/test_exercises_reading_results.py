"""Tests of the capstone's exercises: solutions pass, stubs are "not attempted yet", wrong answers fail with a hint,
and each solution agrees with the package (record.difference, protocol.verdict, past_the_floor)."""

from __future__ import annotations

import math
from dataclasses import replace

import pytest

from vgcourse.exercises import FAIL, all_exercises, check, solution
from vgcourse.metrics.protocol import past_the_floor

NAMES = ["difference_with_se", "claim_outcome", "below", "coarser_dit"]


def test_the_exercises_are_registered() -> None:
    """Each registered exercise's solution passes its check and its stub reads "not attempted yet": that is
    test_results_exercises_build.py's test, over every exercise of the package."""
    assert set(NAMES) <= set(all_exercises())


def test_below_is_past_the_floor_for_any_line() -> None:
    table = {"a": {"fd": 4.8, "fd_se": 0.9}, "b": {"fd": 36.0, "fd_se": 1.0}, "c": {"fd": 30.0, "fd_se": 3.0}}
    for line in (10.6, 35.8, 40.0):
        assert solution("below")(table, line) == past_the_floor(table, line)


@pytest.mark.parametrize("name, wrong, says", [
    ("difference_with_se", lambda a, sa, b, sb: (a - b, sa + sb), "add the variances"),
    ("difference_with_se", lambda a, sa, b, sb: (b - a, math.hypot(sa, sb)), "a − b"),
    ("difference_with_se", lambda a, sa, b, sb: a - b, "pair"),
    ("claim_outcome", lambda v, line, se, lower=True: "supported" if (v < line) == lower else "not supported",
     "expected 'not resolved'"),
    ("claim_outcome", lambda v, line, se, lower=True: solution("claim_outcome")(v, line, se, True), "higher is better"),
    ("below", lambda t, line: [n for n, r in t.items() if r["fd"] < line], "one standard error"),
    ("coarser_dit", lambda c: replace(c, patch_size=c.patch_size // 2), "should become"),
    ("coarser_dit", lambda c: replace(c, patch_size=2 * c.patch_size, temporal_patch=2 * c.temporal_patch),
     "these changed too"),
])
def test_wrong_answers_fail_with_a_message(name, wrong, says) -> None:
    result = check(name, wrong)
    assert result.status == FAIL and says in result.message, str(result)
