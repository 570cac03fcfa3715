"""The one evaluation protocol: reference rows ordered as a person would, fd's standard error, bars."""

import pytest
import torch

from vgcourse.metrics import (
    PROTOCOL,
    bar,
    claim_from,
    floor_fd,
    mean_se,
    past_the_floor,
    reference_rows,
    score,
    show_bars,
    verdict,
)
from vgcourse.metrics.protocol import format_rows, headline, shortfalls


@pytest.fixture(scope="module")
def rows_and_evaluator():
    evaluator = PROTOCOL.evaluator(n_real=128)
    return reference_rows(evaluator, n=48), evaluator


def test_protocol_is_the_courses():
    assert (PROTOCOL.size, PROTOCOL.frames, PROTOCOL.digits, PROTOCOL.n_gen, PROTOCOL.n_real) == (32, 16, 2, 384, 512)
    assert PROTOCOL.dataset().digit_size == 14


def test_reference_rows_rank_as_a_person_would(rows_and_evaluator):
    rows, _ = rows_and_evaluator
    assert list(rows) == ["real", "shuffled frames", "frozen frames", "noise", "mean video"]
    fd = {k: v["fd"] for k, v in rows.items()}
    assert fd["real"] < fd["frozen frames"] < fd["shuffled frames"] < fd["noise"]
    assert fd["mean video"] > fd["shuffled frames"]
    assert all(v["n_gen"] == 48 and v["fd_se"] >= 0 for v in rows.values())
    assert rows["real"]["fd_se"] > 0 and rows["mean video"]["fd_se"] == pytest.approx(0, abs=1e-6)


def test_score_adds_a_standard_error_that_shrinks_with_more_clips(rows_and_evaluator):
    _, evaluator = rows_and_evaluator
    data = PROTOCOL.dataset()
    small = score(evaluator, data.batch(24, seed=5).video)
    large = score(evaluator, data.batch(96, seed=5).video)
    assert small["fd_se"] > large["fd_se"] > 0


def test_verdict_needs_one_standard_error():
    assert verdict(9.0, 10.6, 1.0) == "met"
    assert verdict(10.0, 10.6, 1.0) == "not resolved"
    assert verdict(12.0, 10.6, 1.0) == "not met"
    assert verdict(0.95, 0.9, 0.02, lower_is_better=False) == "met"
    assert verdict(0.91, 0.9, 0.02, lower_is_better=False) == "not resolved"
    with pytest.raises(ValueError, match="standard error"):
        verdict(1.0, 2.0, float("nan"))


def test_past_the_floor_shows_only_models_below_it_by_one_standard_error(capsys):
    scores = {"trained": {"fd": 10.0, "fd_se": 1.0}, "at the floor": {"fd": 35.0, "fd_se": 1.0},
              "noise": {"fd": 230.0, "fd_se": 3.0}, "just past": {"fd": 34.8, "fd_se": 1.0}}
    assert past_the_floor(scores, 35.8) == ["trained", "just past"]
    printed = capsys.readouterr().out
    assert "not shown: at the floor, fd 35.0" in printed and "not shown: noise, fd 230.0" in printed
    assert "trained" not in printed


def test_the_floor_is_twice_the_shuffled_row_at_the_same_n(rows_and_evaluator):
    rows, _ = rows_and_evaluator
    floor = floor_fd(rows)
    assert floor == 2 * rows["shuffled frames"]["fd"]
    assert rows["real"]["fd"] < rows["shuffled frames"]["fd"] < floor < rows["noise"]["fd"]   # real pass, noise not
    assert past_the_floor({k: rows[k] for k in ("real", "noise")}, floor) == ["real"]


def test_headline_and_table(rows_and_evaluator):
    rows, _ = rows_and_evaluator
    h = headline(rows["real"], n_real=128, minutes=1.234, mfu=0.1)
    assert {"fd", "fd_se", "frame_quality", "identity_consistency", "diversity", "n_gen", "n_real", "minutes",
            "mfu"} <= set(h) and h["minutes"] == 1.23
    text = format_rows(rows)
    assert "±" in text and "mean video" in text
    assert torch.isfinite(torch.tensor(h["fd"]))


def test_mean_se_is_the_standard_error_of_the_mean():
    values = torch.tensor([1.0, 2.0, 3.0, 4.0])
    mean, se = mean_se(values)
    assert mean == pytest.approx(2.5)
    assert se == pytest.approx(values.std().item() / 2)
    with pytest.raises(ValueError, match="at least 2"):
        mean_se(torch.tensor([1.0]))


def test_bar_counts_the_lines_own_standard_error():
    # 9.0 ± 0.6 against a line 10.0 ± 0.0: clears by 1.0 > 0.6, met
    assert bar(9.0, 10.0, se=0.6)["outcome"] == "met"
    # the same against a measured line 10.0 ± 0.9: se of the difference 1.08 > 1.0, not resolved
    b = bar(9.0, 10.0, se=0.6, line_se=0.9)
    assert b["outcome"] == "not resolved" and b["margin"] == pytest.approx(1.0)
    # higher is better: 0.85 ± 0.01 against 0.9 misses by 0.05, not met
    b = bar(0.85, 0.9, se=0.01, lower_is_better=False)
    assert b["outcome"] == "not met" and b["margin"] == pytest.approx(-0.05)
    with pytest.raises(ValueError, match="standard error"):
        bar(1.0, 2.0, se=-0.1)
    text = show_bars({"fd below frozen": bar(9.0, 10.0, se=0.6), "accuracy": b})
    assert text.splitlines()[0].strip().startswith("met: fd below frozen: 9.000 ± 0.600 against 10.000 (clears")
    assert "not met: accuracy" in text and "misses it by 0.050" in text


def test_a_claim_is_read_from_its_bars_outcomes():
    assert claim_from(["met", "met"]) == "supported"
    assert claim_from(["met", "not resolved"]) == "not resolved"          # one part within one SE
    assert claim_from(["not resolved", "not met"]) == "not supported"     # one part missed by more than one SE
    assert claim_from(o["outcome"] for o in (bar(9.0, 10.0, se=0.6), bar(0.85, 0.9, 0.01, lower_is_better=False))) \
        == "not supported"
    for bad in ([], ["supported"]):                                       # a claim's word is not a bar's outcome
        with pytest.raises(ValueError, match="outcomes among"):
            claim_from(bad)


def test_shortfalls_name_what_falls_short_of_real_worst_first(rows_and_evaluator):
    rows, _ = rows_and_evaluator
    real = rows["real"]
    assert shortfalls(real, real) == []                                   # real clips fall short of nothing
    frozen = shortfalls(rows["frozen frames"], real)                      # perfect frames that do not move
    assert frozen[0] == f"speed_ratio 0.00 (real {real['speed_ratio']:.2f})"   # the worst: no motion at all
    assert not any(line.startswith(("frame_quality", "identity")) for line in frozen)
    model = real | {"diversity": 0.5 * real["diversity"], "frame_quality": 0.8 * real["frame_quality"],
                    "identity_consistency": 0.95 * real["identity_consistency"]}   # within 10%: not named
    lines = shortfalls(model, real)
    assert [line.split()[0] for line in lines] == ["diversity", "frame_quality"]   # the worst first
    assert shortfalls(model, real, tolerance=0.6) == []
