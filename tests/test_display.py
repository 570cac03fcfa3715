"""Tests of vgcourse.display: embedded videos, save/read round trips, scrubbers, plots."""

from __future__ import annotations

import base64
import io
import re
import tempfile

import numpy as np
import pytest
import torch
from PIL import Image

from vgcourse.display import (
    VideoScrubber,
    ema,
    encode_video,
    filmstrip,
    frame_image,
    plot_curves,
    plot_metric_bars,
    plot_xy,
    read_video,
    save_video,
    show_video,
    side_by_side,
)
from vgcourse.video import to_uint8, video_grid


def squares(b: int = 2, c: int = 1, t: int = 8, h: int = 16, w: int = 16, size: int = 4) -> torch.Tensor:
    """White squares moving on black, one position per frame: (B, C, T, H, W) in {-1, 1}."""
    v = -torch.ones(b, c, t, h, w)
    for i in range(b):
        for j in range(t):
            y, x = (j + 3 * i) % (h - size), (2 * j + 5 * i) % (w - size)
            v[i, :, j, y:y + size, x:x + size] = 1
    return v


def smooth_colour(t: int = 8, h: int = 24, w: int = 32) -> torch.Tensor:
    """A smooth moving colour gradient: (3, T, H, W) in [-0.8, 0.8]."""
    tt, yy, xx = torch.meshgrid(torch.arange(t), torch.arange(h), torch.arange(w), indexing="ij")
    phase = 2 * torch.pi * (xx + 2 * tt) / w
    return 0.8 * torch.stack([torch.sin(phase), torch.cos(phase + yy / h), torch.sin(yy / h * 3 + tt / 4)])


def data_uri(html: str, mime: str) -> bytes:
    match = re.search(rf'src="data:{re.escape(mime)};base64,([A-Za-z0-9+/=]+)"', html)
    assert match, f"no {mime} data URI in {html[:100]}"
    return base64.b64decode(match.group(1))


@pytest.fixture
def clean_dirs(tmp_path, monkeypatch):
    """Run in an empty cwd with a private temp root; yield both to check they end empty."""
    cwd, tmp_root = tmp_path / "cwd", tmp_path / "tmp"
    cwd.mkdir()
    tmp_root.mkdir()
    monkeypatch.chdir(cwd)
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_root))
    yield cwd, tmp_root
    assert list(cwd.iterdir()) == [], "files left in the working directory"
    assert list(tmp_root.iterdir()) == [], "temporary files left behind"


# ---- errors -------------------------------------------------------------------------------------------

def test_show_video_input_errors():
    with pytest.raises(ValueError, match=re.escape("got (16, 64, 64)")):
        show_video(torch.zeros(16, 64, 64))
    with pytest.raises(TypeError, match="float tensor in \\[-1, 1\\], got dtype torch.uint8"):
        show_video(torch.zeros(1, 4, 8, 8, dtype=torch.uint8))
    with pytest.raises(ValueError, match="values in \\[-1, 1\\], got range \\[255, 255\\]"):
        show_video(torch.full((1, 4, 8, 8), 255.0))
    with pytest.raises(ValueError, match="C = 1 or 3 channels"):
        show_video(torch.zeros(2, 4, 8, 8))
    with pytest.raises(ValueError, match="expected format 'gif' or 'mp4', got 'avi'"):
        show_video(torch.zeros(1, 4, 8, 8), format="avi")
    with pytest.raises(ValueError, match="expected scale as an integer >= 1, got 0"):
        show_video(torch.zeros(1, 4, 8, 8), scale=0)
    with pytest.raises(ValueError, match="expected a path ending in .gif or .mp4, got 'clip.avi'"):
        save_video(torch.zeros(1, 4, 8, 8), "clip.avi")


# ---- embedding ----------------------------------------------------------------------------------------

def test_show_video_gif_embeds_every_frame_and_leaves_no_files(clean_dirs):
    batch = squares(b=3, t=6)  # (3, 1, 6, 16, 16): tiled 3 per row with 1-pixel borders -> 18 x 54
    html = show_video(batch, fps=8, scale=2, caption="a <b>test</b>")._repr_html_()
    data = data_uri(html, "image/gif")
    assert data[:6] == b"GIF89a"
    assert "<figcaption>a &lt;b&gt;test&lt;/b&gt;</figcaption>" in html
    assert 'width="108" height="36" style="image-rendering: pixelated"' in html  # enlarged by the browser
    with Image.open(io.BytesIO(data)) as im:
        assert im.size == (54, 18) and im.n_frames == 6 and im.info["loop"] == 0
        im.seek(2)
        got = np.asarray(im.convert("L"))
    np.testing.assert_array_equal(got, to_uint8(video_grid(batch))[2, :, :, 0])  # frame 2


def test_show_video_mp4_is_padded_even_and_has_mp4_signature(clean_dirs):
    html = show_video(squares(b=1, c=3, t=4, h=15, w=15)[0], scale=1, format="mp4", loop=False)._repr_html_()
    assert "<video autoplay muted controls" in html and 'width="16" height="16"' in html
    data = data_uri(html, "video/mp4")
    assert data[4:8] == b"ftyp"
    assert encode_video(squares(b=1, t=4), scale=3, format="mp4")[4:8] == b"ftyp"


def test_side_by_side_has_labelled_columns(clean_dirs):
    html = side_by_side({"real": squares(b=2), "generated": squares(b=2).flip(2)}, scale=1)._repr_html_()
    assert re.findall(r"<th[^>]*>([^<]*)</th>", html) == ["real", "generated"]
    assert html.count("data:image/gif;base64,") == 2


def test_gif_of_eight_moving_digits_is_small():
    from vgcourse.data import MovingDigits

    video = MovingDigits(size=64, frames=16).batch(8, seed=0, device="cpu").video  # (8, 1, 16, 64, 64)
    gif = data_uri(show_video(video, scale=2)._repr_html_(), "image/gif")
    assert len(gif) < 300_000, f"{len(gif)} bytes"  # measured 185 KB
    with Image.open(io.BytesIO(gif)) as im:
        assert im.n_frames == 16


# ---- save / read --------------------------------------------------------------------------------------

def test_gif_round_trip_is_exact_with_repeated_frames(tmp_path):
    clip = squares(b=1, t=6)[0] * 0.5  # (1, 6, 16, 16), grey levels only
    clip[:, 3] = clip[:, 2]  # two identical frames in a row: the GIF encoder merges them
    path = save_video(clip, tmp_path / "a.gif", fps=10)
    back = read_video(path, channels=1)
    assert back.shape == (1, 1, 6, 16, 16)
    torch.testing.assert_close(back, clip[None], atol=1 / 127.5, rtol=0)  # within uint8 rounding
    assert np.array_equal(to_uint8(back), to_uint8(clip))  # exact in uint8

    colour = torch.stack([clip[0], -clip[0], torch.full_like(clip[0], 0.2)])  # (3, 6, 16, 16), 4 colours
    back = read_video(save_video(colour, tmp_path / "c.gif", fps=7, scale=2))
    assert back.shape == (1, 3, 6, 32, 32)
    assert np.array_equal(to_uint8(back[..., ::2, ::2]), to_uint8(colour))


def test_mp4_round_trip_psnr_and_even_padding(tmp_path):
    clip = smooth_colour(t=8, h=24, w=32)
    back = read_video(save_video(clip, tmp_path / "a.mp4", fps=3))  # fps=3: a frame count moviepy rounds
    assert back.shape == (1, 3, 8, 24, 32)
    mse = ((back[0] - clip) ** 2).mean() / 4  # on a [0, 1] scale
    psnr = 10 * torch.log10(1 / mse)
    assert psnr >= 30, f"PSNR {psnr:.1f} dB"
    odd = read_video(save_video(clip[:, :3, :23, :31], tmp_path / "odd.mp4"))
    assert odd.shape == (1, 3, 3, 24, 32)  # padded to even sizes for yuv420p


def test_read_video_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="no video file at"):
        read_video(tmp_path / "missing.gif")
    with pytest.raises(ValueError, match="expected a path ending in .gif or .mp4"):
        read_video(tmp_path / "clip.webm")


# ---- widgets ------------------------------------------------------------------------------------------

def decode_png(data: bytes) -> np.ndarray:
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    with Image.open(io.BytesIO(data)) as im:
        return np.asarray(im)


def test_frame_image_matches_the_frame():
    clip = smooth_colour(t=5, h=6, w=7)  # (3, 5, 6, 7)
    want = to_uint8(clip)[3].repeat(2, 0).repeat(2, 1)  # (12, 14, 3)
    np.testing.assert_array_equal(decode_png(frame_image(clip, 3, scale=2)), want)
    grey = squares(b=1, t=4)[0]  # (1, 4, 16, 16)
    np.testing.assert_array_equal(decode_png(frame_image(grey, 1, scale=1)), to_uint8(grey)[1, :, :, 0])

    trajectory = torch.stack([clip * a for a in (1.0, 0.5, 0.0)])  # (S=3, 3, 5, 6, 7)
    np.testing.assert_array_equal(decode_png(frame_image(trajectory, 4, step=1, scale=1)),
                                  to_uint8(clip * 0.5)[4])


def test_frame_image_errors():
    clip = torch.zeros(1, 16, 4, 4)
    with pytest.raises(IndexError, match=re.escape("frame 16 out of range: valid frames are 0..15")):
        frame_image(clip, 16)
    with pytest.raises(IndexError, match=re.escape("step 3 out of range: valid steps are 0..2")):
        frame_image(torch.zeros(3, 1, 16, 4, 4), 0, step=3)
    with pytest.raises(ValueError, match=re.escape("expected a step in [0, 2]")):
        frame_image(torch.zeros(3, 1, 16, 4, 4), 0)
    with pytest.raises(ValueError, match=re.escape("or a trajectory (S, C, T, H, W), got (16, 4, 4)")):
        frame_image(torch.zeros(16, 4, 4), 0)


def test_scrubber_updates_headlessly():
    clip = smooth_colour(t=5, h=6, w=7)
    scrubber = VideoScrubber(clip, scale=2)
    assert scrubber.step_slider is None and scrubber.frame_slider.max == 4
    assert scrubber.image.value == frame_image(clip, 0, scale=2)
    scrubber.frame_slider.value = 3
    assert scrubber.image.value == frame_image(clip, 3, scale=2)

    trajectory = torch.stack([clip * a for a in (1.0, 0.5, 0.0)])  # (3, 3, 5, 6, 7)
    scrubber = VideoScrubber(trajectory, step_labels=[999, 500, 0], scale=1)
    scrubber.frame_slider.value = 2
    scrubber.step_slider.value = 1
    assert scrubber.image.value == frame_image(trajectory, 2, step=1, scale=1)
    assert scrubber.step_label.value == "t = 500"
    with pytest.raises(ValueError, match="expected 3 step_labels"):
        VideoScrubber(trajectory, step_labels=[1, 2])


def test_scrubber_shows_the_clip_at_its_own_size():
    clip = smooth_colour(t=5, h=6, w=7)
    assert VideoScrubber(clip, scale=3).image.layout.width == "21px"      # W · scale, not the page's width
    with pytest.raises(ValueError, match="scale must be a positive int"):
        VideoScrubber(clip, scale=0)


# ---- plots --------------------------------------------------------------------------------------------

def test_ema_closed_form():
    np.testing.assert_allclose(ema([0.0, 1.0], 0.5), [0.0, 2 / 3])  # (0.5 * 1) / (1 - 0.25)
    np.testing.assert_allclose(ema([3.0] * 5, 0.9), [3.0] * 5)  # bias-corrected: constants stay
    with pytest.raises(ValueError, match="expected smooth in \\[0, 1\\), got 1"):
        ema([1.0], 1)


def test_plot_curves_lines_and_points():
    rows = [{"step": 10 * i, "loss": 1 / (i + 1)} | ({"fd": 50.0 - i} if i % 2 == 0 else {}) for i in range(6)]
    fig = plot_curves(rows, title="training")
    lines = fig.axes[0].get_lines()
    assert [line.get_label() for line in lines] == ["loss", "fd"]
    np.testing.assert_array_equal(lines[1].get_xdata(), [0, 20, 40])
    fig = plot_curves(rows, keys=["loss"], smooth=0.5, logy=True)
    assert len(fig.axes[0].get_lines()) == 2 and fig.axes[0].get_yscale() == "log"
    fig = plot_curves({"loss": [3.0, 2.0, 1.0]})
    np.testing.assert_array_equal(fig.axes[0].get_lines()[0].get_xdata(), [0, 1, 2])
    with pytest.raises(KeyError, match="no \\['acc'\\] in history"):
        plot_curves(rows, keys=["acc"])


def test_plot_metric_bars_one_subplot_per_metric():
    table = {"real": {"fd": 1.0, "acc": 0.9}, "shuffled": {"fd": 30.0, "acc": 0.5}, "model": {"fd": 8.0}}
    fig = plot_metric_bars(table, ["fd", "acc"])
    assert len(fig.axes) == 2
    assert [p.get_height() for p in fig.axes[0].patches] == [1.0, 30.0, 8.0]
    assert len(fig.axes[1].patches) == 3 and np.isnan(fig.axes[1].patches[2].get_height())
    with pytest.raises(KeyError, match="no metric \\['ssim'\\]"):
        plot_metric_bars(table, ["ssim"])


def test_plot_xy_lines_and_annotations():
    points = {"ddpm": ([10, 100, 1000], [40.0, 12.0, 8.0]), "ddim": ([10, 50], [15.0, 9.0])}
    fig = plot_xy(points, "steps", "FD", logx=True, annotate={"ddim": ["10", "50"]})
    ax = fig.axes[0]
    assert len(ax.get_lines()) == 2 and ax.get_xscale() == "log"
    assert [t.get_text() for t in ax.texts] == ["10", "50"]
    with pytest.raises(ValueError, match="equal lengths, got 2 xs and 1 ys"):
        plot_xy({"a": ([1, 2], [1])})


def test_filmstrip_shows_every_other_frame_of_each_row_without_smoothing():
    grey = torch.linspace(-1, 1, 16).view(1, 16, 1, 1).expand(1, 16, 8, 8)        # frame t has one grey level
    colour = -torch.ones(3, 5, 8, 12)
    colour[0] = 1.0                                                                # red frames, wider than tall
    fig = filmstrip({"grey": grey, "colour": colour}, every=2)
    top, bottom = fig.axes
    strip = top.images[0].get_array()
    assert strip.shape == (8, 8 * (8 + 1), 3)                                       # frames 0, 2, ..., 14
    assert np.allclose(strip[0, 0], (grey[0, 0, 0, 0] + 1) / 2) and np.allclose(strip[0, 9], (grey[0, 2, 0, 0] + 1) / 2)
    assert np.allclose(strip[:, 8], 1.0)                                            # the white line after frame 0
    assert top.images[0].get_interpolation() == "nearest" and top.get_ylabel() == "grey"
    assert bottom.images[0].get_array().shape == (8, 3 * (12 + 1), 3)
    assert np.allclose(bottom.images[0].get_array()[0, 0], [1.0, 0.0, 0.0])


def test_filmstrip_input_errors():
    with pytest.raises(ValueError, match="non-empty dict"):
        filmstrip({})
    with pytest.raises(ValueError, match=r"C = 1 or 3"):
        filmstrip({"batch": torch.zeros(2, 1, 4, 8, 8)})
    with pytest.raises(TypeError, match="float clip"):
        filmstrip({"bytes": torch.zeros(1, 4, 8, 8, dtype=torch.uint8)})
    with pytest.raises(ValueError, match="positive int"):
        filmstrip({"ok": torch.zeros(1, 4, 8, 8)}, every=0)


def test_plot_xy_log_x_labels_only_its_decades():
    """Minor tick labels on a log x axis (2×10^16, 3×10^16, ...) overlapped in chapter 11's scaling plot."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    fig = plot_xy({"S": ([3.7e15], [102.0]), "main": ([7.6e16], [15.9])}, logx=True, logy=True)
    FigureCanvasAgg(fig).draw()
    assert not [t.get_text() for t in fig.axes[0].get_xticklabels(minor=True) if t.get_text()]
