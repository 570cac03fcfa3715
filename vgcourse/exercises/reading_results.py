"""Exercises on reading measurements: the error of a difference, three-way outcomes, and a line to pass."""

from __future__ import annotations

import math
from dataclasses import fields, replace

from vgcourse.dit import DiTConfig
from vgcourse.exercises import Wrong, exercise
from vgcourse.metrics.protocol import verdict
from vgcourse.record import BAR_TO_CLAIM, difference


# ---- 1. the error of a difference ----------------------------------------------------------------------------
def difference_with_se_solution(a: float, se_a: float, b: float, se_b: float) -> tuple[float, float]:
    """a − b and sqrt(se_a² + se_b²): variances of independent estimates add."""
    return a - b, math.sqrt(se_a ** 2 + se_b ** 2)


@exercise("difference_with_se", "Return a − b and its standard error, for two independent estimates a ± se_a and "
          "b ± se_b.", difference_with_se_solution)
def check_difference_with_se(answer) -> None:
    for a, se_a, b, se_b in [(10.1, 0.93, 4.84, 0.91), (3.0, 0.0, 5.0, 0.4), (1.0, 0.3, 1.0, 0.4)]:
        got = answer(a, se_a, b, se_b)
        if not isinstance(got, (tuple, list)) or len(got) != 2:
            raise Wrong(f"expected a pair (difference, standard error), got {got!r}")
        want = difference(a, se_a, b, se_b)
        if abs(got[0] - want[0]) > 1e-9:
            raise Wrong(f"for a = {a}, b = {b}: the difference is a − b = {want[0]:.3f}, got {got[0]:.3f}")
        if abs(got[1] - want[1]) > 1e-9:
            hint = (" (adding the standard errors overstates it: add the variances, then take the root)"
                    if abs(got[1] - (se_a + se_b)) < 1e-9 else "")
            raise Wrong(f"for se_a = {se_a}, se_b = {se_b}: the standard error is {want[1]:.4f}, got {got[1]:.4f}"
                        + hint)


# ---- 2. three outcomes -------------------------------------------------------------------------------------------
def claim_outcome_solution(value: float, line: float, se: float, lower_is_better: bool = True) -> str:
    """'supported' when value beats line by at least se, 'not supported' when it misses by more, else
    'not resolved'."""
    margin = (line - value) if lower_is_better else (value - line)
    if margin >= se:
        return "supported"
    return "not supported" if margin < -se else "not resolved"


@exercise("claim_outcome", "Read a measured value against a line with its standard error: supported, not "
          "supported or not resolved.", claim_outcome_solution)
def check_claim_outcome(answer) -> None:
    cases = [(10.0, 15.0, 1.0, True), (14.5, 15.0, 1.0, True), (16.5, 15.0, 1.0, True), (15.0, 15.0, 0.0, True),
             (0.95, 0.9, 0.02, False), (0.91, 0.9, 0.02, False), (0.85, 0.9, 0.02, False), (9.0, 10.0, 1.0, True)]
    for value, line, se, lower in cases:
        want = BAR_TO_CLAIM[verdict(value, line, se, lower_is_better=lower)]
        got = answer(value, line, se, lower)
        if got != want:
            side = "lower" if lower else "higher"
            raise Wrong(f"value {value} against line {line} with se {se} ({side} is better): expected {want!r}, "
                        f"got {got!r}")


# ---- 3. a line to pass ---------------------------------------------------------------------------------------
def below_solution(table: dict[str, dict], line: float) -> list[str]:
    """The names whose fd is below ``line`` by at least their own standard error, in the table's order."""
    return [name for name, row in table.items() if line - row["fd"] >= row["fd_se"]]


@exercise("below", "Return the names in a table whose fd is below a line by at least one of their standard "
          "errors, in the table's order.", below_solution)
def check_below(answer) -> None:
    table = {"a": {"fd": 4.8, "fd_se": 0.9}, "b": {"fd": 10.1, "fd_se": 0.9}, "c": {"fd": 9.9, "fd_se": 0.9},
             "d": {"fd": 62.5, "fd_se": 0.8}, "e": {"fd": 9.5, "fd_se": 1.0}}
    for line, want in [(10.6, ["a", "e"]), (35.8, ["a", "b", "c", "e"]), (3.5, [])]:
        got = answer({k: dict(v) for k, v in table.items()}, line)
        if list(got) != want:
            raise Wrong(f"line {line}: expected {want}, got {list(got)} (a model passes when line − fd ≥ its fd_se: "
                        "fd 9.9 ± 0.9 is not below 10.6 by one standard error)")


# ---- 4. a coarser DiT (a change to the model) ---------------------------------------------------------------------
def coarser_dit_solution(config: DiTConfig) -> DiTConfig:
    """The same DiT with patches twice as wide a side: a quarter of the tokens per frame."""
    return replace(config, patch_size=2 * config.patch_size)


@exercise("coarser_dit", "Return the same DiTConfig with the patch size doubled and everything else kept.",
          coarser_dit_solution)
def check_coarser_dit(answer) -> None:
    for config in (DiTConfig(input_size=32, frames=16, in_channels=1, num_classes=0, patch_size=4, temporal_patch=1,
                             depth=2, hidden_size=64, num_heads=4),
                   DiTConfig(input_size=32, frames=8, in_channels=1, num_classes=0, patch_size=8, temporal_patch=2,
                             depth=1, hidden_size=32, num_heads=2)):
        before = replace(config)
        got = answer(config)
        if config != before:
            raise Wrong("the config you were given was changed in place: return a new one (dataclasses.replace)")
        if not isinstance(got, DiTConfig):
            raise Wrong(f"expected a DiTConfig, got {type(got).__name__}")
        if got.patch_size != 2 * config.patch_size:
            raise Wrong(f"patch size {config.patch_size} should become {2 * config.patch_size}, got {got.patch_size}")
        changed = [f.name for f in fields(config) if f.name != "patch_size" and getattr(got, f.name) !=
                   getattr(config, f.name)]
        if changed:
            raise Wrong(f"only the patch size changes; these changed too: {changed}")
        if math.prod(got.grid) * 4 != math.prod(config.grid):    # tokens a clip: T'·H'·W'
            raise Wrong(f"a clip should be a quarter of the tokens: {math.prod(config.grid)} -> {math.prod(got.grid)}")
