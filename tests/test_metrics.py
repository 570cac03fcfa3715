"""The metrics: closed forms, probes' accuracy on fresh data, and the calibration ordering a person expects."""

import math

import pytest
import torch

from vgcourse.data import BouncingBalls, CaptionedShapes, MovingDigits
from vgcourse.data.base import foreground
from vgcourse.metrics import (
    Evaluator,
    add_noise,
    attribute_accuracy,
    attribute_consistency,
    bits_per_dim,
    calibration_table,
    codebook_usage,
    count_objects,
    detect_attributes,
    evaluate,
    fill_ratio,
    frechet_distance,
    frechet_distance_features,
    gaussian_stats,
    group_diversity,
    jackknife_fd,
    jackknife_std,
    largest_component,
    motion_stats,
    probe_accuracy,
    psnr,
    seam_jumps,
    ssim,
    track_centroids,
)


def test_frechet_closed_form():
    mu1, mu2 = torch.tensor([0.0, 0.0]), torch.tensor([3.0, 4.0])
    s1, s2 = torch.diag(torch.tensor([1.0, 4.0])), torch.diag(torch.tensor([4.0, 1.0]))
    # diagonal: ‖μ₁−μ₂‖² + Σ (σ₁ − σ₂)² = 25 + (1−2)² + (2−1)² = 27
    assert frechet_distance(mu1, s1, mu2, s2) == pytest.approx(27.0, abs=1e-8)
    assert frechet_distance(mu1, s1, mu1, s1) == pytest.approx(0.0, abs=1e-8)


def test_frechet_from_samples_converges():
    g = torch.Generator().manual_seed(0)
    a = torch.randn(20000, 3, generator=g)
    b = torch.randn(20000, 3, generator=g) * 2 + 1
    # exact: 3·1² (means) + 3·(1 − 2)² (stds) = 6
    assert frechet_distance_features(a, b) == pytest.approx(6.0, rel=0.05)


@pytest.mark.parametrize("d, n", [(4, 200), (32, 40)])  # few dimensions; about as many dimensions as clips
def test_jackknife_error_matches_fresh_samples_and_pairing_cancels_shared_noise(d, n):
    """The jackknife's standard error of the distance must match the spread over fresh draws of the clips (within
    0.7-1.5×; it is 0.9-1.2× over seeds), also where N is close to D; a set and its copy get identical
    leave-one-out distances, and a set paired with a slightly shifted copy of itself has a ratio far less noisy than
    either distance (the noise they share cancels)."""
    g = torch.Generator().manual_seed(0)
    reference = (torch.zeros(d, dtype=torch.float64), torch.eye(d, dtype=torch.float64))

    def draw():
        return torch.randn(n, d, generator=g) * 1.3 + 0.5

    fresh = torch.tensor([frechet_distance(*gaussian_stats(draw()), *reference) for _ in range(200)])
    a = draw()
    b = a + 0.05 * torch.randn(n, d, generator=g) + 0.1
    loo = jackknife_fd({"a": a, "b": b, "a again": a.clone()}, reference)
    assert set(loo) == {"a", "b", "a again"} and loo["a"].shape == (n,) and loo["a"].dtype == torch.float64
    assert 0.7 < jackknife_std(loo["a"]) / fresh.std() < 1.5
    assert torch.equal(loo["a"], loo["a again"])
    assert jackknife_std(loo["b"] / loo["a"]) < 0.3 * float(fresh.std() / fresh.mean())
    with pytest.raises(ValueError, match="same N"):
        jackknife_fd({"a": a, "short": a[:10]}, reference)
    with pytest.raises(ValueError, match="leave-one-out"):
        jackknife_std(torch.ones(1))


def test_evaluator_features_are_what_fd_compares():
    ds = MovingDigits(32, frames=8)
    ev = Evaluator(ds, n_real=64)
    videos = ds.batch(16, seed=5).video
    feats = ev.features(videos)
    assert feats.shape[0] == 16 and feats.ndim == 2
    assert frechet_distance(*gaussian_stats(feats), *ev.real_stats) == pytest.approx(ev(videos)["fd"], rel=1e-9)
    with pytest.raises(ValueError, match="no video probe"):
        Evaluator(CaptionedShapes(32, frames=8), n_real=16).features(torch.zeros(2, 3, 8, 32, 32))


def test_psnr_ssim():
    x = torch.zeros(2, 1, 3, 16, 16)
    y = x + 0.1
    assert torch.allclose(psnr(x, y), torch.full((2,), 10 * math.log10(4 / 0.01)))
    assert torch.allclose(ssim(x, x), torch.ones(2))
    noisy = add_noise(x, 0.5, torch.Generator().manual_seed(0))
    assert (ssim(x, noisy) < 0.5).all()
    with pytest.raises(ValueError, match="equal shapes"):
        psnr(x, x[:, :, :2])


def test_codebook_usage_and_bits():
    stats = codebook_usage(torch.tensor([0, 1, 2, 3, 0, 1, 2, 3]), 8)
    assert stats["usage"] == 0.5 and stats["perplexity"] == pytest.approx(4.0)
    assert float(bits_per_dim(torch.tensor(8 * math.log(2)), 8)) == pytest.approx(1.0)


def test_tracker_follows_labelled_balls():
    batch = BouncingBalls(32, frames=10, balls=1).batch(16, seed=0)
    centers, visible = track_centroids(batch.video, 1)
    assert visible.all()
    assert (centers[:, :, 0] - batch.labels["centers"][:, :, 0]).abs().max() < 0.5


def test_tracker_at_64_scales_back():
    batch = BouncingBalls(64, frames=6, balls=1).batch(8, seed=1)
    centers, _ = track_centroids(batch.video, 1)
    assert (centers[:, :, 0] - batch.labels["centers"][:, :, 0]).abs().max() < 1.0


def test_motion_stats_on_known_tracks():
    t = torch.arange(10.0)
    straight = torch.stack([2 * t, t], -1)[None, :, None]  # (1, 10, 1, 2): constant velocity (2, 1)
    visible = torch.ones(1, 10, dtype=torch.bool)
    stats = motion_stats(straight, visible)
    assert stats["motion_consistency"] == 1.0 and stats["speed"] == pytest.approx(math.sqrt(5))
    jumpy = straight.clone()
    jumpy[0, 5] += 8.0
    assert motion_stats(jumpy, visible)["motion_consistency"] < 0.75


def test_count_objects():
    balls = BouncingBalls(32, frames=2, balls=1, radius=3).batch(4, seed=0).video
    assert (count_objects(balls) == 1).all()
    two = torch.maximum(balls, balls.flip(-1).flip(-2))  # mirrored copy; may overlap
    assert count_objects(two).float().mean() > 1.5


def test_probes_recognise_fresh_heldout_digits():
    acc = probe_accuracy(size=32, n=128)
    assert acc["frame_set_accuracy"] > 0.9, acc
    assert acc["video_set_accuracy"] > 0.95, acc
    assert acc["speed_error_px"] < 0.5, acc


@pytest.fixture(scope="module")
def table32():
    return calibration_table(MovingDigits(32, frames=16), n=64, n_real=128)


def test_calibration_real_is_best_on_fd(table32):
    real = table32["real"]["fd"]
    for name, row in table32.items():
        if name != "real":
            assert row["fd"] > 1.3 * real, (name, row["fd"], real)


def test_calibration_shuffled_frames(table32):
    real, shuf = table32["real"], table32["shuffled frames"]
    assert shuf["motion_consistency"] < 0.5 * real["motion_consistency"]
    assert shuf["frame_quality"] == pytest.approx(real["frame_quality"], rel=0.02)  # every frame is real
    assert shuf["speed_ratio"] > 2


def test_calibration_frozen_frames(table32):
    frozen = table32["frozen frames"]
    assert frozen["speed_ratio"] < 0.05
    assert frozen["frame_quality"] == pytest.approx(table32["real"]["frame_quality"], rel=0.03)
    assert frozen["identity_consistency"] == 1.0  # one frame repeated: identity alone cannot tell a frozen clip


def test_calibration_blur_and_noise_hurt_frames(table32):
    real = table32["real"]
    for name in ("blurred", "noisy"):
        assert table32[name]["frame_quality"] < real["frame_quality"] - 0.05, name
        assert table32[name]["identity_consistency"] < real["identity_consistency"] - 0.1, name
    assert table32["noisy"]["objects"] > 3 * real["objects"]


def test_calibration_real_is_realistic(table32):
    real = table32["real"]
    assert 0.9 < real["speed_ratio"] < 1.1 and 0.9 < real["diversity"] < 1.1
    assert real["identity_consistency"] > 0.85 and real["class_coverage"] == 1.0


def test_digits_per_clip_average_to_the_evaluators_scores_and_single_out_a_broken_clip():
    ds = MovingDigits(32, frames=8)
    ev = Evaluator(ds, n_real=64)
    videos = ds.batch(24, seed=5).video
    videos[3, :, 4:] = ds.batch(1, seed=99).video[0, :, 4:]        # clip 3 changes its digits halfway
    per_clip = ev.digits_per_clip(videos)
    scores = ev(videos)
    assert per_clip["identity_consistency"].shape == per_clip["frame_quality"].shape == (24,)
    for name in ("identity_consistency", "frame_quality"):
        assert per_clip[name].mean().item() == pytest.approx(scores[name], abs=1e-6)
    assert per_clip["identity_consistency"][3] <= 0.75 < per_clip["identity_consistency"].median()
    with pytest.raises(ValueError, match="no frame probe"):
        Evaluator(CaptionedShapes(32, frames=8), n_real=16).digits_per_clip(torch.zeros(2, 3, 8, 32, 32))


def test_mode_collapse_shows_in_diversity():
    ds = MovingDigits(32, frames=8)
    ev = Evaluator(ds, n_real=64)
    one = ds.batch(1, seed=3).video.expand(32, -1, -1, -1, -1)
    scores = ev(one)
    assert scores["diversity"] < 0.05 and scores["class_coverage"] <= 0.2 + 1e-6


def test_evaluate_checks_shapes():
    ds = MovingDigits(32, frames=8)
    with pytest.raises(ValueError, match="cannot be compared"):
        evaluate(torch.zeros(4, 1, 4, 32, 32), ds, n_real=16)


def test_attribute_accuracy_on_real_and_wrong_labels():
    batch = CaptionedShapes(32, frames=8).batch(64, seed=2)
    assert attribute_accuracy(batch.video, batch.labels)["attribute_accuracy"] > 0.9
    wrong = dict(batch.labels, colour=(batch.labels["colour"] + 1) % 6)
    assert attribute_accuracy(batch.video, wrong)["colour_accuracy"] == 0.0


def test_attribute_accuracy_per_clip_marks_the_clips_asked_wrongly():
    batch = CaptionedShapes(32, frames=8, object_size=10).batch(32, seed=3)
    colour = batch.labels["colour"].clone()
    colour[::4] = (colour[::4] + 1) % 6  # every fourth clip is said to have another colour
    got = attribute_accuracy(batch.video, dict(batch.labels, colour=colour), per_clip=True)
    correct = got["attribute_correct"]
    assert correct.dtype == torch.bool and correct.shape == (32,)
    assert not correct[::4].any() and correct.float().mean().item() == pytest.approx(got["attribute_accuracy"])
    assert "attribute_correct" not in attribute_accuracy(batch.video, batch.labels)


def test_attribute_accuracy_by_shape_singles_out_the_shape_asked_wrongly():
    batch = CaptionedShapes(32, frames=8, object_size=10).batch(96, seed=5)
    shape = batch.labels["shape"].clone()
    shape[shape == 0] = 1  # every clip of a square is said to be a circle
    got = attribute_accuracy(batch.video, dict(batch.labels, shape=shape), by_shape=True)
    assert got["shape_accuracy_by_shape"]["triangle"] == 1.0
    squares = (batch.labels["shape"][:, 0] == 0).float().sum()
    circles = (shape[:, 0] == 1).float().sum()
    assert got["shape_accuracy_by_shape"]["circle"] == pytest.approx(float((circles - squares) / circles))
    assert "square" not in got["shape_accuracy_by_shape"]  # no clip asks for a square any more
    assert "shape_accuracy_by_shape" not in attribute_accuracy(batch.video, batch.labels)


def test_attribute_consistency_counts_changed_and_missing_frames():
    clips = CaptionedShapes(32, frames=16, object_size=10).batch(64, seed=4)
    assert attribute_consistency(clips.video).min() == 1.0  # every real frame reads as its clip's object
    other = torch.cat([clips.video[1:], clips.video[:1]])  # each clip's neighbour
    same = torch.ones(64, dtype=torch.bool)
    for key in ("colour", "shape"):
        same &= clips.labels[key][:, 0] == torch.roll(clips.labels[key][:, 0], -1)
    spliced = torch.cat([clips.video[:, :, :10], other[:, :, 10:]], dim=2)  # 10 frames of one object, 6 of another
    got = attribute_consistency(spliced)
    assert torch.allclose(got[~same], torch.full_like(got[~same], 10 / 16))
    assert (got[same] == 1.0).all()
    faded = clips.video.clone()
    faded[:, :, 12:] = -1.0  # the object vanishes after 12 frames: black frames count as changes
    assert torch.allclose(attribute_consistency(faded), torch.full((64,), 12 / 16))
    with pytest.raises(ValueError):
        attribute_consistency(torch.zeros(2, 1, 4, 32, 32))  # shapes are colour clips


def test_seam_jumps() -> None:
    video = torch.zeros(1, 1, 6, 4, 4)
    video[:, :, 3:] = 1.0  # one jump into frame 3
    out = seam_jumps(video, [3])
    assert out["seam_change"] == 1.0 and out["within_change"] == 0.0
    ramp = torch.linspace(-1, 1, 6).view(1, 1, 6, 1, 1).expand(2, 1, 6, 4, 4)
    assert seam_jumps(ramp, [2, 4])["seam_ratio"] == pytest.approx(1.0)


def test_group_diversity_closed_form():
    a = torch.zeros(1, 1, 2, 2, 2)
    videos = torch.cat([a, a + 0.5, a, a])  # group 0: distance 0.5 apart; group 1: identical
    groups = torch.tensor([0, 0, 1, 1])
    assert group_diversity(videos, groups) == pytest.approx(0.25)
    assert group_diversity(videos[2:], groups[2:]) == 0.0
    with pytest.raises(ValueError, match="at least 2"):
        group_diversity(videos[:3], torch.tensor([0, 0, 1]))


def test_largest_component_keeps_the_biggest_blob_only():
    mask = torch.zeros(3, 8, 8, dtype=torch.bool)
    mask[0, 1:4, 1:4] = True        # 9 pixels
    mask[0, 6, 6] = True            # a stray pixel
    mask[0, 5, 1:3] = True          # a 2-pixel blob, a row below the square: not touching it
    mask[1, 2, 2] = True            # a lone pixel is its own largest blob
    got = largest_component(mask)
    want = torch.zeros_like(mask)
    want[0, 1:4, 1:4] = True
    want[1, 2, 2] = True
    assert torch.equal(got, want)   # and the empty mask stays empty
    snake = torch.zeros(1, 7, 7, dtype=torch.bool)
    snake[0, ::2] = True            # rows joined at alternate ends: one long 4-connected path
    snake[0, 1::4, 6] = True
    snake[0, 3::4, 0] = True
    assert torch.equal(largest_component(snake), snake)
    with pytest.raises(ValueError, match="bool mask"):
        largest_component(mask.float())


def test_a_stray_pixel_does_not_change_the_shape_read():
    batch = CaptionedShapes(32, frames=8, object_size=10).batch(48, seed=3)
    video = batch.video.clone()
    m = foreground(video) > 0                              # (B, T, H, W)
    for b in range(video.shape[0]):                        # one object-coloured pixel 2 px above each object
        for t in range(video.shape[2]):
            ys, xs = torch.nonzero(m[b, t], as_tuple=True)
            y = int(ys.min()) - 2 if ys.min() >= 2 else int(ys.max()) + 2
            video[b, :, t, y, int(xs.float().mean())] = video[b, :, t, ys[0], xs[0]]
    clean = detect_attributes(batch.video)["shape"]
    assert torch.equal(clean, batch.labels["shape"][:, 0])
    assert torch.equal(detect_attributes(video)["shape"], clean)
    assert torch.allclose(fill_ratio(video), fill_ratio(batch.video), equal_nan=True)


def test_frechet_with_covariances_that_do_not_commute():
    """Tr((Σ₁Σ₂)^½) is not Tr(Σ₁^½ Σ₂^½) unless the two commute; diagonal and isotropic cases cannot tell them apart.
    For a 2×2 M = Σ₁Σ₂ with eigenvalues λ₁, λ₂ ≥ 0: Tr M^½ = √λ₁ + √λ₂ = √(tr M + 2√det M)."""
    from vgcourse.metrics import frechet_distance

    s1 = torch.tensor([[2.0, 1.0], [1.0, 2.0]], dtype=torch.float64)
    s2 = torch.diag(torch.tensor([1.0, 4.0], dtype=torch.float64))
    mu = torch.zeros(2, dtype=torch.float64)
    m = s1 @ s2
    cross = math.sqrt(torch.trace(m).item() + 2 * math.sqrt(torch.det(m).item()))  # √(10 + 2√12)
    assert frechet_distance(mu, s1, mu, s2) == pytest.approx(4 + 5 - 2 * cross, abs=1e-9)  # 0.77122


def test_ssim_closed_forms():
    """SSIM(x, x) = 1 holds for any constants; these two cases pin the luminance and the covariance terms."""
    from vgcourse.metrics import ssim

    c1, c2 = (0.01 * 2) ** 2, (0.03 * 2) ** 2  # K1 = 0.01, K2 = 0.03, data range L = 2 (Wang et al. 2004)
    a = torch.full((1, 1, 2, 16, 16), 0.5)
    # flat images: variances and covariance 0, so SSIM is (2 μa μb + C1) / (μa² + μb² + C1)
    assert ssim(a, -a).item() == pytest.approx((-0.5 + c1) / (0.5 + c1), abs=1e-5)
    # a ±0.5 checkerboard and its negative: local means ≈ 0, variances 0.25, covariance −0.25
    i = torch.arange(16)
    board = (0.5 * (-1.0) ** (i[:, None] + i[None, :])).expand(1, 1, 2, 16, 16)
    assert ssim(board, -board).item() == pytest.approx((-0.5 + c2) / (0.5 + c2), abs=1e-4)
