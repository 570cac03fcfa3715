import numpy as np
import pytest
import torch

from vgcourse import profiles
from vgcourse.video import check_video, from_uint8, to_uint8, video_grid


def test_profile_from_env(monkeypatch):
    monkeypatch.setenv("VGCOURSE_PROFILE", "cpu")
    assert profiles.current_profile() == "cpu"
    assert profiles.pick(smoke=1, cpu=2, gpu=3) == 2
    monkeypatch.setenv("VGCOURSE_PROFILE", "GPU ")
    assert profiles.current_profile() == "gpu"


def test_unknown_profile_lists_choices(monkeypatch):
    monkeypatch.setenv("VGCOURSE_PROFILE", "fast")
    with pytest.raises(ValueError, match="smoke, cpu, gpu"):
        profiles.current_profile()


def test_default_profile_follows_hardware(monkeypatch):
    monkeypatch.delenv("VGCOURSE_PROFILE", raising=False)
    assert profiles.current_profile() == ("gpu" if torch.cuda.is_available() else "cpu")


def test_gpu_profile_without_cuda_is_an_error(monkeypatch):
    if torch.cuda.is_available():
        pytest.skip("has CUDA")
    monkeypatch.setenv("VGCOURSE_PROFILE", "gpu")
    with pytest.raises(RuntimeError, match="no CUDA device"):
        profiles.default_device()


def test_setup_on_cpu(monkeypatch):
    monkeypatch.setenv("VGCOURSE_PROFILE", "smoke")
    before = torch.get_num_threads()
    s = profiles.setup(seed=3, verbose=False)
    torch.set_num_threads(before)
    if not torch.cuda.is_available():
        assert s.device.type == "cpu" and s.amp_dtype is None and s.compile is False
    assert s.threads >= 1 and "profile=smoke" in str(s)


@pytest.mark.parametrize("bad, message", [
    (torch.zeros(16, 64, 64), r"expected video of shape \(B, C, T, H, W\), got \(16, 64, 64\)"),
    (torch.zeros(1, 16, 64, 64), "add a batch axis"),
    (torch.zeros(1, 1, 2, 4, 4, dtype=torch.uint8), "from_uint8"),
    (torch.full((1, 1, 2, 4, 4), 255.0), r"values in \[-1, 1\].*from_uint8"),
    (torch.full((1, 1, 2, 4, 4), float("nan")), "NaN"),
    (np.zeros((1, 1, 2, 4, 4)), "torch.Tensor"),
])
def test_check_video_errors(bad, message):
    with pytest.raises((ValueError, TypeError), match=message):
        check_video(bad)


def test_channel_check():
    with pytest.raises(ValueError, match="C=3"):
        check_video(torch.zeros(1, 1, 2, 4, 4), channels=3)


def test_uint8_round_trip():
    frames = np.random.default_rng(0).integers(0, 256, size=(5, 6, 7, 3), dtype=np.uint8)
    clip = from_uint8(frames)
    assert clip.shape == (1, 3, 5, 6, 7) and clip.min() >= -1 and clip.max() <= 1
    np.testing.assert_array_equal(to_uint8(clip), frames)
    np.testing.assert_array_equal(to_uint8(clip[0]), frames)  # a single clip (C, T, H, W) too


def test_to_uint8_refuses_batches():
    with pytest.raises(ValueError, match="video_grid"):
        to_uint8(torch.zeros(2, 1, 2, 4, 4))


def test_video_grid_layout():
    videos = torch.stack([torch.full((1, 2, 4, 4), v) for v in (-1.0, 0.0, 0.5)])  # (3, 1, 2, 4, 4)
    grid = video_grid(videos, nrow=2, pad=1, pad_value=1.0)
    assert grid.shape == (1, 1, 2, 2 * 6, 2 * 6)
    assert grid[0, 0, 0, 1, 1] == -1.0 and grid[0, 0, 0, 1, 7] == 0.0 and grid[0, 0, 0, 7, 1] == 0.5
    assert grid[0, 0, 0, 7, 7] == 1.0  # the empty fourth cell is padding


def test_exact_fp32_turns_fast_modes_off_and_restores_them():
    flags = lambda: (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32,  # noqa: E731
                     torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark)
    saved = flags()
    try:
        torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = True
        torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark = False, True
        with profiles.exact_fp32():
            assert flags() == (False, False, True, False)
        assert flags() == (True, True, False, True)
        with pytest.raises(RuntimeError, match="inside"):
            with profiles.exact_fp32():
                raise RuntimeError("inside")
        assert flags() == (True, True, False, True)
        profiles.set_numeric_modes(fast=False)                  # what exact_fp32 holds inside its block
        assert flags() == (False, False, True, False)
        profiles.set_numeric_modes(fast=True)                   # what setup() sets on a GPU
        assert flags() == (True, True, False, True)
    finally:
        (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32,
         torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark) = saved
