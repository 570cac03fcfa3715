import numpy as np
import pytest
import torch

from vgcourse.data import (
    COLOUR_NAMES,
    DIRECTION_NAMES,
    SHAPES,
    VOCAB,
    BouncingBalls,
    CaptionedShapes,
    CroppedDigits,
    MovingDigits,
    bucket_stream,
    foreground,
    load_digit_images,
    load_moving_mnist,
    tokenize,
)
from vgcourse.data.digits import digit_split
from vgcourse.metrics import detect_attributes


@pytest.mark.parametrize("ds", [MovingDigits(32, frames=8), BouncingBalls(32, frames=8),
                                CaptionedShapes(32, frames=8, camera_pan=True)])
def test_shapes_range_and_determinism(ds):
    a = ds.batch(6, seed=4)
    b = ds.batch(6, seed=4)
    c = ds.batch(6, seed=5)
    assert a.video.shape == (6, ds.channels, 8, 32, 32)
    assert a.video.dtype == torch.float32 and a.video.min() >= -1 and a.video.max() <= 1
    assert torch.equal(a.video, b.video)
    assert not torch.equal(a.video, c.video)
    for key, value in a.labels.items():
        assert value.shape[0] == 6, key
        assert torch.equal(value, b.labels[key])


def test_bundled_digits():
    images, labels = load_digit_images()
    assert images.shape == (1797, 8, 8) and images.min() == 0 and images.max() == 1
    assert torch.bincount(labels).tolist() == [178, 182, 177, 183, 181, 182, 181, 179, 174, 180]
    train, held = digit_split("train"), digit_split("heldout")
    assert len(set(train.tolist()) & set(held.tolist())) == 0 and len(train) + len(held) == 1797


def test_moving_digits_follow_their_labels():
    ds = MovingDigits(64, frames=12, digits=1)
    batch = ds.batch(8, seed=1)
    pos = batch.labels["positions"]  # (B, T, 1, 2)
    assert pos.min() >= 0 and pos.max() <= 64 - ds.digit_size
    # the bright pixels' bounding box sits inside the sprite's box at the labelled position
    for i in range(8):
        for t in (0, 11):
            frame = batch.video[i, 0, t] > -0.5
            ys, xs = frame.nonzero(as_tuple=True)
            y0, x0 = pos[i, t, 0].round().long().tolist()
            assert ys.min() >= y0 and ys.max() < y0 + ds.digit_size
            assert xs.min() >= x0 and xs.max() < x0 + ds.digit_size
    # constant speed through elastic bounces
    speed = batch.labels["velocities"].norm(dim=-1)
    assert torch.allclose(speed, speed[:, :1].expand_as(speed))


def test_heldout_uses_its_own_digits():
    ds = MovingDigits(32, frames=4)
    assert torch.equal(ds.heldout(4).video, ds.heldout(4).video)
    train = ds.batch(64, seed=0)
    held_instances = set(digit_split("heldout").tolist())
    params = ds._draw(64, torch.Generator().manual_seed(0), "train")
    assert not (set(params["_instance"].flatten().tolist()) & held_instances)
    assert train.video.shape[0] == 64


def test_stream_is_indexed_by_step():
    ds = MovingDigits(32, frames=4)
    stream = ds.stream(3, seed=2)
    assert torch.equal(stream(5).video, stream(5).video)
    assert not torch.equal(stream(5).video, stream(6).video)


def test_balls_stay_in_box_and_bounce():
    ds = BouncingBalls(32, frames=40, balls=2)
    centers = ds.batch(16, seed=0).labels["centers"]
    assert centers.min() >= ds.radius - 1e-4 and centers.max() <= 32 - 1 - ds.radius + 1e-4
    vel = ds.batch(16, seed=0).labels["velocities"]
    flips = (vel[:, 1:] * vel[:, :-1] < 0).any()
    assert flips, "40 frames should see at least one wall bounce"


def test_captions_and_attributes_agree():
    ds = CaptionedShapes(32, frames=8)
    batch = ds.batch(32, seed=3)
    for i, text in enumerate(batch.captions):
        c, s, d = (int(batch.labels[k][i, 0]) for k in ("colour", "shape", "direction"))
        assert text == f"a {COLOUR_NAMES[c]} {SHAPES[s]} moves {DIRECTION_NAMES[d]}"
    found = detect_attributes(batch.video)
    assert (found["colour"] == batch.labels["colour"][:, 0]).all()
    assert (found["direction"] == batch.labels["direction"][:, 0]).all()


def test_shapes_stay_in_frame():
    ds = CaptionedShapes(32, frames=16)
    centers = ds.batch(64, seed=1).labels["centers"]
    assert centers.min() >= ds.half and centers.max() <= 32 - 1 - ds.half


def test_tokenize():
    tokens = tokenize(["a red square moves left"], length=8)
    assert tokens.shape == (1, 8) and tokens[0, 5:].eq(0).all()
    assert [VOCAB[i] for i in tokens[0, :5]] == ["a", "red", "square", "moves", "left"]
    with pytest.raises(ValueError, match="unknown word 'purple'"):
        tokenize(["a purple square moves left"])


@pytest.mark.parametrize("make, message", [
    (lambda: MovingDigits(size=16, digit_size=16), "cannot move"),
    (lambda: MovingDigits(frames=0), "frames must be a positive integer"),
    (lambda: MovingDigits(digits=0), "digits must be a positive integer"),
    (lambda: BouncingBalls(size=8, radius=5), "cannot bounce"),
    (lambda: CaptionedShapes(colours=("red", "mauve")), "unknown colour"),
    (lambda: CaptionedShapes(size=16, frames=32), "does not fit"),
])
def test_bad_arguments(make, message):
    with pytest.raises(ValueError, match=message):
        make()


def test_bad_batch_arguments():
    with pytest.raises(ValueError, match="n must be a positive integer"):
        MovingDigits(32).batch(0)
    with pytest.raises(ValueError, match="split"):
        MovingDigits(32).batch(2, split="test")


def test_standard_moving_mnist_file(tmp_path):
    rng = np.random.default_rng(0)
    array = rng.integers(0, 256, size=(20, 3, 64, 64), dtype=np.uint8)
    path = tmp_path / "mnist_test_seq.npy"
    np.save(path, array)
    video = load_moving_mnist(path)
    assert video.shape == (3, 1, 20, 64, 64)
    assert torch.allclose((video[1, 0, 7] + 1) * 127.5, torch.from_numpy(array[7, 1]).float(), atol=1e-4)
    assert load_moving_mnist(path, limit=2).shape[0] == 2
    np.save(tmp_path / "bad.npy", array[0])
    with pytest.raises(ValueError, match=r"\(T, N, H, W\)"):
        load_moving_mnist(tmp_path / "bad.npy")
    with pytest.raises(FileNotFoundError):
        load_moving_mnist(tmp_path / "missing.npy")


def test_renders_on_any_device_identically():
    if not torch.cuda.is_available():
        pytest.skip("needs CUDA")
    ds = MovingDigits(32, frames=4)
    # bilinear sprite upscaling may differ in the last float bits between CPU and CUDA kernels
    assert torch.allclose(ds.batch(4, seed=1).video, ds.batch(4, seed=1, device="cuda").video.cpu(), atol=1e-5)


def test_cropped_digits_square_equals_moving_digits_and_wide_shape() -> None:
    a = CroppedDigits(32, 32, frames=6).batch(3, seed=4)
    b = MovingDigits(size=32, frames=6).batch(3, seed=4)
    torch.testing.assert_close(a.video, b.video)
    wide = CroppedDigits(32, 48, frames=5).batch(4, seed=1)
    assert wide.video.shape == (4, 1, 5, 32, 48)
    assert wide.video.min() >= -1 and wide.video.max() <= 1
    d = CroppedDigits(32, 48).digit_size
    pos = wide.labels["positions"]
    assert pos[..., 0].max() <= 32 - d + 1e-4 and pos[..., 1].max() <= 48 - d + 1e-4
    assert pos[..., 1].max() > 32 - d  # the wide canvas is used


def test_bucket_stream_one_shape_per_batch_deterministic_images() -> None:
    buckets = [(CroppedDigits(16, 16, frames=4), 3, False), (CroppedDigits(16, 24, frames=8), 2, False),
               (CroppedDigits(16, 16, frames=4), 5, True)]
    stream = bucket_stream(buckets, seed=0)
    shapes = {tuple(stream(i).video.shape) for i in range(24)}
    assert shapes == {(3, 1, 4, 16, 16), (2, 1, 8, 16, 24), (5, 1, 1, 16, 16)}
    torch.testing.assert_close(stream(7).video, bucket_stream(buckets, seed=0)(7).video)


def test_foreground_is_brightness_or_saturation_above_the_level() -> None:
    grey = torch.full((1, 1, 2, 2, 2), -1.0)  # black
    grey[0, 0, 0, 0, 0] = 1.0  # one white pixel
    grey[0, 0, 1, 0, 0] = -0.4  # 0.3 in [0, 1]: exactly the level, not an object
    w = foreground(grey)
    assert w.shape == (1, 2, 2, 2) and w[0, 0, 0, 0] == 1.0 and w.sum() == 1.0
    colour = torch.zeros(1, 3, 1, 2, 2)  # mid grey: no saturation, no object
    colour[0, :, 0, 1, 1] = torch.tensor([1.0, -1.0, -1.0])  # saturated red
    w = foreground(colour)
    assert w[0, 0, 1, 1] == 1.0 and w.sum() == 1.0
