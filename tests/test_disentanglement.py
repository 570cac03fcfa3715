"""Disentanglement measures: real pairs read as a person would, tracks correlated by hand."""

import pytest
import torch

from vgcourse.data import BouncingBalls, MovingDigits
from vgcourse.metrics import PROTOCOL, freeze_frames
from vgcourse.metrics.disentanglement import (
    content_agreement,
    digit_sets,
    real_pairs,
    track_correlation,
    trajectory_correlation,
)


@pytest.fixture(scope="module")
def evaluator():
    return PROTOCOL.evaluator(n_real=32)


def test_real_pairs_share_what_they_say():
    data = PROTOCOL.dataset()
    for share in ("content", "motion", "nothing"):
        a, b = real_pairs(data, 6, share, seed=3)
        assert a.shape == b.shape == (6, 1, 16, 32, 32)
        assert not torch.equal(a, b)
    a, b = real_pairs(data, 6, "motion", seed=3)
    c, _ = real_pairs(data, 6, "content", seed=3)
    assert torch.equal(a, c)  # the first clip of every pair is the same draw
    with pytest.raises(ValueError, match="share"):
        real_pairs(data, 2, "colour")
    with pytest.raises(TypeError, match="moving digits"):
        real_pairs(BouncingBalls(size=32), 2, "content")


def test_content_agreement_reads_shared_digits(evaluator):
    data = PROTOCOL.dataset()
    same = content_agreement(evaluator, *real_pairs(data, 96, "content"))
    other = content_agreement(evaluator, *real_pairs(data, 96, "motion"))
    assert same["agreement"] > 0.85 and other["agreement"] < 0.15, (same, other)
    assert 0 < same["agreement_se"] < 0.05 and same["n"] == 96
    a, _ = real_pairs(data, 8, "nothing")
    assert content_agreement(evaluator, a, a)["agreement"] == 1.0
    # the first and second halves of one clip carry the same digits (pairs may differ in length)
    assert content_agreement(evaluator, a[:, :, :8], a[:, :, 8:])["agreement"] >= 0.75


def test_digit_sets_are_bitmasks_of_k_classes(evaluator):
    a, _ = real_pairs(PROTOCOL.dataset(), 8, "nothing")
    sets = digit_sets(evaluator, a)
    assert sets.shape == (8,)
    assert all(bin(int(s)).count("1") == 2 for s in sets)  # two digits per clip


def test_track_correlation_by_hand():
    g = torch.Generator().manual_seed(0)
    tracks = torch.randn(5, 16, 2, 2, generator=g).cumsum(1)  # (N, T, K, 2) random walks
    torch.testing.assert_close(track_correlation(tracks, tracks + 7.0), torch.ones(5, dtype=tracks.dtype))
    torch.testing.assert_close(track_correlation(tracks, tracks.flip(2)), torch.ones(5, dtype=tracks.dtype))
    one = tracks[:, :, :1]  # one object: no permutation to choose
    reversed_motion = 2 * one.mean(1, keepdim=True) - one  # every step taken backwards
    torch.testing.assert_close(track_correlation(one, reversed_motion), -torch.ones(5, dtype=tracks.dtype))
    still = tracks[:, :1].expand_as(tracks)
    assert (track_correlation(tracks, still) == 0).all()
    with pytest.raises(ValueError, match=r"\(N, T, K, 2\)"):
        track_correlation(tracks, tracks[:, :8])


def test_trajectory_correlation_reads_shared_paths():
    data = PROTOCOL.dataset()
    same = trajectory_correlation(*real_pairs(data, 64, "motion"), objects=2)
    other = trajectory_correlation(*real_pairs(data, 64, "content"), objects=2)
    assert same["correlation"] > 0.85 and other["correlation"] < 0.35, (same, other)
    assert same["correlation_se"] < other["correlation_se"] and same["n"] == 64
    a, b = real_pairs(data, 8, "motion")
    assert trajectory_correlation(freeze_frames(a), freeze_frames(b), 2)["correlation"] == 0.0
    with pytest.raises(ValueError, match="one shape"):
        trajectory_correlation(a, b[:, :, :8], 2)


def test_one_digit_data_pairs_too():
    data = MovingDigits(size=32, frames=16, digits=1)
    r = trajectory_correlation(*real_pairs(data, 16, "motion"), objects=1)
    assert r["correlation"] > 0.85
