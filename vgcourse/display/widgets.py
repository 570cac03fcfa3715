"""Scrubbers: look at a clip frame by frame, or at a diffusion trajectory step by step.

The widget only wires sliders to :func:`frame_image`, a plain function that tests call headlessly.
"""

from __future__ import annotations

import io
from collections.abc import Sequence

import ipywidgets as widgets
import numpy as np
import torch
from einops import repeat

from vgcourse.video import check_video, to_uint8


def _check_clip_or_trajectory(video: torch.Tensor) -> torch.Tensor:
    """Validate a clip (C, T, H, W) or a trajectory (S, C, T, H, W); return it as (S, C, T, H, W)."""
    if not isinstance(video, torch.Tensor):
        raise TypeError("expected a clip (C, T, H, W) or a trajectory (S, C, T, H, W) as a torch.Tensor, "
                        f"got {type(video).__name__}")
    if video.ndim not in (4, 5):
        raise ValueError("expected a clip (C, T, H, W) or a trajectory (S, C, T, H, W), "
                         f"got {tuple(video.shape)}")
    trajectory = video if video.ndim == 5 else video[None]  # (S, C, T, H, W)
    check_video(trajectory, "trajectory" if video.ndim == 5 else "clip")
    if trajectory.shape[1] not in (1, 3):
        raise ValueError(f"expected C = 1 or 3 channels to display, got {tuple(video.shape)}")
    return trajectory


def _png(frame: np.ndarray) -> bytes:
    """uint8 (H, W, C), C = 1 or 3 -> PNG bytes (greyscale 'L' or 'RGB')."""
    from PIL import Image

    image = Image.fromarray(frame[..., 0] if frame.shape[-1] == 1 else frame)
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def frame_image(video: torch.Tensor, frame: int, step: int | None = None, scale: int = 4) -> bytes:
    """PNG bytes of one frame of a clip, or of one frame at one step of a trajectory.

    Inputs:
        video: a clip (C, T, H, W) or a trajectory (S, C, T, H, W) (e.g. x_t along a diffusion sampler),
            float in [-1, 1], C = 1 or 3.
        frame: index in [0, T-1]; step: index in [0, S-1], required for a trajectory, None for a clip.
        scale: integer nearest-neighbour upscaling; the PNG is (H*scale, W*scale), greyscale or RGB.
    """
    trajectory = _check_clip_or_trajectory(video)  # (S, C, T, H, W)
    s, _, t = trajectory.shape[:3]
    if video.ndim == 5 and step is None:
        raise ValueError(f"expected a step in [0, {s - 1}] for a trajectory of shape {tuple(video.shape)}")
    if video.ndim == 4 and step not in (None, 0):
        raise ValueError(f"got step={step} for a single clip of shape {tuple(video.shape)}: "
                         "steps need a trajectory (S, C, T, H, W)")
    step = step or 0
    if not 0 <= step < s:
        raise IndexError(f"step {step} out of range: valid steps are 0..{s - 1}")
    if not 0 <= frame < t:
        raise IndexError(f"frame {frame} out of range: valid frames are 0..{t - 1}")
    if not isinstance(scale, int) or scale < 1:
        raise ValueError(f"expected scale as an integer >= 1, got {scale!r}")
    pixels = to_uint8(trajectory[step, :, frame:frame + 1])[0]  # (H, W, C)
    pixels = repeat(pixels, "h w c -> (h s1) (w s2) c", s1=scale, s2=scale)  # nearest-neighbour
    return _png(np.ascontiguousarray(pixels))


class VideoScrubber(widgets.VBox):
    """A widget to scrub through a clip's frames and, for a trajectory, through its sampling steps.

    Inputs:
        video: a clip (C, T, H, W) or a trajectory (S, C, T, H, W), float in [-1, 1].
        step_labels: one label per step (e.g. the diffusion timesteps), shown beside the step slider
            as ``f"{step_name} = {label}"``.
        scale: nearest-neighbour upscaling; fps: the speed of the Play button.
    Attributes: ``frame_slider``, ``step_slider`` (None for a clip), ``image``, ``play``.
    """

    def __init__(self, video: torch.Tensor, step_labels: Sequence | None = None, scale: int = 4,
                 fps: float = 8, step_name: str = "t"):
        trajectory = _check_clip_or_trajectory(video)  # (S, C, T, H, W)
        if not isinstance(scale, int) or scale < 1:
            raise ValueError(f"scale must be a positive int (nearest-neighbour upscaling), got {scale!r}")
        self.video = video.detach().float().cpu()
        self.scale = scale
        s, _, t = trajectory.shape[:3]
        if step_labels is not None and len(step_labels) != s:
            raise ValueError(f"expected {s} step_labels (one per step), got {len(step_labels)}")
        self.step_labels = list(step_labels) if step_labels is not None else None
        self.step_name = step_name

        self.frame_slider = widgets.IntSlider(value=0, min=0, max=t - 1, description="frame",
                                              continuous_update=True)
        self.play = widgets.Play(value=0, min=0, max=t - 1, interval=max(1, round(1000 / fps)),
                                 description="play")
        widgets.jslink((self.play, "value"), (self.frame_slider, "value"))
        controls = [widgets.HBox([self.play, self.frame_slider])]

        self.step_slider = None
        self.step_label = None
        if video.ndim == 5:
            self.step_slider = widgets.IntSlider(value=0, min=0, max=s - 1, description="step")
            self.step_label = widgets.Label()
            controls.append(widgets.HBox([self.step_slider, self.step_label]))
            self.step_slider.observe(self._update, names="value")
        self.frame_slider.observe(self._update, names="value")

        # shown at its own size (W · scale pixels wide): a notebook would otherwise stretch it to the page's width
        self.image = widgets.Image(format="png", layout=widgets.Layout(width=f"{trajectory.shape[-1] * scale}px"))
        super().__init__(controls + [self.image])
        self._update()

    @property
    def step(self) -> int | None:
        """The step shown, or None for a clip."""
        return None if self.step_slider is None else self.step_slider.value

    def _update(self, change=None) -> None:
        """Redraw the image for the sliders' current frame and step."""
        self.image.value = frame_image(self.video, self.frame_slider.value, self.step, self.scale)
        if self.step_label is not None:
            if self.step_labels is None:
                self.step_label.value = f"step {self.step} of {self.step_slider.max}"
            else:
                self.step_label.value = f"{self.step_name} = {self.step_labels[self.step]}"
