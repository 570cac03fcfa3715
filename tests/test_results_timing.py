"""timed measures one call (synchronised on CUDA); seconds_per_call the median of several after a warm-up; num
prints a measured number or 'n/a' as the notebooks do."""

import time

import pytest
import torch

from vgcourse.results import num, seconds_per_call, timed


def test_timed_returns_the_result_and_the_seconds():
    out, seconds = timed(lambda: (time.sleep(0.05), 42)[1], device="cpu")
    assert out == 42
    assert 0.05 <= seconds < 2.0


@pytest.mark.parametrize("device, cuda_in_use, synced", [("cuda", False, True), ("cpu", True, False),
                                                         (None, True, True), (None, False, False)])
def test_timed_synchronises_around_the_call_on_cuda(monkeypatch, device, cuda_in_use, synced):
    calls = []
    monkeypatch.setattr(torch.cuda, "synchronize", lambda *a: calls.append("sync"))
    monkeypatch.setattr(torch.cuda, "is_available", lambda: cuda_in_use)
    monkeypatch.setattr(torch.cuda, "is_initialized", lambda: cuda_in_use)
    timed(lambda: calls.append("fn"), device=device)
    assert calls == (["sync", "fn", "sync"] if synced else ["fn"])  # the clock waits for queued GPU work


def test_seconds_per_call_is_the_median_after_untimed_warm_ups():
    calls = []

    def fn():
        calls.append(1)
        time.sleep(next(durations) if len(calls) > 1 else 0.0)  # the warm-up call does not sleep at all

    durations = iter([0.01, 0.5, 0.03])  # three timed calls, one of them interrupted
    seconds = seconds_per_call(fn, repeats=3, warmup=1, device="cpu")
    assert len(calls) == 4
    assert 0.03 <= seconds < 0.3  # the median, not the mean (0.18) nor the slow call
    assert 0.02 <= seconds_per_call(lambda: time.sleep(0.02), repeats=2, warmup=0, device="cpu") < 0.5
    with pytest.raises(ValueError, match="repeats"):
        seconds_per_call(fn, repeats=0)


def test_num_formats_measured_numbers_and_marks_missing_ones():
    assert num(None) == "n/a"
    assert num(0.123456) == "0.123"                           # the default .3g
    assert num(0.123456, ".1%") == "12.3%"                    # chapter 11's pct()
    assert num(1234.56, ".0f") == "1235"                      # clips/s in chapters 11 and 12
    assert num(torch.tensor(2.5), ".2f") == "2.50"            # a 0-d tensor formats as its number
    assert num(3.21, "10.2f") == "      3.21"
    # a missing value keeps a table's column width, with the number's (right) alignment or the spec's own
    assert num(None, "10.2f") == "       n/a" and num(None, "8.0f") == "     n/a"
    assert num(None, "<6") == "n/a   " and num(None, "*^7.1f") == "**n/a**"
