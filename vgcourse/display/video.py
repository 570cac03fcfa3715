"""Videos in the notebook and on disk: embedded GIF/mp4 players, and save/read round trips.

Clips are encoded with moviepy 2 into a private temporary directory, so nothing is ever written beside
the notebook; the bytes are embedded in the page as a base64 data URI.

Sizes measured (16 frames, a grid of 8 clips of 64×64 tiled to 528×66, moviepy 2.1, libx264 crf 20),
as embedded by ``show_video(..., scale=2)``: 8 moving digits: GIF 185 KB, mp4 24 KB; moving squares: GIF
10 KB, mp4 5-8 KB; smooth colour gradients: GIF 260 KB (the 256-colour palette dithers them), mp4 43 KB;
noise: GIF 730 KB, mp4 1.1 MB. ``encode_video``/``save_video`` upscale in pixels, so a GIF at ``scale=2``
is 2-4 times larger (digits: 430 KB). Prefer mp4 for colour-rich clips, and show few, small ones.
"""

from __future__ import annotations

import base64
import html
import math
import shutil
import tempfile
import warnings
from pathlib import Path

import numpy as np
import torch
from einops import repeat

from vgcourse.video import check_video, from_uint8, to_uint8, video_grid

FORMATS = {"gif": "image/gif", "mp4": "video/mp4"}


def _as_clip(video: torch.Tensor, nrow: int | None = None, name: str = "video") -> torch.Tensor:
    """A clip (C, T, H, W) or a batch (B, C, T, H, W) in [-1, 1] -> one clip (1, C, T, H', W'), tiled if B > 1."""
    if isinstance(video, torch.Tensor) and video.ndim == 4:
        video = video[None]  # (1, C, T, H, W)
    if isinstance(video, torch.Tensor) and video.ndim != 5:
        raise ValueError(f"expected {name} as a clip (C, T, H, W) or a batch (B, C, T, H, W), "
                         f"got {tuple(video.shape)}")
    check_video(video, name)
    if 0 in video.shape:
        raise ValueError(f"expected {name} with at least one clip, one frame and one pixel, got shape "
                         f"{tuple(video.shape)} (B, C, T, H, W)")
    if video.shape[1] not in (1, 3):
        raise ValueError(f"expected {name} with C = 1 or 3 channels to display, got {tuple(video.shape)}")
    _warn_if_ambiguous(video.shape, name)
    if video.shape[0] > 1:
        video = video_grid(video.detach().cpu(), nrow=nrow)  # (1, C, T, rows*(H+2), nrow*(W+2))
    return video


def _warn_if_ambiguous(shape: torch.Size, name: str) -> None:
    """Say how a layout that reads two ways was read: axes 1 and 2 both of size 1 or 3 (and not both 1), e.g. a
    (B, T, C, H, W) batch of 3 greyscale frames read as one RGB frame."""
    c, t = shape[1], shape[2]
    if c in (1, 3) and t in (1, 3) and (c, t) != (1, 1):
        colours = "3 colour channels (RGB)" if c == 3 else "1 channel (greyscale)"
        frames = f"{t} frame" + ("s" if t > 1 else "")
        warnings.warn(f"{name} of shape {tuple(shape)} read as (B, C, T, H, W): axis 1 as {colours}, axis 2 as "
                      f"{frames}; if axis 1 holds the frames, rearrange first: "
                      "einops.rearrange(video, 'b t c h w -> b c t h w')", UserWarning, stacklevel=6)


def _check_fps(fps: float) -> None:
    if isinstance(fps, bool) or not isinstance(fps, (int, float)) or not math.isfinite(fps) or fps <= 0:
        raise ValueError(f"expected fps as a positive number of frames per second, got {fps!r}")


def _frames(video: torch.Tensor, scale: int = 1, nrow: int | None = None, even: bool = False,
            name: str = "video") -> np.ndarray:
    """A float clip or batch -> RGB uint8 frames (T, H*scale, W*scale, 3), optionally padded to even H, W."""
    if not isinstance(scale, int) or scale < 1:
        raise ValueError(f"expected scale as an integer >= 1, got {scale!r}")
    frames = to_uint8(_as_clip(video, nrow, name))  # (T, H, W, C)
    if frames.shape[-1] == 1:
        frames = repeat(frames, "t h w 1 -> t h w c", c=3)  # greyscale -> RGB for the encoders
    frames = repeat(frames, "t h w c -> t (h s1) (w s2) c", s1=scale, s2=scale)  # nearest-neighbour
    if even:  # yuv420p needs even sizes: repeat the last row / column
        h, w = frames.shape[1:3]
        frames = np.pad(frames, ((0, 0), (0, h % 2), (0, w % 2), (0, 0)), mode="edge")
    return np.ascontiguousarray(frames)


def _write(frames: np.ndarray, path: Path, fps: float, loop: bool = True) -> None:
    """Encode RGB uint8 frames (T, H, W, 3) to ``path`` (.gif or .mp4) with moviepy, silently."""
    from moviepy import VideoClip  # imported here: moviepy is slow to import

    _check_fps(fps)
    # Not ImageSequenceClip: its float frame times drop or repeat frames (e.g. 15 of 16 at fps=3 or 24).
    # Frame i is shown at t = i / fps, so round(t * fps) is exact; the extra half frame of duration
    # makes moviepy's int(duration * fps) count all T frames.
    count = len(frames)
    clip = VideoClip(lambda t: frames[min(round(t * fps), count - 1)], duration=(count + 0.5) / fps)
    try:
        if path.suffix == ".gif":
            clip.write_gif(str(path), fps=fps, loop=0 if loop else None, logger=None)
        else:
            clip.write_videofile(str(path), fps=fps, codec="libx264", audio=False, preset="medium",
                                 pixel_format="yuv420p", ffmpeg_params=["-crf", "20"], logger=None)
    finally:
        clip.close()


def _suffix(path: Path) -> str:
    suffix = path.suffix.lower().lstrip(".")
    if suffix not in FORMATS:
        raise ValueError(f"expected a path ending in .gif or .mp4, got {str(path)!r}")
    return suffix


def _encode(frames: np.ndarray, format: str, fps: float, loop: bool = True) -> bytes:
    """RGB uint8 frames (T, H, W, 3) -> GIF or mp4 bytes, through a private temporary directory."""
    with tempfile.TemporaryDirectory(prefix="vgcourse-") as tmp:
        path = Path(tmp) / f"clip.{format}"
        _write(frames, path, fps, loop)
        return path.read_bytes()


def _check_format(format: str) -> None:
    if format not in FORMATS:
        raise ValueError(f"expected format 'gif' or 'mp4', got {format!r}")


def encode_video(video: torch.Tensor, fps: float = 8, scale: int = 2, nrow: int | None = None,
                 format: str = "gif", loop: bool = True) -> bytes:
    """Encode a clip (C, T, H, W) or a batch (B, C, T, H, W) in [-1, 1] to GIF or mp4 bytes, in memory.

    The frames are upscaled ``scale`` times in pixels (nearest-neighbour) before encoding.
    """
    _check_format(format)
    frames = _frames(video, scale, nrow, even=format == "mp4")  # (T, H*scale, W*scale, 3)
    return _encode(frames, format, fps, loop)


def _embed(video: torch.Tensor, fps: float, scale: int, nrow: int | None, format: str, loop: bool) -> str:
    """An HTML element embedding the clip as a base64 data URI, shown ``scale`` times larger.

    A GIF is encoded at its own resolution and enlarged by the browser without smoothing
    (``image-rendering: pixelated``): the same picture as upscaled pixels, at a quarter of the bytes for
    ``scale=2`` (8 moving digits, 16 frames: 185 KB instead of 430 KB). An mp4 is upscaled in pixels, so
    that yuv420p's half-resolution colour does not smear single pixels.
    """
    _check_format(format)
    _check_fps(fps)
    if not isinstance(scale, int) or scale < 1:
        raise ValueError(f"expected scale as an integer >= 1, got {scale!r}")
    pixel_scale = 1 if format == "gif" else scale
    frames = _frames(video, pixel_scale, nrow, even=format == "mp4")  # (T, H', W', 3)
    data = _encode(frames, format, fps, loop)
    height, width = (n * scale // pixel_scale for n in frames.shape[1:3])
    uri = f"data:{FORMATS[format]};base64,{base64.b64encode(data).decode('ascii')}"
    size = f'width="{width}" height="{height}" style="image-rendering: pixelated"'
    if format == "gif":
        return f'<img src="{uri}" {size}/>'
    return f'<video autoplay {"loop " if loop else ""}muted controls playsinline {size} src="{uri}"></video>'


def show_video(video: torch.Tensor, fps: float = 8, scale: int = 2, nrow: int | None = None,
               caption: str | None = None, format: str = "gif", loop: bool = True):
    """Embed a clip (C, T, H, W) or a batch (B, C, T, H, W) in [-1, 1] in the notebook; a batch is tiled.

    Returns an ``IPython.display.HTML`` object (the notebook shows it when it ends a cell).
    Inputs:
        video: float (C, T, H, W) or (B, C, T, H, W), C = 1 or 3, values in [-1, 1].
        fps: frames per second; scale: integer nearest-neighbour upscaling; nrow: clips per grid row.
        format: 'gif' (an <img>, enlarged by the browser) or 'mp4' (a <video>, upscaled in pixels and padded
            to even sizes for yuv420p).
    """
    from IPython.display import HTML

    body = _embed(video, fps, scale, nrow, format, loop)
    if caption is not None:
        body = (f'<figure style="display: inline-block; margin: 0">{body}'
                f'<figcaption>{html.escape(str(caption))}</figcaption></figure>')
    return HTML(body)


def side_by_side(videos: dict[str, torch.Tensor], fps: float = 8, scale: int = 2, format: str = "gif",
                 nrow: int | None = None, loop: bool = True):
    """Embed several clips or batches in one HTML table, one labelled column each (e.g. real vs generated).

    Inputs:
        videos: {label: float (C, T, H, W) or (B, C, T, H, W) in [-1, 1]}; batches are tiled with ``nrow``.
    """
    from IPython.display import HTML

    if not isinstance(videos, dict) or not videos:
        raise ValueError(f"expected a non-empty dict {{label: video}}, got {type(videos).__name__}"
                         + (" (empty)" if isinstance(videos, dict) else ""))
    heads, cells = [], []
    for label, video in videos.items():
        heads.append(f'<th style="text-align: center">{html.escape(str(label))}</th>')
        cells.append(f'<td style="vertical-align: top">{_embed(video, fps, scale, nrow, format, loop)}</td>')
    return HTML(f"<table><tr>{''.join(heads)}</tr><tr>{''.join(cells)}</tr></table>")


def save_video(video: torch.Tensor, path: str | Path, fps: float = 8, scale: int = 1,
               nrow: int | None = None) -> Path:
    """Write a clip (C, T, H, W) or a tiled batch (B, C, T, H, W) in [-1, 1] to ``path`` (.gif or .mp4).

    mp4 is libx264/yuv420p, so an odd height or width is padded by one repeated row or column.
    """
    path = Path(path)
    format = _suffix(path)
    frames = _frames(video, scale, nrow, even=format == "mp4")  # (T, H', W', 3)
    with tempfile.TemporaryDirectory(prefix="vgcourse-") as tmp:  # never a partial file at ``path``
        tmp_path = Path(tmp) / f"clip.{format}"
        _write(frames, tmp_path, fps)
        path.parent.mkdir(parents=True, exist_ok=True)
        shutil.move(tmp_path, path)
    return path


def _read_gif(path: Path) -> np.ndarray:
    """GIF -> RGB uint8 frames (T, H, W, 3); frames the encoder merged (identical in a row) are repeated."""
    from PIL import Image, ImageSequence

    frames, durations = [], []
    with Image.open(path) as im:
        for frame in ImageSequence.Iterator(im):
            frames.append(np.asarray(frame.convert("RGB")))
            durations.append(frame.info.get("duration", 0) or 0)
    unit = min((d for d in durations if d > 0), default=0)
    counts = [max(1, round(d / unit)) if unit else 1 for d in durations]
    return np.stack([f for f, n in zip(frames, counts) for _ in range(n)])


def _read_mp4(path: Path) -> np.ndarray:
    """mp4 -> RGB uint8 frames (T, H, W, 3) through moviepy's VideoFileClip."""
    from imageio_ffmpeg import count_frames_and_secs
    from moviepy import VideoFileClip

    # moviepy's n_frames comes from a duration rounded to 1/100 s and can miss the last frame:
    # count the frames exactly by decoding with imageio-ffmpeg (moviepy's own ffmpeg backend).
    count = count_frames_and_secs(str(path))[0]
    clip = VideoFileClip(str(path), audio=False)
    try:
        frames = [clip.get_frame(i / clip.fps) for i in range(count)]
    finally:
        clip.close()
    return np.stack(frames).astype(np.uint8)


def read_video(path: str | Path, channels: int | None = None) -> torch.Tensor:
    """Read a .gif or .mp4 file back as a float clip (1, C, T, H, W) in [-1, 1].

    Inputs:
        channels: 3 (default) keeps RGB; 1 averages to greyscale (files always store RGB).
    """
    path = Path(path)
    format = _suffix(path)
    if not path.exists():
        raise FileNotFoundError(f"no video file at {str(path)!r}")
    frames = _read_gif(path) if format == "gif" else _read_mp4(path)  # (T, H, W, 3) uint8
    if channels == 1:
        frames = frames.astype(np.float32).mean(-1, keepdims=True).round().astype(np.uint8)  # (T, H, W, 1)
    elif channels not in (None, 3):
        raise ValueError(f"expected channels = 1, 3 or None, got {channels!r}")
    return from_uint8(frames)  # (1, C, T, H, W)
